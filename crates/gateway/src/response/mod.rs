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

pub mod actions;
pub mod notify;

use crate::app::App;
use sekisho_core::{Action, ActionState};
use sekisho_detect::template::ScriptTrigger;
use sekisho_store::detections::DetectionRow;
use sekisho_store::prelude::*;
use sekisho_store::response::{NewAction, NewDecision};
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

/// Commands waiting for devices, given on their telemetry responses (`202 {"commands": [...]}`) until
/// done: today the updates asked by `push_update` (update management completes them).
#[derive(Default)]
pub struct Commands(
    std::sync::RwLock<std::collections::HashMap<sekisho_core::DeviceId, Vec<serde_json::Value>>>,
);

impl Commands {
    pub fn push(&self, device: &sekisho_core::DeviceId, command: serde_json::Value) {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        g.entry(device.clone()).or_default().push(command);
    }

    /// Keeps only the device's commands for which `keep` holds.
    pub fn retain(
        &self,
        device: &sekisho_core::DeviceId,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = g.get_mut(device) {
            v.retain(|c| keep(c));
            if v.is_empty() {
                g.remove(device);
            }
        }
    }

    pub fn clear(&self, device: &sekisho_core::DeviceId) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(device);
    }

    /// The device's pending commands (one read lock; nothing is allocated when there are none).
    pub fn for_device(&self, device: &sekisho_core::DeviceId) -> Vec<serde_json::Value> {
        let g = self.0.read().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() {
            return Vec::new();
        }
        g.get(device).cloned().unwrap_or_default()
    }
}

/// Wakes the executor when new actions are due.
#[derive(Default)]
pub struct Wake(Notify);

impl Wake {
    pub fn now(&self) {
        self.0.notify_one();
    }
}

/// Starts the decider and the executor.
pub fn spawn(app: Arc<App>, stopped: watch::Receiver<bool>) {
    if !app.config.response.enabled {
        tracing::warn!(
            "threat response is off ([response] enabled = false): detections take no action"
        );
        return;
    }
    tokio::spawn(decider(app.clone(), stopped.clone()));
    tokio::spawn(executor(app, stopped));
}

async fn decider(app: Arc<App>, mut stopped: watch::Receiver<bool>) {
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
async fn catch_up(app: &App) {
    let since = app.clock.now_ms() - app.config.response.catch_up_hours as i64 * 3_600_000;
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

async fn decide_logged(app: &App, d: DetectionRow) {
    let id = d.id;
    if let Err(e) = decide(app, d).await {
        tracing::error!(detection = id, error = %e, "response decision failed; retried at the next catch-up");
    }
}

/// The playbook's decision on one detection, stored with its actions.
pub async fn decide(app: &App, d: DetectionRow) -> anyhow::Result<Option<i64>> {
    let field = sekisho_core::FieldId(d.field_id.clone());
    let device = d
        .device_id
        .as_ref()
        .and_then(|id| app.registry.device(&sekisho_core::DeviceId(id.clone())));
    let critical = device.as_ref().is_some_and(|e| e.device.critical);
    let severity = d.severity;
    let compiled = app.detector.template(&field);
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
        let stats = &app.response_stats;
        stats.decisions.fetch_add(1, Ordering::Relaxed);
        if suppressed_by.is_some() {
            stats.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(detection = d.id, decision = ?id, actions = actions.len(), suppressed = suppressed_by.is_some(), "response decided");
        app.response_wake.now();
    }
    Ok(id)
}

/// Runs the field's response scripts on a detection; returns (script, action) pairs they asked for.
async fn run_scripts(
    app: &App,
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
            app.config.detection.script_limits(),
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
async fn executor(app: Arc<App>, mut stopped: watch::Receiver<bool>) {
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
    let permits = Arc::new(Semaphore::new(app.config.response.concurrency.max(1)));
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
                                app.response_wake.now();
                            });
                        }
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "claiming an action failed"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "reading due actions failed"),
        }
        let wait = match app.store.next_due().await {
            Ok(Some(at)) => {
                Duration::from_millis((at - app.clock.now_ms()).clamp(200, 5_000) as u64)
            }
            _ => Duration::from_secs(5),
        };
        tokio::select! {
            _ = app.response_wake.0.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The wait before attempt `attempt + 1` (exponential, capped, with jitter), in milliseconds.
pub fn backoff(app: &App, attempt: u32) -> i64 {
    let c = &app.config.response;
    sekisho_core::backoff::Backoff::new(c.backoff_initial_ms, c.backoff_max_ms)
        .jittered(attempt)
        .as_millis() as i64
}
