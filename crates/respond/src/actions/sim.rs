//! `suspend_sim` (undone by `resume_sim`): the carrier's SIM control API, through the SIM service that
//! records every call. A carrier outage is worth another attempt; a refusal is not.

use super::ActionError;
use crate::Responder;
use sekisho_core::Device;
use serde_json::{Value, json};

/// Suspends (`true`) or resumes the device's SIM on behalf of `actor`.
pub async fn set(
    app: &Responder,
    device: &Device,
    suspend: bool,
    actor: &str,
) -> Result<Value, ActionError> {
    let out = app.carrier.set_suspended(device, suspend, actor).await;
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
