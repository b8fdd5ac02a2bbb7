//! What the carrier's packet gateway says about each SIM (RADIUS accounting: its current address, its
//! session's byte counts), as a live table.
//!
//! [`Sims`] is the live table SIM ↔ current address ↔ session bytes. The RADIUS listener
//! ([`crate::accounting`]) is its only writer; detection reads it for V20 (the source address of a device's data
//! against its SIM's address), and the device listener counts, per SIM address, every byte and
//! connection it sees — failed handshakes and cut-off requests included — so that each window of a
//! session can be compared with what the carrier counted for the SIM (V19, ※2, ※3).
//!
//! Invariants: the table changes in the order accounting records arrive (one task applies them); its
//! rows are written to the store in that same order, in the transaction of the record; no lock here
//! is held across an `.await`.

use sekisho_core::detection::{SimIps, SimVolumeFacts};
use sekisho_core::traffic::AddressCounters;
use sekisho_core::traffic::IpCounters;
use sekisho_radius::{Accounting, Status};
use sekisho_store::SimSessionRow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

/// Both counts at one moment: the carrier's for the SIM, the gateway's for its address.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    at_ms: i64,
    uplink: u64,
    downlink: u64,
    rx: u64,
    tx: u64,
    connections: u64,
}

struct Session {
    row: SimSessionRow,
    counters: Option<Arc<IpCounters>>,
    /// Start of the current comparison window.
    baseline: Sample,
}

impl Session {
    fn sample(&self, at_ms: i64) -> Sample {
        let (rx, tx, connections) = self.counters.as_ref().map_or((0, 0, 0), |c| {
            (
                c.rx.load(Ordering::Relaxed),
                c.tx.load(Ordering::Relaxed),
                c.connections.load(Ordering::Relaxed),
            )
        });
        Sample {
            at_ms,
            uplink: self.row.input_octets as u64,
            downlink: self.row.output_octets as u64,
            rx,
            tx,
            connections,
        }
    }
}

#[derive(Default)]
struct Inner {
    by_imsi: HashMap<String, Session>,
    by_ip: HashMap<IpAddr, Arc<IpCounters>>,
}

impl Inner {
    /// Points `ip` at fresh counters for a session (or forgets the session's address).
    fn attach(&mut self, s: &mut Session) {
        if let (Some(old), Some(ip)) = (&s.counters, s.row.framed_ip.as_deref())
            && let Ok(ip) = ip.parse::<IpAddr>()
            && self.by_ip.get(&ip).is_some_and(|c| Arc::ptr_eq(c, old))
        {
            self.by_ip.remove(&ip);
        }
        s.counters = None;
        if s.row.online
            && let Some(ip) = s.row.framed_ip.as_deref().and_then(|i| i.parse().ok())
        {
            let c = Arc::new(IpCounters::default());
            self.by_ip.insert(ip, c.clone());
            s.counters = Some(c);
        }
    }
}

/// What applying one accounting record did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The SIM's session row after the record, to store with it.
    pub session: Option<SimSessionRow>,
    /// A closed comparison window, to judge once the record is stored.
    pub window: Option<SimVolumeFacts>,
    /// Every session of this client went offline (Accounting-On/Off: the packet gateway restarted).
    pub client_offline: bool,
}

/// The live SIM table.
#[derive(Default)]
pub struct Sims {
    inner: RwLock<Inner>,
}

