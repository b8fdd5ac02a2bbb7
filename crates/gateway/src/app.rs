//! The shared state of a running gateway, handed to every handler and worker.

use crate::config::Config;
use sekisho_core::throttle::Throttle;
use sekisho_http::listener::ListenerStats;

use sekisho_bus::{Bus, Publisher, Received};
use sekisho_carrier::accounting::RadiusStats;
use sekisho_carrier::control::SimService;
use sekisho_carrier::sims::Sims;
use sekisho_detect::engine::Detector;
use sekisho_registry::Registry;
use sekisho_registry::pki::Ca;
use sekisho_store::Store;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub registry: Arc<Registry>,
    /// Failed logins per user name.
    pub login_failures: Throttle,
    /// Issues device client certificates, when the device CA's key is present.
    pub device_ca: Option<Ca>,
    pub stats: Stats,
    pub started_at: i64,
    /// The gateway's time: the wall clock, or a clock a test moves by hand.
    pub clock: sekisho_core::clock::SharedClock,
    /// The cloud connector (new fields and destination changes are announced to it).
    pub forward: Arc<sekisho_forward::Forwarder>,
    /// Threat detection: templates, device states, silence.
    pub detector: Arc<Detector>,
    /// Field scripts: the worker and one-off calls (response and audit scripts).
    pub scripts: Arc<sekisho_script::host::ScriptHost>,
    /// The queues between subsystems (received → detection, detections → response).
    pub bus: Arc<dyn Bus>,
    /// Where ingest publishes what it stored, for detection.
    pub received: Publisher<Received>,
    /// The live SIM table from the carrier's RADIUS accounting.
    pub sims: Arc<Sims>,
    pub radius: Arc<RadiusStats>,
    /// The carrier's SIM control API (`[carrier.api]`, or what the admin API set), every call recorded.
    pub carrier: Arc<SimService>,
    /// Mail for notifications (`[response.smtp]`; disabled when no host is set).
    pub mailer: sekisho_notify::Mailer,
    /// Commands waiting for devices (telemetry responses).
    pub commands: Arc<sekisho_bus::Commands>,
    /// Threat response (its counters, its wake-up, its notification settings).
    pub responder: Arc<sekisho_respond::Responder>,
    /// The update manifests' signing keys.
    pub update_keys: sekisho_update::keyring::Keys,
    /// Update campaigns (announce, offer, results, confirmations).
    pub campaigns: Arc<sekisho_update::campaigns::Campaigns>,
    /// Device audit (self-reports, baselines, re-audits).
    pub auditor: Arc<sekisho_update::audit::Auditor>,
    /// The device listener's per-address connection caps (set once the listener is built; a field's
    /// template change updates its NAT ranges there).
    pub device_caps: std::sync::OnceLock<Arc<sekisho_http::listener::AddressCaps>>,
    /// The bearer token `/metrics` requires (`[admin] metrics_token_file`), if one is set.
    pub metrics_token: Option<String>,
}

/// What `App::new` wires in besides the configuration and the store.
pub struct Parts {
    pub registry: Arc<Registry>,
    pub clock: sekisho_core::clock::SharedClock,
    pub device_ca: Option<Ca>,
    pub now: i64,
    pub forward: Arc<sekisho_forward::Forwarder>,
    pub detector: Arc<Detector>,
    pub scripts: Arc<sekisho_script::host::ScriptHost>,
    pub bus: Arc<dyn Bus>,
    pub sims: Arc<Sims>,
    pub radius: Arc<RadiusStats>,
    pub carrier: Arc<SimService>,
    pub mailer: sekisho_notify::Mailer,
    pub update_keys: sekisho_update::keyring::Keys,
    pub campaigns: Arc<sekisho_update::campaigns::Campaigns>,
    pub auditor: Arc<sekisho_update::audit::Auditor>,
    pub metrics_token: Option<String>,
    pub commands: Arc<sekisho_bus::Commands>,
    pub responder: Arc<sekisho_respond::Responder>,
}

#[derive(Default)]
pub struct Stats {
    pub device_listener: Arc<ListenerStats>,
    pub admin_listener: Arc<ListenerStats>,
    /// The device API's counters.
    pub ingest: Arc<sekisho_ingest::IngestStats>,
}

impl App {
    pub fn new(config: Config, store: Store, parts: Parts) -> Self {
        let Parts {
            registry,
            clock,
            device_ca,
            now,
            forward,
            detector,
            scripts,
            bus,
            sims,
            radius,
            carrier,
            mailer,
            update_keys,
            campaigns,
            auditor,
            metrics_token,
            commands,
            responder,
        } = parts;
        let login_window = (config.admin.login_lockout_secs.max(1) * 1000) as i64;
        Self {
            login_failures: Throttle::new(login_window, config.admin.login_max_failures),
            config,
            store,
            registry,
            device_ca,
            stats: Stats::default(),
            started_at: now,
            clock,
            forward,
            detector,
            scripts,
            received: bus.received(),
            bus,
            sims,
            radius,
            carrier,
            mailer,
            commands,
            responder,
            update_keys,
            campaigns,
            auditor,
            device_caps: Default::default(),
            metrics_token,
        }
    }
}
