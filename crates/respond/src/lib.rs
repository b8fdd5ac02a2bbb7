//! Threat response (subsystem ④): detections become actions, per field and per threat, as the trial's
//! 対処キュー → 対処ロジック did.
//!
//! - The **decider** subscribes to the response queue ([`sekisho_bus::Bus`]) and, at start or when it
//!   fell behind, re-reads the detections it has not decided. For each detection it takes the field's
//!   playbook (first matching `[[playbook]]` rule, else `actions[threat]`), adds what the field's
//!   response scripts ask for (`act("…")`), suppresses repeats of one incident (same device and threat
//!   within `response.suppress`, unless the severity rose), and stores the decision with its actions in
//!   one transaction. A detection is decided once per severity (a unique key), also across restarts.
//! - The **executor** runs due actions from the store: each is claimed (`pending → running`), run, and
//!   ends `done`, `failed`, `skipped` (a notification whose target the field has not set), or
//!   `pending` again after a backoff when the failure is worth retrying. Mail, webhook and carrier
//!   calls have their own timeouts, so a dead mail server delays mail only.
//! - **Safety**: on a device marked critical, disruptive actions ([`Action::is_disruptive`]) wait in
//!   `awaiting_approval` for a person (`POST /api/v1/response/actions/{id}/approve`); every disruptive
//!   action has its undo; every action records its trigger, input, outcome and attempts.
//!
//! Invariant: an action that is not idempotent (a mail) is never run twice for one decision: one caught
//! running by a restart becomes `interrupted` instead of running again.

#![forbid(unsafe_code)]

pub mod actions;
pub use actions::notify;

use sekisho_bus::{Bus, Commands};
use sekisho_carrier::control::SimService;
use sekisho_core::clock::SharedClock;
use sekisho_core::{Action, ActionState, Device};
use sekisho_detect::TemplateSource;
use sekisho_detect::template::ScriptTrigger;
use sekisho_registry::Registry;
use sekisho_script::Limits;
use sekisho_script::host::ScriptHost;
use sekisho_store::detections::DetectionRow;
use sekisho_store::prelude::*;
use sekisho_store::response::{NewAction, NewDecision};
use sekisho_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, broadcast, watch};

/// How long a notification waits for its decision's other actions to end, so it can report them.
const NOTIFY_HOLD_MS: i64 = 30_000;

/// Counters for `/metrics` and the status view.
#[derive(Default, Debug)]
pub struct ResponseStats {
    pub decisions: AtomicU64,
    pub suppressed: AtomicU64,
    pub actions_done: AtomicU64,
    pub actions_failed: AtomicU64,
    /// Notifications skipped because the field has not set where they go.
    pub actions_skipped: AtomicU64,
    pub retries: AtomicU64,
}

/// `[response]`: how detections become actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Off: detections are stored and published, and nothing acts on them.
    pub enabled: bool,
    /// The console's base URL for links in notifications; empty: `https://<admin listen>/console`.
    pub console_url: String,
    /// Actions running at once (mail, webhooks, carrier calls).
    pub concurrency: usize,
    /// Attempts of an action whose failure is worth retrying, before it is recorded as failed.
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub webhook_timeout_ms: u64,
    /// At start (and when the worker falls behind), detections this recent without a decision are decided.
    pub catch_up_hours: u64,
    pub smtp: sekisho_notify::SmtpConfig,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            console_url: String::new(),
            concurrency: 8,
            max_attempts: 8,
            backoff_initial_ms: 1000,
            backoff_max_ms: 300_000,
            webhook_timeout_ms: 10_000,
            catch_up_hours: 24,
            smtp: sekisho_notify::SmtpConfig::default(),
        }
    }
}

/// The device information an administrator needs to judge an incident (V29), as `collect_info`
/// records it; the admin API builds it in its own views (the report is an answer of that API).
pub trait Collector: Send + Sync {
    fn collect<'a>(
        &'a self,
        device: &'a Device,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, StoreError>> + Send + 'a>>;
}

/// What the responder is built from: narrow handles, no gateway state.
pub struct Handles {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub clock: SharedClock,
    pub bus: Arc<dyn Bus>,
    /// The field's compiled template (its playbook, response rules and scripts).
    pub templates: Arc<dyn TemplateSource>,
    pub scripts: Arc<ScriptHost>,
    pub script_limits: Limits,
    pub carrier: Arc<SimService>,
    pub commands: Arc<Commands>,
    pub mailer: sekisho_notify::Mailer,
    pub collector: Arc<dyn Collector>,
    /// The console's base URL, for links in notifications.
    pub console_url: String,
}

