//! Device-audit views: a device's self-reports with what changed, and audit runs with their findings.

use super::{at, json};
use sekisho_detect::audit::SelfReport;
use sekisho_store::audit::{AuditRunRow, StateRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A device's self-report, as stored, with what differs from its previous one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateView {
    pub id: i64,
    pub reported_at: String,
    pub report: SelfReport,
    /// `first_report`, or what differs from the previous report (`firmware_version`,
    /// `config_hash`, `processes`, `software`, `facts`).
    pub changed: Vec<String>,
}

impl From<StateRow> for StateView {
    fn from(s: StateRow) -> Self {
        Self {
            id: s.id,
            reported_at: at(s.at),
            report: serde_json::from_str(&s.body).unwrap_or_default(),
            changed: serde_json::from_str(&s.changed).unwrap_or_default(),
        }
    }
}

/// What an audit found.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditFinding {
    /// e.g. `audit.config_mismatch`, `audit.unknown_process`, `script.<name>`.
    pub rule: String,
    /// Absent for runs recorded before findings were kept (only the rule was).
    pub threat: Option<String>,
    pub severity: Option<String>,
    pub summary: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
}

impl AuditFinding {
    /// A recorded finding: an object, or (older runs) the rule's name alone.
    fn of(v: Value) -> Self {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        match v {
            Value::String(rule) => Self {
                rule,
                threat: None,
                severity: None,
                summary: None,
                evidence: None,
            },
            v => Self {
                rule: text(&v, "rule").unwrap_or_default(),
                threat: text(&v, "threat"),
                severity: text(&v, "severity"),
                summary: text(&v, "summary"),
                evidence: v.get("evidence").cloned(),
            },
        }
    }
}

/// One audit of a device's self-report (or of its silence).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRunView {
    pub id: i64,
    pub audited_at: String,
    pub field_id: String,
    pub device_id: String,
    /// `report` (a self-report arrived), `baseline` (the baseline changed) or `periodic` (the
    /// silence check).
    pub trigger: String,
    /// `clean`, `findings`, `learning` or `no_baseline`.
    pub outcome: String,
    pub findings: Vec<AuditFinding>,
}

impl From<AuditRunRow> for AuditRunView {
    fn from(r: AuditRunRow) -> Self {
        let findings = match json(&r.rules) {
            Value::Array(items) => items.into_iter().map(AuditFinding::of).collect(),
            _ => Vec::new(),
        };
        Self {
            id: r.id,
            audited_at: at(r.at),
            field_id: r.field_id,
            device_id: r.device_id,
            trigger: r.trigger,
            outcome: r.outcome,
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rules: &str) -> AuditRunRow {
        AuditRunRow {
            id: 1,
            at: 0,
            field_id: "f".into(),
            device_id: "d".into(),
            trigger: "report".into(),
            outcome: "findings".into(),
            rules: rules.into(),
        }
    }

    #[test]
    fn findings_are_read_from_objects_and_from_older_rule_names() {
        let v = AuditRunView::from(run(
            r#"[{"rule":"audit.config_mismatch","threat":"hijacking","severity":"high","summary":"s","evidence":{"config_hash":"x"}}]"#,
        ));
        let f = &v.findings[0];
        assert_eq!(f.rule, "audit.config_mismatch");
        assert_eq!(f.severity.as_deref(), Some("high"));
        assert_eq!(f.evidence, Some(serde_json::json!({"config_hash": "x"})));
        let old = AuditRunView::from(run(r#"["audit.silent"]"#));
        assert_eq!(old.findings[0].rule, "audit.silent");
        assert_eq!(old.findings[0].threat, None);
        assert!(AuditRunView::from(run("[]")).findings.is_empty());
    }
}
