//! The JSON body and query extractors of both APIs: their refusals are the APIs' JSON errors
//! (`malformed_json`, `invalid_request`, `unsupported_media_type`, `payload_too_large`) instead of
//! axum's plain text.

use crate::body::is_json;
use crate::error::ApiError;
use http::StatusCode;
use sekisho_core::ErrorCode;

/// `Json<T>` whose refusals are this API's JSON errors (`malformed_json`, `invalid_request`,
/// `unsupported_media_type`, `payload_too_large`) instead of axum's plain text.
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as application/json",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(ErrorCode::PayloadTooLarge, e.body_text()));
            }
            Err(e) => return Err(ApiError::new(ErrorCode::InvalidRequest, e.body_text())),
        };
        // JSON in UTF-8 all the way down, then the shape: a syntax or encoding problem is
        // `malformed_json`, a wrong shape `invalid_request`.
        if let Err(e) = sekisho_core::json::check(&bytes) {
            return Err(ApiError::new(
                ErrorCode::MalformedJson,
                format!("the body is not JSON in UTF-8: {e}"),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))
    }
}

/// `Query<T>` whose refusals are `invalid_request` JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))
    }
}
