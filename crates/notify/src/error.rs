//! [`NotifyError`]: why a mail or a webhook was not delivered, in the terms the gateway needs to
//! decide what to do next: try again later ([`NotifyError::retryable`]) or give up and record it,
//! under a stable [`NotifyError::code`].
//!
//! Messages never hold a password, a webhook secret or a mail body.

/// Why a notification was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Mail is off (no SMTP host) or the webhook has no URL.
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// A recipient, sender or reply-to address, or a webhook URL, that cannot be used.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// The message itself cannot be sent (no recipient, too large, not JSON).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The server could not be reached or the connection broke (refused, reset, no route, DNS).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The server did not answer within the configured time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The TLS handshake failed: usually the server's certificate is not trusted or does not
    /// name the host; or the server does not offer STARTTLS.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The SMTP server refused the user name or password, or offers no usable mechanism.
    #[error("SMTP authentication failed: {0}")]
    Auth(String),
    /// The SMTP server answered 4xx: try again later.
    #[error("SMTP temporary failure {code}: {message}")]
    SmtpTemporary { code: u16, message: String },
    /// The SMTP server answered 5xx (e.g. 550 unknown recipient): trying again will not help.
    #[error("SMTP refused {code}: {message}")]
    SmtpRejected { code: u16, message: String },
    /// The server answered something that is not SMTP, or broke the protocol.
    #[error("SMTP protocol error: {0}")]
    Protocol(String),
    /// The webhook receiver answered a status other than 2xx.
    #[error("webhook answered HTTP {0}")]
    HttpStatus(u16),
}

impl NotifyError {
    /// Whether the same notification may succeed later: connection failures, timeouts, SMTP 4xx,
    /// protocol breaks, and webhook 408/429/5xx. Everything else needs a person to change
    /// something (configuration, address, password, certificate) first.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect(_)
            | Self::Timeout(_)
            | Self::SmtpTemporary { .. }
            | Self::Protocol(_) => true,
            Self::HttpStatus(s) => matches!(s, 408 | 429 | 500..=599),
            Self::NotConfigured(_)
            | Self::InvalidAddress(_)
            | Self::InvalidMessage(_)
            | Self::Tls(_)
            | Self::Auth(_)
            | Self::SmtpRejected { .. } => false,
        }
    }

    /// A stable code for records, metrics and the API (never changes for a variant).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured(_) => "not_configured",
            Self::InvalidAddress(_) => "invalid_address",
            Self::InvalidMessage(_) => "invalid_message",
            Self::Connect(_) => "connection_failed",
            Self::Timeout(_) => "timeout",
            Self::Tls(_) => "tls_failed",
            Self::Auth(_) => "auth_failed",
            Self::SmtpTemporary { .. } => "smtp_temporary",
            Self::SmtpRejected { .. } => "smtp_rejected",
            Self::Protocol(_) => "protocol_error",
            Self::HttpStatus(_) => "http_status",
        }
    }
}

/// Whether `e`, or any error below it, is a TLS error from rustls (a certificate not trusted, a
/// name mismatch, a failed handshake). `io::Error` hides what it wraps from `source()`, so it is
/// looked into explicitly.
pub(crate) fn has_rustls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && has_rustls_error(inner)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The whole chain of an error as one line (`outer: inner: innermost`), without repeats.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::NotifyError as E;

    #[test]
    fn retryable_and_codes() {
        let cases = [
            (E::NotConfigured("x".into()), false, "not_configured"),
            (E::InvalidAddress("x".into()), false, "invalid_address"),
            (E::InvalidMessage("x".into()), false, "invalid_message"),
            (E::Connect("x".into()), true, "connection_failed"),
            (E::Timeout("x".into()), true, "timeout"),
            (E::Tls("x".into()), false, "tls_failed"),
            (E::Auth("x".into()), false, "auth_failed"),
            (
                E::SmtpTemporary {
                    code: 451,
                    message: "x".into(),
                },
                true,
                "smtp_temporary",
            ),
            (
                E::SmtpRejected {
                    code: 550,
                    message: "x".into(),
                },
                false,
                "smtp_rejected",
            ),
            (E::Protocol("x".into()), true, "protocol_error"),
            (E::HttpStatus(503), true, "http_status"),
            (E::HttpStatus(429), true, "http_status"),
            (E::HttpStatus(408), true, "http_status"),
            (E::HttpStatus(400), false, "http_status"),
            (E::HttpStatus(404), false, "http_status"),
            (E::HttpStatus(301), false, "http_status"),
        ];
        for (e, retry, code) in cases {
            assert_eq!(e.retryable(), retry, "{e}");
            assert_eq!(e.code(), code, "{e}");
        }
    }
}
