//! The events on the topics. They own their data and name devices and fields by id, so they can
//! cross a process boundary: a consumer looks up what else it needs in its own registry.

use bytes::Bytes;
use sekisho_core::detection::SimVolumeFacts;
use sekisho_core::telemetry::TelemetryMeta;
use sekisho_core::{DeviceId, ErrorCode, FieldId, RuleId, Severity, Threat};
use std::net::IpAddr;

/// What a frontend received, after it was stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// A telemetry object of a known device, accepted or refused.
    Message(ReceivedMessage),
    /// A token request of a field (the device may be unknown).
    Auth(ReceivedAuth),
    /// A closed window of a SIM session, with both sides' byte counts (V19, ※3).
    SimWindow(SimWindow),
}

/// A telemetry object of a known device.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    pub field: FieldId,
    pub device: DeviceId,
    /// Gateway receive time (Unix ms).
    pub rx_ms: i64,
    pub source_ip: IpAddr,
    /// Bytes of the object as received.
    pub size: u32,
    /// Why the gateway refused it, when it did.
    pub rejected: Option<ErrorCode>,
    /// What the gateway read of its envelope (absent for a refused message).
    pub meta: Option<TelemetryMeta>,
    /// The accepted object's bytes (a slice of the request body, not a copy).
    pub body: Option<Bytes>,
}

/// A token request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedAuth {
    pub field: FieldId,
    pub device: Option<DeviceId>,
    pub at_ms: i64,
    pub success: bool,
    pub unique_id: String,
    pub source_ip: IpAddr,
    /// The body was not JSON in UTF-8 (refused `malformed_json`).
    pub malformed: bool,
}

/// A closed SIM window of a registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimWindow {
    pub field: FieldId,
    pub device: DeviceId,
    pub at_ms: i64,
    /// The detection facts, as the accounting listener computed them.
    pub counts: SimVolumeFacts,
}

/// A new or escalated detection (an incident), by id: the row is already stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectionEvent {
    pub id: i64,
    pub field_id: String,
    pub device_id: Option<String>,
    pub rule: RuleId,
    pub threat: Threat,
    pub severity: Severity,
}
