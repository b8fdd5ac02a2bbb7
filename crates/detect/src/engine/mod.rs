//! The detection engine (subsystem ③ at run time): each field's compiled template, the compact
//! state of every device (sharded), the engine that consumes the `received` topic, the silence worker,
//! and the sink that groups findings into detections, stores them and publishes them on the response
//! queue.
//!
//! Dataflow: ingest stores a message, then publishes it on `received` ([`sekisho_bus::Received`]);
//! [`judge`] judges it (the built-in rules are O(1) on 48 bytes of state). Findings go to the sink
//! through a bounded queue; if it is ever full the finding is counted and logged as dropped (the
//! message itself is safe in the store).
//!
//! Architecture invariants: ingest never calls detection, it publishes; detection never calls
//! response, it publishes on the [`sekisho_bus::Bus`].

mod config;
mod devices;
pub mod judge;
pub mod outlet;
mod sink;

use crate::rules::SimVolumeFacts;
use crate::rules::{self, AuthFacts, MessageFacts, SharedIps, Windows};
use crate::silence::Wheel;
use crate::state::{self, SCHEDULED};
use crate::{Compiled, DeviceState, Finding, Template};
use devices::Devices;
use sekisho_core::{Device, DeviceId, Field, FieldId};
use sekisho_script::host::ScriptHost;
use sekisho_store::prelude::*;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

pub use config::DetectionConfig;
pub use sink::run_sink;

/// Why the detector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("detection.default_template: unknown template '{0}'")]
    UnknownDefault(String),
    #[error("the default template does not compile: {0}")]
    DefaultBroken(String),
    #[error(transparent)]
    Store(#[from] sekisho_store::StoreError),
}

/// A detector for a starting gateway: the configured default template as fallback, and every field's
/// stored template (a stored template that no longer compiles is logged and the fallback runs).
pub async fn start(
    config: &DetectionConfig,
    store: &sekisho_store::Store,
    sim_ips: Arc<dyn SimIps>,
    scripts: Arc<ScriptHost>,
) -> Result<(Detector, mpsc::Receiver<Found>), StartError> {
    let fallback = crate::template::library(&config.default_template)
        .ok_or_else(|| StartError::UnknownDefault(config.default_template.clone()))?
        .compile()
        .map_err(|e| StartError::DefaultBroken(e.join("; ")))?;
    let (d, rx) = Detector::new(fallback, sim_ips, config.queue_capacity, scripts);
    for t in store.current_templates().await? {
        let compiled = serde_json::from_str::<Template>(&t.body)
            .map_err(|e| vec![e.to_string()])
            .and_then(Template::compile);
        let compiled = compiled.and_then(|c| {
            let sources = c.template.script_sources(None);
            sekisho_script::host::compile(&sources, config.script_limits()).map(|s| (c, s))
        });
        match compiled {
            Ok((c, s)) => {
                let field = FieldId(t.field_id);
                d.scripts.set(&field, s);
                d.set_template(&field, c);
            }
            Err(e) => {
                tracing::error!(field = %t.field_id, version = t.version, problems = %e.join("; "), "stored template does not compile; the default runs")
            }
        }
    }
    d.set_enabled(config.enabled);
    Ok((d, rx))
}

