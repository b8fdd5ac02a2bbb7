//! The RADIUS accounting listener (RFC 2866, UDP): Accounting-Start, Interim-Update and Stop from the
//! carrier's packet gateway (P-GW/GGSN), and Accounting-On/Off when it restarts.
//!
//! Each packet is checked against its client's shared secret (the client is known by its source
//! address), applied to the live [`crate::sims::Sims`] table, stored with the SIM's new session row in one
//! group-commit transaction, and only then answered. A retransmission (same client, identifier and
//! Request Authenticator) is stored and applied once; it gets the stored answer again, or none while
//! the first copy is still being stored. Malformed packets, wrong authenticators and unknown clients are
//! counted and dropped; the last two are also recorded as security events. A full store queue drops
//! the packet unanswered: the packet gateway retransmits, which is RADIUS's own flow control.

use crate::sims::{Applied, Sims};
use ipnet::IpNet;
use sekisho_bus::{Publisher, Received, SimWindow};
use sekisho_core::FieldId;
use sekisho_core::clock::SharedClock;
use sekisho_core::ratelog::LogLimit;
use sekisho_radius::{Accounting, RadiusError};
use sekisho_registry::Registry;
use sekisho_store::Store;
use sekisho_store::records::{AccountingRecord, Record, SecurityEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// The RADIUS accounting listener (`[carrier.radius]`, RFC 2866, UDP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusConfig {
    /// `address:port` to receive accounting on; empty: no listener.
    pub listen: String,
    /// The packet gateways allowed to send accounting, each with its shared secret.
    pub clients: Vec<RadiusClientConfig>,
    /// A packet repeating one seen this recently (same client, identifier, authenticator) is a
    /// retransmission: stored once, answered again.
    pub dedup_secs: u64,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            clients: Vec::new(),
            dedup_secs: 60,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusClientConfig {
    /// The client's address or network (`10.0.0.1`, `10.0.0.0/24`).
    pub address: String,
    /// File holding the shared secret (mode 0600; surrounding white space ignored).
    pub secret_file: PathBuf,
}

/// A packet gateway allowed to send accounting, and its shared secret.
#[derive(Clone)]
pub struct Client {
    pub net: IpNet,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}, <secret>)", self.net)
    }
}

