//! Where data comes from: outside the field's networks (V22), not the SIM's address (V20), one
//! address carrying several devices (V21).

use super::{MessageFacts, f};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state;
use crate::template::{Compiled, OffNetwork};
use serde_json::json;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// Distinct devices per source address in a window, compactly: the address as a `u32` key and the
/// window start. An address seen from one device only (the common case: a SIM has its own address)
/// keeps that device inline (12 bytes an address); once a second device sends from it within the
/// window it moves to a map that keeps the first three distinct devices inline (24 bytes an address),
/// and back when a new window starts. Distinct counts are exact up to four devices, which covers
/// `max_devices_per_ip` up to 3; beyond, repeats of a fourth device may be counted again (the rule
/// then fires early, never late).
#[derive(Default)]
pub struct SharedIps {
    /// Addresses with one device in their window: address → (window start, device).
    pub(super) single: HashMap<u32, (u32, u32)>,
    /// Addresses with several devices in their window.
    pub(super) shared: HashMap<u32, IpWindow>,
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
        let live = |start: u32| now < start.saturating_add(window);
        if self.single.len() + self.shared.len() >= self.prune_at.max(100_000) {
            self.single.retain(|_, (start, _)| live(*start));
            self.shared.retain(|_, w| live(w.start));
            self.prune_at = (self.single.len() + self.shared.len()).saturating_mul(2);
        }
        let key = state::ip_key(ip);
        if let Some(w) = self.shared.get_mut(&key) {
            if live(w.start) {
                if !w.devices.contains(&device) {
                    if (w.distinct as usize) < w.devices.len() {
                        w.devices[w.distinct as usize] = device;
                    }
                    w.distinct += 1;
                }
                return w.distinct;
            }
            // A new window: one device again.
            self.shared.remove(&key);
            self.single.insert(key, (now, device));
            return 1;
        }
        match self.single.entry(key) {
            Entry::Vacant(e) => {
                e.insert((now, device));
                1
            }
            Entry::Occupied(mut e) => {
                let (start, first) = *e.get();
                if !live(start) {
                    e.insert((now, device));
                    1
                } else if first == device {
                    1
                } else {
                    e.remove();
                    let w = IpWindow {
                        start,
                        devices: [first, device, first],
                        distinct: 2,
                    };
                    self.shared.insert(key, w);
                    2
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The former representation (every address with three devices inline), as the reference.
    #[derive(Default)]
    struct Reference(HashMap<u32, IpWindow>);

    impl Reference {
        fn record(&mut self, ip: IpAddr, device: u32, now: u32, window: u32) -> u32 {
            let fresh = IpWindow {
                start: now,
                devices: [device; 3],
                distinct: 1,
            };
            let w = self.0.entry(state::ip_key(ip)).or_insert(fresh);
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

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn one_device_stays_inline_until_a_second_shares_the_address() {
        let mut s = SharedIps::default();
        assert_eq!(s.record(ip(1), 10, 100, 60), 1);
        assert_eq!(s.record(ip(1), 10, 101, 60), 1, "the same device again");
        assert_eq!((s.single.len(), s.shared.len()), (1, 0));
        assert_eq!(s.record(ip(1), 11, 102, 60), 2);
        assert_eq!((s.single.len(), s.shared.len()), (0, 1));
        assert_eq!(s.record(ip(1), 10, 103, 60), 2, "the first device again");
        assert_eq!(s.record(ip(1), 12, 104, 60), 3);
        assert_eq!(s.record(ip(1), 13, 105, 60), 4);
        assert_eq!(s.record(ip(1), 11, 106, 60), 4);
        assert_eq!(
            s.record(ip(1), 100, 159, 60),
            5,
            "the window is the first device's"
        );
        assert_eq!(s.record(ip(1), 11, 160, 60), 1, "a new window");
        assert_eq!((s.single.len(), s.shared.len()), (1, 0));
        assert_eq!(s.record(ip(1), 11, 219, 60), 1);
        assert_eq!(
            s.record(ip(1), 12, 220, 60),
            1,
            "a new window, another device"
        );
    }

    #[test]
    fn counts_as_the_former_representation_did() {
        let (mut s, mut r) = (SharedIps::default(), Reference::default());
        // A deterministic walk over few addresses and devices, so that addresses are shared, windows
        // expire and pruning runs.
        let mut x = 0x2545_f491_u32;
        let mut now = 0;
        for step in 0..400_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let addr = if step % 3 == 0 { x % 64 } else { x % 200_000 };
            let device = (x >> 8) % 6;
            now += x % 3 / 2;
            let got = s.record(ip(addr), device, now, 30);
            assert_eq!(got, r.record(ip(addr), device, now, 30), "step {step}");
        }
        assert!(s.prune_at > 0, "pruning ran");
    }
}
