//! What a rule reports: the threat (想定リスク), how severe, which rule, and the evidence.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The trial's threat categories (004 p.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Threat {
    /// 不正アクセス
    UnauthorizedAccess,
    /// なりすまし
    Spoofing,
    /// 乗っ取り
    Hijacking,
    /// 盗聴
    Eavesdropping,
    /// 盗難
    Theft,
}

impl Threat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnauthorizedAccess => "unauthorized_access",
            Self::Spoofing => "spoofing",
            Self::Hijacking => "hijacking",
            Self::Eavesdropping => "eavesdropping",
            Self::Theft => "theft",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unauthorized_access" => Self::UnauthorizedAccess,
            "spoofing" => Self::Spoofing,
            "hijacking" => Self::Hijacking,
            "eavesdropping" => Self::Eavesdropping,
            "theft" => Self::Theft,
            _ => return None,
        })
    }
}

/// Severity, in increasing order.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing (a first silence step).
    Notice,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notice => "notice",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "notice" => Self::Notice,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

/// One rule's verdict on one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Stable rule id, e.g. `rate.max`, `silence.theft`, `script.my_rule`.
    pub rule: String,
    pub threat: Threat,
    pub severity: Severity,
    /// One sentence for people: what was seen against what was allowed.
    pub summary: String,
    /// Observed values, thresholds, window, baseline.
    pub evidence: serde_json::Value,
}

impl Finding {
    pub fn new(
        rule: &str,
        threat: Threat,
        severity: Severity,
        summary: String,
        evidence: serde_json::Value,
    ) -> Self {
        Self {
            rule: rule.to_owned(),
            threat,
            severity,
            summary,
            evidence,
        }
    }
}
