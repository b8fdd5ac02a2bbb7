//! The rows the hot path writes: received messages, authentication attempts, connection events.

/// One received message, accepted or rejected.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub id: String,
    pub at: i64,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    pub source_ip: String,
    pub size: i64,
    /// `None` for an accepted message; the error code for a rejected one.
    pub rejected: Option<&'static str>,
    pub device_ts: Option<i64>,
    pub device_seq: Option<i64>,
    pub buffered: bool,
    /// The body to forward (accepted messages only).
    pub body: Option<Vec<u8>>,
}

/// One token request, whatever its outcome.
#[derive(Debug, Clone)]
pub struct AuthAttempt {
    pub at: i64,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    /// The unique ID the device claimed (never the secret).
    pub unique_id: Option<String>,
    pub source_ip: String,
    /// `secret` or `certificate`.
    pub method: &'static str,
    /// `success`, `failure` or `throttled`.
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
}

/// A connection-level event on a listener (plaintext on a TLS port, failed handshake, refused connection).
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub at: i64,
    pub listener: &'static str,
    pub source_ip: String,
    pub kind: &'static str,
    pub detail: Option<String>,
}

/// What the writer stores, in one transaction per batch of operations.
#[derive(Debug, Clone)]
pub enum Record {
    Message(MessageRecord),
    Auth(AuthAttempt),
    Security(SecurityEvent),
}
