//! The device's self-report (`POST /v1/device/state`, spec §3): firmware version, configuration
//! hash, running processes, software, free-form facts. Stored with what changed since the previous
//! report, then audited against the device's baseline ([`sekisho_update::audit`]). Open to quarantined devices.

use super::telemetry::{authenticate, base_record, reject};
use crate::Ingest;
use axum::Json;
use axum::extract::{Extension, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sekisho_core::ErrorCode;
use sekisho_http::ApiError;
use sekisho_http::body::{is_json, read_body};
use sekisho_http::listener::ConnInfo;
use sekisho_update::audit::SelfReport;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The answer to a stored self-report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateAccepted {
    pub id: i64,
    /// What differs from the previous report (`firmware_version`, `config_hash`, `processes`, …).
    pub changed: Vec<String>,
    /// Pending commands for the device, as on telemetry responses.
    pub commands: Vec<serde_json::Value>,
}

/// Report the device's state for audit: firmware version, configuration hash, processes, software.
#[utoipa::path(post, path = "/v1/device/state", tag = "device", request_body = SelfReport,
    params(("Device-Id" = String, Header, description = "The `device_id` from the token response")),
    responses((status = 202, body = StateAccepted), (status = 400, body = sekisho_core::ErrorBody),
        (status = 401, body = sekisho_core::ErrorBody), (status = 403, body = sekisho_core::ErrorBody),
        (status = 413, body = sekisho_core::ErrorBody), (status = 415, body = sekisho_core::ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(
    State(ingest): State<Arc<Ingest>>,
    Extension(conn): Extension<ConnInfo>,
    req: Request,
) -> Response {
    let now = ingest.clock.now_ms();
    let (parts, body) = req.into_parts();
    // A refused report is recorded and judged like refused telemetry (broken JSON is a detection).
    let mut rec = base_record(&conn, &parts.headers, now);
    let authed = match authenticate(&ingest, &conn, &parts.headers, now, true) {
        Ok(a) => a,
        Err((e, device)) => {
            rec.device_id = device.map(|d| d.0);
            return reject(&ingest, rec, e).await;
        }
    };
    rec.field_id = Some(authed.field.id.0.clone());
    rec.device_id = Some(authed.device.device.id.0.clone());
    if !is_json(&parts.headers) {
        let e = ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the state as application/json",
        );
        return reject(&ingest, rec, e).await;
    }
    let limit = authed.field.limits.max_body_bytes as usize;
    let bytes = match read_body(body, limit, ingest.body_timeout).await {
        Ok(b) => b,
        Err(e) => return reject(&ingest, rec, e).await,
    };
    rec.size = bytes.len() as i64;
    let parsed = sekisho_core::json::check(&bytes)
        .and_then(|()| serde_json::from_slice::<SelfReport>(&bytes).map_err(|e| e.to_string()));
    let report = match parsed {
        Ok(r) => r,
        Err(e) => {
            let e = ApiError::new(ErrorCode::MalformedJson, format!("the state report: {e}"));
            return reject(&ingest, rec, e).await;
        }
    };
    let device = &authed.device.device;
    match ingest.auditor.on_report(device, &report, now).await {
        Ok((id, changed)) => (
            StatusCode::ACCEPTED,
            Json(StateAccepted {
                id,
                changed,
                commands: ingest.commands.for_device(&device.id),
            }),
        )
            .into_response(),
        Err(e) => ApiError::store(e).into_response(),
    }
}
