//! History views: received messages (metadata), authentication attempts, connection events, dead
//! letters, and the outbox counts.

use super::at;
use sekisho_store::history::{AuthAttemptRow, MessageMeta, SecurityEventRow};
use sekisho_store::outbox::{DeadLetter, OutboxCounts};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Metadata of one received message (the body: `GET /api/v1/history/messages/{id}/body`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// Arrival order, and the paging cursor.
    pub seq: i64,
    pub id: String,
    pub received_at: String,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    pub source_ip: String,
    pub size: i64,
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// The error code of a rejected message.
    pub reason: Option<String>,
    /// The time the device put in `ts`.
    pub device_time_at: Option<String>,
    /// The device's `seq`.
    pub device_seq: Option<i64>,
    pub buffered: bool,
    /// `pending`, `forwarded`, `dead` (dead-lettered) or `none` (rejected, nothing to forward).
    pub forward_status: String,
    pub forward_attempts: i64,
    pub forwarded_at: Option<String>,
}

impl From<MessageMeta> for MessageView {
    fn from(m: MessageMeta) -> Self {
        Self {
            seq: m.seq,
            id: m.id,
            received_at: at(m.at),
            field_id: m.field_id,
            device_id: m.device_id,
            source_ip: m.source_ip,
            size: m.size,
            outcome: m.outcome,
            reason: m.reason,
            device_time_at: m.device_ts.map(at),
            device_seq: m.device_seq,
            buffered: m.buffered,
            forward_status: m.forward_status,
            forward_attempts: m.forward_attempts,
            forwarded_at: m.forwarded_at.map(at),
        }
    }
}

/// One token request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthAttemptView {
    pub id: i64,
    pub attempted_at: String,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    pub unique_id: Option<String>,
    pub source_ip: String,
    /// `secret` or `certificate`.
    pub method: String,
    /// `success`, `failure` or `throttled`.
    pub outcome: String,
    pub reason: Option<String>,
}

impl From<AuthAttemptRow> for AuthAttemptView {
    fn from(a: AuthAttemptRow) -> Self {
        Self {
            id: a.id,
            attempted_at: at(a.at),
            field_id: a.field_id,
            device_id: a.device_id,
            unique_id: a.unique_id,
            source_ip: a.source_ip,
            method: a.method,
            outcome: a.outcome,
            reason: a.reason,
        }
    }
}

/// One connection-level event (plaintext on a TLS port, a failed handshake, the connection limit).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecurityEventView {
    pub id: i64,
    pub occurred_at: String,
    /// `device` or `admin`.
    pub listener: String,
    pub source_ip: String,
    pub kind: String,
    pub detail: Option<String>,
}

impl From<SecurityEventRow> for SecurityEventView {
    fn from(e: SecurityEventRow) -> Self {
        Self {
            id: e.id,
            occurred_at: at(e.at),
            listener: e.listener,
            source_ip: e.source_ip,
            kind: e.kind,
            detail: e.detail,
        }
    }
}

/// A message the cloud never got, and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// The message's `seq`: the paging cursor.
    pub message_seq: i64,
    pub message_id: String,
    pub device_id: Option<String>,
    pub received_at: String,
    pub dead_at: String,
    pub reason: String,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        Self {
            message_seq: d.message_seq,
            message_id: d.message_id,
            device_id: d.device_id,
            received_at: at(d.received_at),
            dead_at: at(d.dead_at),
            reason: d.reason,
        }
    }
}

/// How many messages are in each forwarding state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxView {
    pub pending: i64,
    pub forwarded: i64,
    pub dead: i64,
    /// When the oldest message still waiting for the cloud arrived.
    pub oldest_pending_at: Option<String>,
}

impl From<OutboxCounts> for OutboxView {
    fn from(c: OutboxCounts) -> Self {
        Self {
            pending: c.pending,
            forwarded: c.forwarded,
            dead: c.dead,
            oldest_pending_at: c.oldest_pending_at.map(at),
        }
    }
}
