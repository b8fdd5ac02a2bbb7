//! `push_update` (undone by `cancel_update`): an update request recorded for the device and an `update`
//! command on its next telemetry response; cancelling closes its open requests and clears its commands.

use super::ActionError;
use crate::Responder;
use sekisho_core::Device;
use sekisho_store::prelude::*;
use sekisho_store::response::ActionRow;
use serde_json::{Value, json};

/// Asks the device to check for its update.
pub async fn push(app: &Responder, a: &ActionRow, device: &Device) -> Result<Value, ActionError> {
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

/// Withdraws what `push` asked of the device.
pub async fn cancel(app: &Responder, device: &Device) -> Result<Value, ActionError> {
    let n = app
        .store
        .close_update_requests(&device.id.0, "cancelled")
        .await?;
    app.commands.clear(&device.id);
    Ok(json!({"cancelled": n}))
}
