//! Sekisho's wiring: the one place that knows every subsystem. It reads and validates the whole
//! configuration ([`config`]: one section per crate, each crate's own type), builds every subsystem
//! from the narrow handles it uses, connects them through the bus and serves the listeners.
//!
//! - [`run`] builds, in order: the store and the registry; the bus; the carrier side (SIM table,
//!   RADIUS listener, SIM control); detection (engine, judge on `received`, sink, silence); the script
//!   host; response; update campaigns and audit; ingest on the device listener; the admin API with the
//!   console on the admin listener; the cloud forwarders; housekeeping.
//! - [`load_config`]: the file, the overrides, every problem at once, the database key.
//! - [`init`]: `sekisho init` (a data directory with keys, certificates and the first user).
//!
//! Architecture invariants: no subsystem receives this crate's state; the adapters between
//! subsystems' seams (`NetworksOf`, `SimWindowsOf`) live here and nowhere else; only the binary
//! depends on this crate.
//!
//! [`run`] is the one entry point the binary and the tests share: it takes already bound listeners, a
//! validated configuration, the database key and a shutdown future.

#![forbid(unsafe_code)]

pub mod config;
pub mod init;

use config::Config;
use sekisho_bus::{Bus, LocalBus};
use sekisho_carrier::accounting::RadiusListener;
use sekisho_carrier::control::{CarrierSource, SimService};
use sekisho_detect::engine::{self as detection, Detector};
use sekisho_http::listener::{self, ListenerSpec};
use sekisho_registry::Registry;
use sekisho_store::journal::Journal;
use sekisho_store::prelude::*;
use sekisho_store::{DbKey, Store, StoreOptions};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The OpenAPI document of `device` or `admin` (anything else: admin), pretty-printed.
pub fn openapi_json(api: &str) -> String {
    use utoipa::OpenApi;
    let doc = if api == "device" {
        sekisho_ingest::DeviceApi::openapi()
    } else {
        sekisho_admin::openapi()
    };
    doc.to_pretty_json().unwrap_or_default()
}

/// The two bound listeners.
pub struct Listeners {
    pub device: TcpListener,
    pub admin: TcpListener,
    /// RADIUS accounting from the carrier (`[carrier.radius] listen`), when configured.
    pub radius: Option<tokio::net::UdpSocket>,
    /// Each change makes the device and admin listeners read their certificate and key files again
    /// (the binary sends one on SIGHUP); `None`: they never do.
    pub reload_tls: Option<watch::Receiver<()>>,
}

/// Reads `<data_dir>/sekisho.toml`, applies the overrides, resolves paths, validates everything and
/// reads the database key. Returns every problem found.
pub fn load_config(
    data_dir: &Path,
    device_listen: Option<String>,
    admin_listen: Option<String>,
    key_override: Option<String>,
) -> Result<(Config, DbKey), Vec<String>> {
    let path = data_dir.join("sekisho.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        vec![format!(
            "{}: {e} (run `sekisho init --data-dir {}` first)",
            path.display(),
            data_dir.display()
        )]
    })?;
    let parsed = Config::parse(&text);
    let (mut config, mut lines, mut found) = (parsed.value, parsed.lines, parsed.problems);
    if let Some(a) = device_listen {
        config.device.listen = a;
        lines.forget("device.listen");
    }
    if let Some(a) = admin_listen {
        config.admin.listen = a;
        lines.forget("admin.listen");
    }
    config.resolve_paths(data_dir);
    let mut semantic = config.problems();
    // The carrier API set through the admin API replaces [carrier.api]: it must be usable too.
    match sekisho_carrier::settings::load(data_dir) {
        Ok(Some(set)) => semantic.extend(
            set.validate(Path::new(""))
                .into_iter()
                .map(|p| format!("{}: {p}", sekisho_carrier::settings::FILE)),
        ),
        Ok(None) => {}
        Err(e) => semantic.push(e),
    }
    if let Err(p) = sekisho_admin::metrics_token::load(&config.admin.metrics_token_file) {
        semantic.push(p);
    }
    found.extend(semantic.into_iter().map(|p| lines.locate(p)));
    // The file's problems in the order of its lines, then those of keys it does not set.
    found.sort_by_key(|p| (p.line.is_none(), p.line));
    let mut problems: Vec<String> = found
        .into_iter()
        .map(|p| match p.line {
            Some(l) => format!("{}:{l}: {}", path.display(), p.text),
            None => p.text,
        })
        .collect();
    let key = match key_override {
        Some(k) => {
            DbKey::from_hex(&k).ok_or_else(|| "SEKISHO_DB_KEY: not 64 hex digits".to_owned())
        }
        None => std::fs::read_to_string(&config.store.key_file)
            .map_err(|e| format!("store.key_file: {}: {e}", config.store.key_file.display()))
            .and_then(|t| {
                DbKey::from_hex(&t).ok_or_else(|| {
                    format!(
                        "store.key_file: {} does not hold 64 hex digits",
                        config.store.key_file.display()
                    )
                })
            }),
    };
    match key {
        Ok(k) if problems.is_empty() => Ok((config, k)),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.push(e);
            Err(problems)
        }
    }
}

