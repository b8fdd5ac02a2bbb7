//! The threat response in the admin API: where a field's notifications go, the decisions and actions
//! taken, the approval queue for critical devices, undo, actions a person starts, and collected
//! device reports.

use super::Caller;
use super::devices::device_in;
use super::views::response::{ActionView, DecisionView, ReportView};
use super::views::{Page, PageQuery};
use crate::Admin;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::HeaderMap;
use sekisho_core::{Action, ActionState, ErrorCode};
use sekisho_http::{ApiError, ApiJson, ApiQuery, ApiResult};
use sekisho_respond::notify::NotifySettings;
use sekisho_store::prelude::*;
use sekisho_store::response::{ActionFilter, ActionRow, NewAction};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(paths(
    get_notify,
    put_notify,
    decisions,
    list_actions,
    approvals,
    approve,
    reject,
    undo,
    start_action,
    reports,
    report
))]
pub struct ResponseApi;

pub fn router() -> Router<Arc<Admin>> {
    Router::new()
        .route(
            "/api/v1/fields/{field}/notify",
            get(get_notify).put(put_notify),
        )
        .route("/api/v1/fields/{field}/response/decisions", get(decisions))
        .route("/api/v1/response/actions", get(list_actions))
        .route("/api/v1/response/approvals", get(approvals))
        .route("/api/v1/response/actions/{id}/approve", post(approve))
        .route("/api/v1/response/actions/{id}/reject", post(reject))
        .route("/api/v1/response/actions/{id}/undo", post(undo))
        .route(
            "/api/v1/fields/{field}/devices/{device}/actions",
            post(start_action),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/reports",
            get(reports),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/reports/{id}",
            get(report),
        )
}

/// A field's notification settings as shown (the webhook secret only as set or not).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotifyView {
    #[serde(flatten)]
    pub settings: NotifySettings,
    pub webhook_secret_set: bool,
}

fn view(mut s: NotifySettings) -> NotifyView {
    let set = s.webhook_secret.is_some();
    s.webhook_secret = None;
    NotifyView {
        settings: s,
        webhook_secret_set: set,
    }
}

