//! Request bodies as both APIs read them: is it JSON, how long does it say it is, and the bounded,
//! timed read whose refusals are the APIs' JSON errors.

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sekisho_core::ErrorCode;
use std::time::Duration;

/// `true` when the request says its body is JSON (`application/json`, optionally with parameters, or
/// `application/<x>+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
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

pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a body of at most `limit` bytes within `timeout`.
pub async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
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