/// Opens the store, loads the registry, serves both listeners and forwards to the clouds until
/// `shutdown` completes. Everything that keeps domain time (receive times, silence, tokens and
/// sessions, retries) asks `clock`; timeouts that guard I/O stay on tokio's timer.
pub async fn run(
    listeners: Listeners,
    config: Config,
    key: DbKey,
    clock: sekisho_core::clock::SharedClock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let opts = StoreOptions {
        sync_full: config.store.sync == "full",
        group_commit_max: config.store.group_commit_max,
        queue_capacity: config.store.queue_capacity,
        enqueue_timeout: Duration::from_millis(config.store.enqueue_timeout_ms),
        pool_size: 4,
    };
    let store = sekisho_store::open(&config.store.path, &key, opts).await?;
    let journal = open_journal(&config.store, &key)?;
    let now = clock.now_ms();
    let registry = Arc::new(Registry::load(store.clone(), now).await?);
    let (device_tls, device_cert) = listener::server_config(
        &config.device.cert,
        &config.device.key,
        &config.device.client_ca,
    )?;
    let (admin_tls, admin_cert) =
        listener::server_config(&config.admin.cert, &config.admin.key, &[])?;
    let device_ca = config.device.client_ca.first().and_then(|crt| {
        let key = crt.with_extension("key");
        key.is_file()
            .then(|| sekisho_registry::pki::Ca::load(crt, &key).ok())
            .flatten()
    });
    let (forward, new_fields) = sekisho_forward::Forwarder::new(
        config.cloud.clone(),
        store.clone(),
        journal.clone(),
        registry.clone(),
        clock.clone(),
    );
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(config.detection.queue_capacity));
    let sims = Arc::new(sekisho_carrier::sims::Sims::load(
        store.sim_sessions().await?,
        now,
    ));
    let radius_clients = sekisho_carrier::accounting::clients(&config.carrier.radius)
        .map_err(|p| anyhow::anyhow!("carrier.radius: {}", p.join("; ")))?;
    let carrier_api =
        match sekisho_carrier::settings::load(&config.data_dir).map_err(anyhow::Error::msg)? {
            Some(set) => (set, CarrierSource::AdminApi),
            None => (config.carrier.api.clone(), CarrierSource::Configuration),
        };
    let sim_api = sekisho_carrier::connect(&carrier_api.0, Path::new(""))
        .map_err(|p| anyhow::anyhow!("carrier.api: {}", p.join("; ")))?;
    let mailer = sekisho_notify::Mailer::new(&config.response.smtp)
        .map_err(|p| anyhow::anyhow!("response.smtp: {}", p.join("; ")))?;
    let update_keys = sekisho_update::keyring::Keys::load(
        &config.update.key_file,
        &config.update.previous_keys_file,
    )?;
    let metrics_token = sekisho_admin::metrics_token::load(&config.admin.metrics_token_file)
        .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.update.artifact_dir)?;
    let scripts = Arc::new(sekisho_script::host::ScriptHost::new(
        4096,
        Arc::new(detection::outlet::StoreFaults(store.clone())),
        clock.clone(),
    ));
    let (detector, found) =
        detection::start(&config.detection, &store, sims.clone(), scripts.clone()).await?;
    let detector = Arc::new(detector);
    let group_window_ms = config.detection.group_window_secs as i64 * 1000;
    scripts.spawn_worker(
        Arc::new(detection::outlet::DetectorOutlet(detector.clone())),
        tokio::runtime::Handle::current(),
    );
    tokio::spawn(detection::judge::run(
        detector.clone(),
        registry.clone(),
        bus.subscribe_received(sekisho_bus::DETECTION_GROUP)?,
    ));
    tokio::spawn(detection::run_sink(
        found,
        store.clone(),
        bus.clone(),
        detector.stats.clone(),
        group_window_ms,
    ));
    let radius_stats = Arc::new(sekisho_carrier::accounting::RadiusStats::default());
    let carrier = Arc::new(SimService::new(
        sim_api,
        carrier_api,
        store.clone(),
        clock.clone(),
    ));
    let commands = Arc::new(sekisho_bus::Commands::default());
    let responder = Arc::new(sekisho_respond::Responder::new(
        config.response.clone(),
        sekisho_respond::Handles {
            store: store.clone(),
            registry: registry.clone(),
            clock: clock.clone(),
            bus: bus.clone(),
            templates: detector.clone(),
            scripts: scripts.clone(),
            script_limits: config.detection.script_limits(),
            carrier: carrier.clone(),
            commands: commands.clone(),
            mailer: mailer.clone(),
            collector: Arc::new(sekisho_admin::collected::Collected {
                store: store.clone(),
                sims: sims.clone(),
                clock: clock.clone(),
            }),
            console_url: console_url(&config, listeners.admin.local_addr()?),
        },
    ));
    let campaigns = Arc::new(sekisho_update::campaigns::Campaigns {
        store: store.clone(),
        registry: registry.clone(),
        commands: commands.clone(),
        clock: clock.clone(),
        findings: detector.clone(),
        artifact_dir: config.update.artifact_dir.clone(),
    });
    let auditor = Arc::new(sekisho_update::audit::Auditor {
        store: store.clone(),
        registry: registry.clone(),
        clock: clock.clone(),
        templates: detector.clone(),
        scripts: scripts.clone(),
        script_limits: config.detection.script_limits(),
        findings: detector.clone(),
        campaigns: campaigns.clone(),
    });
    for r in store.open_update_requests().await? {
        commands.push(
            &sekisho_core::DeviceId(r.device_id.clone()),
            serde_json::json!({"type": "update", "request": r.id, "reason": r.reason}),
        );
    }
    for f in registry.fields() {
        for c in store.campaigns(&f.id.0).await? {
            if c.status == "active" {
                campaigns.announce(&c);
            }
        }
    }
    let (stop, stopped) = watch::channel(false);
    if let Some(requests) = listeners.reload_tls {
        tokio::spawn(listener::reload_on(
            requests,
            vec![("device", device_cert), ("admin", admin_cert)],
            stopped.clone(),
        ));
    }

    sekisho_forward::spawn(forward.clone(), new_fields, stopped.clone());
    tokio::spawn(detection::silence_worker(
        detector.clone(),
        registry.clone(),
        clock.clone(),
        stopped.clone(),
    ));
    // The log's consumers stop last, once they have what it holds (see the end of this function).
    let (stop_indexer, indexer_stopped) = watch::channel(false);
    // Read before the listeners open: nothing is appended before the feed knows where it starts.
    let feed_from = sekisho_ingest::feed::start(&journal, &store).await?;
    let indexer = tokio::spawn(sekisho_store::journal::index(
        journal.clone(),
        store.clone(),
        config.store.index_batch.max(1),
        indexer_stopped.clone(),
    ));
    let feed = tokio::spawn(sekisho_ingest::feed::run(
        journal.clone(),
        store.clone(),
        bus.received(),
        feed_from,
        indexer_stopped,
    ));
    tokio::spawn(housekeeping(
        registry.clone(),
        store.clone(),
        journal.clone(),
        clock.clone(),
        config.store.retention_days,
        stopped.clone(),
    ));
    sekisho_respond::spawn(responder.clone(), stopped.clone());
    tokio::spawn(sekisho_update::audit::silence_worker(
        auditor.clone(),
        stopped.clone(),
    ));

    let c = &config;
    let device_caps = Arc::new(listener::AddressCaps::new(
        c.device.max_connections_per_address,
        c.device.max_connections_per_nat_address,
        c.device.nat_ranges.clone(),
    ));
    for f in registry.fields() {
        let nat = detector.template(&f.id).template.network.nat_ranges.clone();
        device_caps.set_field_nat(&f.id, nat);
    }
    let device_spec = ListenerSpec {
        name: "device",
        tls: Arc::new(device_tls),
        max_connections: c.device.max_connections,
        handshake_timeout: Duration::from_secs(c.device.handshake_timeout_secs),
        header_timeout: Duration::from_secs(c.device.header_timeout_secs),
        address_counters: Some(sims.clone()),
        drain_max_bytes: c.device.drain_max_bytes,
        drain_timeout: Duration::from_secs(c.device.body_timeout_secs),
        caps: Some(device_caps.clone()),
        refusal_slots: c.device.refusal_slots,
    };
    let admin_spec = ListenerSpec {
        name: "admin",
        tls: Arc::new(admin_tls),
        max_connections: c.admin.max_connections,
        handshake_timeout: Duration::from_secs(c.device.handshake_timeout_secs),
        header_timeout: Duration::from_secs(c.device.header_timeout_secs),
        address_counters: None,
        drain_max_bytes: c.device.drain_max_bytes,
        drain_timeout: Duration::from_secs(c.device.body_timeout_secs),
        caps: None,
        refusal_slots: c.device.refusal_slots,
    };
    if let Some(socket) = listeners.radius {
        tracing::info!(listen = %socket.local_addr()?, clients = radius_clients.len(), "RADIUS accounting listener");
        let radius = RadiusListener {
            clients: radius_clients,
            dedup_secs: config.carrier.radius.dedup_secs,
            stats: radius_stats.clone(),
            sims: sims.clone(),
            store: store.clone(),
            registry: registry.clone(),
            windows: Arc::new(SimWindowsOf(detector.clone())),
            received: bus.received(),
            clock: clock.clone(),
        };
        tokio::spawn(sekisho_carrier::accounting::serve(
            socket,
            radius,
            stopped.clone(),
        ));
    }
    tracing::info!(
        device = %listeners.device.local_addr()?, admin = %listeners.admin.local_addr()?,
        fields = registry.fields().len(), devices = registry.device_count(), "sekisho gateway serving"
    );
    let stats = sekisho_admin::Stats::default();
    let ingest = Arc::new(sekisho_ingest::Ingest::new(
        &config.auth,
        &config.device,
        sekisho_ingest::Handles {
            store: store.clone(),
            journal: journal.clone(),
            registry: registry.clone(),
            clock: clock.clone(),
            received: bus.received(),
            commands: commands.clone(),
            campaigns: campaigns.clone(),
            auditor: auditor.clone(),
            networks: Arc::new(NetworksOf(detector.clone())),
            stats: stats.ingest.clone(),
        },
    ));
    let (device_stats, admin_stats) = (stats.device_listener.clone(), stats.admin_listener.clone());
    let admin = Arc::new(sekisho_admin::Admin {
        settings: sekisho_admin::Settings {
            admin: config.admin.clone(),
            data_dir: config.data_dir.clone(),
            store_path: config.store.path.clone(),
            limits: config.limits,
            default_template: config.detection.default_template.clone(),
            script_limits: config.detection.script_limits(),
            max_artifact_bytes: config.update.max_artifact_bytes,
            carrier_api: config.carrier.api.clone(),
            radius_listening: !config.carrier.radius.listen.is_empty(),
        },
        store: store.clone(),
        journal: journal.clone(),
        registry,
        login_failures: config.admin.login_throttle(),
        device_ca,
        stats,
        started_at: now,
        clock,
        forward,
        detector,
        scripts,
        received: bus.received(),
        sims,
        radius: radius_stats,
        carrier,
        commands,
        responder,
        update_keys,
        campaigns,
        auditor,
        device_caps,
        metrics_token,
    });
    let writer = store.writer.clone();
    let device = tokio::spawn(listener::serve(
        listeners.device,
        device_spec,
        sekisho_ingest::router(ingest),
        writer.clone(),
        device_stats,
        stopped.clone(),
    ));
    let admin = tokio::spawn(listener::serve(
        listeners.admin,
        admin_spec,
        sekisho_admin::router(admin, sekisho_console::router()),
        writer,
        admin_stats,
        stopped,
    ));
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop.send(true);
    let _ = device.await;
    let _ = admin.await;
    // Nothing appends any more: sync what is queued and let the indexer catch up (if it cannot in
    // time, it goes on from its place at the next start).
    let log = journal.log().clone();
    let _ = tokio::task::spawn_blocking(move || log.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), journal.caught_up()).await;
    let _ = stop_indexer.send(true);
    let _ = indexer.await;
    let _ = feed.await;
    store.close().await;
    Ok(())
}

