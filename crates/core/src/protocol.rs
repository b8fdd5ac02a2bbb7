//! The device protocol's and admin API's error codes: `{"error": "<code>", "message": "<text>"}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error code either API answers with, and the HTTP status that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: a token request whose factors do not match a registered, active device (never says which).
    InvalidCredentials,
    /// 401: missing, unknown, expired or revoked bearer token, or a token of another device.
    InvalidToken,
    /// 403: the device's authentication has been stopped.
    DeviceDisabled,
    /// 403: the device is quarantined; only the update and state endpoints answer it.
    DeviceQuarantined,
    /// 403: the field requires the device's registered client certificate on this connection.
    CertificateRequired,
    /// 403: the field refuses requests from outside its networks.
    OffNetwork,
    /// 400: the body is not valid JSON of the expected shape.
    MalformedJson,
    /// 400: the JSON nests deeper than the field allows.
    JsonTooDeep,
    /// 413: the body is larger than the field allows.
    PayloadTooLarge,
    /// 413: a batch holds more objects than the field allows.
    BatchTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 408: the client sent its body too slowly.
    RequestTimeout,
    /// 429: too many attempts; retry after the `Retry-After` seconds.
    TooManyRequests,
    /// 503: the gateway cannot store the message now (storage failure or overload); nothing was accepted.
    StoreUnavailable,
    /// 503: the connection is over the listener's cap or its source address's; retry after the
    /// `Retry-After` seconds (and hold fewer connections).
    TooManyConnections,
    /// 400: a request parameter is invalid (admin API); the message lists every problem.
    InvalidRequest,
    /// 401: admin API login failed or the session is missing/expired.
    Unauthorized,
    /// 403: the user's role or fields do not cover this request.
    Forbidden,
    /// 403: this action needs the user's second factor: a current, unused TOTP code (admin API,
    /// `X-Sekisho-TOTP`); the message says whether it was missing, wrong or already used.
    SecondFactorRequired,
    /// 404: no such resource (or not visible to this user).
    NotFound,
    /// 409: the resource already exists.
    Conflict,
    /// 404 on the device listener: no such endpoint.
    UnknownEndpoint,
    /// 405: the endpoint exists, not with that method.
    MethodNotAllowed,
    /// 500: an unexpected internal failure; details are in the gateway's log.
    Internal,
    /// 502: the carrier's SIM API failed or refused (the call is recorded with the carrier's error).
    CarrierUnavailable,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidCredentials | InvalidToken | Unauthorized => 401,
            DeviceDisabled | DeviceQuarantined | CertificateRequired | OffNetwork | Forbidden
            | SecondFactorRequired => 403,
            MalformedJson | JsonTooDeep | InvalidRequest => 400,
            PayloadTooLarge | BatchTooLarge => 413,
            UnsupportedMediaType => 415,
            RequestTimeout => 408,
            TooManyRequests => 429,
            StoreUnavailable | TooManyConnections => 503,
            NotFound | UnknownEndpoint => 404,
            Conflict => 409,
            MethodNotAllowed => 405,
            Internal => 500,
            CarrierUnavailable => 502,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidCredentials => "invalid_credentials",
            InvalidToken => "invalid_token",
            DeviceDisabled => "device_disabled",
            DeviceQuarantined => "device_quarantined",
            CertificateRequired => "certificate_required",
            OffNetwork => "off_network",
            MalformedJson => "malformed_json",
            JsonTooDeep => "json_too_deep",
            PayloadTooLarge => "payload_too_large",
            BatchTooLarge => "batch_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            RequestTimeout => "request_timeout",
            TooManyRequests => "too_many_requests",
            StoreUnavailable => "store_unavailable",
            TooManyConnections => "too_many_connections",
            InvalidRequest => "invalid_request",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            SecondFactorRequired => "second_factor_required",
            NotFound => "not_found",
            Conflict => "conflict",
            UnknownEndpoint => "unknown_endpoint",
            MethodNotAllowed => "method_not_allowed",
            Internal => "internal",
            CarrierUnavailable => "carrier_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = crate::detection::UnknownName;

    /// The code of its snake_case name (as stored with a refused message).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            crate::detection::UnknownName {
                what: "error code",
                name: s.to_owned(),
            }
        })
    }
}

/// The JSON body of every error response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for code in [
            ErrorCode::InvalidCredentials,
            ErrorCode::PayloadTooLarge,
            ErrorCode::StoreUnavailable,
            ErrorCode::SecondFactorRequired,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::DeviceDisabled.status(), 403);
        assert_eq!(ErrorCode::UnsupportedMediaType.status(), 415);
        assert_eq!(ErrorCode::SecondFactorRequired.status(), 403);
    }
}
