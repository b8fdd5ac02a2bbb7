//! Placeholder: filled in by the threat-response work.

use crate::app::App;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi()]
pub struct ResponseApi;

pub fn router() -> Router<Arc<App>> {
    Router::new()
}
