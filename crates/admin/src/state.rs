//! What the admin API and the console are built from: the handles of the subsystems they manage, the
//! configuration values they read, and the login throttle.

use crate::config::AdminListener;
use sekisho_bus::{Publisher, Received};
use sekisho_carrier::accounting::RadiusStats;
use sekisho_carrier::control::SimService;
use sekisho_carrier::sims::Sims;
use sekisho_core::FieldLimits;
use sekisho_core::clock::SharedClock;
use sekisho_core::throttle::Throttle;
use sekisho_detect::engine::Detector;
use sekisho_http::listener::{AddressCaps, ListenerStats};
use sekisho_registry::Registry;
use sekisho_registry::pki::Ca;
use sekisho_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// The configuration values the admin side reads (validated with the whole file before it starts).
pub struct Settings {
    pub admin: AdminListener,
    /// The data directory (the carrier API setting made through the admin API lives there).
    pub data_dir: PathBuf,
    /// The database file, whose size the status shows.
    pub store_path: PathBuf,
    /// Limits given to new fields.
    pub limits: FieldLimits,
    /// The template a new field starts with.
    pub default_template: String,
    pub script_limits: sekisho_script::Limits,
    pub max_artifact_bytes: u64,
    /// The `[carrier.api]` section, used again when the admin API's setting is removed.
    pub carrier_api: sekisho_carrier::CarrierApiConfig,
    /// Whether `[carrier.radius] listen` is set.
    pub radius_listening: bool,
}

/// The counters the status and `/metrics` show, shared with the listeners and ingest that keep them.
#[derive(Default)]
pub struct Stats {
    pub device_listener: Arc<ListenerStats>,
    pub admin_listener: Arc<ListenerStats>,
    /// The device API's counters.
    pub ingest: Arc<sekisho_ingest::IngestStats>,
}

/// The admin side's handles, passed to every admin and console handler.
pub struct Admin {
    pub settings: Settings,
    pub store: Store,
    /// The message log and how far the history indexer has copied it.
    pub journal: sekisho_store::journal::Journal,
    pub registry: Arc<Registry>,
    /// Failed logins per user name (and per `totp:<user>` for second-factor codes).
    pub login_failures: Throttle,
    /// Issues device client certificates, when the device CA's key is present.
    pub device_ca: Option<Ca>,
    pub stats: Stats,
    pub started_at: i64,
    /// The gateway's time: the wall clock, or a clock a test moves by hand.
    pub clock: SharedClock,
    /// The cloud connector (new fields and destination changes are announced to it).
    pub forward: Arc<sekisho_forward::Forwarder>,
    /// Threat detection's templates (read and replaced here).
    pub detector: Arc<Detector>,
    /// Field scripts (a template change installs its scripts).
    pub scripts: Arc<sekisho_script::host::ScriptHost>,
    /// The `received` queue, whose depth the status shows.
    pub received: Publisher<Received>,
    /// The live SIM table from the carrier's RADIUS accounting.
    pub sims: Arc<Sims>,
    pub radius: Arc<RadiusStats>,
    /// The carrier's SIM control API (`[carrier.api]`, or what the admin API set), every call recorded.
    pub carrier: Arc<SimService>,
    /// Commands waiting for devices.
    pub commands: Arc<sekisho_bus::Commands>,
    /// Threat response (its counters, its wake-up, its notification settings).
    pub responder: Arc<sekisho_respond::Responder>,
    /// The update manifests' signing keys.
    pub update_keys: sekisho_update::keyring::Keys,
    /// Update campaigns (announce, offer, results, confirmations).
    pub campaigns: Arc<sekisho_update::campaigns::Campaigns>,
    /// Device audit (self-reports, baselines, re-audits).
    pub auditor: Arc<sekisho_update::audit::Auditor>,
    /// The device listener's per-address connection caps (a field's template change updates its NAT
    /// ranges there).
    pub device_caps: Arc<AddressCaps>,
    /// The bearer token `/metrics` requires (`[admin] metrics_token_file`), if one is set.
    pub metrics_token: Option<String>,
}
