//! Ingest (subsystems ① device connector and ⑥ device authentication): device protocol v1 on the
//! device listener — token issuance, telemetry, self-reports and the device side of updates.
//!
//! It authenticates, bounds, stores and publishes: every request that reaches a handler is recorded
//! (auth attempt or message metadata) before it is answered; `202` is sent only after the message is
//! durable in the message log. Each auth attempt is published on the bus's `received` topic by its
//! handler; each stored or refused message of a known device by the detection [`feed`], which reads
//! the log by offset, in log order. Detection consumes that topic elsewhere.
//!
//! Architecture invariants: ingest never calls detection or response. The one thing it asks of a
//! field's template, whether an address is outside the field's networks, it asks through
//! [`FieldNetworks`]; the wiring answers it.
//!
//! - [`api`]: the routes and the OpenAPI document; [`config`]: the `[device]` and `[auth]` sections.
//! - `auth`: `POST /v1/auth/token`; `telemetry`: `POST /v1/telemetry[/batch]`; `state`: self-reports;
//!   `update`: the device side of update campaigns.

#![forbid(unsafe_code)]

pub mod api;
mod auth;
pub mod config;
pub mod feed;
mod state;
mod telemetry;
mod update;

pub use api::{DeviceApi, router};
pub use auth::{TokenRequest, TokenResponse};
pub use telemetry::{Accepted, BatchAccepted};

use sekisho_bus::{Commands, Publisher, Received};
use sekisho_core::FieldId;
use sekisho_core::clock::SharedClock;
use sekisho_core::throttle::Throttle;
use sekisho_registry::Registry;
use sekisho_store::Store;
use sekisho_store::journal::Journal;
use sekisho_update::audit::Auditor;
use sekisho_update::campaigns::Campaigns;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Whether a field refuses an address because it is outside the field's networks (its template's
/// `[network]` rule). Asked once per token request and once per telemetry request.
pub trait FieldNetworks: Send + Sync {
    fn blocks(&self, field: &FieldId, ip: IpAddr) -> bool;
}

/// What ingest counted, for the operations view and `/metrics`.
#[derive(Default, Debug)]
pub struct IngestStats {
    pub messages_accepted: AtomicU64,
    pub messages_rejected: AtomicU64,
    pub auth_success: AtomicU64,
    pub auth_failure: AtomicU64,
}

/// The handles ingest is built from.
pub struct Handles {
    pub store: Store,
    /// Where received messages are made durable before they are acknowledged.
    pub journal: Journal,
    pub registry: Arc<Registry>,
    pub clock: SharedClock,
    /// Where each auth attempt is published (messages reach it through the [`feed`]).
    pub received: Publisher<Received>,
    /// Commands waiting for devices, handed out on telemetry and self-report answers.
    pub commands: Arc<Commands>,
    pub campaigns: Arc<Campaigns>,
    pub auditor: Arc<Auditor>,
    pub networks: Arc<dyn FieldNetworks>,
    /// Where ingest counts (shared with whoever shows the counts).
    pub stats: Arc<IngestStats>,
}

/// The device API's state: the handles it was built from, its throttles and its counters.
pub struct Ingest {
    store: Store,
    journal: Journal,
    registry: Arc<Registry>,
    clock: SharedClock,
    received: Publisher<Received>,
    commands: Arc<Commands>,
    campaigns: Arc<Campaigns>,
    auditor: Arc<Auditor>,
    networks: Arc<dyn FieldNetworks>,
    /// Failed token requests per (auth ID, unique ID).
    token_failures: Throttle,
    /// Token requests per source IP.
    token_requests: Throttle,
    /// Bounds concurrent Argon2 verifications (CPU-heavy by design).
    hash_permits: Semaphore,
    token_ttl_secs: u64,
    body_timeout: Duration,
    stats: Arc<IngestStats>,
}

impl Ingest {
    pub fn new(auth: &config::AuthConfig, device: &config::DeviceListener, h: Handles) -> Self {
        Self {
            store: h.store,
            journal: h.journal,
            registry: h.registry,
            clock: h.clock,
            received: h.received,
            commands: h.commands,
            campaigns: h.campaigns,
            auditor: h.auditor,
            networks: h.networks,
            token_failures: Throttle::new(60_000, auth.max_failures_per_unique_id),
            token_requests: Throttle::new(60_000, auth.max_requests_per_ip),
            hash_permits: Semaphore::new(auth.concurrent_hashes.max(1)),
            token_ttl_secs: auth.token_ttl_secs,
            body_timeout: Duration::from_secs(device.body_timeout_secs),
            stats: h.stats,
        }
    }
}