/// Once a second, reports devices whose silence reached a new step (V14, ※1). Only registered, active
/// devices count.
pub async fn silence_worker(
    detector: Arc<Detector>,
    registry: Arc<sekisho_registry::Registry>,
    clock: sekisho_core::clock::SharedClock,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // On the gateway's clock: a test that moves it sees the silence steps at once.
        tokio::select! {
            _ = clock.sleep(std::time::Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
        let live = |d: &DeviceId| {
            registry
                .device(d)
                .is_some_and(|e| e.device.status == sekisho_core::DeviceStatus::Active)
        };
        detector.check_silence(clock.now_ms(), live);
    }
}

const SHARDS: usize = 16;

pub use sekisho_core::detection::SimIps;

impl crate::TemplateSource for Detector {
    fn compiled(&self, field: &FieldId) -> Arc<Compiled> {
        self.template(field)
    }
}

/// Where other subsystems' findings go (audit, update): the detection sink groups, stores and
/// publishes them like the engine's own.
pub trait Findings: Send + Sync {
    fn emit(&self, found: Found);
}

impl Findings for Detector {
    fn emit(&self, found: Found) {
        self.emit_found(found);
    }
}

/// A finding on its way to the sink.
#[derive(Debug)]
pub struct Found {
    pub field: FieldId,
    pub device: Option<DeviceId>,
    pub finding: Finding,
    pub at: i64,
}

#[derive(Default, Debug)]
pub struct DetectStats {
    pub findings: AtomicU64,
    pub dropped: AtomicU64,
    pub detections: AtomicU64,
    pub grouped: AtomicU64,
}

pub struct Detector {
    templates: RwLock<HashMap<FieldId, Arc<Compiled>>>,
    fallback: Arc<Compiled>,
    devices: RwLock<Devices>,
    shards: Vec<Mutex<Vec<DeviceState>>>,
    wheel: Mutex<Wheel>,
    auth_windows: Mutex<HashMap<FieldId, Windows>>,
    ip_windows: Mutex<HashMap<FieldId, SharedIps>>,
    sink: mpsc::Sender<Found>,
    pub sim_ips: Arc<dyn SimIps>,
    pub scripts: Arc<ScriptHost>,
    pub stats: Arc<DetectStats>,
    enabled: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Detector {
    /// A detector whose fields run `fallback` until they have a template of their own; its message
    /// scripts run on `scripts`.
    pub fn new(
        fallback: Compiled,
        sim_ips: Arc<dyn SimIps>,
        capacity: usize,
        scripts: Arc<ScriptHost>,
    ) -> (Self, mpsc::Receiver<Found>) {
        let (sink, rx) = mpsc::channel(capacity.max(1));
        let d = Self {
            templates: RwLock::default(),
            fallback: Arc::new(fallback),
            devices: RwLock::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            wheel: Mutex::default(),
            auth_windows: Mutex::default(),
            ip_windows: Mutex::default(),
            sink,
            sim_ips,
            scripts,
            stats: Arc::default(),
            enabled: std::sync::atomic::AtomicBool::new(true),
        };
        (d, rx)
    }

    /// The library template for new fields with no template named.
    pub fn default_template() -> Template {
        crate::template::library("generic").expect("the shipped generic template parses")
    }

    /// Turns detection on or off (`[detection] enabled`).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_template(&self, field: &FieldId, c: Compiled) {
        self.templates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(field.clone(), Arc::new(c));
    }

    pub fn template(&self, field: &FieldId) -> Arc<Compiled> {
        self.templates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(field)
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }

    /// `true` when the field refuses requests from `ip` (off-network mode `block`).
    pub fn blocks(&self, field: &FieldId, ip: IpAddr) -> bool {
        self.template(field).blocks(ip)
    }

    /// The device's index, numbering it (with fresh state) on first sight; `None` when no more devices
    /// can be numbered.
    fn index_of(&self, device: &Device) -> Option<u32> {
        let found = self
            .devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(device.id.as_str());
        if found.is_some() {
            return found;
        }
        let mut g = self.devices.write().unwrap_or_else(|e| e.into_inner());
        let before = g.len();
        let i = g.insert(device.id.as_str(), &device.field_id)?;
        if g.len() > before {
            lock(&self.shards[i as usize % SHARDS]).push(DeviceState::default());
        }
        Some(i)
    }

    fn with_state<R>(&self, i: u32, f: impl FnOnce(&mut DeviceState) -> R) -> R {
        let mut shard = lock(&self.shards[i as usize % SHARDS]);
        let slot = i as usize / SHARDS;
        if shard.len() <= slot {
            shard.resize(slot + 1, DeviceState::default());
        }
        f(&mut shard[slot])
    }

    fn emit(&self, field: &FieldId, device: Option<&DeviceId>, findings: Vec<Finding>, at: i64) {
        for finding in findings {
            self.emit_found(Found {
                field: field.clone(),
                device: device.cloned(),
                finding,
                at,
            });
        }
    }

    /// Sends one finding to the sink (counted and logged if the queue is full).
    pub fn emit_found(&self, found: Found) {
        {
            self.stats.findings.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.sink.try_send(found) {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                let f = match e {
                    mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f) => f,
                };
                tracing::error!(field = %f.field, rule = %f.finding.rule, "detection queue full: finding dropped");
            }
        }
    }

    /// Evaluates one received message of a known device (accepted or refused).
    pub fn on_message(&self, field: &Field, device: &Device, facts: &MessageFacts) {
        if !self.enabled() {
            return;
        }
        let c = self.template(&field.id);
        let sim_ip = device
            .sim
            .as_ref()
            .and_then(|s| self.sim_ips.current_ip(&s.imsi));
        let facts = MessageFacts { sim_ip, ..*facts };
        let Some(i) = self.index_of(device) else {
            tracing::error!(field = %field.id, device = %device.id, "detection holds as many devices as it can; this one is not judged");
            return;
        };
        let (mut findings, schedule) = self.with_state(i, |s| {
            let f = rules::message(&c, s, &facts);
            let next = if s.has(SCHEDULED) {
                None
            } else {
                rules::next_silence_check(&c, s)
            };
            if next.is_some() {
                s.set(SCHEDULED, true);
            }
            (f, next)
        });
        if let Some(at) = schedule {
            lock(&self.wheel).schedule(i, at);
        }
        if facts.rejected.is_none() {
            let judge =
                |ips: &mut SharedIps| rules::shared_ip(&c, ips, facts.source_ip, i, facts.rx_ms);
            // The field's windows, made on the field's first message (not an id copy per message).
            let mut w = lock(&self.ip_windows);
            let found = match w.get_mut(&field.id) {
                Some(ips) => judge(ips),
                None => {
                    let mut ips = SharedIps::default();
                    let found = judge(&mut ips);
                    w.insert(field.id.clone(), ips);
                    found
                }
            };
            findings.extend(found);
        }
        self.emit(&field.id, Some(&device.id), findings, facts.rx_ms);
        if self.scripts.wants_messages(&field.id) {
            let (regime, last_seen) = self.with_state(i, |s| {
                (c.regime(s.regime).0.clone(), state::unix_ms(s.last_rx))
            });
            let data = facts
                .body
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
            let msg = serde_json::json!({
                "received_at": facts.rx_ms, "ts": facts.device_ts_ms, "seq": facts.seq, "buffered": facts.buffered,
                "size": facts.size, "rejected": facts.rejected, "source_ip": facts.source_ip.to_string(), "data": data,
            });
            let dev = serde_json::json!({"id": device.id.0, "unique_id": device.unique_id, "regime": regime,
                "last_seen": last_seen, "critical": device.critical});
            let fld = serde_json::json!({"id": field.id.0, "name": field.name});
            if !self
                .scripts
                .submit(&field.id, &device.id, [msg, dev, fld], facts.rx_ms)
            {
                tracing::debug!(field = %field.id, "script queue full; message scripts skipped");
            }
        }
    }

    /// The devices of a field as scripts see them (at most `cap`).
    pub fn device_views(&self, field: &FieldId, cap: usize) -> serde_json::Value {
        let c = self.template(field);
        let owners = self
            .devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .of_field(field, cap);
        serde_json::Value::Array(
            owners
                .into_iter()
                .map(|(i, d)| {
                    let (regime, last_seen, silence) =
                        self.with_state(i, |s| (c.regime(s.regime).0.clone(), state::unix_ms(s.last_rx), s.silence_level));
                    serde_json::json!({"id": d.0, "regime": regime, "last_seen": last_seen, "silence_step": silence})
                })
                .collect(),
        )
    }

    /// Evaluates one token request of a field (the device may be unknown).
    pub fn on_auth(&self, field: &FieldId, device: Option<&DeviceId>, facts: &AuthFacts) {
        if !self.enabled() {
            return;
        }
        let c = self.template(field);
        let findings = {
            let mut w = lock(&self.auth_windows);
            rules::auth(&c, w.entry(field.clone()).or_default(), facts)
        };
        self.emit(field, device, findings, facts.at_ms);
    }

    /// Judges one closed window of a SIM session: the carrier's count against the gateway's (V19, ※3).
    pub fn on_sim_window(
        &self,
        field: &FieldId,
        device: &DeviceId,
        facts: &SimVolumeFacts,
        at: i64,
    ) {
        if !self.enabled() {
            return;
        }
        let c = self.template(field);
        self.emit(field, Some(device), rules::sim_volume(&c, facts), at);
    }

    /// One pass of the silence worker at `now_ms`: reports devices whose silence reached a new step.
    /// `live` says whether a device still counts (registered and active).
    pub fn check_silence(&self, now_ms: i64, live: impl Fn(&DeviceId) -> bool) -> usize {
        let due = lock(&self.wheel).due(state::secs(now_ms));
        let n = due.len();
        for i in due {
            let Some((device, field)) = self
                .devices
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .owner(i)
            else {
                continue;
            };
            let c = self.template(&field);
            let alive = live(&device);
            let (finding, next) = self.with_state(i, |s| {
                if !alive {
                    s.set(SCHEDULED, false);
                    return (None, None);
                }
                let f = rules::silence(&c, s, now_ms);
                let next = rules::next_silence_check(&c, s);
                s.set(SCHEDULED, next.is_some());
                (f, next)
            });
            if let Some(at) = next {
                lock(&self.wheel).schedule(i, at);
            }
            if let Some(f) = finding {
                self.emit(&field, Some(&device), vec![f], now_ms);
            }
        }
        n
    }

    /// Devices with detection state, and entries waiting in the silence wheel.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.devices.read().unwrap_or_else(|e| e.into_inner()).len(),
            lock(&self.wheel).len(),
        )
    }
}