/// Threat response: the decider, the executor, and what they share.
pub struct Responder {
    pub config: ResponseConfig,
    store: Store,
    registry: Arc<Registry>,
    clock: SharedClock,
    bus: Arc<dyn Bus>,
    templates: Arc<dyn TemplateSource>,
    scripts: Arc<ScriptHost>,
    script_limits: Limits,
    carrier: Arc<SimService>,
    commands: Arc<Commands>,
    mailer: sekisho_notify::Mailer,
    collector: Arc<dyn Collector>,
    console_url: String,
    pub stats: ResponseStats,
    wake: Notify,
    /// Limits the log line about a field's unset notification targets to one per field per hour.
    notify_unset_log: notify::OncePer,
}

impl Responder {
    pub fn new(config: ResponseConfig, h: Handles) -> Self {
        Self {
            config,
            store: h.store,
            registry: h.registry,
            clock: h.clock,
            bus: h.bus,
            templates: h.templates,
            scripts: h.scripts,
            script_limits: h.script_limits,
            carrier: h.carrier,
            commands: h.commands,
            mailer: h.mailer,
            collector: h.collector,
            console_url: h.console_url,
            stats: ResponseStats::default(),
            wake: Notify::new(),
            notify_unset_log: notify::OncePer::hourly(),
        }
    }

    /// Wakes the executor: new actions are due (a decision, an approval, an undo).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The console's base URL for links.
    pub fn console_url(&self) -> &str {
        &self.console_url
    }

    /// The field's notification settings as stored (default: nowhere).
    pub async fn notify_settings(
        &self,
        field: &str,
    ) -> Result<notify::NotifySettings, actions::ActionError> {
        notify::settings(self, field).await
    }

    /// Runs one claimed action now and records how it ended.
    pub async fn run_action(&self, a: sekisho_store::response::ActionRow) {
        actions::run(self, a).await;
    }
}

/// Starts the decider and the executor.
pub fn spawn(app: Arc<Responder>, stopped: watch::Receiver<bool>) {
    if !app.config.enabled {
        tracing::warn!(
            "threat response is off ([response] enabled = false): detections take no action"
        );
        return;
    }
    tokio::spawn(decider(app.clone(), stopped.clone()));
    tokio::spawn(executor(app, stopped));
}

