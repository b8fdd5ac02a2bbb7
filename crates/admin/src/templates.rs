//! Templates and detections (subsystem ③) in the admin API: the shipped library, each field's template
//! (JSON or TOML, versioned, refused whole with every problem listed), and the field's detections.

use super::Caller;
use super::views::response::DetectionView;
use super::views::{Page, PageQuery, at};
use crate::Admin;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use sekisho_core::ErrorCode;
use sekisho_detect::Template;
use sekisho_detect::template::LIBRARY;
use sekisho_http::{ApiError, ApiQuery, ApiResult};
use sekisho_store::detections::{DetectionFilter, ScriptFault};
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LibraryEntry {
    pub name: String,
    pub description: String,
}

/// The shipped template library (the whole list: `next_before` is always null).
#[utoipa::path(get, path = "/api/v1/templates", tag = "detection", responses((status = 200, body = Page<LibraryEntry>)))]
pub async fn library(_caller: Caller) -> Json<Page<LibraryEntry>> {
    Json(Page::all(
        LIBRARY
            .iter()
            .filter_map(|(n, _)| sekisho_detect::template::library(n))
            .map(|t| LibraryEntry {
                name: t.name,
                description: t.description,
            })
            .collect(),
    ))
}

/// `true` when the client asks for TOML (`Accept: application/toml`) rather than JSON.
fn wants_toml(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|m| m.trim().starts_with("application/toml"))
        })
}

fn toml_answer(text: String) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/toml; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One template of the library: JSON, or with `Accept: application/toml` the shipped file itself,
/// with its comments (a starting point to edit and `PUT` to a field).
#[utoipa::path(get, path = "/api/v1/templates/{name}", tag = "detection", params(("name" = String, Path)),
    responses((status = 200, description = "the template", content((Template = "application/json"), (String = "application/toml"))),
        (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn library_one(
    _caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let template = sekisho_detect::template::library(&name)
        .ok_or_else(|| ApiError::not_found("library template"))?;
    if wants_toml(&headers)
        && let Some((_, text)) = LIBRARY.iter().find(|(n, _)| *n == name)
    {
        return Ok(toml_answer((*text).to_owned()));
    }
    Ok(Json(template).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldTemplate {
    /// 0 when the field runs the gateway's default template (never set).
    pub version: i64,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub template: Template,
}

/// The template a field runs: JSON (with its version), or with `Accept: application/toml` the template
/// alone as TOML, ready to edit and `PUT` back with `Content-Type: application/toml`.
#[utoipa::path(get, path = "/api/v1/fields/{field}/template", tag = "detection", params(("field" = String, Path)),
    responses((status = 200, description = "the field's template", content((FieldTemplate = "application/json"), (String = "application/toml"))),
        (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_template(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
    Path(field): Path<String>,
) -> ApiResult<Response> {
    let current = field_template(&app, &caller, &field).await?;
    if wants_toml(&headers) {
        let body = toml::to_string(&current.template).map_err(ApiError::internal)?;
        let head = match (&current.created_at, &current.created_by) {
            (Some(at), Some(by)) => format!(
                "# The template of field {field}: version {}, set {at} by {by}.\n",
                current.version
            ),
            _ => format!("# The template of field {field}: the gateway's default (never set).\n"),
        };
        return Ok(toml_answer(format!("{head}{body}")));
    }
    Ok(Json(current).into_response())
}

async fn field_template(app: &Admin, caller: &Caller, field: &str) -> ApiResult<FieldTemplate> {
    let f = caller.field(app, field)?;
    let latest = app
        .store
        .template_versions(f.id.as_str())
        .await?
        .into_iter()
        .next();
    Ok(
        match latest.and_then(|v| {
            serde_json::from_str::<Template>(&v.body)
                .ok()
                .map(|t| (v, t))
        }) {
            Some((v, t)) => FieldTemplate {
                version: v.version,
                created_at: Some(at(v.created_at)),
                created_by: Some(v.created_by),
                template: t,
            },
            None => FieldTemplate {
                version: 0,
                created_at: None,
                created_by: None,
                template: app.detector.template(&f.id).template.clone(),
            },
        },
    )
}

/// Parses a template body: JSON, or TOML with `Content-Type: application/toml`.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Template> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedJson, "the template is not UTF-8"))?;
    if ct.starts_with("application/toml") {
        Template::from_toml(text).map_err(ApiError::invalid)
    } else if ct.starts_with("application/json") {
        serde_json::from_str(text)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("template: {e}")))
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the template as application/json or application/toml",
        ))
    }
}

/// Stores and applies a template for a field; returns its version.
pub async fn apply(
    app: &Admin,
    caller: &Caller,
    field: &sekisho_core::FieldId,
    t: Template,
) -> ApiResult<i64> {
    let json = serde_json::to_string(&t).map_err(ApiError::internal)?;
    let limits = app.settings.script_limits;
    let sources = t.script_sources(None);
    let scripts =
        tokio::task::spawn_blocking(move || sekisho_script::host::compile(&sources, limits))
            .await
            .map_err(ApiError::internal)?;
    let compiled = match (t.compile(), scripts) {
        (Ok(c), Ok(s)) => (c, s),
        (c, s) => {
            let mut problems = c.err().unwrap_or_default();
            problems.extend(s.err().unwrap_or_default());
            return Err(ApiError::invalid(problems));
        }
    };
    let (compiled, scripts) = compiled;
    let version = app
        .store
        .insert_template(
            field.as_str(),
            &caller.user.username,
            &json,
            app.clock.now_ms(),
        )
        .await?;
    app.scripts.set(field, scripts);
    app.device_caps
        .set_field_nat(field, compiled.template.network.nat_ranges.clone());
    app.detector.set_template(field, compiled);
    caller
        .log(
            app,
            "template_set",
            Some(field.as_str()),
            Some(&format!("version {version}")),
        )
        .await;
    Ok(version)
}

/// Replace a field's template (a new version). A template with any problem is refused whole, every
/// problem listed; the field keeps running its current one.
#[utoipa::path(put, path = "/api/v1/fields/{field}/template", tag = "detection", params(("field" = String, Path)),
    request_body(content = Template, description = "JSON, or TOML with Content-Type: application/toml"),
    responses((status = 200, body = FieldTemplate), (status = 400, description = "`invalid_request`: every problem, `; `-separated", body = sekisho_core::ErrorBody),
              (status = 404, body = sekisho_core::ErrorBody), (status = 415, body = sekisho_core::ErrorBody)))]
