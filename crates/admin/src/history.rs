//! History search (subsystem ⑦): received messages, authentication attempts and connection events,
//! newest first, filtered, paged with `before` (the `next_before` of the previous page).

use super::views::Page;
use super::views::history::{AuthAttemptView, MessageView, SecurityEventView};
use super::{Caller, parse_time};
use crate::Admin;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use sekisho_core::{ErrorCode, FieldId, Role};
use sekisho_http::{ApiError, ApiQuery, ApiResult};
use sekisho_store::history::Filter;
use sekisho_store::prelude::*;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub field: Option<String>,
    pub device: Option<String>,
    /// `accepted`/`rejected` (messages) or `success`/`failure`/`throttled` (auth attempts).
    pub outcome: Option<String>,
    pub source_ip: Option<String>,
    /// From this time on (RFC 3339).
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    pub until: Option<String>,
    /// Cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Rows per page, 1-1000 (default 100).
    pub limit: Option<i64>,
}

/// The store filter for a query, scoped to what the caller may see. Shared by the API and the console.
pub fn filter(caller: &Caller, q: HistoryQuery) -> ApiResult<Filter> {
    let mut problems = Vec::new();
    let since = parse_time("since", &q.since, &mut problems);
    let until = parse_time("until", &q.until, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    if q.field
        .as_ref()
        .is_some_and(|f| !caller.sees(&FieldId(f.clone())))
    {
        return Err(ApiError::not_found("field"));
    }
    Ok(Filter {
        visible_fields: caller.visible_fields(),
        field: q.field,
        device: q.device,
        outcome: q.outcome,
        source_ip: q.source_ip,
        since,
        until,
        before: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    })
}

/// Received messages (metadata).
#[utoipa::path(get, path = "/api/v1/history/messages", tag = "history", params(HistoryQuery),
    responses((status = 200, body = Page<MessageView>), (status = 400, body = sekisho_core::ErrorBody)))]
pub async fn messages(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<MessageView>>> {
    let f = filter(&caller, q)?;
    let rows = app.store.search_messages(&f).await?;
    Ok(Json(Page::of(rows, f.limit, |m| m.seq, MessageView::from)))
}

/// Device authentication attempts.
#[utoipa::path(get, path = "/api/v1/history/auth", tag = "history", params(HistoryQuery),
    responses((status = 200, body = Page<AuthAttemptView>), (status = 400, body = sekisho_core::ErrorBody)))]
pub async fn auth_attempts(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<AuthAttemptView>>> {
    let f = filter(&caller, q)?;
    let rows = app.store.search_auth_attempts(&f).await?;
    Ok(Json(Page::of(
        rows,
        f.limit,
        |a| a.id,
        AuthAttemptView::from,
    )))
}

/// Connection-level events (plaintext on a TLS port, failed handshakes, connection limit). Not per field:
/// maintainers and analysts only.
#[utoipa::path(get, path = "/api/v1/history/security", tag = "history", params(HistoryQuery),
    responses((status = 200, body = Page<SecurityEventView>), (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn security_events(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<SecurityEventView>>> {
    if caller.user.role == Role::FieldAdmin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "connection events span every field: maintainers and analysts only",
        ));
    }
    let f = filter(&caller, q)?;
    let rows = app.store.search_security_events(&f).await?;
    Ok(Json(Page::of(
        rows,
        f.limit,
        |e| e.id,
        SecurityEventView::from,
    )))
}

/// The stored body of an accepted message, as the device sent it.
#[utoipa::path(get, path = "/api/v1/history/messages/{id}/body", tag = "history", params(("id" = String, Path)),
    responses((status = 200, description = "The device's JSON", content_type = "application/json"), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn message_body(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let body = match app.store.message_body(&id).await? {
        Some((Some(field), body, at)) if caller.sees(&FieldId(field.clone())) => match (body, at) {
            (Some(body), _) => Some(body),
            // The body is in the message log.
            (None, Some(at)) => app
                .journal
                .bodies(vec![at.max(0) as u64])
                .await?
                .pop()
                .map(|(_, b)| b),
            (None, None) => None,
        },
        _ => None,
    };
    match body {
        Some(body) => {
            Ok(([(http::header::CONTENT_TYPE, "application/json")], body).into_response())
        }
        None => Err(ApiError::not_found("message body")),
    }
}
