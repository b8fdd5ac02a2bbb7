//! The webhook's JSON body for an incident.

use super::Incident;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

/// RFC 3339 UTC with milliseconds, for the webhook.
fn rfc3339_ms(ms: i64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// The webhook's JSON for `i`, as decided in `decision_id`. The shape is stable (fields are only
/// ever added):
///
/// ```json
/// {
///   "type": "sekisho.detection",
///   "version": 1,
///   "decision_id": 42,
///   "field": {"id": "f-1", "name": "Factory A"},
///   "device": {"id": "d-1", "name": "Pump 1", "unique_id": "pump-0001", "critical": false},
///   "detection": {
///     "threat": "hijacking", "severity": "high", "rule": "V20",
///     "summary": "…", "evidence": {…},
///     "first_at": "2026-05-01T03:00:00.000Z", "last_at": "…",
///     "first_at_ms": 1777604400000, "last_at_ms": 1777604400000, "count": 1
///   },
///   "actions": [{"action": "stop_auth", "state": "done"}],
///   "console_url": "https://…/console/detections?field=f-1"
/// }
/// ```
///
/// `device` is `null` for a detection about the whole field; `device.name` and `console_url`
/// may be `null`. Times are UTC.
pub fn webhook_body(i: &Incident, decision_id: i64) -> Value {
    let device = if i.device_id.is_empty() && i.unique_id.is_empty() {
        Value::Null
    } else {
        json!({
            "id": i.device_id,
            "name": i.device_name,
            "unique_id": i.unique_id,
            "critical": i.critical,
        })
    };
    let actions: Vec<Value> = i
        .actions
        .iter()
        .map(|(action, state)| json!({"action": action, "state": state}))
        .collect();
    json!({
        "type": "sekisho.detection",
        "version": 1,
        "decision_id": decision_id,
        "field": {"id": i.field_id, "name": i.field_name},
        "device": device,
        "detection": {
            "threat": i.threat,
            "severity": i.severity,
            "rule": i.rule,
            "summary": i.summary,
            "evidence": i.evidence,
            "first_at": rfc3339_ms(i.first_at_ms),
            "last_at": rfc3339_ms(i.last_at_ms),
            "first_at_ms": i.first_at_ms,
            "last_at_ms": i.last_at_ms,
            "count": i.count,
        },
        "actions": actions,
        "console_url": i.console_url,
    })
}
