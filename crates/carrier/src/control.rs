//! SIM control through the carrier's API (V26): suspend or resume a device's SIM, read its status and
//! usage. Every call — whoever asked, whatever the outcome — is recorded in `sim_actions` with its
//! attempts and duration; the connector (`sekisho-carrier`) retries where that is safe and makes
//! suspend and resume idempotent.

use crate::{Call, CarrierApiConfig, CarrierError, Op, SimControl, SimId, SimStatus, SimUsage};
use sekisho_core::Device;
use sekisho_core::clock::SharedClock;
use sekisho_store::Store;
use sekisho_store::carrier::SimActionRow;
use sekisho_store::prelude::*;
use std::sync::{Arc, RwLock};

/// Where the carrier API setting in force comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarrierSource {
    /// `[carrier.api]` of the configuration file.
    Configuration,
    /// `PUT /api/v1/system/carrier` (kept in the data directory's `carrier-api.toml`).
    AdminApi,
}

/// The carrier's SIM control as the gateway uses it: the connector in force (replaced whole when the
/// setting changes; `none` answers every call `not_configured`), the setting it came from, and every
/// call recorded.
pub struct SimService {
    api: RwLock<Arc<dyn SimControl>>,
    setting: RwLock<(CarrierApiConfig, CarrierSource)>,
    store: Store,
    clock: SharedClock,
}

impl SimService {
    pub fn new(
        api: Arc<dyn SimControl>,
        setting: (CarrierApiConfig, CarrierSource),
        store: Store,
        clock: SharedClock,
    ) -> Self {
        Self {
            api: RwLock::new(api),
            setting: RwLock::new(setting),
            store,
            clock,
        }
    }

    /// The connector in force now.
    pub fn api(&self) -> Arc<dyn SimControl> {
        self.api.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `[carrier.api]` in force (the file's, or the admin API's), as the status shows it.
    pub fn setting(&self) -> (CarrierApiConfig, CarrierSource) {
        self.setting
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a new connector in force, with the setting it was built from.
    pub fn replace(&self, api: Arc<dyn SimControl>, cfg: CarrierApiConfig, source: CarrierSource) {
        *self.api.write().unwrap_or_else(|e| e.into_inner()) = api;
        *self.setting.write().unwrap_or_else(|e| e.into_inner()) = (cfg, source);
    }

    /// Suspends (`suspend = true`) or resumes the device's SIM, on behalf of `actor`.
    pub async fn set_suspended(
        &self,
        device: &Device,
        suspend: bool,
        actor: &str,
    ) -> Outcome<SimStatus> {
        let op = if suspend { Op::Suspend } else { Op::Resume };
        let call = match sim_id(device) {
            Ok(id) if suspend => self.api().suspend(&id).await,
            Ok(id) => self.api().resume(&id).await,
            Err(e) => refused(e),
        };
        self.record(device, op, actor, call, state_of).await
    }

    /// The carrier's status of the device's SIM.
    pub async fn status(&self, device: &Device, actor: &str) -> Outcome<SimStatus> {
        let call = match sim_id(device) {
            Ok(id) => self.api().status(&id).await,
            Err(e) => refused(e),
        };
        self.record(device, Op::Status, actor, call, state_of).await
    }

    /// The carrier's cumulative usage of the device's SIM.
    pub async fn usage(&self, device: &Device, actor: &str) -> Outcome<SimUsage> {
        let call = match sim_id(device) {
            Ok(id) => self.api().usage(&id).await,
            Err(e) => refused(e),
        };
        self.record(device, Op::Usage, actor, call, |u| {
            Some(format!(
                "uplink {} B, downlink {} B",
                u.uplink_bytes, u.downlink_bytes
            ))
        })
        .await
    }

    async fn record<T>(
        &self,
        device: &Device,
        op: Op,
        actor: &str,
        call: Call<T>,
        detail: impl Fn(&T) -> Option<String>,
    ) -> Outcome<T> {
        let mut row = SimActionRow {
            id: 0,
            at: self.clock.now_ms(),
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
        match self.store.record_sim_action(&row).await {
            Ok(id) => row.id = id,
            Err(e) => {
                tracing::error!(error = %e, device = %device.id, action = op.as_str(), "SIM call not recorded")
            }
        }
        if call.is_ok() {
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
}

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
