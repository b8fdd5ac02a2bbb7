//! `POST /v1/auth/token`: three-factor authentication (field auth ID, device secret, unique ID) or a
//! registered client certificate; issues a bearer token stored only as its SHA-256.

use crate::Ingest;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sekisho_bus::{Received, ReceivedAuth};
use sekisho_core::ratelog::LogLimit;
use sekisho_core::{DeviceStatus, ErrorCode};
use sekisho_http::body::{is_json, read_body};
use sekisho_http::listener::ConnInfo;
use sekisho_http::{ApiError, ApiResult};
use sekisho_registry::DeviceEntry;
use sekisho_registry::crypto;
use sekisho_store::AuthAttempt;
use sekisho_store::records::Record;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use utoipa::ToSchema;

/// The three factors. With a registered client certificate on the connection, all may be left out.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The field's common auth ID.
    pub auth_id: Option<String>,
    /// The device's secret, shown once when it was registered.
    pub auth_secret: Option<String>,
    /// IMEI, MAC, serial or user id, as registered.
    pub unique_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The device identifier to send as `Device-Id` with every request.
    pub device_id: String,
}

const TOKEN_BODY_LIMIT: usize = 8 * 1024;

/// Issue a device token.
#[utoipa::path(
    post, path = "/v1/auth/token", tag = "device",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, description = "`malformed_json`", body = sekisho_core::ErrorBody),
        (status = 401, description = "`invalid_credentials`, whatever factor was wrong", body = sekisho_core::ErrorBody),
        (status = 403, description = "`device_disabled`: the device's authentication has been stopped", body = sekisho_core::ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = sekisho_core::ErrorBody),
        (status = 429, description = "`too_many_requests`, with `Retry-After`", body = sekisho_core::ErrorBody),
    )
)]
pub async fn token(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    req: Request,
) -> Response {
    let now = ingest.clock.now_ms();
    let mut attempt = AuthAttempt {
        at: now,
        field_id: None,
        device_id: None,
        unique_id: None,
        source_ip: conn.remote.ip().to_string(),
        method: "secret",
        outcome: "failure",
        reason: None,
    };
    let result = issue(&ingest, &conn, req, now, &mut attempt).await;
    match &result {
        Ok(_) => {
            attempt.outcome = "success";
            ingest.stats.auth_success.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            attempt.reason = Some(e.code.as_str());
            attempt.outcome = if e.code == ErrorCode::TooManyRequests {
                "throttled"
            } else {
                "failure"
            };
            ingest.stats.auth_failure.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Every attempt is stored and counted; the log samples them (devices can send any number).
    static AUTH_LINES: LogLimit = LogLimit::per_minute(30);
    if let Some(skipped) = AUTH_LINES.allow() {
        tracing::info!(
            outcome = attempt.outcome, reason = attempt.reason, method = attempt.method,
            device = attempt.device_id.as_deref(), source_ip = %attempt.source_ip, skipped, "device auth attempt"
        );
    }
    let field = attempt.field_id.clone().map(sekisho_core::FieldId);
    let device = attempt.device_id.clone().map(sekisho_core::DeviceId);
    let unique_id = attempt.unique_id.clone().unwrap_or_default();
    if let Err(e) = ingest.store.writer.write(vec![Record::Auth(attempt)]).await {
        return ApiError::store(e).into_response();
    }
    if let Some(field) = field {
        let event = Received::Auth(ReceivedAuth {
            field,
            device,
            at_ms: now,
            success: result.is_ok(),
            unique_id,
            source_ip: conn.remote.ip(),
            malformed: matches!(&result, Err(e) if e.code == ErrorCode::MalformedJson),
        });
        if ingest.received.publish(event).await.is_err() {
            tracing::error!("the received topic is closed: detection is not running");
        }
    }
    match result {
        Ok(t) => Json(t).into_response(),
        Err(e) => e.into_response(),
    }
}

fn invalid() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the credentials do not match a registered device",
    )
}