/// Where the field's notifications go.
#[utoipa::path(get, path = "/api/v1/fields/{field}/notify", tag = "response", params(("field" = String, Path)),
    responses((status = 200, body = NotifyView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_notify(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<NotifyView>> {
    let f = caller.field(&app, &field)?;
    let s = app
        .responder
        .notify_settings(&f.id.0)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.message))?;
    Ok(Json(view(s)))
}

/// Set where the field's notifications go: administrator and person-in-charge addresses, language,
/// webhook (a secret left out keeps the current one).
#[utoipa::path(put, path = "/api/v1/fields/{field}/notify", tag = "response", params(("field" = String, Path)), request_body = NotifySettings,
    responses((status = 200, body = NotifyView), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn put_notify(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiJson(mut s): ApiJson<NotifySettings>,
) -> ApiResult<Json<NotifyView>> {
    let f = caller.managed_field(&app, &field)?;
    if s.webhook_secret.is_none() && s.webhook_url.is_some() {
        let old = app
            .responder
            .notify_settings(&f.id.0)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.message))?;
        s.webhook_secret = old.webhook_secret;
    }
    let problems = s.problems();
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let body = serde_json::to_string(&s).map_err(ApiError::internal)?;
    app.store.set_field_notify(&f.id.0, &body).await?;
    caller
        .log(&app, "field_notify", Some(f.id.as_str()), None)
        .await;
    Ok(Json(view(s)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    pub device: Option<String>,
    /// Cursor: `id` of the last decision of the previous page.
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// What the response did about the field's detections, newest first.
#[utoipa::path(get, path = "/api/v1/fields/{field}/response/decisions", tag = "response", params(("field" = String, Path), DecisionQuery),
    responses((status = 200, body = Page<DecisionView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn decisions(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiQuery(q): ApiQuery<DecisionQuery>,
) -> ApiResult<Json<Page<DecisionView>>> {
    let f = caller.field(&app, &field)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = app
        .store
        .decisions(&f.id.0, q.device.as_deref(), q.before, limit)
        .await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    let mut items = Vec::with_capacity(rows.len());
    for d in rows {
        let mut actions = app
            .store
            .actions(&ActionFilter {
                decision: Some(d.id),
                limit: 100,
                ..Default::default()
            })
            .await?;
        actions.reverse();
        items.push(DecisionView::new(d, actions));
    }
    Ok(Json(Page { items, next_before }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    pub field: Option<String>,
    pub device: Option<String>,
    pub state: Option<ActionState>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

async fn search(
    app: &Admin,
    caller: &Caller,
    mut f: ActionFilter,
) -> ApiResult<Json<Page<ActionView>>> {
    f.visible_fields = caller.visible_fields();
    let rows = app.store.actions(&f).await?;
    Ok(Json(Page::of(rows, f.limit, |a| a.id, ActionView::from)))
}

/// Actions in the fields this user may see, newest first.
#[utoipa::path(get, path = "/api/v1/response/actions", tag = "response", params(ActionQuery),
    responses((status = 200, body = Page<ActionView>)))]
pub async fn list_actions(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ActionQuery>,
) -> ApiResult<Json<Page<ActionView>>> {
    let filter = ActionFilter {
        field: q.field,
        device: q.device,
        state: q.state,
        before: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..Default::default()
    };
    search(&app, &caller, filter).await
}

/// The approval queue: disruptive actions on critical devices waiting for a person.
#[utoipa::path(get, path = "/api/v1/response/approvals", tag = "response",
    responses((status = 200, body = Page<ActionView>)))]
pub async fn approvals(
    State(app): State<Arc<Admin>>,
    caller: Caller,
) -> ApiResult<Json<Page<ActionView>>> {
    let filter = ActionFilter {
        state: Some(ActionState::AwaitingApproval),
        limit: 1000,
        ..Default::default()
    };
    search(&app, &caller, filter).await
}

/// The action, if this user may change its field.
async fn managed_action(app: &Admin, caller: &Caller, id: i64) -> ApiResult<ActionRow> {
    let a = app
        .store
        .action(id)
        .await?
        .filter(|a| caller.sees(&sekisho_core::FieldId(a.field_id.clone())))
        .ok_or_else(|| ApiError::not_found("action"))?;
    caller.managed_field(app, &a.field_id)?;
    Ok(a)
}

fn state_conflict(a: &ActionRow, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!(
            "action {} is {}; only an action awaiting approval can be {what}",
            a.id, a.state
        ),
    )
}

/// Approve an action waiting for approval: it runs now. A person's disruptive action: with MFA on,
/// the `X-Sekisho-TOTP` header is required.
#[utoipa::path(post, path = "/api/v1/response/actions/{id}/approve", tag = "response", params(("id" = i64, Path)),
    responses((status = 200, body = ActionView), (status = 403, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn approve(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<ActionView>> {
    let code = crate::mfa::header_code(&headers);
    Ok(Json(approve_action(&app, &caller, id, code).await?.into()))
}

/// Approves an action awaiting approval (the caller's second factor first). Shared by the API and the
/// console.
pub async fn approve_action(
    app: &Admin,
    caller: &Caller,
    id: i64,
    code: Option<&str>,
) -> ApiResult<ActionRow> {
    let a = managed_action(app, caller, id).await?;
    if a.state != ActionState::AwaitingApproval {
        return Err(state_conflict(&a, "approved"));
    }
    caller.second_factor_code(app, code).await?;
    let by = format!("user:{}", caller.user.username);
    if !app
        .store
        .move_action(
            id,
            ActionState::AwaitingApproval,
            ActionState::Pending,
            Some(&by),
            app.clock.now_ms(),
        )
        .await?
    {
        return Err(state_conflict(&a, "approved"));
    }
    caller
        .log(
            app,
            "action_approve",
            Some(&id.to_string()),
            Some(a.action.as_str()),
        )
        .await;
    app.responder.wake();
    Ok(app.store.action(id).await?.unwrap_or(a))
}

/// Reject an action waiting for approval: it never runs.
#[utoipa::path(post, path = "/api/v1/response/actions/{id}/reject", tag = "response", params(("id" = i64, Path)),
    responses((status = 200, body = ActionView), (status = 404, body = sekisho_core::ErrorBody), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn reject(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<ActionView>> {
    Ok(Json(reject_action(&app, &caller, id).await?.into()))
}

/// Rejects an action awaiting approval. Shared by the API and the console.
pub async fn reject_action(app: &Admin, caller: &Caller, id: i64) -> ApiResult<ActionRow> {
    let a = managed_action(app, caller, id).await?;
    let by = format!("user:{}", caller.user.username);
    if !app
        .store
        .move_action(
            id,
            ActionState::AwaitingApproval,
            ActionState::Rejected,
            Some(&by),
            app.clock.now_ms(),
        )
        .await?
    {
        return Err(state_conflict(&a, "rejected"));
    }
    caller
        .log(
            app,
            "action_reject",
            Some(&id.to_string()),
            Some(a.action.as_str()),
        )
        .await;
    Ok(app.store.action(id).await?.unwrap_or(a))
}

/// Runs an action a person started, now, and records it like any other.
async fn run_now(
    app: &Admin,
    caller: &Caller,
    field: &str,
    device: Option<&str>,
    action: Action,
    undo_of_id: Option<i64>,
) -> ApiResult<ActionRow> {
    let trigger = format!("user:{}", caller.user.username);
    let new = NewAction {
        field_id: field.to_owned(),
        device_id: device.map(str::to_owned),
        action,
        state: ActionState::Running,
        trigger,
        input: undo_of_id.map(|id| serde_json::json!({"undo_of": id}).to_string()),
        undo_of: undo_of_id,
    };
    let now = app.clock.now_ms();
    let id = app.store.insert_action(&new, now).await?;
    let row = app
        .store
        .action(id)
        .await?
        .ok_or_else(|| ApiError::not_found("action"))?;
    // `run` records the outcome as for the executor's actions.
    app.responder.run_action(row).await;
    if let Some(orig) = undo_of_id {
        app.store.mark_undone(orig, id).await?;
    }
    caller
        .log(
            app,
            &format!("action_{action}"),
            device,
            Some(&id.to_string()),
        )
        .await;
    app.store
        .action(id)
        .await?
        .ok_or_else(|| ApiError::not_found("action"))
}

/// Undo a done disruptive action: re-enable authentication, resume the SIM, release the quarantine,
/// cancel the update. Recorded as an action of its own.
#[utoipa::path(post, path = "/api/v1/response/actions/{id}/undo", tag = "response", params(("id" = i64, Path)),
    responses((status = 200, body = ActionView), (status = 404, body = sekisho_core::ErrorBody), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn undo(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<ActionView>> {
    Ok(Json(undo_action(&app, &caller, id).await?.into()))
}

/// Undoes a done disruptive action (once). Shared by the API and the console.
pub async fn undo_action(app: &Admin, caller: &Caller, id: i64) -> ApiResult<ActionRow> {
    let a = managed_action(app, caller, id).await?;
    let Some(inverse) = a.action.undo() else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("'{}' has no undo", a.action),
        ));
    };
    if a.state != ActionState::Done || a.undone_by.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "action {id} is {} and {}undone; only a done action can be undone",
                a.state,
                if a.undone_by.is_some() {
                    "already "
                } else {
                    "not "
                }
            ),
        ));
    }
    run_now(
        app,
        caller,
        &a.field_id,
        a.device_id.as_deref(),
        inverse,
        Some(id),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartAction {
    /// Any action but a notification: `stop_auth`, `suspend_sim`, `quarantine`, `push_update`,
    /// `collect_info`, or an undo (`enable_auth`, `resume_sim`, `release_quarantine`, `cancel_update`).
    pub action: Action,
}

/// Run an action on a device now, as a person. Disruptive ones need the second factor when MFA is on.
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices/{device}/actions", tag = "response", params(("field" = String, Path), ("device" = String, Path)),
    request_body = StartAction,
    responses((status = 200, body = ActionView), (status = 400, body = sekisho_core::ErrorBody), (status = 403, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn start_action(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
    Path((field, device)): Path<(String, String)>,
    ApiJson(body): ApiJson<StartAction>,
) -> ApiResult<Json<ActionView>> {
    let f = caller.managed_field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    if body.action.is_notification() {
        return Err(ApiError::invalid(vec![format!(
            "action: '{}' is a notification; a person runs device actions only",
            body.action
        )]));
    }
    if body.action.is_disruptive() {
        caller.second_factor(&app, &headers).await?;
    }
    Ok(Json(
        run_now(
            &app,
            &caller,
            &f.id.0,
            Some(d.device.id.as_str()),
            body.action,
            None,
        )
        .await?
        .into(),
    ))
}

/// Device reports collected for the administrator (V29), newest first, each with its body.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/reports", tag = "response", params(("field" = String, Path), ("device" = String, Path), PageQuery),
    responses((status = 200, body = Page<ReportView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn reports(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ReportView>>> {
    let f = caller.field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    let limit = q.limit(50);
    let rows = app
        .store
        .reports(d.device.id.as_str(), q.before, limit)
        .await?;
    Ok(Json(Page::of(rows, limit, |r| r.id, ReportView::from)))
}

/// One collected report, its body as JSON.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}/reports/{id}", tag = "response", params(("field" = String, Path), ("device" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn report(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device, id)): Path<(String, String, i64)>,
) -> ApiResult<Json<serde_json::Value>> {
    let f = caller.field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    let r = app
        .store
        .report(id)
        .await?
        .filter(|r| r.device_id == d.device.id.0)
        .ok_or_else(|| ApiError::not_found("report of this device"))?;
    Ok(Json(super::views::json(&r.body)))
}
