//! Device audit in the admin API: baselines per field and per device, the learning period and its
//! proposal (approved in one action, ※5), devices' self-reports and the audit runs.

use super::Caller;
use super::devices::device_in;
use super::views::audit::{AuditRunView, StateView};
use super::views::{Page, PageQuery};
use crate::Admin;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use sekisho_detect::audit::{Baseline, SelfReport, propose};
use sekisho_detect::template::Span;
use sekisho_http::{ApiError, ApiJson, ApiQuery, ApiResult};
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(paths(
    get_field_baseline,
    put_field_baseline,
    get_device_baseline,
    put_device_baseline,
    learn,
    proposal,
    approve_proposal,
    device_states,
    audit_runs
))]
pub struct AuditApi;

pub fn router() -> Router<Arc<Admin>> {
    Router::new()
        .route(
            "/api/v1/fields/{field}/baseline",
            get(get_field_baseline).put(put_field_baseline),
        )
        .route("/api/v1/fields/{field}/baseline/learn", post(learn))
        .route("/api/v1/fields/{field}/baseline/proposal", get(proposal))
        .route(
            "/api/v1/fields/{field}/baseline/proposal/approve",
            post(approve_proposal),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/baseline",
            get(get_device_baseline).put(put_device_baseline),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/state",
            get(device_states),
        )
        .route("/api/v1/fields/{field}/audit-runs", get(audit_runs))
}

/// A baseline version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BaselineView {
    pub version: i64,
    pub approved_at: String,
    /// Who approved it.
    pub approved_by: String,
    pub baseline: Baseline,
}

async fn show(app: &Admin, field: &str, device: &str) -> ApiResult<Json<BaselineView>> {
    let row = app
        .store
        .baseline(field, device)
        .await?
        .ok_or_else(|| ApiError::not_found("baseline (none approved yet)"))?;
    Ok(Json(BaselineView {
        version: row.version,
        approved_at: sekisho_core::time::rfc3339(row.at),
        approved_by: row.by,
        baseline: serde_json::from_str(&row.body).map_err(ApiError::internal)?,
    }))
}

async fn store(
    app: &Admin,
    caller: &Caller,
    field: &str,
    device: &str,
    b: &Baseline,
) -> ApiResult<Json<BaselineView>> {
    let body = serde_json::to_string(b).map_err(ApiError::internal)?;
    let version = app
        .store
        .put_baseline(
            field,
            device,
            &caller.user.username,
            &body,
            app.clock.now_ms(),
        )
        .await?;
    let target = if device.is_empty() { field } else { device };
    caller
        .log(
            app,
            "baseline_set",
            Some(target),
            Some(&version.to_string()),
        )
        .await;
    // The devices' latest reports are judged against the new baseline now, not at their next report.
    app.auditor
        .reaudit_field(&sekisho_core::FieldId(field.to_owned()))
        .await?;
    show(app, field, device).await
}

