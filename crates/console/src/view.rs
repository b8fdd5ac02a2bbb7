//! What the templates print: rows already turned into display text (times in UTC, states in words), so
//! templates stay free of logic. Plus the small URL helpers the pages share.

use super::i18n::Text;
use sekisho_admin::Admin;
use sekisho_core::{Device, DeviceId, DeviceStatus, Field, FieldId};
use sekisho_http::ApiResult;
use sekisho_store::history::{AuthAttemptRow, MessageMeta};
use sekisho_store::outbox::OutboxCounts;
use sekisho_store::prelude::*;

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn when(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Seconds as `3d 4h 05m` / `4h 05m` / `5m`.
pub fn duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h {m:02}m"),
    }
}

/// One field in a table.
pub struct FieldRow {
    pub id: String,
    pub name: String,
    pub auth_id: String,
    pub auth_mode: &'static str,
    pub devices: usize,
    pub outbox: OutboxCounts,
    pub created: String,
}

impl FieldRow {
    pub async fn of(app: &Admin, t: &Text, f: &Field) -> ApiResult<Self> {
        let outbox = app.store.outbox_counts(Some(f.id.as_str())).await?;
        Ok(FieldRow {
            id: f.id.0.clone(),
            name: f.name.clone(),
            auth_id: f.auth_id.clone(),
            auth_mode: t.mode(f.auth_mode),
            devices: app.registry.devices_of(&f.id).len(),
            outbox,
            created: when(f.created_at),
        })
    }
}

/// One device in the field page's table (also the htmx fragment its buttons swap in).
pub struct DeviceRow {
    pub id: String,
    pub field_id: String,
    pub unique_id: String,
    pub name: String,
    pub imsi: String,
    pub critical: bool,
    /// `active`, `disabled`, `quarantined` or `deleted`, for the badge's style.
    pub status: &'static str,
    pub status_label: &'static str,
    /// Which buttons to show (none for users who may not change the field).
    pub can_enable: bool,
    pub can_disable: bool,
    pub can_delete: bool,
    /// A problem with the last action on this row.
    pub note: Option<String>,
    /// The user has a second factor: the disable and delete forms ask for a code.
    pub totp: bool,
}

impl DeviceRow {
    pub fn of(t: &Text, d: &Device, manage: bool) -> Self {
        let live = d.status != DeviceStatus::Deleted;
        DeviceRow {
            id: d.id.0.clone(),
            field_id: d.field_id.0.clone(),
            unique_id: d.unique_id.clone(),
            name: d.name.clone().unwrap_or_default(),
            imsi: d.sim.as_ref().map(|s| s.imsi.clone()).unwrap_or_default(),
            critical: d.critical,
            status: d.status.as_str(),
            status_label: t.device_status(d.status),
            can_enable: manage && live && d.status != DeviceStatus::Active,
            can_disable: manage && d.status == DeviceStatus::Active,
            can_delete: manage && live,
            note: None,
            totp: false,
        }
    }

    /// Asks for a second-factor code with the disable and delete buttons when `on`.
    pub fn with_totp(mut self, on: bool) -> Self {
        self.totp = on;
        self
    }
}

/// Names for ids in history rows: the field's name, the device's unique ID (while it is registered).
pub fn field_name(app: &Admin, id: Option<&str>) -> String {
    id.map(|id| {
        app.registry
            .field(&FieldId(id.to_owned()))
            .map_or_else(|| id.to_owned(), |f| f.name.clone())
    })
    .unwrap_or_default()
}

pub fn device_label(app: &Admin, id: Option<&str>, unique_id: Option<&str>) -> String {
    match (id, unique_id) {
        (_, Some(u)) => u.to_owned(),
        (Some(id), None) => app
            .registry
            .device(&DeviceId(id.to_owned()))
            .map_or_else(|| id.to_owned(), |d| d.device.unique_id.clone()),
        (None, None) => String::new(),
    }
}

