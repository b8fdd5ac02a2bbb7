//! Byte and connection counts per source address, kept by the device listener and compared by the
//! carrier side with what the carrier counted for a SIM (V19).
//!
//! [`AddressCounters`] is the seam: the carrier's live SIM table hands the listener the counters of an
//! address with a live SIM session; the listener only adds to them.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the device listener exchanged with one address since its counters were handed out.
#[derive(Default, Debug)]
pub struct IpCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub connections: AtomicU64,
}

impl IpCounters {
    /// The listener read `n` bytes from this address.
    pub fn read(&self, n: usize) {
        self.rx.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The listener wrote `n` bytes to this address.
    pub fn wrote(&self, n: usize) {
        self.tx.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Who wants the traffic of some addresses counted (the live SIM table); asked once per connection.
pub trait AddressCounters: Send + Sync {
    /// The counters of `ip`, when its traffic is to be counted.
    fn counters_for(&self, ip: IpAddr) -> Option<Arc<IpCounters>>;
}