/// The configured clients with their secrets read; every problem is listed.
pub fn clients(c: &RadiusConfig) -> Result<Vec<Client>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, cl) in c.clients.iter().enumerate() {
        let net = cl
            .address
            .parse::<IpNet>()
            .or_else(|_| cl.address.parse::<std::net::IpAddr>().map(IpNet::from));
        let net = match net {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!(
                    "carrier.radius.clients[{i}].address: '{}' is not an address or network",
                    cl.address
                ));
                None
            }
        };
        let secret = match std::fs::read_to_string(&cl.secret_file) {
            Ok(s) if !s.trim().is_empty() => Some(s.trim().as_bytes().to_vec()),
            Ok(_) => {
                problems.push(format!(
                    "carrier.radius.clients[{i}].secret_file: {} is empty",
                    cl.secret_file.display()
                ));
                None
            }
            Err(e) => {
                problems.push(format!(
                    "carrier.radius.clients[{i}].secret_file: {}: {e}",
                    cl.secret_file.display()
                ));
                None
            }
        };
        if let (Some(net), Some(secret)) = (net, secret) {
            out.push(Client { net, secret });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Counters for `/metrics` and the status view.
#[derive(Default, Debug)]
pub struct RadiusStats {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub malformed: AtomicU64,
    pub bad_authenticator: AtomicU64,
    pub unknown_client: AtomicU64,
    /// Dropped unanswered because the store's queue was full or a commit failed.
    pub not_stored: AtomicU64,
}

// What a remote party can make the listener log is sampled; the counts are exact in `RadiusStats`
// (metrics, status) and, for bad authenticators and unknown clients, in security events.
static RECEIVE_FAILED: LogLimit = LogLimit::per_minute(5);
static UNKNOWN_CLIENT: LogLimit = LogLimit::per_minute(5);
static BAD_AUTHENTICATOR: LogLimit = LogLimit::per_minute(5);
static MALFORMED: LogLimit = LogLimit::per_minute(5);
static NOT_STORED: LogLimit = LogLimit::per_minute(5);
static NOT_SENT: LogLimit = LogLimit::per_minute(5);

/// A packet seen recently: its authenticator, when, and its answer once stored.
struct Seen {
    authenticator: [u8; 16],
    at_ms: i64,
    response: Option<[u8; 20]>,
}

type Recent = Arc<Mutex<HashMap<(SocketAddr, u8), Seen>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The length of a field's SIM comparison windows (seconds), when its template compares SIM volumes.
pub trait SimWindows: Send + Sync {
    fn window_secs(&self, field: &FieldId) -> Option<u32>;
}

/// What the accounting listener uses.
pub struct RadiusListener {
    pub clients: Vec<Client>,
    /// `[carrier.radius] dedup_secs`.
    pub dedup_secs: u64,
    pub stats: Arc<RadiusStats>,
    pub sims: Arc<Sims>,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub windows: Arc<dyn SimWindows>,
    /// Where closed SIM windows go, for detection.
    pub received: Publisher<Received>,
    pub clock: SharedClock,
}

fn security_event(at: i64, peer: SocketAddr, kind: &'static str) -> Record {
    Record::Security(SecurityEvent {
        at,
        listener: "radius",
        source_ip: peer.ip().to_string(),
        kind,
        detail: None,
    })
}

/// Serves accounting on `socket` until `stopped` turns true.
pub async fn serve(
    socket: UdpSocket,
    listener: RadiusListener,
    mut stopped: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let recent: Recent = Arc::default();
    let app = Arc::new(listener);
    let dedup_ms = app.dedup_secs as i64 * 1000;
    let mut buf = vec![0u8; 4097];
    let mut since_prune = 0u32;
    loop {
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    if let Some(skipped) = RECEIVE_FAILED.allow() {
                        tracing::warn!(error = %e, skipped, "RADIUS receive failed");
                    }
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let stats = &app.stats;
        stats.received.fetch_add(1, Ordering::Relaxed);
        let packet = &buf[..n];
        let Some(client) = app.clients.iter().find(|c| c.net.contains(&peer.ip())) else {
            stats.unknown_client.fetch_add(1, Ordering::Relaxed);
            if let Some(skipped) = UNKNOWN_CLIENT.allow() {
                tracing::warn!(peer = %peer, skipped, "RADIUS packet from an unknown client dropped");
            }
            let _ = app.store.writer.try_submit(vec![security_event(
                app.clock.now_ms(),
                peer,
                "radius_unknown_client",
            )]);
            continue;
        };
        let a = match sekisho_radius::parse(packet, &client.secret) {
            Ok(a) => a,
            Err(RadiusError::BadAuthenticator) => {
                stats.bad_authenticator.fetch_add(1, Ordering::Relaxed);
                if let Some(skipped) = BAD_AUTHENTICATOR.allow() {
                    tracing::warn!(peer = %peer, skipped, "RADIUS packet with a wrong authenticator dropped (shared secret mismatch?)");
                }
                let _ = app.store.writer.try_submit(vec![security_event(
                    app.clock.now_ms(),
                    peer,
                    "radius_bad_authenticator",
                )]);
                continue;
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(skipped) = MALFORMED.allow() {
                    tracing::debug!(peer = %peer, error = %e, skipped, "malformed RADIUS packet dropped");
                }
                continue;
            }
        };
        let now = app.clock.now_ms();
        since_prune += 1;
        if since_prune >= 1024 {
            since_prune = 0;
            lock(&recent).retain(|_, s| now - s.at_ms < dedup_ms);
        }
        let key = (peer, a.identifier);
        if let Some(seen) = lock(&recent)
            .get(&key)
            .filter(|s| s.authenticator == a.authenticator && now - s.at_ms < dedup_ms)
        {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = seen.response {
                let _ = socket.try_send_to(&r, peer);
            }
            continue;
        }
        let device = a
            .imsi
            .as_deref()
            .and_then(|imsi| app.registry.device_by_imsi(imsi));
        let window = device
            .as_ref()
            .and_then(|d| app.windows.window_secs(&d.device.field_id));
        let applied = app.sims.apply(peer.ip(), &a, now, window);
        let records = records(peer, packet, &a, now, &applied);
        let committed = match app.store.writer.submit(records) {
            Ok(c) => c,
            Err(e) => {
                stats.not_stored.fetch_add(1, Ordering::Relaxed);
                if let Some(skipped) = NOT_STORED.allow() {
                    tracing::warn!(error = %e, skipped, "RADIUS record not stored; the packet gateway will retransmit");
                }
                continue;
            }
        };
        lock(&recent).insert(
            key,
            Seen {
                authenticator: a.authenticator,
                at_ms: now,
                response: None,
            },
        );
        let (socket, recent, app, secret) = (
            socket.clone(),
            recent.clone(),
            app.clone(),
            client.secret.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = committed.await {
                app.stats.not_stored.fetch_add(1, Ordering::Relaxed);
                lock(&recent).remove(&key);
                tracing::error!(error = %e, "RADIUS record not stored; the packet gateway will retransmit");
                return;
            }
            app.stats.stored.fetch_add(1, Ordering::Relaxed);
            // Queued for detection before the answer: once the packet gateway has its answer, the
            // window is on its way to be judged.
            if let (Some(counts), Some(d)) = (applied.window, device) {
                let event = Received::SimWindow(SimWindow {
                    field: d.device.field_id.clone(),
                    device: d.device.id.clone(),
                    at_ms: now,
                    counts,
                });
                if app.received.publish(event).await.is_err() {
                    tracing::error!("the received topic is closed: detection is not running");
                }
            }
            let response = sekisho_radius::response(&a, &secret);
            if let Some(s) = lock(&recent).get_mut(&key) {
                s.response = Some(response);
            }
            if let Err(e) = socket.send_to(&response, peer).await
                && let Some(skipped) = NOT_SENT.allow()
            {
                tracing::warn!(peer = %peer, error = %e, skipped, "RADIUS response not sent");
            }
        });
    }
}

fn records(
    peer: SocketAddr,
    packet: &[u8],
    a: &Accounting,
    now: i64,
    applied: &Applied,
) -> Vec<Record> {
    let client_ip = peer.ip().to_string();
    let mut h = Sha256::new();
    h.update(client_ip.as_bytes());
    h.update(packet);
    let mut out = vec![Record::Accounting(Box::new(AccountingRecord {
        at: now,
        client_ip: client_ip.clone(),
        packet_key: h.finalize().into(),
        status: a.status.as_str(),
        imsi: a.imsi.clone(),
        msisdn: a.msisdn.clone(),
        framed_ip: a.framed_ip.map(|ip| ip.to_string()),
        session_id: a.session_id.clone(),
        input_octets: a.input_octets as i64,
        output_octets: a.output_octets as i64,
        session_time: a.session_time.map(i64::from),
        session: applied.session.clone(),
    }))];
    if applied.client_offline {
        out.push(Record::SessionsOffline { client_ip, at: now });
    }
    out
}
