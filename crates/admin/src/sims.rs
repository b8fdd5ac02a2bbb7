//! A device's SIM as the carrier sees it: the live session from RADIUS accounting (current address,
//! byte counts), the accounting history, and the calls made to the carrier's SIM API.

use super::Caller;
use super::devices::device_in;
use super::views::Page;
use super::views::carrier::{AccountingView, SimActionView, SimSessionView};
use crate::Admin;
use axum::Json;
use axum::extract::{Path, State};
use http::HeaderMap;
use sekisho_carrier::CarrierError;
use sekisho_core::ErrorCode;
use sekisho_core::Sim;
use sekisho_http::{ApiError, ApiQuery, ApiResult};
use sekisho_store::carrier::SimActionRow;
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// A device's SIM: what is registered, what the packet gateway reports, what was asked of the carrier.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimView {
    pub sim: Sim,
    /// The live session (`null` until the packet gateway sent accounting for this IMSI).
    pub session: Option<SimSessionView>,
    /// The latest 20 accounting records, newest first (all of them: `…/sim/accounting`).
    pub accounting: Vec<AccountingView>,
    /// The latest 20 calls to the carrier's SIM API, newest first.
    pub actions: Vec<SimActionView>,
}

fn sim_of(app: &Admin, caller: &Caller, field: &str, device: &str) -> ApiResult<(String, Sim)> {
    let f = caller.field(app, field)?;
    sim_of_device(&*device_in(app, &f, device)?)
}

fn sim_of_device(d: &sekisho_registry::DeviceEntry) -> ApiResult<(String, Sim)> {
    let sim = d
        .device
        .sim
        .clone()
        .ok_or_else(|| ApiError::not_found("SIM for this device (register it with `sim`)"))?;
    Ok((d.device.id.0.clone(), sim))
}