/// The field's approved baseline (firmware, configuration, processes, publishers, software).
#[utoipa::path(get, path = "/api/v1/fields/{field}/baseline", tag = "audit", params(("field" = String, Path)),
    responses((status = 200, body = BaselineView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_field_baseline(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<BaselineView>> {
    let f = caller.field(&app, &field)?;
    show(&app, &f.id.0, "").await
}

/// Approve a new baseline for the field (a new version).
#[utoipa::path(put, path = "/api/v1/fields/{field}/baseline", tag = "audit", params(("field" = String, Path)), request_body = Baseline,
    responses((status = 200, body = BaselineView), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn put_field_baseline(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiJson(b): ApiJson<Baseline>,
) -> ApiResult<Json<BaselineView>> {
    let f = caller.managed_field(&app, &field)?;
    store(&app, &caller, &f.id.0, "", &b).await
}

/// One device's own baseline entries (they override the field's).
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/baseline", tag = "audit", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = BaselineView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_device_baseline(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<BaselineView>> {
    let f = caller.field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    show(&app, &f.id.0, d.device.id.as_str()).await
}

/// Set one device's own baseline entries.
#[utoipa::path(put, path = "/api/v1/fields/{field}/devices/{device}/baseline", tag = "audit", params(("field" = String, Path), ("device" = String, Path)), request_body = Baseline,
    responses((status = 200, body = BaselineView), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn put_device_baseline(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    ApiJson(b): ApiJson<Baseline>,
) -> ApiResult<Json<BaselineView>> {
    let f = caller.managed_field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    store(&app, &caller, &f.id.0, d.device.id.as_str(), &b).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Learn {
    /// How long to learn, e.g. `"7d"`; reports in that time are recorded, not judged.
    pub duration: Span,
}

/// The field's learning period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Learning {
    pub started_at: String,
    /// When it ends: reports after that are judged again.
    pub ends_at: String,
    /// Devices that reported since it started.
    pub devices: usize,
    /// What their reports propose.
    pub proposal: Baseline,
}

async fn learning_view(app: &Admin, field: &str) -> ApiResult<(Learning, Baseline)> {
    let (started, until) = app
        .store
        .learning(field)
        .await?
        .ok_or_else(|| ApiError::not_found("learning period (start one first)"))?;
    let states = app.store.latest_states_since(field, started).await?;
    let reports: Vec<SelfReport> = states
        .iter()
        .filter_map(|s| serde_json::from_str(&s.body).ok())
        .collect();
    let proposal = propose(&reports);
    Ok((
        Learning {
            started_at: sekisho_core::time::rfc3339(started),
            ends_at: sekisho_core::time::rfc3339(until),
            devices: reports.len(),
            proposal: proposal.clone(),
        },
        proposal,
    ))
}

/// Start learning the field's baseline from what its devices report (※5).
#[utoipa::path(post, path = "/api/v1/fields/{field}/baseline/learn", tag = "audit", params(("field" = String, Path)), request_body = Learn,
    responses((status = 200, body = Learning), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn learn(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiJson(l): ApiJson<Learn>,
) -> ApiResult<Json<Learning>> {
    let f = caller.managed_field(&app, &field)?;
    let now = app.clock.now_ms();
    if l.duration.secs() == 0 {
        return Err(ApiError::invalid(vec![
            "duration: must be more than 0".into(),
        ]));
    }
    app.store
        .set_learning(
            &f.id.0,
            now,
            now + l.duration.secs() as i64 * 1000,
            &caller.user.username,
        )
        .await?;
    caller
        .log(
            &app,
            "baseline_learn",
            Some(f.id.as_str()),
            Some(&l.duration.to_string()),
        )
        .await;
    Ok(Json(learning_view(&app, &f.id.0).await?.0))
}

/// What the devices reported while learning, as a baseline to approve.
#[utoipa::path(get, path = "/api/v1/fields/{field}/baseline/proposal", tag = "audit", params(("field" = String, Path)),
    responses((status = 200, body = Learning), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn proposal(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<Learning>> {
    let f = caller.field(&app, &field)?;
    Ok(Json(learning_view(&app, &f.id.0).await?.0))
}

/// Approve the proposal as the field's baseline in one action; learning ends and audits judge again.
#[utoipa::path(post, path = "/api/v1/fields/{field}/baseline/proposal/approve", tag = "audit", params(("field" = String, Path)),
    responses((status = 200, body = BaselineView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn approve_proposal(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<BaselineView>> {
    let f = caller.managed_field(&app, &field)?;
    let (_, mut proposed) = learning_view(&app, &f.id.0).await?;
    // Settings the administrator made on the current baseline that learning cannot see are kept.
    if let Some(cur) = app.store.baseline(&f.id.0, "").await?
        && let Ok(cur) = serde_json::from_str::<Baseline>(&cur.body)
    {
        proposed.report_every = cur.report_every;
        if proposed.publishers.is_empty() {
            proposed.publishers = cur.publishers;
        }
    }
    app.store.end_learning(&f.id.0).await?;
    store(&app, &caller, &f.id.0, "", &proposed).await
}

/// A device's self-reports, newest first, with what changed each time.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/state", tag = "audit", params(("field" = String, Path), ("device" = String, Path), PageQuery),
    responses((status = 200, body = Page<StateView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn device_states(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<StateView>>> {
    let f = caller.field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    let limit = q.limit(50);
    let rows = app
        .store
        .states(d.device.id.as_str(), q.before, limit)
        .await?;
    Ok(Json(Page::of(rows, limit, |s| s.id, StateView::from)))
}

/// The field's audit runs, newest first, each with what it found.
#[utoipa::path(get, path = "/api/v1/fields/{field}/audit-runs", tag = "audit", params(("field" = String, Path), PageQuery),
    responses((status = 200, body = Page<AuditRunView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn audit_runs(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<AuditRunView>>> {
    let f = caller.field(&app, &field)?;
    let limit = q.limit(200);
    let rows = app.store.audit_runs(&f.id.0, None, q.before, limit).await?;
    Ok(Json(Page::of(rows, limit, |r| r.id, AuditRunView::from)))
}
