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
    /// `ts` was present but unreadable (kept for detection; not a column of `messages`).
    pub bad_ts: bool,
    /// The body to forward (accepted messages only). The history indexer leaves it out: its rows
    /// point at the record in the message log (`log_offset`), and the body is read there.
    pub body: Option<Vec<u8>>,
    /// Where the message lies in the message log (set by the history indexer).
    pub log_offset: Option<i64>,
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

/// One RADIUS accounting record as received, and the SIM's live session row it leads to (written in
/// the same transaction, so the live table never runs ahead of the history).
#[derive(Debug, Clone)]
pub struct AccountingRecord {
    pub at: i64,
    pub client_ip: String,
    /// SHA-256 of the client address and the packet bytes: a retransmission is stored once.
    pub packet_key: [u8; 32],
    pub status: &'static str,
    pub imsi: Option<String>,
    pub msisdn: Option<String>,
    pub framed_ip: Option<String>,
    pub session_id: Option<String>,
    pub input_octets: i64,
    pub output_octets: i64,
    pub session_time: Option<i64>,
    /// The SIM's session row after this record (none when the record changes no live session).
    pub session: Option<SimSessionRow>,
}

/// A SIM's live session (`sim_sessions`): its current address and the session's byte counts.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SimSessionRow {
    pub imsi: String,
    pub session_id: Option<String>,
    pub client_ip: String,
    pub framed_ip: Option<String>,
    pub msisdn: Option<String>,
    pub online: bool,
    pub started_at: i64,
    pub updated_at: i64,
    pub input_octets: i64,
    pub output_octets: i64,
}

/// What the writer stores, in one transaction per batch of operations.
#[derive(Debug, Clone)]
pub enum Record {
    Message(MessageRecord),
    Auth(AuthAttempt),
    Security(SecurityEvent),
    Accounting(Box<AccountingRecord>),
    /// Marks every live session of one RADIUS client offline (Accounting-On/Off: the NAS restarted).
    SessionsOffline {
        client_ip: String,
        at: i64,
    },
    /// Where a consumer of the message log stands, written with the rows it produced from it.
    Cursor {
        name: &'static str,
        offset: i64,
    },
}
