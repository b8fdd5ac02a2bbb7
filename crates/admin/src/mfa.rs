//! The second factor of the people who use the admin API and the console (TOTP, RFC 6238, see
//! [`crate::totp`]): enrolment and confirmation, disabling one's own, a maintainer's reset for a lost
//! phone, and the check [`Caller::second_factor`] that disruptive actions a person starts must pass
//! (GSMA CLP.14 §5.8.6): stopping or deleting a device, suspending its SIM, approving a response action.
//!
//! MFA is opt-in per user: a user without a confirmed second factor passes the check. A deployment
//! policy that requires one (refusing those actions, or logins, to users without it) belongs in this
//! check alone and can be added later. A user with one sends a current code in `X-Sekisho-TOTP` (the
//! console sends its `totp` form field); each code works once, and wrong codes count in the
//! `login_failures` throttle under their own key per user name (`totp:<user>`), so a successful
//! password login does not reset the count and a code cannot be guessed.
//!
//! It does not know which actions are disruptive: their handlers call the check. The secret is stored
//! in the encrypted database, shown once at enrolment, and never logged.

use super::Caller;
use crate::Admin;
use crate::totp::{self, Check};
use axum::extract::{Path, State};
use axum::routing::{delete, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use sekisho_core::{ErrorCode, Role};
use sekisho_http::{ApiError, ApiJson, ApiResult};
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// The header that carries a current TOTP code for a disruptive action.
pub const TOTP_HEADER: &str = "x-sekisho-totp";

#[derive(OpenApi)]
#[openapi(paths(start, confirm, disable, reset))]
pub struct MfaApi;

pub fn router() -> Router<Arc<Admin>> {
    Router::new()
        .route("/api/v1/me/mfa", post(start).delete(disable))
        .route("/api/v1/me/mfa/confirm", post(confirm))
        .route("/api/v1/users/{username}/mfa", delete(reset))
}

/// A started enrolment: enter the secret (or the URI, e.g. as a QR code) in an authenticator app.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Enrolment {
    /// The TOTP key, base32 without padding (shown this once).
    pub secret: String,
    /// `otpauth://totp/Sekisho:<user>?secret=…&issuer=Sekisho&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_uri: String,
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The 6 digits the app shows now.
    pub code: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MfaStatus {
    pub mfa_enabled: bool,
}

/// The code in `X-Sekisho-TOTP`, if the header is there (a value that is not text counts as wrong).
pub fn header_code(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(TOTP_HEADER)
        .map(|v| v.to_str().unwrap_or_default())
}

/// The gateway's time in seconds, for TOTP steps.
fn now_secs(app: &Admin) -> u64 {
    u64::try_from(app.clock.now_ms() / 1000).unwrap_or(0)
}

impl Caller {
    /// The check for a disruptive action this person starts: passes for a user without a second
    /// factor; otherwise needs a current, unused code in `X-Sekisho-TOTP`.
    pub async fn second_factor(&self, app: &Admin, headers: &HeaderMap) -> ApiResult<()> {
        self.second_factor_code(app, header_code(headers)).await
    }

    /// [`Caller::second_factor`] with the code given directly (the console's form field).
    pub async fn second_factor_code(&self, app: &Admin, code: Option<&str>) -> ApiResult<()> {
        let state = app.store.totp_state(&self.user.id).await?;
        let Some(state) = state.filter(|s| s.enabled) else {
            return Ok(());
        };
        let secret = state
            .secret
            .ok_or_else(|| ApiError::internal("second factor enabled without a secret"))?;
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(ApiError::new(
                ErrorCode::SecondFactorRequired,
                "this action needs your second factor: send the current code of your \
                 authenticator app in the X-Sekisho-TOTP header",
            ));
        };
        let key = format!("totp:{}", self.user.username);
        let now = app.clock.now_ms();
        if let Some(wait) = app.login_failures.blocked(&key, now) {
            tracing::warn!(username = %self.user.username, "second factor refused: locked after repeated failures");
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                "too many wrong second-factor codes for this user; wait",
            )
            .retry_after(wait));
        }
        let last = state.last_step.and_then(|s| u64::try_from(s).ok());
        let (reason, message) = match totp::verify(&secret, code, now_secs(app), last) {
            Check::Valid(step) if app.store.use_totp_step(&self.user.id, step as i64).await? => {
                app.login_failures.clear(&key);
                return Ok(());
            }
            Check::Valid(_) | Check::Used => (
                "reused",
                "this second-factor code was already used; wait for the next one",
            ),
            Check::Wrong => ("wrong", "the second-factor code was wrong"),
        };
        app.login_failures.hit(&key, now);
        self.log(app, "second_factor_failed", None, Some(reason))
            .await;
        Err(ApiError::new(ErrorCode::SecondFactorRequired, message))
    }
}

/// Starts (or restarts) enrolment with a new pending secret. Shared by the API and the console.
pub async fn start_enrolment(app: &Admin, caller: &Caller) -> ApiResult<Enrolment> {
    let secret = totp::new_secret();
    if !app.store.set_pending_totp(&caller.user.id, &secret).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a second factor is already enabled; disable it first with a current code",
        ));
    }
    caller.log(app, "mfa_enrol", None, None).await;
    Ok(Enrolment {
        secret: totp::base32_encode(&secret),
        otpauth_uri: totp::otpauth_uri(&caller.user.username, &secret),
    })
}

