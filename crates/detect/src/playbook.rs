//! The response playbook of a template: its rules as written ([`PlaybookRule`], names as text so
//! that every wrong one can be listed) and compiled ([`Playbook`]: typed, first match wins, then
//! the simple threat → actions form).

use sekisho_core::{Action, Rule, RuleId, Severity, Threat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One rule of the response playbook: when a detection matches every condition given, these actions
/// run (the first matching rule wins; no match falls back to `actions[threat]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybookRule {
    /// Shown in records (`[a-z0-9_-]+`).
    pub name: String,
    /// Threats it applies to; empty: any.
    #[serde(default)]
    pub threats: Vec<String>,
    /// Rules it applies to, exactly or by prefix (`sim.*`); empty: any.
    #[serde(default)]
    pub rules: Vec<String>,
    /// At least this severity.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only devices marked critical (`true`) or only the others (`false`).
    #[serde(default)]
    pub critical: Option<bool>,
    /// In order. Disruptive ones on a critical device wait for approval.
    pub actions: Vec<String>,
}

/// A template's playbook, ready to decide.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Playbook {
    pub rules: Vec<Step>,
    pub by_threat: BTreeMap<Threat, Vec<Action>>,
}

/// One playbook rule, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    /// Empty: any.
    pub threats: Vec<Threat>,
    /// Exact rule ids or `family.*`; empty: any.
    pub rules: Vec<String>,
    pub min_severity: Option<Severity>,
    pub critical: Option<bool>,
    pub actions: Vec<Action>,
}

impl Step {
    pub fn matches(
        &self,
        threat: Threat,
        rule: &RuleId,
        severity: Severity,
        critical: bool,
    ) -> bool {
        (self.threats.is_empty() || self.threats.contains(&threat))
            && (self.rules.is_empty() || self.rules.iter().any(|r| rule.matches(r)))
            && self.min_severity.is_none_or(|m| severity >= m)
            && self.critical.is_none_or(|c| c == critical)
    }
}

impl Playbook {
    /// The actions for a detection: the first matching rule's, else the threat's, and the name of
    /// what decided (`playbook.<name>`, `actions.<threat>` or `none`).
    pub fn actions_for(
        &self,
        threat: Threat,
        rule: &RuleId,
        severity: Severity,
        critical: bool,
    ) -> (String, Vec<Action>) {
        if let Some(r) = self
            .rules
            .iter()
            .find(|r| r.matches(threat, rule, severity, critical))
        {
            return (format!("playbook.{}", r.name), r.actions.clone());
        }
        match self.by_threat.get(&threat) {
            Some(a) => (format!("actions.{threat}"), a.clone()),
            None => ("none".to_owned(), Vec::new()),
        }
    }

    /// Types the template's playbook; each problem goes to `p` with where it is.
    pub(crate) fn compile(
        actions: &BTreeMap<String, Vec<String>>,
        rules: &[PlaybookRule],
        p: &mut Vec<String>,
    ) -> Playbook {
        let mut by_threat = BTreeMap::new();
        for (threat, names) in actions {
            let acts = playbook_actions(&format!("actions.{threat}"), names, p);
            match threat.parse::<Threat>() {
                Ok(t) => {
                    by_threat.insert(t, acts);
                }
                Err(_) => p.push(format!(
                    "actions: '{threat}' is not a threat ({})",
                    list(Threat::ALL)
                )),
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut steps = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let at = format!("playbook[{i}]");
            let well_named = !r.name.is_empty()
                && r.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !well_named {
                p.push(format!("{at}.name: '{}' must be [a-z0-9_-]+", r.name));
            }
            if !names.insert(r.name.as_str()) {
                p.push(format!("{at}.name: '{}' appears twice", r.name));
            }
            let mut threats = Vec::new();
            for t in &r.threats {
                match t.parse::<Threat>() {
                    Ok(t) => threats.push(t),
                    Err(_) => p.push(format!("{at}.threats: '{t}' is not a threat")),
                }
            }
            for pattern in &r.rules {
                if !known_pattern(pattern) {
                    p.push(format!(
                        "{at}.rules: '{pattern}' is neither a rule (rate.max, script.<name>, …) nor a family (sim.*)"
                    ));
                }
            }
            if r.actions.is_empty() {
                p.push(format!("{at}.actions: name at least one action"));
            }
            steps.push(Step {
                name: r.name.clone(),
                threats,
                rules: r.rules.clone(),
                min_severity: r.min_severity,
                critical: r.critical,
                actions: playbook_actions(&format!("{at}.actions"), &r.actions, p),
            });
        }
        Playbook {
            rules: steps,
            by_threat,
        }
    }
}

/// A rule id (`rate.max`, `script.x`) or a family of them (`sim.*`, `script.*`).
fn known_pattern(pattern: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(family) => {
            family == "script"
                || Rule::ALL
                    .iter()
                    .any(|r| RuleId::from(*r).family() == family)
        }
        None => pattern.parse::<RuleId>().is_ok(),
    }
}

/// The actions named at `at`, each one a playbook may take.
fn playbook_actions(at: &str, names: &[String], p: &mut Vec<String>) -> Vec<Action> {
    let mut out = Vec::new();
    for n in names {
        match n.parse::<Action>() {
            Ok(a) if Action::PLAYBOOK.contains(&a) => out.push(a),
            _ => p.push(format!(
                "{at}: '{n}' is not one of {}",
                list(Action::PLAYBOOK)
            )),
        }
    }
    out
}

fn list<T: std::fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
