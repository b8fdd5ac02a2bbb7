//! Fields (tenants): create, list, inspect, change; their cloud destination; their dead letters.

use super::Caller;
use super::views::Page;
use super::views::history::{DeadLetterView, OutboxView};
use crate::Admin;
use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use sekisho_core::{AuthMode, CloudDestination, Field, FieldId, FieldLimits, Role};
use sekisho_http::{ApiError, ApiJson, ApiQuery, ApiResult};
use sekisho_registry::crypto;
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateField {
    /// Unique name, 1-64 characters.
    pub name: String,
    #[serde(default)]
    pub auth_mode: Option<AuthMode>,
    /// Defaults to the gateway's `[limits]`.
    #[serde(default)]
    pub limits: Option<FieldLimits>,
    #[serde(default)]
    pub cloud: Option<CloudDestination>,
    /// A library template to start from (`car-mobility`, `smart-home`, `education`, `generic`);
    /// defaults to `[detection] default_template`. Edit it afterwards with `PUT …/template`.
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateField {
    pub name: Option<String>,
    pub auth_mode: Option<AuthMode>,
    pub limits: Option<FieldLimits>,
}

/// A field as the API shows it (cloud secrets redacted).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldView {
    pub id: String,
    pub name: String,
    /// The common auth ID every device of this field presents.
    pub auth_id: String,
    pub auth_mode: AuthMode,
    pub limits: FieldLimits,
    pub cloud: Option<CloudDestination>,
    pub created_at: String,
    pub devices: usize,
    /// The name of the template the field runs.
    pub template: String,
    /// Where its notifications go, and which have nowhere to go.
    pub notifications: Notifications,
}

/// A field's notification targets as its status shows them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Notifications {
    /// Addresses `notify_admin` mails.
    pub admin_emails: usize,
    /// Addresses `notify_person_in_charge` mails.
    pub person_in_charge_emails: usize,
    /// Whether `notify_webhook` has a webhook to post to.
    pub webhook: bool,
    /// The notification actions whose target is not set: when a decision asks for one it is
    /// recorded `skipped`, not tried. Set them with `PUT /api/v1/fields/{field}/notify`.
    pub unset: Vec<sekisho_core::Action>,
}

/// The field as the API shows it, with its notification status. Shared by the API and the console.
pub async fn view(app: &Admin, f: &Field) -> ApiResult<FieldView> {
    let s = app
        .responder
        .notify_settings(&f.id.0)
        .await
        .map_err(|e| ApiError::internal(e.message))?;
    let notifications = Notifications {
        admin_emails: s.admin_emails.len(),
        person_in_charge_emails: s.person_in_charge_emails.len(),
        webhook: s.webhook_url.is_some() && s.webhook_secret.is_some(),
        unset: sekisho_respond::notify::unset(&s)
            .into_iter()
            .map(|(action, _)| action)
            .collect(),
    };
    Ok(FieldView {
        id: f.id.0.clone(),
        name: f.name.clone(),
        auth_id: f.auth_id.clone(),
        auth_mode: f.auth_mode,
        limits: f.limits,
        cloud: f.cloud.as_ref().map(CloudDestination::redacted),
        created_at: sekisho_core::time::rfc3339(f.created_at),
        devices: app.registry.devices_of(&f.id).len(),
        template: app.detector.template(&f.id).template.name.clone(),
        notifications,
    })
}

fn name_problems(name: &str) -> Vec<String> {
    let n = name.trim().chars().count();
    if (1..=64).contains(&n) && name.chars().all(|c| !c.is_control()) {
        Vec::new()
    } else {
        vec!["name must be 1 to 64 characters, without control characters".into()]
    }
}

/// Create a field (maintainer).
#[utoipa::path(post, path = "/api/v1/fields", tag = "fields", request_body = CreateField,
    responses((status = 201, body = FieldView), (status = 400, body = sekisho_core::ErrorBody), (status = 403, body = sekisho_core::ErrorBody), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateField>,
) -> ApiResult<(StatusCode, Json<FieldView>)> {
    let field = create_field(&app, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(view(&app, &field).await?)))
}

