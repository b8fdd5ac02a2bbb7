//! `collect_info` (nothing to undo): the device's information (V29) gathered by the admin side's
//! [`crate::Collector`] and stored as a report the administrator reads.

use super::ActionError;
use crate::Responder;
use sekisho_core::Device;
use sekisho_store::prelude::*;
use sekisho_store::response::ActionRow;
use serde_json::{Value, json};

/// Collects and stores the device's report.
pub async fn run(app: &Responder, a: &ActionRow, device: &Device) -> Result<Value, ActionError> {
    let report = app.collector.collect(device).await?;
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
