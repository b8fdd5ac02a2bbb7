//! `POST /v1/telemetry` and `/v1/telemetry/batch`: authenticate (token + Device-Id), bound and check the
//! body, store durably, answer `202`. A refused message is recorded with its reason before the answer.

use super::auth::cert_matches;
use crate::Ingest;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::{HeaderMap, StatusCode};
use sekisho_core::ratelog::LogLimit;
use sekisho_core::telemetry::{self, BodyError, TelemetryMeta};
use sekisho_core::{AuthMode, DeviceId, DeviceStatus, ErrorCode, Field, MessageId};
use sekisho_http::ApiError;
use sekisho_http::body::{content_length, is_json, read_body};
use sekisho_http::listener::ConnInfo;
use sekisho_registry::DeviceEntry;
use sekisho_registry::crypto;
use sekisho_store::MessageRecord;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

/// The answer to an accepted message: it is stored and will reach the cloud.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The message id (also the idempotency key the cloud sees).
    pub id: String,
    /// Pending commands for the device (update, re-auth, configuration); empty when there are none.
    pub commands: Vec<serde_json::Value>,
}

/// The answer to an accepted batch: every object is stored, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchAccepted {
    pub ids: Vec<String>,
    pub accepted: usize,
    pub commands: Vec<serde_json::Value>,
}

/// Send one telemetry object.
#[utoipa::path(
    post, path = "/v1/telemetry", tag = "device",
    request_body(content = Object, description = "One JSON object: the device's data. Understood when present: `ts` (RFC 3339 or Unix ms), `seq`, `buffered`.", content_type = "application/json"),
    params(
        ("Authorization" = String, Header, description = "`Bearer <access_token>`"),
        ("Device-Id" = String, Header, description = "The `device_id` from the token response"),
    ),
    responses(
        (status = 202, description = "Stored durably; it will reach the cloud", body = Accepted),
        (status = 400, description = "`malformed_json` or `json_too_deep`", body = sekisho_core::ErrorBody),
        (status = 401, description = "`invalid_token`", body = sekisho_core::ErrorBody),
        (status = 403, description = "`device_disabled`, `device_quarantined` or `certificate_required`", body = sekisho_core::ErrorBody),
        (status = 408, description = "`request_timeout`: the body came too slowly", body = sekisho_core::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = sekisho_core::ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = sekisho_core::ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing was stored, retry after `Retry-After`", body = sekisho_core::ErrorBody),
    )
)]
pub async fn single(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    req: Request,
) -> Response {
    receive(ingest, conn, req, false).await
}

/// Send a batch (a device flushing its offline buffer): a JSON array of telemetry objects, stored in order.
#[utoipa::path(
    post, path = "/v1/telemetry/batch", tag = "device",
    request_body(content = Vec<Object>, description = "A JSON array of telemetry objects", content_type = "application/json"),
    params(
        ("Authorization" = String, Header, description = "`Bearer <access_token>`"),
        ("Device-Id" = String, Header, description = "The `device_id` from the token response"),
    ),
    responses(
        (status = 202, description = "Every object stored durably", body = BatchAccepted),
        (status = 400, description = "`malformed_json` (any item) or `json_too_deep`", body = sekisho_core::ErrorBody),
        (status = 401, description = "`invalid_token`", body = sekisho_core::ErrorBody),
        (status = 403, description = "`device_disabled`, `device_quarantined` or `certificate_required`", body = sekisho_core::ErrorBody),
        (status = 413, description = "`payload_too_large` or `batch_too_large`", body = sekisho_core::ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = sekisho_core::ErrorBody),
        (status = 503, description = "`store_unavailable`", body = sekisho_core::ErrorBody),
    )
)]
pub async fn batch(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    req: Request,
) -> Response {
    receive(ingest, conn, req, true).await
}

pub(super) struct Authed {
    pub device: Arc<DeviceEntry>,
    pub field: Arc<Field>,
}

