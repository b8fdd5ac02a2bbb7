//! The admin API (subsystem ② system integration): people log in with user name and password and
//! manage fields, devices and users, search history and see the system's status. Separate listener.
//!
//! Roles: a maintainer sees and changes everything; a field administrator sees and changes only its
//! fields; an analyst reads every field and changes nothing. Every change is written to the admin log.
//! The browser console (`sekisho-console`) is served on the same listener ([`router`]'s `also`) and
//! calls the same functions; the admin API does not know it.
//!
//! Architecture invariants: handlers get the narrow handles of [`Admin`], never the wiring; API bodies
//! are the view types of [`views`], never store rows; every change goes through a subsystem's own
//! service (registry, detector, responder, campaigns, carrier), which keeps its store and cache in step.

#![forbid(unsafe_code)]

pub mod audit;
pub mod carrier;
pub mod collected;
pub mod config;
pub mod devices;
pub mod fields;
pub mod history;
pub mod metrics_token;
pub mod mfa;
pub mod response;
pub mod session;
pub mod sims;
mod state;
pub mod system;
pub mod templates;
pub mod totp;
pub mod update;
pub mod views;

pub use state::{Admin, Settings, Stats};
pub use system::user_problems as system_user_problems;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::routing::{get, post};
use http::request::Parts;
use sekisho_core::{ErrorCode, Field, FieldId, Role};
use sekisho_http::{ApiError, ApiResult};
use sekisho_registry::crypto;
use sekisho_store::prelude::*;
use sekisho_store::users::UserRow;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Sekisho admin API", version = "1", description = include_str!("api_style.md")),
    paths(
        session::login, session::logout, session::me,
        fields::create, fields::list, fields::get_one, fields::update, fields::get_cloud, fields::put_cloud,
        fields::delete_cloud, fields::dead_letters,
        devices::register, devices::list, devices::get_one, devices::delete, devices::enable, devices::disable,
        devices::issue_certificate, devices::set_certificate,
        sims::get_sim, sims::accounting, sims::suspend, sims::resume, sims::carrier,
        history::messages, history::auth_attempts, history::security_events, history::message_body,
        system::status, system::create_user, system::list_users, system::metrics,
        templates::library, templates::library_one, templates::get_template, templates::put_template,
        templates::versions, templates::detections, templates::script_faults,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct AdminApi;

/// The whole admin API document: the paths above plus those of the sub-APIs (second factor, response).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = AdminApi::openapi();
    doc.merge(mfa::MfaApi::openapi());
    doc.merge(response::ResponseApi::openapi());
    doc.merge(audit::AuditApi::openapi());
    doc.merge(update::UpdateApi::openapi());
    doc.merge(carrier::CarrierApi::openapi());
    doc
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The admin listener's router: the admin API, and `also` (the console) on the same listener, under
/// the API's fallbacks and body limit.
pub fn router(app: Arc<Admin>, also: Router<Arc<Admin>>) -> Router {
    Router::new()
        .route("/api/v1/login", post(session::login))
        .route("/api/v1/logout", post(session::logout))
        .route("/api/v1/me", get(session::me))
        .route("/api/v1/fields", post(fields::create).get(fields::list))
        .route(
            "/api/v1/fields/{field}",
            get(fields::get_one).patch(fields::update),
        )
        .route(
            "/api/v1/fields/{field}/cloud",
            get(fields::get_cloud)
                .put(fields::put_cloud)
                .delete(fields::delete_cloud),
        )
        .route(
            "/api/v1/fields/{field}/dead-letters",
            get(fields::dead_letters),
        )
        .route(
            "/api/v1/fields/{field}/devices",
            post(devices::register).get(devices::list),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}",
            get(devices::get_one).delete(devices::delete),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/enable",
            post(devices::enable),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/disable",
            post(devices::disable),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/certificate",
            post(devices::issue_certificate).put(devices::set_certificate),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/sim",
            get(sims::get_sim),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/sim/accounting",
            get(sims::accounting),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/sim/suspend",
            post(sims::suspend),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/sim/resume",
            post(sims::resume),
        )
        .route(
            "/api/v1/fields/{field}/devices/{device}/sim/carrier",
            get(sims::carrier),
        )
        .route("/api/v1/history/messages", get(history::messages))
        .route(
            "/api/v1/history/messages/{id}/body",
            get(history::message_body),
        )
        .route("/api/v1/history/auth", get(history::auth_attempts))
        .route("/api/v1/history/security", get(history::security_events))
        .route("/api/v1/system/status", get(system::status))
        .route(
            "/api/v1/system/carrier",
            get(carrier::get).put(carrier::put).delete(carrier::delete),
        )
        .route("/api/v1/templates", get(templates::library))
        .route("/api/v1/templates/{name}", get(templates::library_one))
        .route(
            "/api/v1/fields/{field}/template",
            get(templates::get_template).put(templates::put_template),
        )
        .route(
            "/api/v1/fields/{field}/template/versions",
            get(templates::versions),
        )
        .route(
            "/api/v1/fields/{field}/detections",
            get(templates::detections),
        )
        .route(
            "/api/v1/fields/{field}/script-faults",
            get(templates::script_faults),
        )
        .route(
            "/api/v1/users",
            post(system::create_user).get(system::list_users),
        )
        .route(
            "/api/v1/openapi.json",
            get(|| async { axum::Json(openapi()) }),
        )
        .route("/metrics", get(system::metrics))
        .merge(mfa::router())
        .merge(response::router())
        .merge(audit::router())
        .merge(update::router(app.settings.max_artifact_bytes as usize))
        .merge(also)
        .fallback(|| async {
            ApiError::new(ErrorCode::NotFound, "no such endpoint in the admin API")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            indexed_first,
        ))
        .with_state(app)
}

