//! Threat-response storage (subsystem ④): decisions, their actions as a persisted state machine,
//! approvals, where a field's notifications go, collected device reports and update requests.
//! The state machine and its invariants are described in `migrations/0004_response.sql`.

use crate::detections::DetectionRow;
use crate::{Result, Store};
use sekisho_core::{Action, ActionState, RuleId, Severity, Threat};
use sqlx::{QueryBuilder, Sqlite};
use std::future::Future;

/// What the playbook made of one detection at one severity.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DecisionRow {
    pub id: i64,
    pub at: i64,
    pub detection_id: i64,
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    pub field_id: String,
    pub device_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub threat: Threat,
    #[sqlx(try_from = "String")]
    pub rule: RuleId,
    /// `playbook.<name>`, `actions.<threat>` or `none`.
    pub decided_by: String,
    /// The earlier decision of the same incident when this one took no new actions.
    pub suppressed_by: Option<i64>,
    pub note: Option<String>,
}

/// One action and where it stands.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActionRow {
    pub id: i64,
    pub decision_id: Option<i64>,
    pub field_id: String,
    pub device_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub action: Action,
    #[sqlx(try_from = "String")]
    pub state: ActionState,
    /// `response:<decision>`, `script:<name>` or `user:<name>`.
    pub trigger: String,
    /// JSON.
    pub input: Option<String>,
    /// JSON.
    pub output: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub next_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub approved_by: Option<String>,
    pub undo_of: Option<i64>,
    pub undone_by: Option<i64>,
}

/// A decision to store.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub at: i64,
    pub detection_id: i64,
    pub severity: Severity,
    pub field_id: String,
    pub device_id: Option<String>,
    pub threat: Threat,
    pub rule: RuleId,
    pub decided_by: String,
    pub suppressed_by: Option<i64>,
    pub note: Option<String>,
}

/// An action to store.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub field_id: String,
    pub device_id: Option<String>,
    pub action: Action,
    pub state: ActionState,
    pub trigger: String,
    pub input: Option<String>,
    pub undo_of: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub visible_fields: Option<Vec<String>>,
    pub field: Option<String>,
    pub device: Option<String>,
    pub decision: Option<i64>,
    pub state: Option<ActionState>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A collected device report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    pub id: i64,
    pub at: i64,
    pub field_id: String,
    pub device_id: String,
    pub action_id: Option<i64>,
    /// JSON.
    pub body: String,
}

/// An update asked of a device.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UpdateRequestRow {
    pub id: i64,
    pub at: i64,
    pub field_id: String,
    pub device_id: String,
    pub action_id: Option<i64>,
    pub reason: String,
    pub state: String,
}

const ACTION_COLUMNS: &str = "id, decision_id, field_id, device_id, action, state, trigger, input, output, error, \
     attempts, next_at, created_at, updated_at, approved_by, undo_of, undone_by";

