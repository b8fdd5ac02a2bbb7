//! The actions of the playbook, one file per action with its undo: [`status`] (stop/enable auth,
//! quarantine/release), [`sim`] (suspend/resume the SIM), [`update`] (push/cancel an update),
//! [`collect`] (the device's information), [`notify`] (mail to the administrator or the person in
//! charge, the webhook). Each reads its device and field afresh (the device may have changed since
//! the decision), does its one thing, and returns its output for the record; [`run`] records how it
//! ended and schedules retries.

pub mod collect;
pub mod notify;
mod outcome;
pub mod sim;
pub mod status;
pub mod update;

pub use outcome::{ActionError, Outcome};

use crate::{Responder, backoff};
use sekisho_core::{Action, ActionState, Device, DeviceId, DeviceStatus};
use sekisho_store::prelude::*;
use sekisho_store::response::ActionRow;
use serde_json::json;
use std::sync::atomic::Ordering;

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

/// The device an action is about (it must still be registered).
pub(crate) fn device_of(app: &Responder, a: &ActionRow) -> Result<Device, ActionError> {
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
    let done = match a.action {
        Action::NotifyAdmin | Action::NotifyPersonInCharge | Action::NotifyWebhook => {
            return notify::send(app, a).await;
        }
        Action::StopAuth => status::set(app, &device_of(app, a)?, DeviceStatus::Disabled).await,
        Action::EnableAuth | Action::ReleaseQuarantine => {
            status::set(app, &device_of(app, a)?, DeviceStatus::Active).await
        }
        Action::Quarantine => {
            status::set(app, &device_of(app, a)?, DeviceStatus::Quarantined).await
        }
        Action::SuspendSim => sim::set(app, &device_of(app, a)?, true, &a.trigger).await,
        Action::ResumeSim => sim::set(app, &device_of(app, a)?, false, &a.trigger).await,
        Action::PushUpdate => update::push(app, a, &device_of(app, a)?).await,
        Action::CancelUpdate => update::cancel(app, &device_of(app, a)?).await,
        Action::CollectInfo => collect::run(app, a, &device_of(app, a)?).await,
    };
    done.map(Outcome::Done)
}