async fn decider(app: Arc<Responder>, mut stopped: watch::Receiver<bool>) {
    let mut events = app.bus.subscribe_detections();
    catch_up(&app).await;
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stopped.changed() => return,
        };
        match event {
            Ok(e) => match app.store.detection(e.id).await {
                Ok(Some(d)) => decide_logged(&app, d).await,
                Ok(None) => tracing::warn!(detection = e.id, "published detection not found"),
                Err(err) => {
                    tracing::error!(error = %err, "reading a detection failed; it is decided at the next catch-up")
                }
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "the response worker fell behind; re-reading detections from the store"
                );
                catch_up(&app).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Decides every recent detection that has no decision at its severity.
async fn catch_up(app: &Responder) {
    let since = app.clock.now_ms() - app.config.catch_up_hours as i64 * 3_600_000;
    loop {
        match app.store.undecided_detections(since, 200).await {
            Ok(rows) if rows.is_empty() => return,
            Ok(rows) => {
                for d in rows {
                    decide_logged(app, d).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading undecided detections failed");
                return;
            }
        }
    }
}

async fn decide_logged(app: &Responder, d: DetectionRow) {
    let id = d.id;
    if let Err(e) = decide(app, d).await {
        tracing::error!(detection = id, error = %e, "response decision failed; retried at the next catch-up");
    }
}

/// The playbook's decision on one detection, stored with its actions.
pub async fn decide(app: &Responder, d: DetectionRow) -> anyhow::Result<Option<i64>> {
    let field = sekisho_core::FieldId(d.field_id.clone());
    let device = d
        .device_id
        .as_ref()
        .and_then(|id| app.registry.device(&sekisho_core::DeviceId(id.clone())));
    let critical = device.as_ref().is_some_and(|e| e.device.critical);
    let severity = d.severity;
    let compiled = app.templates.compiled(&field);
    let t = &compiled.template;
    let (decided_by, mut names) = compiled
        .playbook
        .actions_for(d.threat, &d.rule, severity, critical);
    let mut notes = Vec::new();
    let scripted = run_scripts(app, t, &d, device.as_deref()).await;
    for (script, action) in scripted {
        if let Some(a) = action
            .parse::<Action>()
            .ok()
            .filter(|a| Action::PLAYBOOK.contains(a))
        {
            names.push(a);
        } else {
            notes.push(format!(
                "script {script} asked for unknown action '{action}'"
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|a| seen.insert(*a));
    if device.is_none() {
        let before = names.len();
        names.retain(|a| a.is_notification());
        if names.len() < before {
            notes.push("no registered device: device actions skipped".into());
        }
    }
    let now = app.clock.now_ms();
    // One incident, one set of actions: a repeat within the suppression window takes none, unless it
    // is more severe than what was acted on.
    let mut suppressed_by = None;
    if let Some(dev) = &d.device_id {
        let since = now - t.response.suppress.secs() as i64 * 1000;
        if let Some(prev) = app.store.acting_decision(dev, d.threat, since).await?
            && prev.severity >= severity
        {
            suppressed_by = Some(prev.id);
        }
    }
    let decision = NewDecision {
        at: now,
        detection_id: d.id,
        severity: d.severity,
        field_id: d.field_id.clone(),
        device_id: d.device_id.clone(),
        threat: d.threat,
        rule: d.rule.clone(),
        decided_by,
        suppressed_by,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    let actions: Vec<NewAction> = if suppressed_by.is_some() {
        Vec::new()
    } else {
        names
            .iter()
            .map(|a| NewAction {
                field_id: d.field_id.clone(),
                device_id: d.device_id.clone(),
                action: *a,
                state: if critical && a.is_disruptive() {
                    ActionState::AwaitingApproval
                } else {
                    ActionState::Pending
                },
                trigger: format!("response:detection {}", d.id),
                input: Some(
                    serde_json::json!({"detection_id": d.id, "rule": d.rule, "threat": d.threat,
                        "severity": d.severity, "critical": critical})
                    .to_string(),
                ),
                undo_of: None,
            })
            .collect()
    };
    let id = app.store.decide(&decision, &actions).await?;
    if id.is_some() {
        let stats = &app.stats;
        stats.decisions.fetch_add(1, Ordering::Relaxed);
        if suppressed_by.is_some() {
            stats.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(detection = d.id, decision = ?id, actions = actions.len(), suppressed = suppressed_by.is_some(), "response decided");
        app.wake();
    }
    Ok(id)
}

/// Runs the field's response scripts on a detection; returns (script, action) pairs they asked for.
async fn run_scripts(
    app: &Responder,
    t: &sekisho_detect::Template,
    d: &DetectionRow,
    device: Option<&sekisho_registry::DeviceEntry>,
) -> Vec<(String, String)> {
    let detection = serde_json::json!({"id": d.id, "rule": d.rule, "threat": d.threat, "severity": d.severity,
        "summary": d.summary, "evidence": serde_json::from_str::<serde_json::Value>(&d.evidence).unwrap_or_default(),
        "count": d.count});
    let dev = device.map_or(serde_json::Value::Null, |e| {
        serde_json::json!({"id": e.device.id.0, "unique_id": e.device.unique_id, "name": e.device.name,
            "critical": e.device.critical, "status": e.device.status.as_str(), "has_sim": e.device.sim.is_some()})
    });
    let field = serde_json::json!({"id": d.field_id});
    let field_id = sekisho_core::FieldId(d.field_id.clone());
    app.scripts
        .run_once(
            &field_id,
            t.script_sources(Some(ScriptTrigger::Response)),
            vec![detection, dev, field],
            app.script_limits,
        )
        .await
        .into_iter()
        .flat_map(|r| {
            let script = r.script;
            r.actions.into_iter().map(move |a| (script.clone(), a))
        })
        .collect()
}

/// Runs due actions until `stopped`.
async fn executor(app: Arc<Responder>, mut stopped: watch::Receiver<bool>) {
    match app.store.recover_running(app.clock.now_ms()).await {
        Ok((0, 0)) => {}
        Ok((requeued, interrupted)) => {
            tracing::warn!(
                requeued,
                interrupted,
                "actions caught running by the last stop"
            )
        }
        Err(e) => tracing::error!(error = %e, "recovering running actions failed"),
    }
    let permits = Arc::new(Semaphore::new(app.config.concurrency.max(1)));
    loop {
        let now = app.clock.now_ms();
        match app.store.due_actions(now, NOTIFY_HOLD_MS, 64).await {
            Ok(due) => {
                for a in due {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    match app
                        .store
                        .move_action(a.id, ActionState::Pending, ActionState::Running, None, now)
                        .await
                    {
                        Ok(true) => {
                            let app = app.clone();
                            tokio::spawn(async move {
                                actions::run(&app, a).await;
                                drop(permit);
                                app.wake();
                            });
                        }
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "claiming an action failed"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "reading due actions failed"),
        }
        // The next action falls due on the gateway's clock; one already due but held (a notification
        // waiting for its decision's other actions) is looked at again shortly; and every 5 s anyway.
        let due_at = app.store.next_due().await.ok().flatten();
        let now = app.clock.now_ms();
        let due = async {
            match due_at {
                Some(at) if at > now => app.clock.sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let poll = match due_at {
            Some(at) if at <= now => Duration::from_millis(200),
            _ => Duration::from_secs(5),
        };
        tokio::select! {
            _ = app.wake.notified() => {}
            _ = due => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The wait before attempt `attempt + 1` (exponential, capped, with jitter), in milliseconds.
pub fn backoff(app: &Responder, attempt: u32) -> i64 {
    let c = &app.config;
    sekisho_core::backoff::Backoff::new(c.backoff_initial_ms, c.backoff_max_ms)
        .jittered(attempt)
        .as_millis() as i64
}
