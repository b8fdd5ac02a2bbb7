//! SIM traffic against what reached the gateway (V19, ※2, ※3).

use super::f;
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::template::Compiled;
use sekisho_core::detection::SimVolumeFacts;
use serde_json::json;

/// Compares one window of a SIM's accounting with the gateway's own count (V19, ※2, ※3).
pub fn sim_volume(c: &Compiled, v: &SimVolumeFacts) -> Vec<Finding> {
    let r = &c.template.sim;
    let mut out = Vec::new();
    let fixed = v.connections as f64 * r.connection_overhead_bytes as f64
        + r.allowance_bytes_per_hour as f64 * v.secs as f64 / 3600.0;
    let expect_up = v.gateway_rx as f64 * (1.0 + r.overhead_ratio) + fixed;
    let expect_down = v.gateway_tx as f64 * (1.0 + r.overhead_ratio) + fixed;
    let evidence = |expected: f64| {
        json!({"window_secs": v.secs, "sim_uplink": v.sim_uplink, "sim_downlink": v.sim_downlink,
               "gateway_rx": v.gateway_rx, "gateway_tx": v.gateway_tx, "connections": v.connections,
               "expected": expected.round() as u64, "overhead_ratio": r.overhead_ratio})
    };
    let limit_up = expect_up * r.uplink_tolerance + r.uplink_min_excess_bytes as f64;
    if r.check_uplink && v.sim_uplink as f64 > limit_up {
        out.push(f(
            Rule::SimUplinkExcess,
            Threat::Hijacking,
            Severity::High,
            format!(
                "the SIM sent {} bytes in {}s; {} reached the gateway over {} connections (about {} expected with overhead)",
                v.sim_uplink,
                v.secs,
                v.gateway_rx,
                v.connections,
                expect_up.round() as u64
            ),
            evidence(expect_up),
        ));
    }
    let limit_down = expect_down * r.downlink_tolerance + r.downlink_min_excess_bytes as f64;
    if r.check_downlink && v.sim_downlink as f64 > limit_down {
        out.push(f(
            Rule::SimDownlinkUnsolicited,
            Threat::UnauthorizedAccess,
            Severity::Low,
            format!(
                "the SIM received {} bytes in {}s; the gateway sent it {} (about {} expected): traffic from elsewhere reaches the device",
                v.sim_downlink,
                v.secs,
                v.gateway_tx,
                expect_down.round() as u64
            ),
            evidence(expect_down),
        ));
    }
    out
}
