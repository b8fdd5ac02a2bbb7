//! Connections per source address, so that one address cannot hold every connection of the device
//! listener and lock every other device out. An address may hold `per_address` connections; an address
//! inside a declared NAT range (`[device] nat_ranges`, and every field template's `network.nat_ranges`,
//! where many devices share one address) may hold `per_nat_address` (0: only the listener's global cap).
//!
//! Invariant: a connection holds its [`AddressGuard`] for as long as it is open, and only then; the map
//! holds addresses with at least one open connection, so it never grows beyond the open connections.

use ipnet::IpNet;
use sekisho_core::FieldId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

/// The per-address limits of one listener.
pub struct AddressCaps {
    per_address: u32,
    per_nat_address: u32,
    configured: Vec<IpNet>,
    by_field: RwLock<HashMap<FieldId, Vec<IpNet>>>,
    /// `configured` and every field's ranges, rebuilt when a field's ranges change.
    nat: RwLock<Arc<[IpNet]>>,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection's share of its address.
pub struct AddressGuard {
    caps: Arc<AddressCaps>,
    ip: IpAddr,
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let mut open = self.caps.lock_open();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl AddressCaps {
    pub fn new(per_address: u32, per_nat_address: u32, configured: Vec<IpNet>) -> Self {
        Self {
            per_address,
            per_nat_address,
            nat: RwLock::new(configured.clone().into()),
            configured,
            by_field: RwLock::default(),
            open: Mutex::default(),
        }
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the NAT ranges a field declares (its template's `network.nat_ranges`).
    pub fn set_field_nat(&self, field: &FieldId, ranges: Vec<IpNet>) {
        let mut by_field = self.by_field.write().unwrap_or_else(|e| e.into_inner());
        if ranges.is_empty() {
            by_field.remove(field);
        } else {
            by_field.insert(field.clone(), ranges);
        }
        let mut all = self.configured.clone();
        for r in by_field.values().flatten() {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        *self.nat.write().unwrap_or_else(|e| e.into_inner()) = all.into();
    }

    /// The cap of `ip`: 0 when only the listener's global cap applies.
    pub fn cap_of(&self, ip: IpAddr) -> u32 {
        let nat = self.nat.read().unwrap_or_else(|e| e.into_inner()).clone();
        if nat.iter().any(|n| n.contains(&ip)) {
            self.per_nat_address
        } else {
            self.per_address
        }
    }

    /// A share of `ip`'s connections, or `None` when the address holds its cap already.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<AddressGuard> {
        let cap = self.cap_of(ip);
        let mut open = self.lock_open();
        let n = open.entry(ip).or_insert(0);
        if cap > 0 && *n >= cap {
            if *n == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *n += 1;
        drop(open);
        Some(AddressGuard {
            caps: self.clone(),
            ip,
        })
    }

    /// Addresses with an open connection.
    pub fn addresses(&self) -> usize {
        self.lock_open().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_holds_its_cap_and_nat_ranges_hold_more() {
        let caps = Arc::new(AddressCaps::new(
            2,
            4,
            vec!["100.64.0.0/10".parse().unwrap()],
        ));
        let a = ip("198.51.100.7");
        let (g1, g2) = (caps.enter(a).unwrap(), caps.enter(a).unwrap());
        assert!(caps.enter(a).is_none(), "over the cap");
        assert!(caps.enter(ip("198.51.100.8")).is_some(), "another address");
        drop(g1);
        let g3 = caps.enter(a).expect("a closed connection frees its share");
        let cgnat = ip("100.64.1.2");
        let held: Vec<_> = (0..4).map(|_| caps.enter(cgnat).unwrap()).collect();
        assert!(caps.enter(cgnat).is_none());
        drop((g2, g3, held));
        assert_eq!(
            caps.addresses(),
            0,
            "nothing is kept for closed connections"
        );

        // A field's declared range counts once it is set, and not after it is removed.
        let field = FieldId("f_1".into());
        let egw = ip("203.0.113.9");
        caps.set_field_nat(&field, vec!["203.0.113.0/24".parse().unwrap()]);
        assert_eq!(caps.cap_of(egw), 4);
        caps.set_field_nat(&field, Vec::new());
        assert_eq!(caps.cap_of(egw), 2);
        // 0: only the global cap.
        let open = Arc::new(AddressCaps::new(0, 0, Vec::new()));
        let many: Vec<_> = (0..100).map(|_| open.enter(a).unwrap()).collect();
        assert_eq!(many.len(), 100);
    }
}
