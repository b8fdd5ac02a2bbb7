//! A **carrier simulator** for tests and demos — not a carrier. An in-memory HTTP(S) server that
//! speaks the MVNO-shaped API of the [`mvno`](sekisho_carrier::mvno) connector, plus control endpoints under
//! `/_sim/` to set SIMs up, inject faults and read back every request it received.
//!
//! The carrier API (token required when one is configured: `Authorization: Bearer <token>` or
//! `X-Carrier-Token: <token>`, else `401`):
//!
//! | request | does |
//! |---|---|
//! | `GET /v1/subscribers/{imsi}` | the subscriber (`404` if unknown) |
//! | `POST /v1/subscribers/{imsi}/deactivate` | `active`/`ready` → `inactive` (its session ends); already inactive: `200` (or `409` with [`Simulator::conflict_on_noop`]); terminated: `409` |
//! | `POST /v1/subscribers/{imsi}/activate` | → `active`; already active: `200` (or `409`); terminated: `409` |
//! | `GET /v1/sims/{iccid}` | `{"iccid", "imsi", "status", …}` |
//! | `GET /v1/stats/air/subscribers/{imsi}?from=&to=` | per-day traffic `[{"date", "unixtime", "dataTrafficStatsMap": {"s1.standard": {"uploadByteSizeTotal", "downloadByteSizeTotal", …}}}]` |
//!
//! The control endpoints (no token: this is a test fixture on loopback):
//!
//! | request | does |
//! |---|---|
//! | `GET /_sim/sims`, `POST /_sim/sims` `{"imsi", "iccid", "msisdn"?, "status"?}` | list / create SIMs |
//! | `POST /_sim/sims/{imsi}/status` `{"status"}` | set a SIM's status word (e.g. `terminated`) |
//! | `POST /_sim/sims/{imsi}/session` `{"ip"}`, `DELETE …/session` | start / end its data session |
//! | `POST /_sim/sims/{imsi}/usage` `{"uplink_bytes", "downlink_bytes", "unixtime"?}` | add traffic |
//! | `GET`, `POST`, `DELETE /_sim/faults` ([`Fault`]) | the next requests answer a status (with `Retry-After`) and/or wait first |
//! | `GET`, `DELETE /_sim/requests` | the log of carrier-API requests ([`LoggedRequest`]) |
//! | `PUT /_sim/config` `{"conflict_on_noop"}` | answer no-op transitions `409` instead of `200` |
//!
//! The binary `sekisho-carrier-sim` runs it from the command line.

mod api;
mod control;
mod tls;

pub use tls::{TlsMaterial, self_signed, self_signed_as, serve as serve_tls, server_config};

use axum::Router;
use sekisho_carrier::SimId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::net::TcpListener;

/// Requests kept in the log at most (the oldest go first).
const LOG_MAX: usize = 10_000;

/// A SIM to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSim {
    pub imsi: String,
    pub iccid: String,
    #[serde(default)]
    pub msisdn: Option<String>,
    /// `active` unless given (`ready`, `inactive`, `suspended`, `terminated`, …).
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "active".into()
}

/// A fault to inject into the carrier API's answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    /// Answer this status instead of serving the request (none: serve it, after `delay_ms`).
    pub status: Option<u16>,
    /// `Retry-After` (seconds) sent with `status`.
    pub retry_after_secs: Option<u64>,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// How many requests it applies to; none: every request until the faults are cleared.
    pub count: Option<u32>,
    /// Only requests whose path contains this.
    pub path_contains: Option<String>,
}

/// One carrier-API request the simulator received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The answer's status; 0 while it is being answered.
    pub status: u16,
    /// Milliseconds since the simulator started, at arrival.
    pub at_ms: u64,
}

/// A SIM as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimRecord {
    pub imsi: String,
    pub iccid: String,
    pub msisdn: Option<String>,
    pub status: String,
    pub online: bool,
    pub ip: Option<IpAddr>,
    /// Traffic per day: start of the day (Unix seconds) → (uplink, downlink) bytes.
    pub usage: BTreeMap<i64, (u64, u64)>,
    pub last_modified_ms: i64,
}

#[derive(Default)]
struct World {
    sims: BTreeMap<String, SimRecord>,
    faults: Vec<Fault>,
    log: VecDeque<LoggedRequest>,
    next_seq: u64,
}

struct Shared {
    token: Option<String>,
    conflict_on_noop: AtomicBool,
    started: Instant,
    world: Mutex<World>,
}

