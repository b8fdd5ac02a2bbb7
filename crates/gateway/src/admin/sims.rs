//! A device's SIM as the carrier sees it: the live session from RADIUS accounting (current address,
//! byte counts), the accounting history, and the calls made to the carrier's SIM API.

use super::Caller;
use super::devices::device_in;
use crate::app::App;
use crate::error::{ApiError, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use sekisho_core::Sim;
use sekisho_store::SimSessionRow;
use sekisho_store::carrier::{AccountingRow, SimActionRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// A device's SIM: what is registered, what the packet gateway reports, what was asked of the carrier.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimView {
    pub sim: Sim,
    /// The live session (absent until the packet gateway sent accounting for this IMSI).
    pub session: Option<SimSessionRow>,
    /// The latest accounting records, newest first.
    pub accounting: Vec<AccountingRow>,
    /// The latest calls to the carrier's SIM API, newest first.
    pub actions: Vec<SimActionRow>,
}

fn sim_of(app: &App, caller: &Caller, field: &str, device: &str) -> ApiResult<(String, Sim)> {
    let f = caller.field(app, field)?;
    let d = device_in(app, &f, device)?;
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
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<SimView>> {
    let (device_id, sim) = sim_of(&app, &caller, &field, &device)?;
    Ok(Json(SimView {
        session: app.sims.session(&sim.imsi),
        accounting: app.store.accounting(&sim.imsi, None, 20).await?,
        actions: app.store.sim_actions(&device_id, 20).await?,
        sim,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountingQuery {
    /// Cursor: `id` of the last record of the previous page.
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountingPage {
    pub items: Vec<AccountingRow>,
    pub next_before: Option<i64>,
}

/// The SIM's accounting history, newest first.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/sim/accounting", tag = "carrier",
    params(("field" = String, Path), ("device" = String, Path), AccountingQuery),
    responses((status = 200, body = AccountingPage), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn accounting(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<AccountingQuery>,
) -> ApiResult<Json<AccountingPage>> {
    let (_, sim) = sim_of(&app, &caller, &field, &device)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = app.store.accounting(&sim.imsi, q.before, limit).await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|a| a.id))
        .flatten();
    Ok(Json(AccountingPage { items, next_before }))
}