/// Checks the bearer token and `Device-Id`. On failure, also returns the device the token belonged to.
/// `quarantine_open`: the endpoint stays open to a quarantined device (state reports, updates).
pub(super) fn authenticate(
    ingest: &Ingest,
    conn: &ConnInfo,
    headers: &HeaderMap,
    now: i64,
    quarantine_open: bool,
) -> Result<Authed, (ApiError, Option<DeviceId>)> {
    let invalid = |msg: &str| ApiError::new(ErrorCode::InvalidToken, msg);
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| (invalid("send Authorization: Bearer <token>"), None))?;
    let claimed = headers
        .get("device-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| (invalid("send the Device-Id header"), None))?;
    let device_id = ingest
        .registry
        .token_device(&crypto::sha256(token.trim().as_bytes()), now)
        .ok_or_else(|| (invalid("the token is unknown, expired or revoked"), None))?;
    if device_id.as_str() != claimed {
        return Err((
            invalid("the token belongs to another device"),
            Some(device_id),
        ));
    }
    let device = ingest
        .registry
        .device(&device_id)
        .ok_or_else(|| (invalid("the device is no longer registered"), None))?;
    let field = ingest
        .registry
        .field(&device.device.field_id)
        .ok_or_else(|| {
            (
                invalid("the device's field is gone"),
                Some(device_id.clone()),
            )
        })?;
    let refuse = |code, msg: &str| Err((ApiError::new(code, msg), Some(device_id.clone())));
    match device.device.status {
        DeviceStatus::Active => {}
        DeviceStatus::Disabled | DeviceStatus::Deleted => {
            return refuse(
                ErrorCode::DeviceDisabled,
                "this device's authentication has been stopped",
            );
        }
        DeviceStatus::Quarantined if quarantine_open => {}
        DeviceStatus::Quarantined => {
            return refuse(
                ErrorCode::DeviceQuarantined,
                "this device is quarantined; only updates and state reports are open",
            );
        }
    }
    if field.auth_mode == AuthMode::Certificate && !cert_matches(&device, conn.client_cert_sha256) {
        return refuse(
            ErrorCode::CertificateRequired,
            "this field requires the device's registered client certificate",
        );
    }
    Ok(Authed { device, field })
}

fn body_error(e: BodyError) -> ApiError {
    let code = match e {
        BodyError::Malformed(_) => ErrorCode::MalformedJson,
        BodyError::TooDeep { .. } => ErrorCode::JsonTooDeep,
        BodyError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
    };
    ApiError::new(code, e.to_string())
}

fn record(base: &MessageRecord, meta: TelemetryMeta, body: &[u8]) -> MessageRecord {
    MessageRecord {
        id: MessageId::new_v7().0,
        size: body.len() as i64,
        device_ts: meta.device_ts,
        device_seq: meta.seq,
        buffered: meta.buffered,
        bad_ts: meta.bad_ts,
        body: Some(body.to_vec()),
        log_offset: None,
        ..base.clone()
    }
}

/// The record of a request that carries device data, before anything of it is known.
pub(super) fn base_record(conn: &ConnInfo, headers: &HeaderMap, now: i64) -> MessageRecord {
    MessageRecord {
        id: MessageId::new_v7().0,
        at: now,
        field_id: None,
        device_id: None,
        source_ip: conn.remote.ip().to_string(),
        size: content_length(headers).unwrap_or(0) as i64,
        rejected: None,
        device_ts: None,
        device_seq: None,
        buffered: false,
        bad_ts: false,
        body: None,
        log_offset: None,
    }
}