/// Response decisions, the action state machine, notification targets, reports and update requests (④).
pub trait ResponseRepo: Send + Sync {
    /// Stores a decision and its actions in one transaction. `None` when this detection was already
    /// decided at this severity (a replay after a restart): nothing is stored twice.
    fn decide(
        &self,
        d: &NewDecision,
        actions: &[NewAction],
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Stores one action outside a decision (an undo a person started); returns its id.
    fn insert_action(&self, a: &NewAction, at: i64) -> impl Future<Output = Result<i64>> + Send;
    /// The latest decision that took actions for this device and threat at or after `since`.
    fn acting_decision(
        &self,
        device: &str,
        threat: Threat,
        since: i64,
    ) -> impl Future<Output = Result<Option<DecisionRow>>> + Send;
    /// Detections active since `since` that have no decision at their current severity (missed events).
    fn undecided_detections(
        &self,
        since: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DetectionRow>>> + Send;
    fn detection(&self, id: i64) -> impl Future<Output = Result<Option<DetectionRow>>> + Send;
    fn decision(&self, id: i64) -> impl Future<Output = Result<Option<DecisionRow>>> + Send;
    /// A field's decisions, newest first.
    fn decisions(
        &self,
        field: &str,
        device: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DecisionRow>>> + Send;
    /// Pending actions whose time has come, oldest first. A notification waits (at most `hold_ms` after
    /// its decision) while the decision's other actions are still pending or running, so that it can
    /// tell how they ended.
    fn due_actions(
        &self,
        now: i64,
        hold_ms: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ActionRow>>> + Send;
    /// The earliest time a pending action is due, if any.
    fn next_due(&self) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Moves an action from `from` to `to` if it is still in `from` (a claim, an approval); returns
    /// whether it moved. Moving to `running` counts an attempt.
    fn move_action(
        &self,
        id: i64,
        from: ActionState,
        to: ActionState,
        approved_by: Option<&str>,
        now: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Records the end of an attempt: `done`, `failed`, or `pending` again at `next_at` (a retry).
    fn finish_action(
        &self,
        id: i64,
        state: ActionState,
        output: Option<&str>,
        error: Option<&str>,
        next_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// After a restart: actions caught `running` go back to `pending` when running them again is
    /// harmless ([`Action::is_idempotent`]), else to `interrupted`. Returns (requeued, interrupted).
    fn recover_running(&self, now: i64) -> impl Future<Output = Result<(u64, u64)>> + Send;
    fn action(&self, id: i64) -> impl Future<Output = Result<Option<ActionRow>>> + Send;
    /// Actions, newest first.
    fn actions(&self, f: &ActionFilter) -> impl Future<Output = Result<Vec<ActionRow>>> + Send;
    /// Links an action to the action that undid it.
    fn mark_undone(&self, id: i64, by: i64) -> impl Future<Output = Result<()>> + Send;
    /// Where a field's notifications go (JSON), if set.
    fn field_notify(&self, field: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    fn set_field_notify(&self, field: &str, body: &str) -> impl Future<Output = Result<()>> + Send;
    fn insert_report(
        &self,
        at: i64,
        field: &str,
        device: &str,
        action: Option<i64>,
        body: &str,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// A device's collected reports, newest first, with ids below `before` when given.
    fn reports(
        &self,
        device: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ReportRow>>> + Send;
    fn report(&self, id: i64) -> impl Future<Output = Result<Option<ReportRow>>> + Send;
    /// Records an update asked of a device; returns its id.
    fn request_update(
        &self,
        at: i64,
        field: &str,
        device: &str,
        action: Option<i64>,
        reason: &str,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// Update requests still open.
    fn open_update_requests(&self) -> impl Future<Output = Result<Vec<UpdateRequestRow>>> + Send;
    /// Closes a device's open update requests (`done` or `cancelled`); returns how many.
    fn close_update_requests(
        &self,
        device: &str,
        state: &str,
    ) -> impl Future<Output = Result<u64>> + Send;
}

impl ResponseRepo for Store {
    async fn decide(&self, d: &NewDecision, actions: &[NewAction]) -> Result<Option<i64>> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT OR IGNORE INTO response_decisions (at, detection_id, severity, field_id, device_id, threat, rule, \
             decided_by, suppressed_by, note) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
        )
        .bind(d.at)
        .bind(d.detection_id)
        .bind(d.severity.as_str())
        .bind(&d.field_id)
        .bind(&d.device_id)
        .bind(d.threat.as_str())
        .bind(d.rule.to_string())
        .bind(&d.decided_by)
        .bind(d.suppressed_by)
        .bind(&d.note)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        for a in actions {
            insert_action(&mut tx, Some(id), a, d.at).await?;
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn insert_action(&self, a: &NewAction, at: i64) -> Result<i64> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        let id = insert_action(&mut tx, None, a, at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn acting_decision(
        &self,
        device: &str,
        threat: Threat,
        since: i64,
    ) -> Result<Option<DecisionRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM response_decisions WHERE device_id = ? AND threat = ? AND at >= ? \
             AND suppressed_by IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(device)
        .bind(threat.as_str())
        .bind(since)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn undecided_detections(&self, since: i64, limit: i64) -> Result<Vec<DetectionRow>> {
        Ok(sqlx::query_as(
            "SELECT d.* FROM detections d WHERE d.last_at >= ? AND NOT EXISTS (SELECT 1 FROM response_decisions r \
             WHERE r.detection_id = d.id AND r.severity = d.severity) ORDER BY d.id LIMIT ?",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn detection(&self, id: i64) -> Result<Option<DetectionRow>> {
        Ok(sqlx::query_as("SELECT * FROM detections WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn decision(&self, id: i64) -> Result<Option<DecisionRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM response_decisions WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn decisions(
        &self,
        field: &str,
        device: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DecisionRow>> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT * FROM response_decisions WHERE field_id = ");
        q.push_bind(field);
        if let Some(d) = device {
            q.push(" AND device_id = ").push_bind(d);
        }
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn due_actions(&self, now: i64, hold_ms: i64, limit: i64) -> Result<Vec<ActionRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM response_actions a WHERE state = 'pending' AND next_at <= ?1 \
             AND NOT (a.action LIKE 'notify\\_%' ESCAPE '\\' AND a.decision_id IS NOT NULL AND a.created_at > ?1 - ?2 \
               AND EXISTS (SELECT 1 FROM response_actions o WHERE o.decision_id = a.decision_id \
                 AND o.action NOT LIKE 'notify\\_%' ESCAPE '\\' AND o.state IN ('pending', 'running'))) \
             ORDER BY next_at, id LIMIT ?3"
        )))
        .bind(now)
        .bind(hold_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT min(next_at) FROM response_actions WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn move_action(
        &self,
        id: i64,
        from: ActionState,
        to: ActionState,
        approved_by: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE response_actions SET state = ?3, updated_at = ?4, approved_by = coalesce(?5, approved_by), \
             attempts = attempts + (?3 = 'running'), next_at = CASE WHEN ?3 = 'pending' THEN ?4 ELSE next_at END \
             WHERE id = ?1 AND state = ?2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now)
        .bind(approved_by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn finish_action(
        &self,
        id: i64,
        state: ActionState,
        output: Option<&str>,
        error: Option<&str>,
        next_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE response_actions SET state = ?, output = coalesce(?, output), error = ?, next_at = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(output)
        .bind(error)
        .bind(next_at)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recover_running(&self, now: i64) -> Result<(u64, u64)> {
        let mut requeued = 0;
        let mut interrupted = 0;
        let running: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, action FROM response_actions WHERE state = 'running'")
                .fetch_all(&self.pool)
                .await?;
        for (id, action) in running {
            // An action this build does not know is not run again.
            if action.parse::<Action>().is_ok_and(Action::is_idempotent) {
                self.move_action(id, ActionState::Running, ActionState::Pending, None, now)
                    .await?;
                requeued += 1;
            } else {
                self.finish_action(
                    id,
                    ActionState::Interrupted,
                    None,
                    Some(
                        "the gateway stopped while this ran; not run again (it may have completed)",
                    ),
                    now,
                    now,
                )
                .await?;
                interrupted += 1;
            }
        }
        Ok((requeued, interrupted))
    }

    async fn action(&self, id: i64) -> Result<Option<ActionRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM response_actions WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn actions(&self, f: &ActionFilter) -> Result<Vec<ActionRow>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ACTION_COLUMNS} FROM response_actions WHERE 1 = 1"
        ));
        if let Some(v) = &f.visible_fields {
            q.push(" AND field_id IN (");
            let mut sep = q.separated(", ");
            for id in v {
                sep.push_bind(id);
            }
            sep.push_unseparated(if v.is_empty() { "NULL)" } else { ")" });
        }
        if let Some(x) = &f.field {
            q.push(" AND field_id = ").push_bind(x);
        }
        if let Some(x) = &f.device {
            q.push(" AND device_id = ").push_bind(x);
        }
        if let Some(x) = f.decision {
            q.push(" AND decision_id = ").push_bind(x);
        }
        if let Some(x) = f.state {
            q.push(" AND state = ").push_bind(x.as_str());
        }
        if let Some(x) = f.before {
            q.push(" AND id < ").push_bind(x);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn mark_undone(&self, id: i64, by: i64) -> Result<()> {
        sqlx::query("UPDATE response_actions SET undone_by = ? WHERE id = ?")
            .bind(by)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn field_notify(&self, field: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT body FROM field_notify WHERE field_id = ?")
                .bind(field)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_field_notify(&self, field: &str, body: &str) -> Result<()> {
        sqlx::query("INSERT OR REPLACE INTO field_notify (field_id, body) VALUES (?, ?)")
            .bind(field)
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_report(
        &self,
        at: i64,
        field: &str,
        device: &str,
        action: Option<i64>,
        body: &str,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO device_reports (at, field_id, device_id, action_id, body) VALUES (?,?,?,?,?) RETURNING id",
        )
        .bind(at)
        .bind(field)
        .bind(device)
        .bind(action)
        .bind(body)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reports(
        &self,
        device: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ReportRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM device_reports WHERE device_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(device)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn report(&self, id: i64) -> Result<Option<ReportRow>> {
        Ok(sqlx::query_as("SELECT * FROM device_reports WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn request_update(
        &self,
        at: i64,
        field: &str,
        device: &str,
        action: Option<i64>,
        reason: &str,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO update_requests (at, field_id, device_id, action_id, reason, state) \
             VALUES (?,?,?,?,?,'requested') RETURNING id",
        )
        .bind(at)
        .bind(field)
        .bind(device)
        .bind(action)
        .bind(reason)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn open_update_requests(&self) -> Result<Vec<UpdateRequestRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM update_requests WHERE state = 'requested' ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn close_update_requests(&self, device: &str, state: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE update_requests SET state = ? WHERE device_id = ? AND state = 'requested'",
        )
        .bind(state)
        .bind(device)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

async fn insert_action(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    decision: Option<i64>,
    a: &NewAction,
    at: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO response_actions (decision_id, field_id, device_id, action, state, trigger, input, next_at, \
         created_at, updated_at, undo_of) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
    )
    .bind(decision)
    .bind(&a.field_id)
    .bind(&a.device_id)
    .bind(a.action.as_str())
    .bind(a.state.as_str())
    .bind(&a.trigger)
    .bind(&a.input)
    .bind(at)
    .bind(at)
    .bind(at)
    .bind(a.undo_of)
    .fetch_one(&mut **tx)
    .await?)
}
