//! The one error response of both APIs: `{"error": "<code>", "message": "<text>"}` with the code's status,
//! and `Retry-After` where the client should come back later.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sekisho_core::{ErrorBody, ErrorCode};

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }

    pub fn invalid(problems: Vec<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, problems.join("; "))
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(ErrorCode::Internal, "internal error; see the gateway's log")
    }

    /// A storage failure as the client sees it: `503`, try again, nothing was accepted.
    pub fn store(e: sekisho_store::StoreError) -> Self {
        match e {
            sekisho_store::StoreError::Conflict(what) => {
                Self::new(ErrorCode::Conflict, format!("{what} already exists"))
            }
            sekisho_store::StoreError::Overloaded => Self::new(
                ErrorCode::StoreUnavailable,
                "the gateway is overloaded; nothing was stored, retry later",
            )
            .retry_after(1),
            e => {
                tracing::error!(error = %e, "store failure");
                Self::new(
                    ErrorCode::StoreUnavailable,
                    "the gateway cannot store data now; nothing was stored, retry later",
                )
                .retry_after(5)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<sekisho_store::StoreError> for ApiError {
    fn from(e: sekisho_store::StoreError) -> Self {
        Self::store(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