async fn receive(ingest: Arc<Ingest>, conn: ConnInfo, req: Request, is_batch: bool) -> Response {
    let now = ingest.clock.now_ms();
    let (parts, body) = req.into_parts();
    let declared = content_length(&parts.headers);
    let mut base = base_record(&conn, &parts.headers, now);
    let authed = match authenticate(&ingest, &conn, &parts.headers, now, false) {
        Ok(a) => a,
        Err((e, device)) => {
            base.device_id = device.map(|d| d.0);
            return reject(&ingest, base, e).await;
        }
    };
    base.field_id = Some(authed.field.id.0.clone());
    base.device_id = Some(authed.device.device.id.0.clone());
    if ingest.networks.blocks(&authed.field.id, conn.remote.ip()) {
        let e = ApiError::new(
            ErrorCode::OffNetwork,
            "this field does not accept data from outside its networks",
        );
        return reject(&ingest, base, e).await;
    }
    if !is_json(&parts.headers) {
        let e = ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send telemetry as application/json",
        );
        return reject(&ingest, base, e).await;
    }
    let limits = authed.field.limits;
    let limit = limits.max_body_bytes as usize;
    if declared.is_some_and(|n| n > limit as u64) {
        let e = ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body exceeds this field's limit of {limit} bytes"),
        );
        return reject(&ingest, base, e).await;
    }
    let bytes = match read_body(body, limit, ingest.body_timeout).await {
        Ok(b) => b,
        Err(e) => return reject(&ingest, base, e).await,
    };
    base.size = bytes.len() as i64;
    let depth = limits.max_json_depth as usize;
    let items: Vec<(&[u8], TelemetryMeta)> = if is_batch {
        match telemetry::parse_batch(&bytes, depth, limits.max_batch_len as usize) {
            Ok(items) => items,
            Err(e) => return reject(&ingest, base, body_error(e)).await,
        }
    } else {
        match telemetry::parse_object(&bytes, depth) {
            Ok(meta) => vec![(&bytes[..], meta)],
            Err(e) => return reject(&ingest, base, body_error(e)).await,
        }
    };
    let mut records: Vec<MessageRecord> = items
        .iter()
        .map(|(raw, meta)| record(&base, *meta, raw))
        .collect();
    if !is_batch {
        records[0].id = base.id.clone();
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    drop(items);
    let commands = ingest.commands.for_device(&authed.device.device.id);
    // Durable, then acknowledged. Detection reads the message from the log (the feed), so nothing is
    // left to do here once the sync is done, and a client that hangs up meanwhile loses nothing.
    let durable = match ingest.journal.append(&records) {
        Ok(d) => d,
        Err(e) => return ApiError::store(e).into_response(),
    };
    drop(records);
    if let Err(e) = durable.await {
        return ApiError::store(e).into_response();
    }
    ingest
        .stats
        .messages_accepted
        .fetch_add(ids.len() as u64, Ordering::Relaxed);
    if is_batch {
        let accepted = ids.len();
        (
            StatusCode::ACCEPTED,
            Json(BatchAccepted {
                ids,
                accepted,
                commands,
            }),
        )
            .into_response()
    } else {
        let id = ids.into_iter().next().unwrap_or_default();
        (StatusCode::ACCEPTED, Json(Accepted { id, commands })).into_response()
    }
}

/// Records a refused message, then answers with its error. A refused message of a known device is
/// judged too (the detection feed reads it from the log): malformed data, oversized bodies and
/// off-network sources are detections (V23, V24).
pub(super) async fn reject(ingest: &Ingest, mut rec: MessageRecord, e: ApiError) -> Response {
    rec.rejected = Some(e.code.as_str());
    rec.body = None;
    ingest
        .stats
        .messages_rejected
        .fetch_add(1, Ordering::Relaxed);
    // Every refusal is stored and counted; the log samples them.
    static REFUSED_LINES: LogLimit = LogLimit::per_minute(30);
    if let Some(skipped) = REFUSED_LINES.allow() {
        tracing::info!(
            reason = e.code.as_str(), device = rec.device_id.as_deref(), source_ip = %rec.source_ip,
            size = rec.size, skipped, "telemetry refused"
        );
    }
    let stored = match ingest.journal.append(std::slice::from_ref(&rec)) {
        Ok(durable) => durable.await,
        Err(e) => Err(e),
    };
    if let Err(se) = stored {
        tracing::error!(error = %se, "could not record a refused message");
    }
    e.into_response()
}
