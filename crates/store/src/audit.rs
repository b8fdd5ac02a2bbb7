//! Device-audit storage (subsystem ⑤): self-reports with their changes, baselines (versioned, per
//! field and per device), learning periods and audit runs.

use crate::{Result, Store};
use std::future::Future;

/// One stored self-report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StateRow {
    pub id: i64,
    pub at: i64,
    pub field_id: String,
    pub device_id: String,
    /// JSON self-report.
    pub body: String,
    /// JSON list of what differs from the previous report.
    pub changed: String,
}

/// One audit run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRunRow {
    pub id: i64,
    pub at: i64,
    pub field_id: String,
    pub device_id: String,
    /// `report` or `periodic`.
    pub trigger: String,
    /// `clean`, `findings`, `learning` or `no_baseline`.
    pub outcome: String,
    /// JSON list of the findings (`{rule, threat, severity, summary, evidence}`; runs stored before
    /// findings were kept hold the rule names only). The column is named `rules`.
    pub rules: String,
}

/// A baseline version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BaselineRow {
    pub field_id: String,
    /// Empty for the field's own baseline.
    pub device_id: String,
    pub version: i64,
    pub at: i64,
    pub by: String,
    /// JSON baseline.
    pub body: String,
}

/// Devices' self-reports, approved baselines, learning and audit runs (⑦).
pub trait AuditRepo: Send + Sync {
    fn insert_state(
        &self,
        at: i64,
        field: &str,
        device: &str,
        body: &str,
        changed: &str,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// A device's self-reports, newest first, with ids below `before` when given.
    fn states(
        &self,
        device: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<StateRow>>> + Send;
    /// The latest self-report of every device of a field made at or after `since`.
    fn latest_states_since(
        &self,
        field: &str,
        since: i64,
    ) -> impl Future<Output = Result<Vec<StateRow>>> + Send;
    /// Every device's latest report time: (field, device, at).
    fn last_reports(&self) -> impl Future<Output = Result<Vec<(String, String, i64)>>> + Send;
    /// Stores a new version of a baseline (`device` empty: the field's); returns the version.
    fn put_baseline(
        &self,
        field: &str,
        device: &str,
        by: &str,
        body: &str,
        at: i64,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// The current baseline (`device` empty: the field's).
    fn baseline(
        &self,
        field: &str,
        device: &str,
    ) -> impl Future<Output = Result<Option<BaselineRow>>> + Send;
    /// The current version of every baseline (fields' and devices').
    fn current_baselines(&self) -> impl Future<Output = Result<Vec<BaselineRow>>> + Send;
    fn set_learning(
        &self,
        field: &str,
        started: i64,
        until: i64,
        by: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The field's learning period (started, until), if one was set.
    fn learning(&self, field: &str) -> impl Future<Output = Result<Option<(i64, i64)>>> + Send;
    fn end_learning(&self, field: &str) -> impl Future<Output = Result<()>> + Send;
    fn insert_audit_run(
        &self,
        at: i64,
        field: &str,
        device: &str,
        trigger: &str,
        outcome: &str,
        findings: &str,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// A field's audit runs (or one device's), newest first, with ids below `before` when given. A
    /// device's runs are found through the field's index (there is none per device).
    fn audit_runs(
        &self,
        field: &str,
        device: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<AuditRunRow>>> + Send;
}

impl AuditRepo for Store {
    async fn insert_state(
        &self,
        at: i64,
        field: &str,
        device: &str,
        body: &str,
        changed: &str,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO device_states (at, field_id, device_id, body, changed) VALUES (?,?,?,?,?) RETURNING id",
        )
        .bind(at)
        .bind(field)
        .bind(device)
        .bind(body)
        .bind(changed)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn states(&self, device: &str, before: Option<i64>, limit: i64) -> Result<Vec<StateRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM device_states WHERE device_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(device)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn latest_states_since(&self, field: &str, since: i64) -> Result<Vec<StateRow>> {
        Ok(sqlx::query_as(
            "SELECT s.* FROM device_states s JOIN (SELECT device_id, max(id) AS id FROM device_states \
             WHERE field_id = ?1 AND at >= ?2 GROUP BY device_id) m ON s.id = m.id ORDER BY s.device_id",
        )
        .bind(field)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn last_reports(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT field_id, device_id, max(at) FROM device_states GROUP BY field_id, device_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn put_baseline(
        &self,
        field: &str,
        device: &str,
        by: &str,
        body: &str,
        at: i64,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO baselines (field_id, device_id, version, at, by, body) VALUES (?1, ?2, \
             (SELECT coalesce(max(version), 0) + 1 FROM baselines WHERE field_id = ?1 AND device_id = ?2), ?3, ?4, ?5) \
             RETURNING version",
        )
        .bind(field)
        .bind(device)
        .bind(at)
        .bind(by)
        .bind(body)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn baseline(&self, field: &str, device: &str) -> Result<Option<BaselineRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM baselines WHERE field_id = ? AND device_id = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(field)
        .bind(device)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn current_baselines(&self) -> Result<Vec<BaselineRow>> {
        Ok(sqlx::query_as(
            "SELECT b.* FROM baselines b JOIN (SELECT field_id, device_id, max(version) AS version FROM baselines \
             GROUP BY field_id, device_id) m USING (field_id, device_id, version)",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_learning(&self, field: &str, started: i64, until: i64, by: &str) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO learning (field_id, started_at, until_at, by) VALUES (?,?,?,?)",
        )
        .bind(field)
        .bind(started)
        .bind(until)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn learning(&self, field: &str) -> Result<Option<(i64, i64)>> {
        Ok(
            sqlx::query_as("SELECT started_at, until_at FROM learning WHERE field_id = ?")
                .bind(field)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn end_learning(&self, field: &str) -> Result<()> {
        sqlx::query("DELETE FROM learning WHERE field_id = ?")
            .bind(field)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_audit_run(
        &self,
        at: i64,
        field: &str,
        device: &str,
        trigger: &str,
        outcome: &str,
        findings: &str,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_runs (at, field_id, device_id, trigger, outcome, rules) VALUES (?,?,?,?,?,?) RETURNING id",
        )
        .bind(at)
        .bind(field)
        .bind(device)
        .bind(trigger)
        .bind(outcome)
        .bind(findings)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn audit_runs(
        &self,
        field: &str,
        device: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRunRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM audit_runs WHERE field_id = ?1 AND (?2 IS NULL OR device_id = ?2) AND id < ?3 \
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(field)
        .bind(device)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
