//! The device listener's API: device protocol v1 (spec §3). Token issuance (subsystem ⑥ device
//! authentication) and telemetry reception (subsystem ① device connector).
//!
//! Architecture invariant: every request that reaches a handler is recorded (auth attempt or message
//! metadata) before it is answered, and `202` is sent only after the message is committed to the store.

mod auth;
mod state;
mod telemetry;
mod update;

use crate::app::App;
use crate::error::ApiError;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sekisho_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;

pub use auth::{TokenRequest, TokenResponse};
pub use telemetry::{Accepted, BatchAccepted};

#[derive(OpenApi)]
#[openapi(
    info(title = "Sekisho device protocol", version = "1", description = "What devices speak to the gateway: HTTPS + JSON. Errors are `{\"error\": code, \"message\": text}`."),
    paths(auth::token, telemetry::single, telemetry::batch, state::report, update::check, update::artifact, update::result),
    tags((name = "device", description = "Device protocol v1"))
)]
pub struct DeviceApi;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/auth/token", post(auth::token))
        .route("/v1/telemetry", post(telemetry::single))
        .route("/v1/telemetry/batch", post(telemetry::batch))
        .route("/v1/device/state", post(state::report))
        .route("/v1/device/update", get(update::check))
        .route("/v1/device/update/result", post(update::result))
        .route("/v1/device/artifacts/{sha256}", get(update::artifact))
        .route(
            "/v1/openapi.json",
            get(|| async { axum::Json(DeviceApi::openapi()) }),
        )
        .fallback(|| async {
            ApiError::new(
                ErrorCode::UnknownEndpoint,
                "no such endpoint in device protocol v1",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        .with_state(app)
}

/// `true` when the request says its body is JSON (`application/json`, optionally with parameters, or
/// `application/<x>+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a body of at most `limit` bytes within `timeout`.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body exceeds this field's limit of {limit} bytes"),
        )),
        Ok(Err(e)) => Err(ApiError::new(
            ErrorCode::MalformedJson,
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body was not received within {} s", timeout.as_secs()),
        )),
    }
}
