//! The device API's routes and its OpenAPI document.

use crate::Ingest;
use crate::{auth, state, telemetry, update};
use axum::Router;
use axum::routing::{get, post};
use sekisho_core::ErrorCode;
use sekisho_http::ApiError;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Sekisho device protocol", version = "1", description = "What devices speak to the gateway: HTTPS + JSON. Errors are `{\"error\": code, \"message\": text}`."),
    paths(auth::token, telemetry::single, telemetry::batch, state::report, update::check, update::artifact, update::result),
    tags((name = "device", description = "Device protocol v1"))
)]
pub struct DeviceApi;

pub fn router(ingest: Arc<Ingest>) -> Router {
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
        .with_state(ingest)
}
