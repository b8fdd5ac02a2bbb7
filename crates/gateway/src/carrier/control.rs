//! SIM control through the carrier's API (V26): suspend or resume a device's SIM, read its status and
//! usage. Every call — whoever asked, whatever the outcome — is recorded in `sim_actions` with its
//! attempts and duration; the connector (`sekisho-carrier`) retries where that is safe and makes
//! suspend and resume idempotent.

use crate::app::App;
use sekisho_carrier::{Call, CarrierError, Op, SimId, SimStatus, SimUsage};
use sekisho_core::Device;
use sekisho_store::carrier::SimActionRow;
use sekisho_store::prelude::*;

/// The identifier the carrier is asked about: the IMSI (every connector addresses SIMs by it).
fn sim_id(device: &Device) -> Result<SimId, CarrierError> {
    let sim = device
        .sim
        .as_ref()
        .ok_or_else(|| CarrierError::Invalid("the device has no SIM registered".into()))?;
    SimId::imsi(&sim.imsi)
}

/// What one SIM call returned, and its record.
pub struct Outcome<T> {
    pub result: Result<T, CarrierError>,
    pub record: SimActionRow,
}

async fn record<T>(
    app: &App,
    device: &Device,
    op: Op,
    actor: &str,
    call: Call<T>,
    detail: impl Fn(&T) -> Option<String>,
) -> Outcome<T> {
    let mut row = SimActionRow {
        id: 0,
        at: app.clock.now_ms(),
        field_id: Some(device.field_id.0.clone()),
        device_id: Some(device.id.0.clone()),
        sim: device
            .sim
            .as_ref()
            .map(|s| s.imsi.clone())
            .unwrap_or_default(),
        action: op.as_str().to_owned(),
        actor: actor.to_owned(),
        outcome: if call.is_ok() { "ok" } else { "failed" }.to_owned(),
        error: call.result.as_ref().err().map(|e| e.code().to_owned()),
        detail: match &call.result {
            Ok(v) => detail(v),
            Err(e) => Some(e.to_string()),
        },
        attempts: call.attempts as i64,
        elapsed_ms: call.elapsed_ms as i64,
    };
    match app.store.record_sim_action(&row).await {
        Ok(id) => row.id = id,
        Err(e) => {
            tracing::error!(error = %e, device = %device.id, action = op.as_str(), "SIM call not recorded")
        }
    }
    let level_ok = call.is_ok();
    if level_ok {
        tracing::info!(device = %device.id, action = op.as_str(), actor, attempts = call.attempts, "SIM call done");
    } else {
        tracing::warn!(device = %device.id, action = op.as_str(), actor, attempts = call.attempts,
            error = %call.result.as_ref().err().map(ToString::to_string).unwrap_or_default(), "SIM call failed");
    }
    Outcome {
        result: call.result,
        record: row,
    }
}

fn refused<T>(e: CarrierError) -> Call<T> {
    Call {
        result: Err(e),
        attempts: 0,
        elapsed_ms: 0,
    }
}

fn state_of(s: &SimStatus) -> Option<String> {
    Some(format!("state {}", s.state))
}

/// Suspends (`suspend = true`) or resumes the device's SIM, on behalf of `actor`.
pub async fn set_suspended(
    app: &App,
    device: &Device,
    suspend: bool,
    actor: &str,
) -> Outcome<SimStatus> {
    let op = if suspend { Op::Suspend } else { Op::Resume };
    let call = match sim_id(device) {
        Ok(id) if suspend => app.sim_api().suspend(&id).await,
        Ok(id) => app.sim_api().resume(&id).await,
        Err(e) => refused(e),
    };
    record(app, device, op, actor, call, state_of).await
}

/// The carrier's status of the device's SIM.
pub async fn status(app: &App, device: &Device, actor: &str) -> Outcome<SimStatus> {
    let call = match sim_id(device) {
        Ok(id) => app.sim_api().status(&id).await,
        Err(e) => refused(e),
    };
    record(app, device, Op::Status, actor, call, state_of).await
}

/// The carrier's cumulative usage of the device's SIM.
pub async fn usage(app: &App, device: &Device, actor: &str) -> Outcome<SimUsage> {
    let call = match sim_id(device) {
        Ok(id) => app.sim_api().usage(&id).await,
        Err(e) => refused(e),
    };
    record(app, device, Op::Usage, actor, call, |u| {
        Some(format!(
            "uplink {} B, downlink {} B",
            u.uplink_bytes, u.downlink_bytes
        ))
    })
    .await
}
