//! The dashboard, the fields list (with the maintainer's create form) and the history search.

use super::view::{AuthRow, FieldRow, MessageRow, duration, query};
use super::{Chrome, Ctx, Failure, render, see_other};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use sekisho_admin::Admin;
use sekisho_admin::fields::{CreateField, create_field as create};
use sekisho_admin::history::{HistoryQuery, filter};
use sekisho_admin::system::{Status, status_of};
use sekisho_admin::views::Page;
use sekisho_core::{AuthMode, Role};
use sekisho_http::ApiResult;
use sekisho_store::prelude::*;
use serde::Deserialize;
use std::sync::Arc;

/// Rows per history page.
const PAGE: i64 = 50;

async fn field_rows(app: &Admin, ctx: &Ctx) -> ApiResult<Vec<FieldRow>> {
    let mut rows = Vec::new();
    for f in app.registry.fields() {
        if ctx.caller.sees(&f.id) {
            rows.push(FieldRow::of(app, ctx.t(), &f).await?);
        }
    }
    Ok(rows)
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    c: Chrome,
    /// The whole system's status, for maintainers and analysts.
    status: Option<Status>,
    uptime: String,
    started: String,
    fields: Vec<FieldRow>,
}

pub async fn dashboard(State(app): State<Arc<Admin>>, ctx: Ctx) -> Result<Response, Failure> {
    let status = if ctx.is(Role::FieldAdmin) {
        None
    } else {
        Some(status_of(&app).await.map_err(|e| ctx.fail(e))?)
    };
    let page = Dashboard {
        c: ctx.chrome("dashboard", ctx.t().dashboard),
        uptime: status
            .as_ref()
            .map(|s| duration(s.uptime_secs))
            .unwrap_or_default(),
        started: super::view::when(app.started_at),
        status,
        fields: field_rows(&app, &ctx).await.map_err(|e| ctx.fail(e))?,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "console/fields.html")]
struct FieldsPage {
    c: Chrome,
    fields: Vec<FieldRow>,
    can_create: bool,
    name: String,
    mode: String,
    error: Option<String>,
}

async fn fields_page(
    app: &Admin,
    ctx: &Ctx,
    status: StatusCode,
    form: NewField,
    error: Option<String>,
) -> Result<Response, Failure> {
    let page = FieldsPage {
        c: ctx.chrome("fields", ctx.t().fields),
        fields: field_rows(app, ctx).await.map_err(|e| ctx.fail(e))?,
        can_create: ctx.is(Role::Maintainer),
        name: form.name,
        mode: form.auth_mode,
        error,
    };
    Ok(render(status, &page))
}

pub async fn fields(State(app): State<Arc<Admin>>, ctx: Ctx) -> Result<Response, Failure> {
    fields_page(&app, &ctx, StatusCode::OK, NewField::default(), None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct NewField {
    #[serde(default)]
    name: String,
    #[serde(default)]
    auth_mode: String,
    /// A library template name (empty: the gateway's default).
    #[serde(default)]
    template: Option<String>,
}

/// Creates a field (maintainers), then shows it; a refused form comes back with the reason.
pub async fn create_field(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    Form(form): Form<NewField>,
) -> Result<Response, Failure> {
    let auth_mode = match form.auth_mode.as_str() {
        "certificate" => AuthMode::Certificate,
        "either" => AuthMode::Either,
        _ => AuthMode::Secret,
    };
    let req = CreateField {
        name: form.name.clone(),
        auth_mode: Some(auth_mode),
        limits: None,
        cloud: None,
        template: form.template.clone().filter(|t| !t.is_empty()),
    };
    match create(&app, &ctx.caller, req).await {
        Ok(f) => Ok(see_other(&format!("/console/fields/{}", f.id))),
        Err(e) => {
            let fail = ctx.fail(e);
            fields_page(&app, &ctx, fail.status(), form, Some(fail.line())).await
        }
    }
}

/// The history filters as the form sends them (empty means "any").
#[derive(Debug, Default, Deserialize)]
pub struct HistoryForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    before: String,
}

#[derive(Template)]
#[template(path = "console/history.html")]
struct HistoryPage {
    c: Chrome,
    /// `messages` or `auth`.
    kind: &'static str,
    q: HistoryForm,
    fields: Vec<(String, String)>,
    outcomes: Vec<(&'static str, &'static str)>,
    messages: Vec<MessageRow>,
    auth: Vec<AuthRow>,
    /// Links: the other tab, the next (older) page, the first page.
    other_tab: String,
    older: Option<String>,
    newest: Option<String>,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub async fn history(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    q: Result<Query<HistoryForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let t = ctx.t();
    let mut q = q.map(|q| q.0).unwrap_or_default();
    let kind = if q.kind == "auth" { "auth" } else { "messages" };
    let outcomes = if kind == "auth" {
        vec![
            ("success", t.success),
            ("failure", t.failure),
            ("throttled", t.throttled),
        ]
    } else {
        vec![("accepted", t.accepted), ("rejected", t.rejected)]
    };
    if !outcomes.iter().any(|(v, _)| *v == q.outcome) {
        q.outcome.clear();
    }
    let before = q.before.trim().parse::<i64>().ok();
    let f = filter(
        &ctx.caller,
        HistoryQuery {
            field: some(&q.field),
            device: some(&q.device),
            outcome: some(&q.outcome),
            source_ip: None,
            since: None,
            until: None,
            before,
            limit: Some(PAGE),
        },
    )
    .map_err(|e| ctx.fail(e))?;
    let (messages, auth, next) = if kind == "auth" {
        let rows = app.store.search_auth_attempts(&f).await;
        let p = Page::of(
            rows.map_err(|e| ctx.fail(e.into()))?,
            f.limit,
            |a| a.id,
            |a| a,
        );
        let auth = p.items.iter().map(|a| AuthRow::of(&app, t, a)).collect();
        (Vec::new(), auth, p.next_before)
    } else {
        let rows = app.store.search_messages(&f).await;
        let p = Page::of(
            rows.map_err(|e| ctx.fail(e.into()))?,
            f.limit,
            |m| m.seq,
            |m| m,
        );
        let messages = p.items.iter().map(|m| MessageRow::of(&app, t, m)).collect();
        (messages, Vec::new(), p.next_before)
    };
    let link = |kind: &str, outcome: &str, before: &str| {
        format!(
            "/console/history{}",
            query(&[
                ("kind", kind),
                ("field", q.field.trim()),
                ("device", q.device.trim()),
                ("outcome", outcome),
                ("before", before),
            ])
        )
    };
    let other = if kind == "auth" { "messages" } else { "auth" };
    let page = HistoryPage {
        c: ctx.chrome("history", t.history),
        kind,
        other_tab: link(other, "", ""),
        older: next.map(|n| link(kind, &q.outcome, &n.to_string())),
        newest: before.map(|_| link(kind, &q.outcome, "")),
        fields: app
            .registry
            .fields()
            .iter()
            .filter(|f| ctx.caller.sees(&f.id))
            .map(|f| (f.id.0.clone(), f.name.clone()))
            .collect(),
        outcomes,
        messages,
        auth,
        q,
    };
    Ok(render(StatusCode::OK, &page))
}