async fn issue(
    ingest: &Arc<Ingest>,
    conn: &ConnInfo,
    req: Request,
    now: i64,
    attempt: &mut AuthAttempt,
) -> ApiResult<TokenResponse> {
    let ip = conn.remote.ip().to_string();
    if let Some(wait) = ingest.token_requests.hit(&ip, now) {
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            "too many token requests from this address",
        )
        .retry_after(wait));
    }
    if !is_json(req.headers()) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the token request as application/json",
        ));
    }
    let timeout = ingest.body_timeout;
    let body = read_body(req.into_body(), TOKEN_BODY_LIMIT, timeout).await?;
    let parsed = sekisho_core::json::check(&body)
        .and_then(|()| serde_json::from_slice::<TokenRequest>(&body).map_err(|e| e.to_string()));
    let tr = match parsed {
        Ok(tr) => tr,
        Err(e) => {
            // Refused, but still attributed where the body lets us: a field's devices sending broken
            // JSON is the field's format detection (V24).
            if let Ok(tr) = serde_json::from_str::<TokenRequest>(&String::from_utf8_lossy(&body))
                && let Some(f) = tr
                    .auth_id
                    .and_then(|a| ingest.registry.field_by_auth_id(&a))
            {
                attempt.field_id = Some(f.id.0.clone());
                attempt.unique_id = tr.unique_id;
            }
            return Err(ApiError::new(
                ErrorCode::MalformedJson,
                format!("the token request is not JSON in UTF-8: {e}"),
            ));
        }
    };
    attempt.unique_id = tr.unique_id.clone();
    if let Some(f) = tr
        .auth_id
        .as_deref()
        .and_then(|a| ingest.registry.field_by_auth_id(a))
    {
        attempt.field_id = Some(f.id.0.clone());
        if ingest.networks.blocks(&f.id, conn.remote.ip()) {
            return Err(ApiError::new(
                ErrorCode::OffNetwork,
                "this field does not accept devices from outside its networks",
            ));
        }
    }

    let entry = match conn
        .client_cert_sha256
        .and_then(|fp| ingest.registry.device_by_cert(&fp))
    {
        Some(entry) if tr.auth_secret.is_none() => {
            attempt.method = "certificate";
            by_certificate(ingest, entry, &tr)?
        }
        _ => by_secret(ingest, conn, &tr, now).await?,
    };
    let d = &entry.device;
    attempt.field_id = Some(d.field_id.0.clone());
    attempt.device_id = Some(d.id.0.clone());
    attempt.unique_id = Some(d.unique_id.clone());
    if d.status == DeviceStatus::Disabled {
        return Err(ApiError::new(
            ErrorCode::DeviceDisabled,
            "this device's authentication has been stopped",
        ));
    }

    let token = crypto::new_secret();
    let hash = crypto::sha256(token.as_bytes());
    let ttl = ingest.token_ttl_secs;
    let expires_at = now + (ttl as i64) * 1000;
    ingest
        .registry
        .issue_token(hash, &d.id, now, expires_at)
        .await?;
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        device_id: d.id.0.clone(),
    })
}

fn by_certificate(
    ingest: &Ingest,
    entry: Arc<DeviceEntry>,
    tr: &TokenRequest,
) -> ApiResult<Arc<DeviceEntry>> {
    let field = ingest
        .registry
        .field(&entry.device.field_id)
        .ok_or_else(invalid)?;
    let matches = tr
        .unique_id
        .as_deref()
        .is_none_or(|u| u == entry.device.unique_id)
        && tr.auth_id.as_deref().is_none_or(|a| a == field.auth_id);
    if !field.auth_mode.allows_certificate() || !matches {
        return Err(invalid());
    }
    Ok(entry)
}

async fn by_secret(
    ingest: &Arc<Ingest>,
    conn: &ConnInfo,
    tr: &TokenRequest,
    now: i64,
) -> ApiResult<Arc<DeviceEntry>> {
    let (Some(auth_id), Some(secret), Some(unique_id)) =
        (&tr.auth_id, &tr.auth_secret, &tr.unique_id)
    else {
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "auth_id, auth_secret and unique_id are all required (or a registered client certificate)",
        ));
    };
    let key = format!("{auth_id}\u{0}{unique_id}");
    if let Some(wait) = ingest.token_failures.blocked(&key, now) {
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            "too many failed attempts for this device",
        )
        .retry_after(wait));
    }
    let field = ingest.registry.field_by_auth_id(auth_id);
    let entry = field
        .as_ref()
        .and_then(|f| ingest.registry.device_by_unique_id(&f.id, unique_id));
    // The same work whether or not the device exists: the answer's timing says nothing.
    let hash = entry.as_ref().map_or_else(
        || crypto::dummy_hash().to_owned(),
        |e| e.secret_hash.clone(),
    );
    let permit = tokio::time::timeout(Duration::from_secs(5), ingest.hash_permits.acquire())
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::TooManyRequests,
                "the gateway is busy verifying credentials",
            )
            .retry_after(1)
        })?;
    let secret = secret.clone();
    let ok = tokio::task::spawn_blocking(move || crypto::verify_password(&secret, &hash))
        .await
        .map_err(ApiError::internal)?;
    drop(permit);
    let field_ok = field.as_ref().is_some_and(|f| {
        f.auth_mode.allows_secret()
            || (f.auth_mode.allows_certificate()
                && entry
                    .as_ref()
                    .is_some_and(|e| cert_matches(e, conn.client_cert_sha256)))
    });
    match entry {
        Some(e) if ok && field_ok => {
            ingest.token_failures.clear(&key);
            Ok(e)
        }
        _ => {
            ingest.token_failures.hit(&key, now);
            Err(invalid())
        }
    }
}

/// `true` when the connection's client certificate is the one registered to the device.
pub(crate) fn cert_matches(e: &DeviceEntry, presented: Option<[u8; 32]>) -> bool {
    match (&e.device.cert_sha256, presented) {
        (Some(reg), Some(p)) => reg.eq_ignore_ascii_case(&hex::encode(p)),
        _ => false,
    }
}
