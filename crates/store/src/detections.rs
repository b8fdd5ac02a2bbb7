//! Detection storage (subsystems ③ and ⑦): field templates with their versions, detections (grouped
//! incidents) and script faults.

use crate::{Result, Store};
use sekisho_core::{RuleId, Severity, Threat};
use sqlx::{QueryBuilder, Sqlite};
use std::future::Future;

/// A template version as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateVersion {
    pub field_id: String,
    pub version: i64,
    pub created_at: i64,
    pub created_by: String,
    /// The template, as JSON text.
    pub body: String,
}

/// A detection (an incident: one rule on one device, repeated findings grouped).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DetectionRow {
    pub id: i64,
    pub field_id: String,
    pub device_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub rule: RuleId,
    #[sqlx(try_from = "String")]
    pub threat: Threat,
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    pub summary: String,
    /// JSON: observed values, thresholds, window, baseline.
    pub evidence: String,
    pub first_at: i64,
    pub last_at: i64,
    pub count: i64,
    pub status: String,
}

/// A new detection to store.
#[derive(Debug, Clone)]
pub struct NewDetection<'a> {
    pub field_id: &'a str,
    pub device_id: Option<&'a str>,
    pub rule: &'a RuleId,
    pub threat: Threat,
    pub severity: Severity,
    pub summary: &'a str,
    pub evidence: &'a str,
    pub at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct DetectionFilter {
    pub field: Option<String>,
    pub visible_fields: Option<Vec<String>>,
    pub device: Option<String>,
    pub rule: Option<RuleId>,
    pub threat: Option<Threat>,
    /// Detections whose latest finding is at or after this time.
    pub since: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScriptFault {
    pub id: i64,
    pub at: i64,
    pub field_id: String,
    pub script: String,
    pub kind: String,
    pub message: String,
}

/// Field templates with their versions, detections and script faults (③).
pub trait DetectionRepo: Send + Sync {
    /// Stores a new version of a field's template; returns its version number.
    fn insert_template(
        &self,
        field: &str,
        by: &str,
        body: &str,
        at: i64,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// The latest template version of every field.
    fn current_templates(&self) -> impl Future<Output = Result<Vec<TemplateVersion>>> + Send;
    /// Every version of a field's template, newest first.
    fn template_versions(
        &self,
        field: &str,
    ) -> impl Future<Output = Result<Vec<TemplateVersion>>> + Send;
    fn insert_detection(&self, d: &NewDetection<'_>) -> impl Future<Output = Result<i64>> + Send;
    /// Sets what repeated findings changed on an open detection (count, latest time, severity, evidence).
    fn update_detection(
        &self,
        id: i64,
        count: i64,
        severity: Severity,
        summary: &str,
        evidence: &str,
        at: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    fn search_detections(
        &self,
        f: &DetectionFilter,
    ) -> impl Future<Output = Result<Vec<DetectionRow>>> + Send;
    fn insert_script_fault(
        &self,
        at: i64,
        field: &str,
        script: &str,
        kind: &str,
        message: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A field's script faults, newest first, with ids below `before` when given.
    fn script_faults(
        &self,
        field: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ScriptFault>>> + Send;
}

impl DetectionRepo for Store {
    async fn insert_template(&self, field: &str, by: &str, body: &str, at: i64) -> Result<i64> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        let v: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(version), 0) + 1 FROM field_templates WHERE field_id = ?",
        )
        .bind(field)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO field_templates (field_id, version, created_at, created_by, body) VALUES (?,?,?,?,?)")
            .bind(field)
            .bind(v)
            .bind(at)
            .bind(by)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn current_templates(&self) -> Result<Vec<TemplateVersion>> {
        Ok(sqlx::query_as(
            "SELECT t.field_id, t.version, t.created_at, t.created_by, t.body FROM field_templates t \
             JOIN (SELECT field_id, max(version) AS v FROM field_templates GROUP BY field_id) m \
             ON m.field_id = t.field_id AND m.v = t.version",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn template_versions(&self, field: &str) -> Result<Vec<TemplateVersion>> {
        Ok(sqlx::query_as(
            "SELECT field_id, version, created_at, created_by, body FROM field_templates WHERE field_id = ? ORDER BY version DESC",
        )
        .bind(field)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn insert_detection(&self, d: &NewDetection<'_>) -> Result<i64> {
        let r = sqlx::query(
            "INSERT INTO detections (field_id, device_id, rule, threat, severity, summary, evidence, first_at, last_at) \
             VALUES (?,?,?,?,?,?,?,?,?)",
        )
        .bind(d.field_id)
        .bind(d.device_id)
        .bind(d.rule.to_string())
        .bind(d.threat.as_str())
        .bind(d.severity.as_str())
        .bind(d.summary)
        .bind(d.evidence)
        .bind(d.at)
        .bind(d.at)
        .execute(&self.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    async fn update_detection(
        &self,
        id: i64,
        count: i64,
        severity: Severity,
        summary: &str,
        evidence: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE detections SET count = ?, last_at = ?, severity = ?, summary = ?, evidence = ? WHERE id = ?")
            .bind(count)
            .bind(at)
            .bind(severity.as_str())
            .bind(summary)
            .bind(evidence)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn search_detections(&self, f: &DetectionFilter) -> Result<Vec<DetectionRow>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, field_id, device_id, rule, threat, severity, summary, evidence, first_at, last_at, count, status \
             FROM detections WHERE 1=1",
        );
        if let Some(vis) = &f.visible_fields {
            q.push(" AND field_id IN (");
            let mut sep = q.separated(", ");
            sep.push_bind("");
            for v in vis {
                sep.push_bind(v.clone());
            }
            q.push(")");
        }
        for (col, v) in [
            ("field_id", f.field.clone()),
            ("device_id", f.device.clone()),
            ("rule", f.rule.as_ref().map(RuleId::to_string)),
            ("threat", f.threat.map(|t| t.as_str().to_owned())),
        ] {
            if let Some(v) = v {
                q.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        }
        if let Some(v) = f.since {
            q.push(" AND last_at >= ").push_bind(v);
        }
        if let Some(v) = f.before {
            q.push(" AND id < ").push_bind(v);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(f.limit.clamp(1, 1000));
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn insert_script_fault(
        &self,
        at: i64,
        field: &str,
        script: &str,
        kind: &str,
        message: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO script_faults (at, field_id, script, kind, message) VALUES (?,?,?,?,?)",
        )
        .bind(at)
        .bind(field)
        .bind(script)
        .bind(kind)
        .bind(message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn script_faults(
        &self,
        field: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ScriptFault>> {
        Ok(sqlx::query_as("SELECT id, at, field_id, script, kind, message FROM script_faults WHERE field_id = ? AND id < ? ORDER BY id DESC LIMIT ?")
            .bind(field)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?)
    }
}
