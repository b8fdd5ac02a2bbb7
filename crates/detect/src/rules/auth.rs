//! Token requests: bursts per unique ID (V16), successes at abnormal hours (V17), malformed requests
//! and authentication from outside the field's networks (V22).

use super::{f, network::off_network};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state;
use crate::template::{Compiled, OffNetwork};
use sekisho_core::time::rfc3339;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;

/// Counts events per key in fixed windows that open at the key's first event (auth bursts per unique
/// ID, distinct devices per source address). Bounded: stale keys are pruned as it grows.
#[derive(Default)]
pub struct Windows {
    pub(super) map: HashMap<String, (u32, u32)>,
    /// Size at which stale keys are next pruned; grows after each pass so pruning stays amortised O(1).
    pub(super) prune_at: usize,
}

impl Windows {
    /// Counts one event; returns the count in the key's current window.
    pub fn hit(&mut self, key: &str, now: u32, window: u32) -> u32 {
        if self.map.len() >= self.prune_at.max(100_000) {
            self.map
                .retain(|_, (start, _)| now < start.saturating_add(window));
            self.prune_at = self.map.len().saturating_mul(2);
        }
        let e = self.map.entry(key.to_owned()).or_insert((now, 0));
        if now >= e.0.saturating_add(window) {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1
    }
}

/// What the gateway knows of one token request.
#[derive(Clone, Copy, Debug)]
pub struct AuthFacts<'a> {
    pub at_ms: i64,
    pub success: bool,
    pub unique_id: &'a str,
    pub source_ip: IpAddr,
    /// The request's body was not JSON in UTF-8 (refused `malformed_json`).
    pub malformed: bool,
}

/// Evaluates a token request of a field (the device may be unknown: bursts count per unique ID).
pub fn auth(c: &Compiled, bursts: &mut Windows, a: &AuthFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let t = &c.template;
    if a.malformed {
        out.push(f(
            Rule::FormatMalformed,
            Threat::Hijacking,
            Severity::Medium,
            format!(
                "a token request for '{}' was not JSON in UTF-8 (malformed_json)",
                a.unique_id
            ),
            json!({"error": "malformed_json", "unique_id": a.unique_id, "source_ip": a.source_ip.to_string()}),
        ));
    }
    if t.auth.burst_max > 0 {
        let n = bursts.hit(a.unique_id, state::secs(a.at_ms), t.auth.burst_window.0);
        if n == t.auth.burst_max {
            out.push(f(
                Rule::AuthBurst,
                Threat::UnauthorizedAccess,
                Severity::High,
                format!("{n} token requests for '{}' within {}; the template's limit is {}", a.unique_id, t.auth.burst_window, t.auth.burst_max),
                json!({"unique_id": a.unique_id, "count": n, "window_secs": t.auth.burst_window.0, "burst_max": t.auth.burst_max,
                       "source_ip": a.source_ip.to_string()}),
            ));
        }
    }
    if a.success && c.in_quiet_hours(a.at_ms.div_euclid(1000)) {
        let q = t.auth.quiet_hours.as_ref();
        out.push(f(
            Rule::AuthQuietHours,
            Threat::UnauthorizedAccess,
            Severity::Medium,
            format!(
                "successful authentication at an abnormal hour ({}-{} local, UTC{})",
                q.map_or("", |q| q.start.as_str()),
                q.map_or("", |q| q.end.as_str()),
                t.utc_offset
            ),
            json!({"attempted_at": rfc3339(a.at_ms), "utc_offset": t.utc_offset, "quiet_hours": q}),
        ));
    }
    if a.success && c.off_network(a.source_ip) && t.network.off_network != OffNetwork::Allow {
        out.push(off_network(c, a.source_ip, "authentication"));
    }
    out
}
