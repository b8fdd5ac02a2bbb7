//! What each action does, and its undo. An action reads its device and field afresh (the device may
//! have changed since the decision), does its one thing, and returns its output for the record.

use crate::{Responder, backoff, notify};
use sekisho_core::{Action, ActionState, Device, DeviceId, DeviceStatus};
use sekisho_store::prelude::*;
use sekisho_store::response::ActionRow;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// Why an action did not complete.
#[derive(Debug)]
pub struct ActionError {
    pub message: String,
    /// Worth another attempt later (a dead mail server, a carrier outage).
    pub retryable: bool,
}

impl ActionError {
    pub fn fatal(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            retryable: false,
        }
    }

    pub fn retry(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            retryable: true,
        }
    }
}

impl From<sekisho_store::StoreError> for ActionError {
    fn from(e: sekisho_store::StoreError) -> Self {
        Self::retry(format!("store: {e}"))
    }
}

/// How an action ended when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// It did its thing; the output is recorded.
    Done(Value),
    /// It had nothing to act on (a notification whose target the field has not set): recorded as
    /// `skipped` with the reason, neither done nor failed, and never retried.
    Skipped(String),
}

/// Runs one claimed action and records how it ended (done, skipped, failed, or pending again after a
/// backoff).
pub async fn run(app: &Responder, a: ActionRow) {
    let attempt = a.attempts as u32 + 1;
    let result = execute(app, &a).await;
    let now = app.clock.now_ms();
    let stats = &app.stats;
    let recorded = match result {
        Ok(Outcome::Done(out)) => {
            stats.actions_done.fetch_add(1, Ordering::Relaxed);
            tracing::info!(action = a.id, kind = a.action.as_str(), device = ?a.device_id, "action done");
            app.store
                .finish_action(
                    a.id,
                    ActionState::Done,
                    Some(&out.to_string()),
                    None,
                    now,
                    now,
                )
                .await
        }
        Ok(Outcome::Skipped(reason)) => {
            // Not logged here: a skip is a state of the field, said once an hour where it is found.
            stats.actions_skipped.fetch_add(1, Ordering::Relaxed);
            let out = json!({ "reason": reason }).to_string();
            app.store
                .finish_action(a.id, ActionState::Skipped, Some(&out), None, now, now)
                .await
        }
        Err(e) if e.retryable && attempt < app.config.max_attempts => {
            stats.retries.fetch_add(1, Ordering::Relaxed);
            let next = now + backoff(app, attempt - 1);
            tracing::warn!(
                action = a.id,
                kind = a.action.as_str(),
                attempt,
                error = e.message,
                "action failed; retried later"
            );
            app.store
                .finish_action(
                    a.id,
                    ActionState::Pending,
                    None,
                    Some(&e.message),
                    next,
                    now,
                )
                .await
        }
        Err(e) => {
            stats.actions_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                action = a.id,
                kind = a.action.as_str(),
                attempt,
                error = e.message,
                "action failed"
            );
            app.store
                .finish_action(a.id, ActionState::Failed, None, Some(&e.message), now, now)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(action = a.id, error = %e, "action outcome not recorded");
    }
}

fn device_of(app: &Responder, a: &ActionRow) -> Result<Device, ActionError> {
    let id = a
        .device_id
        .as_ref()
        .ok_or_else(|| ActionError::fatal("the detection has no device"))?;
    app.registry
        .device(&DeviceId(id.clone()))
        .map(|e| e.device.clone())
        .ok_or_else(|| ActionError::fatal("the device is no longer registered"))
}

/// Does what `a` says.
pub async fn execute(app: &Responder, a: &ActionRow) -> Result<Outcome, ActionError> {
    let actor = a.trigger.clone();
    let done = match a.action {
        Action::NotifyAdmin | Action::NotifyPersonInCharge | Action::NotifyWebhook => {
            return notify::send(app, a).await;
        }
        Action::StopAuth => set_status(app, &device_of(app, a)?, DeviceStatus::Disabled).await,
        Action::EnableAuth | Action::ReleaseQuarantine => {
            set_status(app, &device_of(app, a)?, DeviceStatus::Active).await
        }
        Action::Quarantine => set_status(app, &device_of(app, a)?, DeviceStatus::Quarantined).await,
        Action::SuspendSim | Action::ResumeSim => {
            let device = device_of(app, a)?;
            let suspend = a.action == Action::SuspendSim;
            let out = app.carrier.set_suspended(&device, suspend, &actor).await;
            match out.result {
                Ok(s) => Ok(json!({"sim_state": s.state.as_str(), "sim_action": out.record.id})),
                Err(e) if e.retryable() => Err(ActionError::retry(format!(
                    "carrier: {e} (SIM action {})",
                    out.record.id
                ))),
                Err(e) => Err(ActionError::fatal(format!(
                    "carrier: {e} (SIM action {})",
                    out.record.id
                ))),
            }
        }
        Action::PushUpdate => {
            let device = device_of(app, a)?;
            let reason = format!("requested by {}", a.trigger);
            let id = app
                .store
                .request_update(
                    app.clock.now_ms(),
                    &device.field_id.0,
                    &device.id.0,
                    Some(a.id),
                    &reason,
                )
                .await?;
            app.commands.push(
                &device.id,
                json!({"type": "update", "request": id, "reason": reason}),
            );
            Ok(json!({"update_request": id}))
        }
        Action::CancelUpdate => {
            let device = device_of(app, a)?;
            let n = app
                .store
                .close_update_requests(&device.id.0, "cancelled")
                .await?;
            app.commands.clear(&device.id);
            Ok(json!({"cancelled": n}))
        }
        Action::CollectInfo => {
            let device = device_of(app, a)?;
            let report = app.collector.collect(&device).await?;
            let id = app
                .store
                .insert_report(
                    app.clock.now_ms(),
                    &device.field_id.0,
                    &device.id.0,
                    Some(a.id),
                    &report.to_string(),
                )
                .await?;
            Ok(json!({"report": id}))
        }
    };
    done.map(Outcome::Done)
}

/// Sets a device's status the way an administrator would: stopping revokes its tokens at once.
pub async fn set_status(
    app: &Responder,
    device: &Device,
    status: DeviceStatus,
) -> Result<Value, ActionError> {
    let Some(entry) = app.registry.device(&device.id) else {
        return Err(ActionError::fatal("the device is no longer registered"));
    };
    let was = entry.device.status;
    app.registry
        .set_status(&entry, status, app.clock.now_ms())
        .await?;
    Ok(json!({"status": status.as_str(), "was": was.as_str()}))
}