impl Sims {
    /// The table as stored (at start: the online sessions get fresh counters from now on).
    pub fn load(rows: Vec<SimSessionRow>, now_ms: i64) -> Self {
        let sims = Self::default();
        {
            let mut g = sims.write();
            for row in rows {
                let mut s = Session {
                    row,
                    counters: None,
                    baseline: Sample::default(),
                };
                g.attach(&mut s);
                s.baseline = s.sample(now_ms);
                g.by_imsi.insert(s.row.imsi.clone(), s);
            }
        }
        sims
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The SIM's live session row.
    pub fn session(&self, imsi: &str) -> Option<SimSessionRow> {
        self.read().by_imsi.get(imsi).map(|s| s.row.clone())
    }

    /// SIMs known, and those online.
    pub fn counts(&self) -> (usize, usize) {
        let g = self.read();
        (
            g.by_imsi.len(),
            g.by_imsi.values().filter(|s| s.row.online).count(),
        )
    }

    /// Applies one accounting record from `client`. `window_secs` is the comparison window of the
    /// SIM's device (none: the SIM belongs to no device, or its field does not compare volumes).
    pub fn apply(
        &self,
        client: IpAddr,
        a: &Accounting,
        now_ms: i64,
        window_secs: Option<u32>,
    ) -> Applied {
        let mut g = self.write();
        let client_ip = client.to_string();
        if matches!(a.status, Status::AccountingOn | Status::AccountingOff) {
            let Inner { by_imsi, by_ip } = &mut *g;
            for s in by_imsi
                .values_mut()
                .filter(|s| s.row.client_ip == client_ip)
            {
                s.row.online = false;
                s.row.updated_at = now_ms;
                if let Some(ip) = s.row.framed_ip.as_deref().and_then(|i| i.parse().ok()) {
                    by_ip.remove(&ip);
                }
                s.counters = None;
            }
            return Applied {
                client_offline: true,
                ..Applied::default()
            };
        }
        let Some(imsi) = a.imsi.as_deref() else {
            return Applied::default();
        };
        if !matches!(
            a.status,
            Status::Start | Status::InterimUpdate | Status::Stop
        ) {
            return Applied::default();
        }
        let framed_ip = a.framed_ip.map(|ip| ip.to_string());
        let mut session = g.by_imsi.remove(imsi);
        // The Stop of another (older) session than the live one changes nothing live.
        if a.status == Status::Stop
            && let Some(live) = session.take_if(|s| {
                s.row.online && a.session_id.is_some() && s.row.session_id != a.session_id
            })
        {
            g.by_imsi.insert(imsi.to_owned(), live);
            return Applied::default();
        }
        let same = session
            .as_ref()
            .is_some_and(|s| s.row.online && s.row.session_id == a.session_id);
        let mut out = Applied::default();
        let mut s = match session.take() {
            Some(s) if same && a.status != Status::Start => s,
            old => {
                // A new session (or one whose Start never reached us): a fresh window from here.
                let mut s = old.unwrap_or(Session {
                    row: SimSessionRow {
                        imsi: imsi.to_owned(),
                        session_id: None,
                        client_ip: client_ip.clone(),
                        framed_ip: None,
                        msisdn: None,
                        online: false,
                        started_at: now_ms,
                        updated_at: now_ms,
                        input_octets: 0,
                        output_octets: 0,
                    },
                    counters: None,
                    baseline: Sample::default(),
                });
                s.row.online = false;
                g.attach(&mut s);
                s.row.session_id = a.session_id.clone();
                s.row.started_at = now_ms;
                s.row.online = true;
                s.row.framed_ip = framed_ip.clone();
                s.row.input_octets = a.input_octets as i64;
                s.row.output_octets = a.output_octets as i64;
                g.attach(&mut s);
                s.baseline = s.sample(now_ms);
                s
            }
        };
        s.row.client_ip = client_ip;
        s.row.updated_at = now_ms;
        if a.msisdn.is_some() {
            s.row.msisdn = a.msisdn.clone();
        }
        if framed_ip.is_some() && framed_ip != s.row.framed_ip {
            s.row.framed_ip = framed_ip;
            g.attach(&mut s);
            s.baseline = s.sample(now_ms);
        }
        s.row.input_octets = a.input_octets as i64;
        s.row.output_octets = a.output_octets as i64;
        let now = s.sample(now_ms);
        let b = s.baseline;
        let elapsed_ms = (now.at_ms - b.at_ms).max(0);
        let elapsed = (elapsed_ms as u64).div_ceil(1000) as u32;
        let closes =
            a.status == Status::Stop || window_secs.is_some_and(|w| elapsed_ms >= w as i64 * 1000);
        if now.uplink < b.uplink || now.downlink < b.downlink {
            // The carrier's counters went back (a reset): start over.
            s.baseline = now;
        } else if closes && elapsed_ms > 0 {
            if window_secs.is_some() {
                out.window = Some(SimVolumeFacts {
                    secs: elapsed,
                    sim_uplink: now.uplink - b.uplink,
                    sim_downlink: now.downlink - b.downlink,
                    gateway_rx: now.rx - b.rx,
                    gateway_tx: now.tx - b.tx,
                    connections: now.connections - b.connections,
                });
            }
            s.baseline = now;
        }
        if a.status == Status::Stop {
            s.row.online = false;
            g.attach(&mut s);
        }
        out.session = Some(s.row.clone());
        g.by_imsi.insert(imsi.to_owned(), s);
        out
    }
}

/// The counters of a SIM address with a live session (the device listener, once per connection).
impl AddressCounters for Sims {
    fn counters_for(&self, ip: IpAddr) -> Option<Arc<IpCounters>> {
        self.read().by_ip.get(&ip).cloned()
    }
}

impl SimIps for Sims {
    fn current_ip(&self, imsi: &str) -> Option<IpAddr> {
        let g = self.read();
        let s = g.by_imsi.get(imsi).filter(|s| s.row.online)?;
        s.row.framed_ip.as_deref()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(status: Status, session: &str, ip: [u8; 4], up: u64) -> Accounting {
        Accounting {
            identifier: 1,
            authenticator: [0; 16],
            status,
            imsi: Some("440100000000001".into()),
            msisdn: None,
            framed_ip: Some(ip.into()),
            session_id: Some(session.into()),
            input_octets: up,
            output_octets: 0,
            session_time: None,
        }
    }

    const PGW: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const IMSI: &str = "440100000000001";

    #[test]
    fn sessions_follow_start_interim_stop_and_windows_close_on_time() {
        let sims = Sims::default();
        let ip: IpAddr = "10.45.0.7".parse().unwrap();
        sims.apply(
            PGW,
            &acct(Status::Start, "s1", [10, 45, 0, 7], 0),
            1_000,
            Some(60),
        );
        assert_eq!(sims.current_ip(IMSI), Some(ip));
        let c = sims.counters_for(ip).expect("the SIM's address is counted");
        c.rx.fetch_add(500, Ordering::Relaxed);
        c.connections.fetch_add(2, Ordering::Relaxed);
        // Within the window: nothing to judge yet.
        let a = sims.apply(
            PGW,
            &acct(Status::InterimUpdate, "s1", [10, 45, 0, 7], 700),
            31_000,
            Some(60),
        );
        assert!(a.window.is_none());
        // The window closes at 60 s: both counts over the whole window.
        let a = sims.apply(
            PGW,
            &acct(Status::InterimUpdate, "s1", [10, 45, 0, 7], 900),
            61_000,
            Some(60),
        );
        let w = a.window.expect("a closed window");
        assert_eq!(
            (w.secs, w.sim_uplink, w.gateway_rx, w.connections),
            (60, 900, 500, 2)
        );
        // The Stop of an older session changes nothing live.
        let a = sims.apply(
            PGW,
            &acct(Status::Stop, "s0", [10, 45, 0, 7], 5),
            62_000,
            Some(60),
        );
        assert!(a.session.is_none());
        assert_eq!(sims.current_ip(IMSI), Some(ip));
        // The carrier's counters going back start a new window instead of a negative one.
        let a = sims.apply(
            PGW,
            &acct(Status::InterimUpdate, "s1", [10, 45, 0, 7], 10),
            200_000,
            Some(60),
        );
        assert!(a.window.is_none());
        // Stop closes the window and forgets the address.
        let a = sims.apply(
            PGW,
            &acct(Status::Stop, "s1", [10, 45, 0, 7], 20),
            201_000,
            Some(60),
        );
        assert_eq!(a.window.map(|w| w.sim_uplink), Some(10));
        assert!(!a.session.unwrap().online);
        assert_eq!(sims.current_ip(IMSI), None);
        assert!(sims.counters_for(ip).is_none());
    }

    #[test]
    fn a_new_address_or_a_restarted_packet_gateway_moves_the_counters() {
        let sims = Sims::default();
        sims.apply(PGW, &acct(Status::Start, "s1", [10, 45, 0, 7], 0), 0, None);
        // An update for a session whose Start was lost, on another address.
        sims.apply(
            PGW,
            &acct(Status::InterimUpdate, "s2", [10, 45, 0, 8], 50),
            1_000,
            None,
        );
        assert!(sims.counters_for("10.45.0.7".parse().unwrap()).is_none());
        assert!(sims.counters_for("10.45.0.8".parse().unwrap()).is_some());
        assert_eq!(
            sims.session(IMSI).unwrap().session_id.as_deref(),
            Some("s2")
        );
        let a = sims.apply(
            PGW,
            &acct(Status::AccountingOn, "", [0, 0, 0, 0], 0),
            2_000,
            None,
        );
        assert!(a.client_offline);
        assert_eq!(sims.counts(), (1, 0));
        assert_eq!(sims.current_ip(IMSI), None);
    }
}