/// The simulator: cheap to clone, every clone is the same carrier.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Simulator {
    /// A carrier with no SIMs; `token`: the API token it requires (none: any request is accepted).
    pub fn new(token: Option<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                token,
                conflict_on_noop: AtomicBool::new(false),
                started: Instant::now(),
                world: Mutex::default(),
            }),
        }
    }

    /// Whether a no-op transition (deactivating an inactive SIM) answers `409` instead of `200`.
    pub fn conflict_on_noop(&self, on: bool) {
        self.shared.conflict_on_noop.store(on, Ordering::Relaxed);
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.shared.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a SIM; `Err` when an identifier is malformed or already taken.
    pub fn add_sim(&self, sim: NewSim) -> Result<(), String> {
        let imsi = SimId::imsi(&sim.imsi).map_err(|e| e.to_string())?;
        let iccid = SimId::iccid(&sim.iccid).map_err(|e| e.to_string())?;
        let mut w = self.world();
        if w.sims.contains_key(imsi.as_str()) || w.sims.values().any(|s| s.iccid == iccid.as_str())
        {
            return Err(format!(
                "a SIM with IMSI {} or ICCID {} exists",
                sim.imsi, sim.iccid
            ));
        }
        w.sims.insert(
            imsi.as_str().to_owned(),
            SimRecord {
                imsi: imsi.as_str().to_owned(),
                iccid: iccid.as_str().to_owned(),
                msisdn: sim.msisdn,
                status: sim.status,
                online: false,
                ip: None,
                usage: BTreeMap::new(),
                last_modified_ms: now_ms(),
            },
        );
        Ok(())
    }

    /// Every SIM.
    pub fn sims(&self) -> Vec<SimRecord> {
        self.world().sims.values().cloned().collect()
    }

    /// One SIM by IMSI.
    pub fn sim(&self, imsi: &str) -> Option<SimRecord> {
        self.world().sims.get(imsi).cloned()
    }

    /// Changes a SIM; `false` when there is no such SIM.
    fn update(&self, imsi: &str, f: impl FnOnce(&mut SimRecord)) -> bool {
        let mut w = self.world();
        let Some(s) = w.sims.get_mut(imsi) else {
            return false;
        };
        f(s);
        s.last_modified_ms = now_ms();
        true
    }

    /// Sets a SIM's status word as the carrier would (e.g. `terminated`).
    pub fn set_status(&self, imsi: &str, status: &str) -> bool {
        self.update(imsi, |s| status.clone_into(&mut s.status))
    }

    /// Starts (`Some(ip)`) or ends (`None`) the SIM's data session.
    pub fn set_session(&self, imsi: &str, ip: Option<IpAddr>) -> bool {
        self.update(imsi, |s| {
            s.online = ip.is_some();
            s.ip = ip;
        })
    }

    /// Adds traffic to the day of `unixtime` (now when `None`).
    pub fn add_usage(&self, imsi: &str, up: u64, down: u64, unixtime: Option<i64>) -> bool {
        let t = unixtime.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
        self.update(imsi, |s| {
            let day = s.usage.entry(t - t.rem_euclid(86_400)).or_default();
            day.0 = day.0.saturating_add(up);
            day.1 = day.1.saturating_add(down);
        })
    }

    /// Adds a fault; faults apply in the order given, each to its `count` of requests.
    pub fn inject(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.world().faults.clone()
    }

    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// The carrier-API requests received, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.world().log.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.world().log.clear();
    }

    /// The fault that applies to a request to `path`, counted as used.
    fn take_fault(&self, path: &str) -> Option<Fault> {
        let mut w = self.world();
        let i = w
            .faults
            .iter()
            .position(|f| f.path_contains.as_deref().is_none_or(|p| path.contains(p)))?;
        let f = w.faults[i].clone();
        match w.faults[i].count {
            Some(n) if n <= 1 => {
                w.faults.remove(i);
            }
            Some(n) => w.faults[i].count = Some(n - 1),
            None => {}
        }
        Some(f)
    }

    fn log_arrival(&self, method: &str, path: &str, query: Option<&str>) -> u64 {
        let at_ms = self.shared.started.elapsed().as_millis() as u64;
        let mut w = self.world();
        let seq = w.next_seq;
        w.next_seq += 1;
        if w.log.len() >= LOG_MAX {
            w.log.pop_front();
        }
        w.log.push_back(LoggedRequest {
            seq,
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            status: 0,
            at_ms,
        });
        seq
    }

    fn log_answer(&self, seq: u64, status: u16) {
        let mut w = self.world();
        if let Some(r) = w.log.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = status;
        }
    }

    /// Whether the request's headers carry the token.
    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(token) = &self.shared.token else {
            return true;
        };
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        header("authorization").and_then(|v| v.strip_prefix("Bearer ")) == Some(token.as_str())
            || header("x-carrier-token") == Some(token.as_str())
    }

    /// The carrier API and the control endpoints.
    pub fn router(&self) -> Router {
        api::router(self.clone()).merge(control::router(self.clone()))
    }

    /// Serves on `listener` (TLS when `tls` is given) until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        match tls {
            None => {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(cfg) => tls::serve(listener, cfg, router, shutdown).await,
        }
    }

    /// Serves on `127.0.0.1:0` in a task of its own; stopped when the handle is dropped.
    pub async fn start(&self, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Running> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sim = self.clone();
        let task = tokio::spawn(async move {
            let _ = sim
                .serve(listener, tls, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Running {
            addr,
            url: format!("{scheme}://{addr}"),
            _stop: stop,
            task,
        })
    }
}

/// A simulator serving in the background. Dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>` or `https://…`: the carrier API's base URL.
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
