//! Detection and response views: detections, decisions, actions with their input and output as JSON,
//! and collected device reports with their bodies as JSON.

use super::{at, json};
use sekisho_core::{Action, ActionState, RuleId, Severity, Threat};
use sekisho_store::detections::DetectionRow;
use sekisho_store::response::{ActionRow, DecisionRow, ReportRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A detection (an incident: one rule on one device, repeated findings grouped).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DetectionView {
    pub id: i64,
    pub field_id: String,
    pub device_id: Option<String>,
    pub rule: RuleId,
    pub threat: Threat,
    pub severity: Severity,
    pub summary: String,
    /// What was seen against what was allowed: observed values, thresholds, window, baseline.
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub first_at: String,
    pub last_at: String,
    /// Findings grouped into this detection.
    pub count: i64,
    pub status: String,
}

impl From<DetectionRow> for DetectionView {
    fn from(d: DetectionRow) -> Self {
        Self {
            id: d.id,
            field_id: d.field_id,
            device_id: d.device_id,
            rule: d.rule,
            threat: d.threat,
            severity: d.severity,
            summary: d.summary,
            evidence: json(&d.evidence),
            first_at: at(d.first_at),
            last_at: at(d.last_at),
            count: d.count,
            status: d.status,
        }
    }
}

/// One action and where it stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionView {
    pub id: i64,
    /// None for an action a person started.
    pub decision_id: Option<i64>,
    pub field_id: String,
    pub device_id: Option<String>,
    pub action: Action,
    /// `skipped`: the action had nothing to act on (a notification whose target the field has not
    /// set); `output.reason` says why.
    pub state: ActionState,
    /// `response:detection <id>`, `script:<name>` or `user:<name>`.
    pub trigger: String,
    /// What the action was given (the detection, an undo's original action).
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// What the action did (a mail's recipients, a SIM's state, a report's id, a skip's reason).
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub attempts: i64,
    /// When a pending action runs (next attempt).
    pub next_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub approved_by: Option<String>,
    /// The action this one undid.
    pub undo_of: Option<i64>,
    /// The action that undid this one.
    pub undone_by: Option<i64>,
}

impl From<ActionRow> for ActionView {
    fn from(a: ActionRow) -> Self {
        Self {
            id: a.id,
            decision_id: a.decision_id,
            field_id: a.field_id,
            device_id: a.device_id,
            action: a.action,
            state: a.state,
            trigger: a.trigger,
            input: a.input.as_deref().map(json),
            output: a.output.as_deref().map(json),
            error: a.error,
            attempts: a.attempts,
            next_at: at(a.next_at),
            created_at: at(a.created_at),
            updated_at: at(a.updated_at),
            approved_by: a.approved_by,
            undo_of: a.undo_of,
            undone_by: a.undone_by,
        }
    }
}

/// What the playbook made of one detection at one severity, with its actions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub id: i64,
    pub decided_at: String,
    pub detection_id: i64,
    pub severity: Severity,
    pub field_id: String,
    pub device_id: Option<String>,
    pub threat: Threat,
    pub rule: RuleId,
    /// `playbook.<name>`, `actions.<threat>` or `none`.
    pub decided_by: String,
    /// The earlier decision of the same incident when this one took no new actions.
    pub suppressed_by: Option<i64>,
    pub note: Option<String>,
    /// Its actions, in the order they were decided.
    pub actions: Vec<ActionView>,
}

impl DecisionView {
    pub fn new(d: DecisionRow, actions: Vec<ActionRow>) -> Self {
        Self {
            id: d.id,
            decided_at: at(d.at),
            detection_id: d.detection_id,
            severity: d.severity,
            field_id: d.field_id,
            device_id: d.device_id,
            threat: d.threat,
            rule: d.rule,
            decided_by: d.decided_by,
            suppressed_by: d.suppressed_by,
            note: d.note,
            actions: actions.into_iter().map(ActionView::from).collect(),
        }
    }
}

/// Device information collected for the administrator (V29).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportView {
    pub id: i64,
    pub collected_at: String,
    pub field_id: String,
    pub device_id: String,
    /// The `collect_info` action that collected it.
    pub action_id: Option<i64>,
    /// The device's registration, SIM, latest self-report, messages, authentication attempts,
    /// detections and actions.
    #[schema(value_type = Object)]
    pub body: Value,
}

impl From<ReportRow> for ReportView {
    fn from(r: ReportRow) -> Self {
        Self {
            id: r.id,
            collected_at: at(r.at),
            field_id: r.field_id,
            device_id: r.device_id,
            action_id: r.action_id,
            body: json(&r.body),
        }
    }
}