/// A device's SIM: live session, recent accounting and recent carrier calls.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/sim", tag = "carrier", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = SimView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_sim(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<SimView>> {
    let (device_id, sim) = sim_of(&app, &caller, &field, &device)?;
    let accounting = app.store.accounting(&sim.imsi, None, 20).await?;
    let actions = app.store.sim_actions(&device_id, 20).await?;
    Ok(Json(SimView {
        session: app.sims.session(&sim.imsi).map(SimSessionView::from),
        accounting: accounting.into_iter().map(AccountingView::from).collect(),
        actions: actions.into_iter().map(SimActionView::from).collect(),
        sim,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountingQuery {
    /// Cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// The SIM's accounting history, newest first.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/sim/accounting", tag = "carrier",
    params(("field" = String, Path), ("device" = String, Path), AccountingQuery),
    responses((status = 200, body = Page<AccountingView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn accounting(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<AccountingQuery>,
) -> ApiResult<Json<Page<AccountingView>>> {
    let (_, sim) = sim_of(&app, &caller, &field, &device)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = app.store.accounting(&sim.imsi, q.before, limit).await?;
    Ok(Json(Page::of(
        rows,
        limit.into(),
        |a| a.id,
        AccountingView::from,
    )))
}

/// A SIM as the carrier's API reports it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CarrierSim {
    /// `active`, `suspended`, `terminated`, or the carrier's own word.
    pub state: String,
    pub imsi: Option<String>,
    pub iccid: Option<String>,
    pub msisdn: Option<String>,
    pub online: Option<bool>,
    pub ip: Option<String>,
}

impl From<sekisho_carrier::SimStatus> for CarrierSim {
    fn from(s: sekisho_carrier::SimStatus) -> Self {
        Self {
            state: s.state.as_str().to_owned(),
            imsi: s.imsi,
            iccid: s.iccid,
            msisdn: s.msisdn,
            online: s.online,
            ip: s.ip.map(|ip| ip.to_string()),
        }
    }
}

/// The outcome of a SIM call (suspend, resume) with its record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimActionResult {
    pub sim: CarrierSim,
    pub record: SimActionView,
}

/// The carrier's answer to a live query.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CarrierView {
    pub status: CarrierSim,
    pub uplink_bytes: Option<u64>,
    pub downlink_bytes: Option<u64>,
}

/// A carrier failure as an API error (the call itself is already recorded).
fn carrier_error(e: CarrierError, record: &SimActionRow) -> ApiError {
    let code = match e {
        CarrierError::NotConfigured => ErrorCode::Conflict,
        CarrierError::Invalid(_) => ErrorCode::InvalidRequest,
        _ => ErrorCode::CarrierUnavailable,
    };
    ApiError::new(
        code,
        format!(
            "carrier: {} ({}; {} attempt(s), recorded as SIM action {})",
            e,
            e.code(),
            record.attempts,
            record.id
        ),
    )
}

/// Suspends or resumes; suspending (disruptive) needs the caller's second factor when they have one.
async fn set_suspended(
    app: &Admin,
    caller: &Caller,
    field: &str,
    device: &str,
    suspend: bool,
    headers: &HeaderMap,
) -> ApiResult<SimActionResult> {
    let f = caller.managed_field(app, field)?;
    let d = device_in(app, &f, device)?;
    sim_of_device(&d)?;
    if suspend {
        caller.second_factor(app, headers).await?;
    }
    let actor = format!("user:{}", caller.user.username);
    let out = app.carrier.set_suspended(&d.device, suspend, &actor).await;
    let action = if suspend { "sim_suspend" } else { "sim_resume" };
    caller
        .log(
            app,
            action,
            Some(d.device.id.as_str()),
            Some(&out.record.outcome),
        )
        .await;
    match out.result {
        Ok(s) => Ok(SimActionResult {
            sim: s.into(),
            record: out.record.into(),
        }),
        Err(e) => Err(carrier_error(e, &out.record)),
    }
}

/// Suspend the device's SIM through the carrier (V26). Idempotent; recorded whatever the outcome. Needs
/// the caller's second factor when they have one.
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices/{device}/sim/suspend", tag = "carrier",
    params(("field" = String, Path), ("device" = String, Path),
           ("X-Sekisho-TOTP" = Option<String>, Header, description = "A current code, for users with a second factor")),
    responses((status = 200, body = SimActionResult),
        (status = 403, description = "`second_factor_required`: the code is missing, wrong or already used", body = sekisho_core::ErrorBody),
        (status = 404, body = sekisho_core::ErrorBody), (status = 409, description = "no carrier API configured", body = sekisho_core::ErrorBody),
        (status = 502, description = "the carrier failed or refused", body = sekisho_core::ErrorBody)))]
pub async fn suspend(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<SimActionResult>> {
    Ok(Json(
        set_suspended(&app, &caller, &field, &device, true, &headers).await?,
    ))
}

/// Resume the device's SIM (the undo of suspend). Idempotent; recorded whatever the outcome.
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices/{device}/sim/resume", tag = "carrier", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = SimActionResult), (status = 404, body = sekisho_core::ErrorBody), (status = 409, description = "no carrier API configured", body = sekisho_core::ErrorBody),
        (status = 502, description = "the carrier failed or refused", body = sekisho_core::ErrorBody)))]
pub async fn resume(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<SimActionResult>> {
    Ok(Json(
        set_suspended(&app, &caller, &field, &device, false, &HeaderMap::new()).await?,
    ))
}

/// Ask the carrier now: the SIM's state and session, and its usage (both calls recorded).
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/sim/carrier", tag = "carrier", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = CarrierView), (status = 404, body = sekisho_core::ErrorBody), (status = 409, body = sekisho_core::ErrorBody), (status = 502, body = sekisho_core::ErrorBody)))]
pub async fn carrier(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<CarrierView>> {
    let f = caller.field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    sim_of_device(&d)?;
    let actor = format!("user:{}", caller.user.username);
    let status = app.carrier.status(&d.device, &actor).await;
    let status = status
        .result
        .map_err(|e| carrier_error(e, &status.record))?;
    // Usage is optional in a carrier's API: its failure leaves the counts empty (and is recorded).
    let usage = app.carrier.usage(&d.device, &actor).await.result.ok();
    Ok(Json(CarrierView {
        status: status.into(),
        uplink_bytes: usage.map(|u| u.uplink_bytes),
        downlink_bytes: usage.map(|u| u.downlink_bytes),
    }))
}
