//! Carrier views: a SIM's live session from RADIUS accounting, its accounting records, and the calls
//! made to the carrier's SIM API.

use super::at;
use sekisho_store::SimSessionRow;
use sekisho_store::carrier::{AccountingRow, SimActionRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A SIM's live session: its current address and the session's byte counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimSessionView {
    pub imsi: String,
    pub session_id: Option<String>,
    /// The packet gateway (RADIUS client) that reported it.
    pub client_ip: String,
    /// The address the SIM has.
    pub framed_ip: Option<String>,
    pub msisdn: Option<String>,
    pub online: bool,
    pub started_at: String,
    pub updated_at: String,
    /// Uplink bytes of the session so far.
    pub input_octets: i64,
    /// Downlink bytes of the session so far.
    pub output_octets: i64,
}

impl From<SimSessionRow> for SimSessionView {
    fn from(s: SimSessionRow) -> Self {
        Self {
            imsi: s.imsi,
            session_id: s.session_id,
            client_ip: s.client_ip,
            framed_ip: s.framed_ip,
            msisdn: s.msisdn,
            online: s.online,
            started_at: at(s.started_at),
            updated_at: at(s.updated_at),
            input_octets: s.input_octets,
            output_octets: s.output_octets,
        }
    }
}

/// One accounting record as the packet gateway sent it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountingView {
    pub id: i64,
    pub received_at: String,
    pub client_ip: String,
    /// `start`, `interim`, `stop`, `accounting_on`, `accounting_off` or `other`.
    pub status: String,
    pub imsi: Option<String>,
    pub msisdn: Option<String>,
    pub framed_ip: Option<String>,
    pub session_id: Option<String>,
    /// Uplink bytes of the session so far.
    pub input_octets: i64,
    /// Downlink bytes of the session so far.
    pub output_octets: i64,
    /// How long the session has lasted (Acct-Session-Time).
    pub session_time_secs: Option<i64>,
}

impl From<AccountingRow> for AccountingView {
    fn from(a: AccountingRow) -> Self {
        Self {
            id: a.id,
            received_at: at(a.at),
            client_ip: a.client_ip,
            status: a.status,
            imsi: a.imsi,
            msisdn: a.msisdn,
            framed_ip: a.framed_ip,
            session_id: a.session_id,
            input_octets: a.input_octets,
            output_octets: a.output_octets,
            session_time_secs: a.session_time,
        }
    }
}

/// One call to the carrier's SIM API and how it ended.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimActionView {
    pub id: i64,
    pub called_at: String,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    /// The IMSI or ICCID sent to the carrier.
    pub sim: String,
    /// `suspend`, `resume`, `status` or `usage`.
    pub action: String,
    /// Who asked: `user:<name>`, `response:<decision>` or `system`.
    pub actor: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The carrier error code when it failed.
    pub error: Option<String>,
    pub detail: Option<String>,
    pub attempts: i64,
    pub elapsed_ms: i64,
}

impl From<SimActionRow> for SimActionView {
    fn from(a: SimActionRow) -> Self {
        Self {
            id: a.id,
            called_at: at(a.at),
            field_id: a.field_id,
            device_id: a.device_id,
            sim: a.sim,
            action: a.action,
            actor: a.actor,
            outcome: a.outcome,
            error: a.error,
            detail: a.detail,
            attempts: a.attempts,
            elapsed_ms: a.elapsed_ms,
        }
    }
}