pub async fn put_template(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<FieldTemplate>> {
    let f = caller.managed_field(&app, &field)?;
    let t = parse_body(&headers, &body)?;
    let version = apply(&app, &caller, &f.id, t.clone()).await?;
    Ok(Json(FieldTemplate {
        version,
        created_at: Some(at(app.clock.now_ms())),
        created_by: Some(caller.user.username.clone()),
        template: t,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionEntry {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
}

/// Every version of a field's template, newest first (the whole list: `next_before` is always null).
#[utoipa::path(get, path = "/api/v1/fields/{field}/template/versions", tag = "detection", params(("field" = String, Path)),
    responses((status = 200, body = Page<VersionEntry>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn versions(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<Page<VersionEntry>>> {
    let f = caller.field(&app, &field)?;
    let v = app.store.template_versions(f.id.as_str()).await?;
    Ok(Json(Page::all(
        v.into_iter()
            .map(|v| VersionEntry {
                version: v.version,
                created_at: at(v.created_at),
                created_by: v.created_by,
            })
            .collect(),
    )))
}

/// A field script's fault.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScriptFaultView {
    pub id: i64,
    pub occurred_at: String,
    pub field_id: String,
    pub script: String,
    /// `error`, `timeout` (the CPU limit) or `memory`.
    pub kind: String,
    pub message: String,
}

impl From<ScriptFault> for ScriptFaultView {
    fn from(f: ScriptFault) -> Self {
        Self {
            id: f.id,
            occurred_at: at(f.at),
            field_id: f.field_id,
            script: f.script,
            kind: f.kind,
            message: f.message,
        }
    }
}

/// Script faults of a field (errors, CPU and memory limits, skipped runs), newest first.
#[utoipa::path(get, path = "/api/v1/fields/{field}/script-faults", tag = "detection", params(("field" = String, Path), PageQuery),
    responses((status = 200, body = Page<ScriptFaultView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn script_faults(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ScriptFaultView>>> {
    let f = caller.field(&app, &field)?;
    let limit = q.limit(200);
    let rows = app
        .store
        .script_faults(f.id.as_str(), q.before, limit)
        .await?;
    Ok(Json(Page::of(rows, limit, |r| r.id, ScriptFaultView::from)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DetectionQuery {
    pub device: Option<String>,
    /// e.g. `rate.max`, `silence.theft`, `script.my_rule`.
    pub rule: Option<sekisho_core::RuleId>,
    pub threat: Option<sekisho_core::Threat>,
    /// Detections active at or after this time (RFC 3339).
    pub since: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// A field's detections, newest first: threat, severity, rule, evidence.
#[utoipa::path(get, path = "/api/v1/fields/{field}/detections", tag = "detection", params(("field" = String, Path), DetectionQuery),
    responses((status = 200, body = Page<DetectionView>), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn detections(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiQuery(q): ApiQuery<DetectionQuery>,
) -> ApiResult<Json<Page<DetectionView>>> {
    let f = caller.field(&app, &field)?;
    let mut problems = Vec::new();
    let since = super::parse_time("since", &q.since, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = DetectionFilter {
        field: Some(f.id.0.clone()),
        visible_fields: None,
        device: q.device,
        rule: q.rule,
        threat: q.threat,
        since,
        before: q.before,
        limit,
    };
    let rows = app.store.search_detections(&filter).await?;
    Ok(Json(Page::of(rows, limit, |d| d.id, DetectionView::from)))
}