/// Read-your-writes for operators: a request waits (briefly) until the history holds every message the
/// log had made durable when it arrived, so a message acknowledged to a device is in the next search.
async fn indexed_first(
    axum::extract::State(app): axum::extract::State<Arc<Admin>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    const AT_MOST: std::time::Duration = std::time::Duration::from_secs(5);
    if tokio::time::timeout(AT_MOST, app.journal.caught_up())
        .await
        .is_err()
    {
        // Anyone reaching the admin port can cause this line: it is rate limited.
        static BEHIND: sekisho_core::ratelog::LogLimit =
            sekisho_core::ratelog::LogLimit::per_minute(6);
        if let Some(skipped) = BEHIND.allow() {
            tracing::warn!(
                skipped,
                "the history indexer is behind the message log; answering with what it has"
            );
        }
    }
    next.run(req).await
}

/// The logged-in user behind a request: from the `Authorization: Bearer` header, or, for requests under
/// `/console` only, from the console's session cookie (the API never reads cookies, so a cross-site
/// request cannot ride on a browser session there).
pub struct Caller {
    pub user: UserRow,
}

impl Caller {
    pub fn sees(&self, field: &FieldId) -> bool {
        match self.user.role {
            Role::Maintainer | Role::Analyst => true,
            Role::FieldAdmin => self.user.fields.contains(field),
        }
    }

    pub fn manages(&self, field: &FieldId) -> bool {
        match self.user.role {
            Role::Maintainer => true,
            Role::FieldAdmin => self.user.fields.contains(field),
            Role::Analyst => false,
        }
    }

    /// `None` for users who see every field, else the fields they may see.
    pub fn visible_fields(&self) -> Option<Vec<String>> {
        (self.user.role == Role::FieldAdmin)
            .then(|| self.user.fields.iter().map(|f| f.0.clone()).collect())
    }

    pub fn require(&self, role: Role) -> ApiResult<()> {
        if self.user.role == role {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this needs the {} role", role.as_str()),
            ))
        }
    }

    /// The field, if this user may see it (a field it may not see is "not found", not "forbidden").
    pub fn field(&self, app: &Admin, id: &str) -> ApiResult<Arc<Field>> {
        let id = FieldId(id.to_owned());
        match app.registry.field(&id) {
            Some(f) if self.sees(&id) => Ok(f),
            _ => Err(ApiError::not_found("field")),
        }
    }

    /// The field, if this user may change it.
    pub fn managed_field(&self, app: &Admin, id: &str) -> ApiResult<Arc<Field>> {
        let f = self.field(app, id)?;
        if self.manages(&f.id) {
            Ok(f)
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                "your role does not allow changes to this field",
            ))
        }
    }

    /// Writes a change to the admin log.
    pub async fn log(&self, app: &Admin, action: &str, target: Option<&str>, detail: Option<&str>) {
        tracing::info!(actor = %self.user.username, action, target, "admin action");
        if let Err(e) = app
            .store
            .log_admin(
                app.clock.now_ms(),
                &self.user.username,
                action,
                target,
                detail,
            )
            .await
        {
            tracing::error!(error = %e, "admin log write failed");
        }
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<Arc<Admin>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<Admin>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError::new(
                ErrorCode::Unauthorized,
                "log in first: send Authorization: Bearer <token>",
            )
        };
        let token = bearer(parts)
            .or_else(|| session::session_token(parts))
            .ok_or_else(unauthorized)?;
        let hash = crypto::sha256(token.as_bytes());
        let user_id = app
            .store
            .session_user(&hash, app.clock.now_ms())
            .await?
            .ok_or_else(unauthorized)?;
        let user = app.store.user(&user_id).await?.ok_or_else(unauthorized)?;
        Ok(Caller { user })
    }
}

/// Parses a time filter: RFC 3339 (Unix milliseconds are still taken, undocumented, from older
/// clients).
pub fn parse_time(name: &str, v: &Option<String>, problems: &mut Vec<String>) -> Option<i64> {
    let v = v.as_deref()?;
    match v
        .parse::<i64>()
        .ok()
        .or_else(|| sekisho_core::time::parse_rfc3339(v))
    {
        Some(ms) => Some(ms),
        None => {
            problems.push(format!(
                "{name}: '{v}' is not an RFC 3339 time (e.g. 2026-11-25T13:00:00Z)"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every property in `schema` (and the schemas nested in it) as (name, schema).
    fn properties<'a>(schema: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                out.push((name, p));
                properties(p, out);
            }
        }
        for key in ["items", "allOf", "oneOf", "anyOf"] {
            match schema.get(key) {
                Some(Value::Array(v)) => v.iter().for_each(|s| properties(s, out)),
                Some(s @ Value::Object(_)) => properties(s, out),
                _ => {}
            }
        }
    }

    fn is_text(p: &Value) -> bool {
        match &p["type"] {
            Value::String(t) => t == "string",
            Value::Array(ts) => ts.iter().all(|t| t == "string" || t == "null"),
            _ => false,
        }
    }

    #[test]
    fn the_openapi_document_follows_the_api_style() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let mut problems = Vec::new();
        for (schema, s) in doc["components"]["schemas"].as_object().unwrap() {
            let mut props = Vec::new();
            properties(s, &mut props);
            for (name, p) in props {
                if name == "at" || name == "until" {
                    problems.push(format!("{schema}.{name}: a time is named *_at"));
                }
                if name.ends_with("_at") && !is_text(p) {
                    problems.push(format!(
                        "{schema}.{name}: a time is an RFC 3339 string: {p}"
                    ));
                }
            }
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let body = &op["responses"]["200"]["content"]["application/json"]["schema"];
                if body["type"] == "array" {
                    problems.push(format!("{method} {path}: a bare array (a list is a Page)"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
