//! The typed errors of carrier calls. Callers match on them (retry later, alert the operator, tell the
//! administrator the SIM does not exist); [`CarrierError::code`] is the stable word stored in records
//! and shown by the admin API.
//!
//! Messages quote at most a short, sanitized excerpt of what the carrier answered; they never hold the
//! API token or a request header.

/// Why a carrier operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// The carrier does not know the SIM (`404`).
    #[error("the carrier knows no such SIM")]
    NotFound,
    /// The carrier refused the API credentials (`401`, `403`): fix the token, retrying won't help.
    #[error("the carrier refused the API credentials: {0}")]
    Unauthorized(String),
    /// The carrier refused the request (another `4xx`, or a `409` that left the SIM in another
    /// state than asked).
    #[error("the carrier refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// Still rate limited (`429`) after every retry.
    #[error("the carrier is rate limiting requests{}", retry_hint(*.retry_after_ms))]
    RateLimited { retry_after_ms: Option<u64> },
    /// Unreachable or failing (`5xx`, `408`, connection errors) after every retry.
    #[error("the carrier API is unavailable: {message}")]
    Unavailable {
        status: Option<u16>,
        message: String,
    },
    /// No answer within `timeout_ms`, on the last attempt.
    #[error("the carrier did not answer in time")]
    Timeout,
    /// The request cannot be made (a malformed SIM identifier, an identifier the templates cannot use).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The carrier answered success with a body the connector does not understand.
    #[error("the carrier's answer was not understood: {0}")]
    BadResponse(String),
    /// No carrier API is configured.
    #[error("no carrier API is configured")]
    NotConfigured,
}

fn retry_hint(ms: Option<u64>) -> String {
    ms.map(|ms| format!(" (retry after {ms} ms)"))
        .unwrap_or_default()
}

impl CarrierError {
    /// Whether the same call may succeed later without any change of configuration or data.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Timeout
        )
    }

    /// A stable snake_case code for records and the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::Refused { .. } => "refused",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout => "timeout",
            Self::Invalid(_) => "invalid",
            Self::BadResponse(_) => "bad_response",
            Self::NotConfigured => "not_configured",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_retryable_is_narrow() {
        let all = [
            CarrierError::NotFound,
            CarrierError::Unauthorized("x".into()),
            CarrierError::Refused {
                status: 400,
                message: "x".into(),
            },
            CarrierError::RateLimited {
                retry_after_ms: Some(1000),
            },
            CarrierError::Unavailable {
                status: Some(503),
                message: "x".into(),
            },
            CarrierError::Timeout,
            CarrierError::Invalid("x".into()),
            CarrierError::BadResponse("x".into()),
            CarrierError::NotConfigured,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
        let retryable: Vec<_> = all
            .iter()
            .filter(|e| e.retryable())
            .map(|e| e.code())
            .collect();
        assert_eq!(retryable, ["rate_limited", "unavailable", "timeout"]);
        assert_eq!(
            all[3].to_string(),
            "the carrier is rate limiting requests (retry after 1000 ms)"
        );
    }
}
