//! What a rule reports: the threat (想定リスク), how severe, which rule, and the evidence. The vocabulary
//! itself (threats, severities, rule ids) is the domain core's.

pub use sekisho_core::detection::{Rule, RuleId, Severity, Threat};
use serde_json::Value;

/// One rule's verdict on one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: RuleId,
    pub threat: Threat,
    pub severity: Severity,
    /// One sentence for people: what was seen against what was allowed.
    pub summary: String,
    /// Observed values, thresholds, window, baseline.
    pub evidence: Value,
}

impl Finding {
    pub fn new(
        rule: RuleId,
        threat: Threat,
        severity: Severity,
        summary: String,
        evidence: Value,
    ) -> Self {
        Self {
            rule,
            threat,
            severity,
            summary,
            evidence,
        }
    }

    /// What field script `script` emitted, as a finding of rule `script.<name>`; with the device the
    /// script named, if any (periodic scripts name theirs).
    pub fn from_script(script: &str, e: sekisho_script::Emitted) -> (Option<String>, Self) {
        let summary = if e.summary.is_empty() {
            format!("script {script} reported {}", e.threat)
        } else {
            e.summary
        };
        let finding = Self::new(
            RuleId::script(script),
            e.threat,
            e.severity,
            summary,
            e.evidence,
        );
        (e.device, finding)
    }
}