/// One received message (metadata only).
pub struct MessageRow {
    pub when: String,
    pub field: String,
    pub device: String,
    pub device_id: String,
    pub source_ip: String,
    pub size: i64,
    pub outcome: String,
    pub outcome_label: String,
    pub reason: String,
    pub forwarding: String,
}

impl MessageRow {
    pub fn of(app: &Admin, t: &Text, m: &MessageMeta) -> Self {
        MessageRow {
            when: when(m.at),
            field: field_name(app, m.field_id.as_deref()),
            device: device_label(app, m.device_id.as_deref(), None),
            device_id: m.device_id.clone().unwrap_or_default(),
            source_ip: m.source_ip.clone(),
            size: m.size,
            outcome: m.outcome.clone(),
            outcome_label: t.word(&m.outcome),
            reason: m.reason.clone().unwrap_or_default(),
            forwarding: t.word(&m.forward_status),
        }
    }
}

/// One detection (an incident).
pub struct DetectionRow {
    pub when: String,
    pub field: String,
    pub device: String,
    pub device_id: String,
    pub rule: String,
    pub threat_label: String,
    pub severity: String,
    pub severity_label: String,
    pub summary: String,
    pub count: i64,
}

impl DetectionRow {
    pub fn of(app: &Admin, t: &Text, d: &sekisho_store::detections::DetectionRow) -> Self {
        DetectionRow {
            when: when(d.last_at),
            field: field_name(app, Some(&d.field_id)),
            device: device_label(app, d.device_id.as_deref(), None),
            device_id: d.device_id.clone().unwrap_or_default(),
            rule: d.rule.to_string(),
            threat_label: t.word(d.threat.as_str()),
            severity: d.severity.to_string(),
            severity_label: t.word(d.severity.as_str()),
            summary: d.summary.clone(),
            count: d.count,
        }
    }
}

/// One device authentication attempt.
pub struct AuthRow {
    pub when: String,
    pub field: String,
    pub device: String,
    pub device_id: String,
    pub source_ip: String,
    pub method: String,
    pub outcome: String,
    pub outcome_label: String,
    pub reason: String,
}

impl AuthRow {
    pub fn of(app: &Admin, t: &Text, a: &AuthAttemptRow) -> Self {
        AuthRow {
            when: when(a.at),
            field: field_name(app, a.field_id.as_deref()),
            device: device_label(app, a.device_id.as_deref(), a.unique_id.as_deref()),
            device_id: a.device_id.clone().unwrap_or_default(),
            source_ip: a.source_ip.clone(),
            method: a.method.clone(),
            outcome: a.outcome.clone(),
            outcome_label: t.word(&a.outcome),
            reason: a.reason.clone().unwrap_or_default(),
        }
    }
}

/// A query string from pairs, leaving out empty values: `?a=1&b=x%20y`.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Whether `path` is a console page to send the browser back to (never another site).
pub fn is_console_path(path: &str) -> bool {
    (path == "/console" || path.starts_with("/console/") || path.starts_with("/console?"))
        && !path.contains("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_durations() {
        assert_eq!(when(1_795_611_600_250), "2026-11-25 13:00:00");
        assert_eq!(duration(59), "0m");
        assert_eq!(duration(3_660), "1h 01m");
        assert_eq!(duration(2 * 86_400 + 5 * 3600 + 7 * 60), "2d 5h 07m");
    }

    #[test]
    fn builds_query_strings() {
        assert_eq!(query(&[]), "");
        assert_eq!(query(&[("a", ""), ("b", "x y&z")]), "?b=x%20y%26z");
        assert_eq!(
            query(&[("kind", "auth"), ("before", "42")]),
            "?kind=auth&before=42"
        );
    }

    #[test]
    fn goes_back_only_to_console_pages() {
        for ok in [
            "/console",
            "/console/fields/f_1",
            "/console/history?kind=auth",
        ] {
            assert!(is_console_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/console",
            "/console//evil",
            "/console/\\evil",
            "/consoleevil",
            "/api/v1/fields",
            "/console/\nx",
        ] {
            assert!(!is_console_path(bad), "{bad}");
        }
    }
}
