//! Where data comes from: outside the field's networks (V22), not the SIM's address (V20), one
//! address carrying several devices (V21).

use super::{MessageFacts, f};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state;
use crate::template::{Compiled, OffNetwork};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;

/// A message's source address against the field's networks and the SIM's address.
pub(super) fn judge(c: &Compiled, m: &MessageFacts, out: &mut Vec<Finding>) {
    let t = &c.template;
    if c.off_network(m.source_ip) && t.network.off_network != OffNetwork::Allow {
        out.push(off_network(c, m.source_ip, "data"));
    }
    if let Some(sim_ip) = m
        .sim_ip
        .filter(|ip| t.network.check_sim_ip && *ip != m.source_ip)
    {
        out.push(f(
            Rule::NetworkSimIpMismatch,
            Threat::Spoofing,
            Severity::High,
            format!(
                "data came from {} while the device's SIM has {sim_ip}",
                m.source_ip
            ),
            json!({"source_ip": m.source_ip.to_string(), "sim_ip": sim_ip.to_string()}),
        ));
    }
}

pub(super) fn off_network(c: &Compiled, ip: IpAddr, what: &str) -> Finding {
    let mode = c.template.network.off_network;
    let severity = match mode {
        OffNetwork::Notify => Severity::Notice,
        OffNetwork::Block => Severity::High,
        _ => Severity::Medium,
    };
    f(
        Rule::NetworkOffNetwork,
        Threat::Theft,
        severity,
        format!("{what} from {ip}, outside the field's networks"),
        json!({"source_ip": ip.to_string(), "allowed": c.template.network.allowed.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
               "mode": mode}),
    )
}

/// Distinct devices per source address in a window, compactly: the address as a `u32` key, the window
/// start, and the first three distinct devices inline (24 bytes an address). Distinct counts are exact
/// up to four devices, which covers `max_devices_per_ip` up to 3; beyond, repeats of a fourth device may
/// be counted again (the rule then fires early, never late).
#[derive(Default)]
pub struct SharedIps {
    pub(super) map: HashMap<u32, IpWindow>,
    pub(super) prune_at: usize,
}

#[derive(Clone, Copy)]
pub(super) struct IpWindow {
    start: u32,
    devices: [u32; 3],
    distinct: u32,
}

impl SharedIps {
    /// Records `device` from `ip` at `now`; returns the distinct devices seen in the address's window.
    pub fn record(&mut self, ip: IpAddr, device: u32, now: u32, window: u32) -> u32 {
        if self.map.len() >= self.prune_at.max(100_000) {
            self.map.retain(|_, w| now < w.start.saturating_add(window));
            self.prune_at = self.map.len().saturating_mul(2);
        }
        let fresh = IpWindow {
            start: now,
            devices: [device; 3],
            distinct: 1,
        };
        let w = self.map.entry(state::ip_key(ip)).or_insert(fresh);
        if now >= w.start.saturating_add(window) {
            *w = fresh;
        } else if !w.devices.contains(&device) {
            if (w.distinct as usize) < w.devices.len() {
                w.devices[w.distinct as usize] = device;
            }
            w.distinct += 1;
        }
        w.distinct
    }
}

/// One source address carrying several devices (V21), unless it is a declared NAT range.
pub fn shared_ip(
    c: &Compiled,
    ips: &mut SharedIps,
    ip: IpAddr,
    device_key: u32,
    now_ms: i64,
) -> Option<Finding> {
    let n = &c.template.network;
    if n.max_devices_per_ip == 0 || n.nat_ranges.iter().any(|r| r.contains(&ip)) {
        return None;
    }
    let count = ips.record(ip, device_key, state::secs(now_ms), n.shared_ip_window.0);
    (count == n.max_devices_per_ip + 1).then(|| {
        f(
            Rule::NetworkSharedIp,
            Threat::Spoofing,
            Severity::High,
            format!("{count} devices sent from {ip} within {}; the template allows {}", n.shared_ip_window, n.max_devices_per_ip),
            json!({"source_ip": ip.to_string(), "devices": count, "window_secs": n.shared_ip_window.0, "max_devices_per_ip": n.max_devices_per_ip}),
        )
    })
}
