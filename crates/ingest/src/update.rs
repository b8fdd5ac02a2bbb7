//! Updates for devices (spec §3): the signed manifest of the update a device should apply, its
//! artifact, and the device's report of what it did. Open to quarantined devices.

use super::telemetry::authenticate;
use crate::Ingest;
use axum::Json;
use axum::extract::{Extension, Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sekisho_core::ErrorCode;
use sekisho_core::ratelog::LogLimit;
use sekisho_http::listener::ConnInfo;
use sekisho_http::{ApiError, ApiJson};
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// `GET /v1/device/update`'s answer: the manifest's JSON text exactly as signed, its Ed25519 signature
/// (base64) and the signing key's id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedManifestView {
    pub payload: String,
    pub signature: String,
    pub key_id: String,
}

/// The update this device should apply: `200` with the signed manifest, `204` when it is current.
#[utoipa::path(get, path = "/v1/device/update", tag = "device",
    params(("Device-Id" = String, Header, description = "The `device_id` from the token response")),
    responses((status = 200, body = SignedManifestView), (status = 204, description = "nothing to apply"),
        (status = 401, body = sekisho_core::ErrorBody), (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn check(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    req: Request,
) -> Response {
    let now = ingest.clock.now_ms();
    let authed = match authenticate(&ingest, &conn, req.headers(), now, true) {
        Ok(a) => a,
        Err((e, _)) => return e.into_response(),
    };
    let d = &authed.device.device;
    match ingest.campaigns.offer(&d.field_id.0, d.id.as_str()).await {
        Ok(Some(c)) => {
            if let Err(e) = ingest
                .store
                .set_progress(c.id, d.id.as_str(), "offered", None, now)
                .await
            {
                return ApiError::store(e).into_response();
            }
            Json(SignedManifestView {
                payload: c.payload,
                signature: c.signature,
                key_id: c.key_id,
            })
            .into_response()
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::store(e).into_response(),
    }
}

/// An artifact of an update of this device's field, by its SHA-256.
#[utoipa::path(get, path = "/v1/device/artifacts/{sha256}", tag = "device",
    params(("sha256" = String, Path), ("Device-Id" = String, Header, description = "The `device_id` from the token response")),
    responses((status = 200, content_type = "application/octet-stream", description = "the artifact's bytes"),
        (status = 401, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn artifact(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    Path(sha256): Path<String>,
    req: Request,
) -> Response {
    let authed = match authenticate(&ingest, &conn, req.headers(), ingest.clock.now_ms(), true) {
        Ok(a) => a,
        Err((e, _)) => return e.into_response(),
    };
    let field = &authed.device.device.field_id.0;
    let offered = match ingest.store.campaigns(field).await {
        Ok(c) => c.iter().any(|c| c.sha256 == sha256),
        Err(e) => return ApiError::store(e).into_response(),
    };
    if !offered || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) || sha256.len() != 64 {
        return ApiError::not_found("artifact of an update of this field").into_response();
    }
    match tokio::fs::read(ingest.campaigns.artifact_path(&sha256)).await {
        Ok(bytes) => (
            [(http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(_) => ApiError::not_found("artifact file").into_response(),
    }
}

/// What a device did with an update.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateResult {
    pub sequence: i64,
    #[serde(default)]
    pub version: String,
    /// `applied` or `rejected`.
    pub status: String,
    /// For a rejection: `bad_signature`, `unknown_key`, `malformed`, `rollback`, `hash_mismatch`,
    /// `size_mismatch`, `download_failed`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Report the outcome of an update: applied, or rejected with the reason (recorded; a rejection is a
/// detection and counts towards halting the campaign).
#[utoipa::path(post, path = "/v1/device/update/result", tag = "device", request_body = UpdateResult,
    params(("Device-Id" = String, Header, description = "The `device_id` from the token response")),
    responses((status = 202), (status = 400, body = sekisho_core::ErrorBody), (status = 401, body = sekisho_core::ErrorBody),
        (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn result(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    headers: http::HeaderMap,
    ApiJson(r): ApiJson<UpdateResult>,
) -> Response {
    let authed = match authenticate(&ingest, &conn, &headers, ingest.clock.now_ms(), true) {
        Ok(a) => a,
        Err((e, _)) => return e.into_response(),
    };
    let applied = match r.status.as_str() {
        "applied" => true,
        "rejected" => false,
        other => {
            return ApiError::new(
                ErrorCode::InvalidRequest,
                format!("status: '{other}' is neither applied nor rejected"),
            )
            .into_response();
        }
    };
    let reason: Option<String> = r.reason.map(|x| x.chars().take(64).collect());
    let d = &authed.device.device;
    static RESULT_LINES: LogLimit = LogLimit::per_minute(30);
    if let Some(skipped) = RESULT_LINES.allow() {
        tracing::info!(device = %d.id, sequence = r.sequence, version = r.version, status = r.status, reason = ?reason, skipped, "update result");
    }
    match ingest
        .campaigns
        .on_result(&d.field_id, &d.id, r.sequence, applied, reason.as_deref())
        .await
    {
        Ok(Some(_)) => StatusCode::ACCEPTED.into_response(),
        Ok(None) => {
            ApiError::not_found("update with this sequence in the device's field").into_response()
        }
        Err(e) => ApiError::store(e).into_response(),
    }
}