/// Opens the message log under `[store] log_dir`, keyed from the database key, and reports what its
/// recovery found.
fn open_journal(c: &config::StoreConfig, key: &DbKey) -> anyhow::Result<Journal> {
    let opts = sekisho_log::LogOptions {
        sync: c.sync == "full",
        segment_bytes: c.log_segment_mb.max(1) << 20,
        max_pending_bytes: (c.log_queue_mb.max(1) << 20) as usize,
    };
    let (log, report) = sekisho_log::Log::open(&c.log_dir, key.bytes(), opts)
        .map_err(|e| anyhow::anyhow!("store.log_dir: {}: {e}", c.log_dir.display()))?;
    tracing::info!(
        segments = report.segments,
        records = report.records,
        next = report.next_offset,
        damaged = report.damage.len(),
        "message log opened"
    );
    Ok(Journal::new(log, report.damage.len()))
}

/// The detector as the accounting listener asks it how long a field's SIM windows are.
struct SimWindowsOf(Arc<Detector>);

impl sekisho_carrier::accounting::SimWindows for SimWindowsOf {
    fn window_secs(&self, field: &sekisho_core::FieldId) -> Option<u32> {
        let r = &self.0.template(field).template.sim;
        (r.check_uplink || r.check_downlink).then_some(r.window.secs())
    }
}

