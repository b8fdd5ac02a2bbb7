//! Update-management storage (subsystem ⑤): artifacts, campaigns with their signed manifests, and each
//! device's progress.

use crate::{Result, Store};
use std::future::Future;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArtifactRow {
    pub sha256: String,
    pub size: i64,
    /// `firmware` or `config`.
    pub kind: String,
    pub version: String,
    pub name: String,
    pub at: i64,
    pub by: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: i64,
    pub field_id: String,
    pub kind: String,
    pub version: String,
    pub sha256: String,
    pub sequence: i64,
    /// The signed manifest's JSON text.
    pub payload: String,
    pub signature: String,
    pub key_id: String,
    pub percent: i64,
    pub max_failures: i64,
    /// `active`, `halted` or `superseded`.
    pub status: String,
    pub note: Option<String>,
    pub created_at: i64,
    pub by: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProgressRow {
    pub campaign_id: i64,
    pub device_id: String,
    /// `offered`, `applied`, `rejected` or `confirmed`.
    pub state: String,
    pub reason: Option<String>,
    pub at: i64,
}

/// A campaign to store.
pub struct NewCampaign<'a> {
    pub field_id: &'a str,
    pub kind: &'a str,
    pub version: &'a str,
    pub sha256: &'a str,
    pub sequence: i64,
    pub payload: &'a str,
    pub signature: &'a str,
    pub key_id: &'a str,
    pub percent: i64,
    pub max_failures: i64,
    pub at: i64,
    pub by: &'a str,
}

/// Signed artifacts, campaigns and per-device update progress (⑤).
pub trait UpdateRepo: Send + Sync {
    fn insert_artifact(&self, a: &ArtifactRow) -> impl Future<Output = Result<()>> + Send;
    fn artifact(&self, sha256: &str) -> impl Future<Output = Result<Option<ArtifactRow>>> + Send;
    fn artifacts(&self) -> impl Future<Output = Result<Vec<ArtifactRow>>> + Send;
    /// The next manifest sequence of a field (monotonic across kinds).
    fn next_sequence(&self, field: &str) -> impl Future<Output = Result<i64>> + Send;
    /// Stores a campaign as the field's active one for its kind; the previous one is superseded.
    fn start_campaign(&self, c: &NewCampaign<'_>) -> impl Future<Output = Result<i64>> + Send;
    /// The field's current campaigns (active or halted), one per kind.
    fn campaigns(&self, field: &str) -> impl Future<Output = Result<Vec<CampaignRow>>> + Send;
    fn campaign_by_sequence(
        &self,
        field: &str,
        sequence: i64,
    ) -> impl Future<Output = Result<Option<CampaignRow>>> + Send;
    fn set_campaign_status(
        &self,
        id: i64,
        status: &str,
        note: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Records a device's progress on a campaign (a later state replaces an earlier one).
    fn set_progress(
        &self,
        campaign: i64,
        device: &str,
        state: &str,
        reason: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    fn progress(&self, campaign: i64) -> impl Future<Output = Result<Vec<ProgressRow>>> + Send;
    fn device_progress(
        &self,
        campaign: i64,
        device: &str,
    ) -> impl Future<Output = Result<Option<ProgressRow>>> + Send;
    /// Devices that rejected the campaign's update.
    fn rejections(&self, campaign: i64) -> impl Future<Output = Result<i64>> + Send;
}

impl UpdateRepo for Store {
    async fn insert_artifact(&self, a: &ArtifactRow) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO artifacts (sha256, size, kind, version, name, at, by) VALUES (?,?,?,?,?,?,?)",
        )
        .bind(&a.sha256)
        .bind(a.size)
        .bind(&a.kind)
        .bind(&a.version)
        .bind(&a.name)
        .bind(a.at)
        .bind(&a.by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn artifact(&self, sha256: &str) -> Result<Option<ArtifactRow>> {
        Ok(sqlx::query_as("SELECT * FROM artifacts WHERE sha256 = ?")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn artifacts(&self) -> Result<Vec<ArtifactRow>> {
        Ok(sqlx::query_as("SELECT * FROM artifacts ORDER BY at DESC")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn next_sequence(&self, field: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(max(sequence), 0) + 1 FROM campaigns WHERE field_id = ?",
        )
        .bind(field)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn start_campaign(&self, c: &NewCampaign<'_>) -> Result<i64> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        sqlx::query(
            "UPDATE campaigns SET status = 'superseded' WHERE field_id = ? AND kind = ? AND status != 'superseded'",
        )
        .bind(c.field_id)
        .bind(c.kind)
        .execute(&mut *tx)
        .await?;
        let id = sqlx::query_scalar(
            "INSERT INTO campaigns (field_id, kind, version, sha256, sequence, payload, signature, key_id, percent, \
             max_failures, status, created_at, by) VALUES (?,?,?,?,?,?,?,?,?,?,'active',?,?) RETURNING id",
        )
        .bind(c.field_id)
        .bind(c.kind)
        .bind(c.version)
        .bind(c.sha256)
        .bind(c.sequence)
        .bind(c.payload)
        .bind(c.signature)
        .bind(c.key_id)
        .bind(c.percent)
        .bind(c.max_failures)
        .bind(c.at)
        .bind(c.by)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn campaigns(&self, field: &str) -> Result<Vec<CampaignRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM campaigns WHERE field_id = ? AND status != 'superseded' ORDER BY kind",
        )
        .bind(field)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn campaign_by_sequence(
        &self,
        field: &str,
        sequence: i64,
    ) -> Result<Option<CampaignRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM campaigns WHERE field_id = ? AND sequence = ?")
                .bind(field)
                .bind(sequence)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_campaign_status(&self, id: i64, status: &str, note: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE campaigns SET status = ?, note = coalesce(?, note) WHERE id = ?")
            .bind(status)
            .bind(note)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_progress(
        &self,
        campaign: i64,
        device: &str,
        state: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO update_progress (campaign_id, device_id, state, reason, at) VALUES (?,?,?,?,?) \
             ON CONFLICT (campaign_id, device_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, at = excluded.at",
        )
        .bind(campaign)
        .bind(device)
        .bind(state)
        .bind(reason)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn progress(&self, campaign: i64) -> Result<Vec<ProgressRow>> {
        Ok(
            sqlx::query_as(
                "SELECT * FROM update_progress WHERE campaign_id = ? ORDER BY device_id",
            )
            .bind(campaign)
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn device_progress(&self, campaign: i64, device: &str) -> Result<Option<ProgressRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM update_progress WHERE campaign_id = ? AND device_id = ?")
                .bind(campaign)
                .bind(device)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn rejections(&self, campaign: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM update_progress WHERE campaign_id = ? AND state = 'rejected'",
        )
        .bind(campaign)
        .fetch_one(&self.pool)
        .await?)
    }
}
