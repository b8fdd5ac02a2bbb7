//! `stop_auth` (undone by `enable_auth`), `quarantine` (undone by `release_quarantine`): the device's
//! status set the way an administrator would set it; stopping revokes its tokens at once.

use super::ActionError;
use crate::Responder;
use sekisho_core::{Device, DeviceStatus};
use serde_json::{Value, json};

/// Sets a device's status; the output says what it was.
pub async fn set(
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