/// Validates and creates a field, announces it to the cloud connector and logs the change. Shared by
/// the API and the console.
pub async fn create_field(app: &Admin, caller: &Caller, req: CreateField) -> ApiResult<Field> {
    caller.require(Role::Maintainer)?;
    let limits = req.limits.unwrap_or(app.settings.limits);
    let mut problems = name_problems(&req.name);
    problems.extend(limits.problems());
    if let Some(c) = &req.cloud {
        problems.extend(c.problems().into_iter().map(|p| format!("cloud.{p}")));
    }
    let template_name = req
        .template
        .clone()
        .unwrap_or_else(|| app.settings.default_template.clone());
    let template = sekisho_detect::template::library(&template_name);
    if template.is_none() {
        let names: Vec<&str> = sekisho_detect::template::LIBRARY
            .iter()
            .map(|(n, _)| *n)
            .collect();
        problems.push(format!(
            "template: '{template_name}' is not one of {}",
            names.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let field = Field {
        id: FieldId::from_random(crypto::random()),
        name: req.name.trim().to_owned(),
        auth_id: format!("aid_{}", hex::encode(crypto::random::<12>())),
        auth_mode: req.auth_mode.unwrap_or_default(),
        limits,
        cloud: req.cloud,
        created_at: app.clock.now_ms(),
    };
    app.registry.create_field(&field).await?;
    if let Some(t) = template {
        super::templates::apply(app, caller, &field.id, t).await?;
    }
    app.forward.field_added(&field.id);
    caller
        .log(
            app,
            "field_create",
            Some(field.id.as_str()),
            Some(&field.name),
        )
        .await;
    Ok(field)
}

/// Fields this user may see (the whole list: `next_before` is always null).
#[utoipa::path(get, path = "/api/v1/fields", tag = "fields", responses((status = 200, body = Page<FieldView>)))]
pub async fn list(
    State(app): State<Arc<Admin>>,
    caller: Caller,
) -> ApiResult<Json<Page<FieldView>>> {
    let mut items = Vec::new();
    for f in app.registry.fields().iter().filter(|f| caller.sees(&f.id)) {
        items.push(view(&app, f).await?);
    }
    Ok(Json(Page::all(items)))
}

/// One field.
#[utoipa::path(get, path = "/api/v1/fields/{field}", tag = "fields", params(("field" = String, Path)),
    responses((status = 200, body = FieldView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_one(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<FieldView>> {
    let f = caller.field(&app, &field)?;
    Ok(Json(view(&app, &f).await?))
}

/// Change a field's name, authentication mode or limits.
#[utoipa::path(patch, path = "/api/v1/fields/{field}", tag = "fields", params(("field" = String, Path)), request_body = UpdateField,
    responses((status = 200, body = FieldView), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn update(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiJson(req): ApiJson<UpdateField>,
) -> ApiResult<Json<FieldView>> {
    let mut f = (*caller.managed_field(&app, &field)?).clone();
    let mut problems = Vec::new();
    if let Some(name) = req.name {
        problems.extend(name_problems(&name));
        f.name = name.trim().to_owned();
    }
    if let Some(limits) = req.limits {
        problems.extend(limits.problems());
        f.limits = limits;
    }
    if let Some(m) = req.auth_mode {
        f.auth_mode = m;
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    app.registry.update_field(&f).await?;
    caller
        .log(&app, "field_update", Some(f.id.as_str()), None)
        .await;
    Ok(Json(view(&app, &f).await?))
}

/// A field's cloud destination (secrets redacted).
#[utoipa::path(get, path = "/api/v1/fields/{field}/cloud", tag = "fields", params(("field" = String, Path)),
    responses((status = 200, body = CloudDestination), (status = 404, description = "no such field, or no destination set", body = sekisho_core::ErrorBody)))]
pub async fn get_cloud(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<CloudDestination>> {
    let f = caller.field(&app, &field)?;
    f.cloud
        .as_ref()
        .map(|c| Json(c.redacted()))
        .ok_or_else(|| ApiError::not_found("cloud destination"))
}

async fn set_cloud(
    app: &Admin,
    caller: &Caller,
    field: &str,
    cloud: Option<CloudDestination>,
) -> ApiResult<Field> {
    let mut f = (*caller.managed_field(app, field)?).clone();
    f.cloud = cloud;
    app.registry.update_field(&f).await?;
    app.forward.destination_changed();
    let what = f.cloud.as_ref().map(|c| c.url.clone());
    caller
        .log(app, "field_cloud_set", Some(f.id.as_str()), what.as_deref())
        .await;
    Ok(f)
}

/// Set the field's cloud destination. Pending messages are then delivered to it, oldest first.
#[utoipa::path(put, path = "/api/v1/fields/{field}/cloud", tag = "fields", params(("field" = String, Path)), request_body = CloudDestination,
    responses((status = 200, body = CloudDestination), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn put_cloud(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiJson(dest): ApiJson<CloudDestination>,
) -> ApiResult<Json<CloudDestination>> {
    let problems = dest.problems();
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let f = set_cloud(&app, &caller, &field, Some(dest)).await?;
    f.cloud
        .as_ref()
        .map(|c| Json(c.redacted()))
        .ok_or_else(|| ApiError::internal("cloud destination vanished"))
}

/// Remove the field's cloud destination (messages then wait, and are dead-lettered after `cloud.max_age_secs`).
#[utoipa::path(delete, path = "/api/v1/fields/{field}/cloud", tag = "fields", params(("field" = String, Path)),
    responses((status = 204), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn delete_cloud(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<StatusCode> {
    set_cloud(&app, &caller, &field, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// The field's dead letters, newest first, with its outbox counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetters {
    pub outbox: OutboxView,
    pub items: Vec<DeadLetterView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// Messages that could not be delivered to the cloud, with the reason, and the field's outbox counts.
#[utoipa::path(get, path = "/api/v1/fields/{field}/dead-letters", tag = "fields", params(("field" = String, Path), DeadLetterQuery),
    responses((status = 200, body = DeadLetters), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn dead_letters(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> ApiResult<Json<DeadLetters>> {
    let f = caller.field(&app, &field)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = app
        .store
        .dead_letters(f.id.as_str(), q.before, limit)
        .await?;
    let page = Page::of(rows, limit, |d| d.message_seq, DeadLetterView::from);
    Ok(Json(DeadLetters {
        outbox: app.store.outbox_counts(Some(f.id.as_str())).await?.into(),
        items: page.items,
        next_before: page.next_before,
    }))
}
