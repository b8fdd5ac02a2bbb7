//! `UpdateError`: every way an update or a request to the gateway can fail, with a stable
//! snake_case [`UpdateError::code`]. The codes of the rejections are the `reason` values the device
//! reports to `POST /v1/device/update/result`.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UpdateError {
    /// The signature does not verify over the payload bytes with the key named by `key_id`.
    #[error("the manifest's signature does not verify")]
    BadSignature,
    /// `key_id` names no trusted public key.
    #[error("the manifest is signed by an unknown key {key_id:?}")]
    UnknownKey { key_id: String },
    /// The manifest's sequence is not above the last one applied (anti-rollback).
    #[error("rollback refused: sequence {sequence} is not above the last applied {last}")]
    Rollback { sequence: u64, last: u64 },
    /// The artifact's SHA-256 differs from the manifest's.
    #[error("the artifact's SHA-256 does not match the manifest")]
    HashMismatch,
    /// The artifact's size differs from the manifest's.
    #[error("the artifact is {actual} bytes, the manifest says {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    /// The artifact could not be fetched (network, status, URL outside the gateway, too large).
    #[error("artifact download failed: {0}")]
    DownloadFailed(String),
    /// The envelope or the (signed) payload is not a valid manifest.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// A key file or key text that cannot be used.
    #[error("key: {0}")]
    Key(String),
    /// A client configuration that cannot work (gateway URL, CA file).
    #[error("configuration: {0}")]
    Config(String),
    /// Reading or writing the device's state directory.
    #[error("state directory: {0}")]
    Io(String),
    /// The gateway could not be reached or did not answer (connection, TLS, timeout).
    #[error("gateway unreachable: {0}")]
    Transport(String),
    /// The gateway answered with an unexpected status (its `error` code when it sent one).
    #[error("gateway answered {status} {code}")]
    Status { status: u16, code: String },
}

impl UpdateError {
    /// The stable snake_case code; for rejections, the `reason` of the update result.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::UnknownKey { .. } => "unknown_key",
            Self::Rollback { .. } => "rollback",
            Self::HashMismatch => "hash_mismatch",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::DownloadFailed(_) => "download_failed",
            Self::Malformed(_) => "malformed",
            Self::Key(_) => "bad_key",
            Self::Config(_) => "bad_configuration",
            Self::Io(_) => "io_failed",
            Self::Transport(_) => "gateway_unreachable",
            Self::Status { .. } => "gateway_status",
        }
    }

    /// `true` for the errors that reject an offered update (and are reported to the gateway).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Self::BadSignature
                | Self::UnknownKey { .. }
                | Self::Rollback { .. }
                | Self::HashMismatch
                | Self::SizeMismatch { .. }
                | Self::DownloadFailed(_)
                | Self::Malformed(_)
        )
    }
}

/// `e` and its sources, `: `-joined (reqwest hides the useful part in the sources).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::UpdateError as E;

    #[test]
    fn codes_are_the_reported_reasons() {
        let cases = [
            (E::BadSignature, "bad_signature", true),
            (
                E::UnknownKey {
                    key_id: "00".into(),
                },
                "unknown_key",
                true,
            ),
            (
                E::Rollback {
                    sequence: 1,
                    last: 2,
                },
                "rollback",
                true,
            ),
            (E::HashMismatch, "hash_mismatch", true),
            (
                E::SizeMismatch {
                    expected: 1,
                    actual: 2,
                },
                "size_mismatch",
                true,
            ),
            (E::DownloadFailed("x".into()), "download_failed", true),
            (E::Malformed("x".into()), "malformed", true),
            (E::Key("x".into()), "bad_key", false),
            (E::Config("x".into()), "bad_configuration", false),
            (E::Io("x".into()), "io_failed", false),
            (E::Transport("x".into()), "gateway_unreachable", false),
            (
                E::Status {
                    status: 500,
                    code: "x".into(),
                },
                "gateway_status",
                false,
            ),
        ];
        for (e, code, rejection) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.is_rejection(), rejection, "{e}");
        }
    }
}
