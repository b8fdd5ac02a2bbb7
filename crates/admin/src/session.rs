//! Login and logout. Passwords are Argon2id hashes; failed logins per user name are limited, then locked
//! for `admin.login_lockout_secs`; session tokens are stored as SHA-256 only.

use super::Caller;
use crate::Admin;
use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use http::{HeaderMap, header};
use sekisho_core::{ErrorCode, Role};
use sekisho_http::ApiJson;
use sekisho_http::{ApiError, ApiResult};
use sekisho_registry::crypto;
use sekisho_store::prelude::*;
use sekisho_store::users::UserRow;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    /// The session ends this many seconds after login.
    pub expires_in_secs: u64,
    pub expires_at: String,
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub fields: Vec<String>,
    /// A second factor (TOTP) is enabled: disruptive actions need a code (`/api/v1/me/mfa`).
    pub mfa_enabled: bool,
}

/// Log in.
#[utoipa::path(post, path = "/api/v1/login", tag = "session", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, description = "`unauthorized`", body = sekisho_core::ErrorBody),
              (status = 429, description = "`too_many_requests`: this user name is locked for `Retry-After` seconds", body = sekisho_core::ErrorBody)))]
pub async fn login(
    State(app): State<Arc<Admin>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let s = open_session(&app, &req.username, &req.password).await?;
    Ok(Json(LoginResponse {
        token: s.token,
        expires_in_secs: s.ttl_secs,
        expires_at: super::views::at(s.expires_at),
        role: s.user.role,
    }))
}

/// A session just opened: its token (shown to the client once, stored as SHA-256 only).
pub struct NewSession {
    pub token: String,
    pub ttl_secs: u64,
    /// Unix ms.
    pub expires_at: i64,
    pub user: UserRow,
}

/// Checks a user name and password under the `login_failures` throttle and opens a session. Shared by
/// the API's login and the console's.
pub async fn open_session(app: &Admin, username: &str, password: &str) -> ApiResult<NewSession> {
    let now = app.clock.now_ms();
    if let Some(wait) = app.login_failures.blocked(username, now) {
        tracing::warn!(username = %username, "login refused: locked after repeated failures");
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            "too many failed logins for this user; wait",
        )
        .retry_after(wait));
    }
    let user = app.store.user_by_name(username).await?;
    let hash = user.as_ref().map_or_else(
        || crypto::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || crypto::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| ok) else {
        app.login_failures.hit(username, now);
        let _ = app
            .store
            .log_admin(now, username, "login_failed", None, None)
            .await;
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "wrong user name or password",
        ));
    };
    app.login_failures.clear(username);
    let token = crypto::new_secret();
    let ttl = app.settings.admin.session_ttl_secs;
    let expires_at = now + ttl as i64 * 1000;
    app.store
        .insert_session(&crypto::sha256(token.as_bytes()), &user.id, expires_at)
        .await?;
    let _ = app
        .store
        .log_admin(now, &user.username, "login", None, None)
        .await;
    Ok(NewSession {
        token,
        ttl_secs: ttl,
        expires_at,
        user,
    })
}

/// Log out (ends this session).
#[utoipa::path(post, path = "/api/v1/logout", tag = "session", responses((status = 204), (status = 401, body = sekisho_core::ErrorBody)))]
pub async fn logout(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    parts: LogoutParts,
) -> ApiResult<http::StatusCode> {
    app.store
        .delete_session(&crypto::sha256(parts.0.as_bytes()))
        .await?;
    caller.log(&app, "logout", None, None).await;
    Ok(http::StatusCode::NO_CONTENT)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "session", responses((status = 200, body = Me), (status = 401, body = sekisho_core::ErrorBody)))]
pub async fn me(caller: Caller) -> Json<Me> {
    let u = caller.user;
    Json(Me {
        id: u.id.0,
        username: u.username,
        role: u.role,
        fields: u.fields.into_iter().map(|f| f.0).collect(),
        mfa_enabled: u.mfa_enabled,
    })
}

/// The bearer token of the request (to end that session).
pub struct LogoutParts(String);

impl FromRequestParts<Arc<Admin>> for LogoutParts {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &Arc<Admin>,
    ) -> Result<Self, Self::Rejection> {
        super::bearer(parts)
            .map(|t| LogoutParts(t.to_owned()))
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "no session"))
    }
}

/// The console's session cookie: the token whose SHA-256 is in the `sessions` table, as for the API.
pub const SESSION_COOKIE: &str = "sekisho_session";

/// The console's session token, for [`Caller`]: only for requests under `/console`.
pub fn session_token(parts: &Parts) -> Option<&str> {
    let path = parts.uri.path();
    if path == "/console" || path.starts_with("/console/") {
        cookie(&parts.headers, SESSION_COOKIE)
    } else {
        None
    }
}

/// The value of a cookie (browsers may split cookies over several headers on HTTP/2).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, c.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_found_across_headers() {
        let h = headers(&["a=1; lang=ja", "sekisho_session=tok"]);
        assert_eq!(cookie(&h, "lang"), Some("ja"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(cookie(&headers(&["lang="]), "lang"), None);
    }
}