/// The detector as ingest asks it whether a field's template refuses an address.
struct NetworksOf(Arc<Detector>);

impl sekisho_ingest::FieldNetworks for NetworksOf {
    fn blocks(&self, field: &sekisho_core::FieldId, ip: std::net::IpAddr) -> bool {
        self.0.blocks(field, ip)
    }
}

/// Once a minute: forget expired tokens; once an hour: apply the retention period (`retention_days`,
/// 0: keep everything).
async fn housekeeping(
    registry: Arc<Registry>,
    store: Store,
    journal: Journal,
    clock: sekisho_core::clock::SharedClock,
    retention_days: u32,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut n: u64 = 0;
    // The oldest history row pointing into the log, as found last time (rows only ever go from the
    // front, so the next search starts there).
    let mut first_seq = 0i64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let now = clock.now_ms();
        if let Err(e) = registry.purge_tokens(now).await {
            tracing::warn!(error = %e, "token purge failed");
        }
        // Segments no consumer and no history row needs any more (see `journal::trim`).
        match sekisho_store::journal::trim(&journal, &store, &mut first_seq).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                segments = n,
                "message log segments no longer needed removed"
            ),
            Err(e) => tracing::warn!(error = %e, "removing message log segments failed"),
        }
        if retention_days > 0 && n.is_multiple_of(60) {
            match store
                .purge_history(now - retention_days as i64 * 86_400_000)
                .await
            {
                Ok(0) => {}
                Ok(rows) => tracing::info!(
                    rows,
                    days = retention_days,
                    "history older than the retention period removed"
                ),
                Err(e) => tracing::warn!(error = %e, "retention purge failed"),
            }
        }
        n += 1;
    }
}

/// The console's base URL for links (`[response] console_url`, else the admin listener's).
fn console_url(config: &Config, admin: std::net::SocketAddr) -> String {
    let c = config.response.console_url.trim_end_matches('/');
    if !c.is_empty() {
        c.to_owned()
    } else if admin.ip().is_unspecified() {
        format!("https://localhost:{}/console", admin.port())
    } else {
        format!("https://{admin}/console")
    }
}