/// The enrolment in progress (its secret is the caller's own), to show again after a wrong code.
pub async fn pending_enrolment(app: &Admin, caller: &Caller) -> ApiResult<Option<Enrolment>> {
    let state = app.store.totp_state(&caller.user.id).await?;
    Ok(state
        .filter(|s| !s.enabled)
        .and_then(|s| s.secret)
        .map(|secret| Enrolment {
            secret: totp::base32_encode(&secret),
            otpauth_uri: totp::otpauth_uri(&caller.user.username, &secret),
        }))
}

/// Enables the pending secret when `code` is one of its current codes. Shared by the API and the
/// console.
pub async fn confirm_enrolment(app: &Admin, caller: &Caller, code: &str) -> ApiResult<()> {
    let state = app.store.totp_state(&caller.user.id).await?;
    let secret = match state {
        Some(s) if s.enabled => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the second factor is already enabled",
            ));
        }
        Some(s) => s.secret.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Conflict,
                "no enrolment in progress: start one with POST /api/v1/me/mfa",
            )
        })?,
        None => return Err(ApiError::not_found("user")),
    };
    let Check::Valid(step) = totp::verify(&secret, code, now_secs(app), None) else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "code: not the current code of the pending secret (check the app's secret and the \
             phone's clock)",
        ));
    };
    if !app
        .store
        .enable_totp(&caller.user.id, &secret, step as i64)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the enrolment changed meanwhile; start again",
        ));
    }
    caller.log(app, "mfa_enable", None, None).await;
    Ok(())
}

/// Removes the caller's own second factor: an enabled one needs a current code, a pending enrolment
/// is simply cancelled. Shared by the API and the console.
pub async fn disable_own(app: &Admin, caller: &Caller, code: Option<&str>) -> ApiResult<()> {
    let Some(state) = app.store.totp_state(&caller.user.id).await? else {
        return Err(ApiError::not_found("user"));
    };
    if state.enabled {
        caller.second_factor_code(app, code).await?;
    }
    if app.store.clear_totp(&caller.user.id).await? {
        let action = if state.enabled {
            "mfa_disable"
        } else {
            "mfa_enrol_cancel"
        };
        caller.log(app, action, None, None).await;
    }
    Ok(())
}

/// Start enrolling a second factor (TOTP). The secret stays pending until confirmed; calling again
/// replaces a pending secret.
#[utoipa::path(post, path = "/api/v1/me/mfa", tag = "session",
    responses((status = 200, body = Enrolment, description = "The secret, shown this once"),
              (status = 401, body = sekisho_core::ErrorBody),
              (status = 409, description = "`conflict`: a second factor is already enabled", body = sekisho_core::ErrorBody)))]
pub async fn start(
    State(app): State<Arc<Admin>>,
    caller: Caller,
) -> ApiResult<([(header::HeaderName, &'static str); 1], Json<Enrolment>)> {
    let e = start_enrolment(&app, &caller).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(e)))
}

/// Confirm the enrolment with a current code: from now on disruptive actions need a code.
#[utoipa::path(post, path = "/api/v1/me/mfa/confirm", tag = "session", request_body = CodeBody,
    responses((status = 200, body = MfaStatus),
              (status = 400, description = "`invalid_request`: not a current code of the pending secret", body = sekisho_core::ErrorBody),
              (status = 401, body = sekisho_core::ErrorBody),
              (status = 409, description = "`conflict`: no enrolment in progress, or already enabled", body = sekisho_core::ErrorBody)))]
pub async fn confirm(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiJson(req): ApiJson<CodeBody>,
) -> ApiResult<Json<MfaStatus>> {
    confirm_enrolment(&app, &caller, &req.code).await?;
    Ok(Json(MfaStatus { mfa_enabled: true }))
}

/// Disable your second factor with a current code (in `X-Sekisho-TOTP` or the body), or cancel a
/// pending enrolment.
#[utoipa::path(delete, path = "/api/v1/me/mfa", tag = "session",
    params(("X-Sekisho-TOTP" = Option<String>, Header, description = "A current code (or send `{\"code\"}` as the body)")),
    request_body(content = Option<CodeBody>, description = "Optional: the code, when not in the header"),
    responses((status = 204),
              (status = 401, body = sekisho_core::ErrorBody),
              (status = 403, description = "`second_factor_required`: the code is missing, wrong or already used", body = sekisho_core::ErrorBody),
              (status = 429, description = "`too_many_requests`: too many wrong codes; wait `Retry-After` seconds", body = sekisho_core::ErrorBody)))]
pub async fn disable(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let b: CodeBody = serde_json::from_slice(&body).map_err(|e| {
            let code = if e.is_data() {
                ErrorCode::InvalidRequest
            } else {
                ErrorCode::MalformedJson
            };
            ApiError::new(code, format!("body: {e}"))
        })?;
        Some(b.code)
    };
    let code = header_code(&headers).map(str::to_owned).or(from_body);
    disable_own(&app, &caller, code.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reset another user's second factor (maintainer), e.g. after a lost phone. A maintainer who has a
/// second factor needs a current code for this too.
#[utoipa::path(delete, path = "/api/v1/users/{username}/mfa", tag = "system",
    params(("username" = String, Path), ("X-Sekisho-TOTP" = Option<String>, Header, description = "Your current code, if you have a second factor")),
    responses((status = 204),
              (status = 403, description = "`forbidden` (not a maintainer) or `second_factor_required`", body = sekisho_core::ErrorBody),
              (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn reset(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    caller.require(Role::Maintainer)?;
    let user = app
        .store
        .user_by_name(&username)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    caller.second_factor(&app, &headers).await?;
    if app.store.clear_totp(&user.id).await? {
        caller
            .log(
                &app,
                "mfa_reset",
                Some(user.id.as_str()),
                Some(&user.username),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
