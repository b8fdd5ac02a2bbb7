//! The device registry (subsystem ⑥): fields, devices and their bearer tokens (stored as SHA-256 only).

use crate::{Result, Store, StoreError};
use sekisho_core::{
    AuthMode, CloudDestination, Device, DeviceId, DeviceStatus, Field, FieldId, Sim,
};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use std::future::Future;

fn auth_mode_str(m: AuthMode) -> &'static str {
    match m {
        AuthMode::Secret => "secret",
        AuthMode::Certificate => "certificate",
        AuthMode::Either => "either",
    }
}

fn parse_auth_mode(s: &str) -> AuthMode {
    match s {
        "certificate" => AuthMode::Certificate,
        "either" => AuthMode::Either,
        _ => AuthMode::Secret,
    }
}

fn field_of(r: &SqliteRow) -> Result<Field> {
    let limits: String = r.try_get("limits")?;
    let cloud: Option<String> = r.try_get("cloud")?;
    Ok(Field {
        id: FieldId(r.try_get("id")?),
        name: r.try_get("name")?,
        auth_id: r.try_get("auth_id")?,
        auth_mode: parse_auth_mode(r.try_get::<&str, _>("auth_mode")?),
        limits: serde_json::from_str(&limits).unwrap_or_default(),
        cloud: cloud.and_then(|c| serde_json::from_str::<CloudDestination>(&c).ok()),
        created_at: r.try_get("created_at")?,
    })
}

/// A device row with its secret hash (for authentication; never leaves the gateway).
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub device: Device,
    pub secret_hash: String,
}

fn device_of(r: &SqliteRow) -> Result<DeviceRow> {
    let sim: Option<String> = r.try_get("sim")?;
    let status: &str = r.try_get("status")?;
    Ok(DeviceRow {
        device: Device {
            id: DeviceId(r.try_get("id")?),
            field_id: FieldId(r.try_get("field_id")?),
            unique_id: r.try_get("unique_id")?,
            name: r.try_get("name")?,
            sim: sim.and_then(|s| serde_json::from_str::<Sim>(&s).ok()),
            critical: r.try_get("critical")?,
            status: DeviceStatus::parse(status).unwrap_or(DeviceStatus::Disabled),
            cert_sha256: r.try_get("cert_sha256")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        },
        secret_hash: r.try_get("secret_hash")?,
    })
}

const FIELD_COLS: &str = "id, name, auth_id, auth_mode, limits, cloud, created_at";
const DEVICE_COLS: &str = "id, field_id, unique_id, name, sim, critical, status, secret_hash, cert_sha256, created_at, updated_at";

/// Fields, devices and device tokens (⑥).
pub trait RegistryRepo: Send + Sync {
    fn insert_field(&self, f: &Field) -> impl Future<Output = Result<()>> + Send;
    /// Replaces the mutable parts of a field (name, auth mode, limits, cloud destination).
    fn update_field(&self, f: &Field) -> impl Future<Output = Result<()>> + Send;
    fn fields(&self) -> impl Future<Output = Result<Vec<Field>>> + Send;
    fn insert_device(
        &self,
        d: &Device,
        secret_hash: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every device that is not deleted (loaded into the in-memory registry at start).
    fn live_devices(&self) -> impl Future<Output = Result<Vec<DeviceRow>>> + Send;
    fn device(&self, id: &DeviceId) -> impl Future<Output = Result<Option<DeviceRow>>> + Send;
    fn set_device_status(
        &self,
        id: &DeviceId,
        status: DeviceStatus,
        now: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    fn set_device_cert(
        &self,
        id: &DeviceId,
        cert_sha256: Option<&str>,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    fn insert_token(
        &self,
        hash: &[u8; 32],
        device: &DeviceId,
        issued_at: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Revokes every token of a device; returns how many were live.
    fn revoke_tokens(&self, device: &DeviceId) -> impl Future<Output = Result<u64>> + Send;
    /// Unexpired, unrevoked tokens: `(hash, device_id, expires_at)`.
    fn live_tokens(
        &self,
        now: i64,
    ) -> impl Future<Output = Result<Vec<(Vec<u8>, String, i64)>>> + Send;
    /// Deletes expired tokens (housekeeping).
    fn purge_tokens(&self, now: i64) -> impl Future<Output = Result<u64>> + Send;
}

impl RegistryRepo for Store {
    async fn insert_field(&self, f: &Field) -> Result<()> {
        sqlx::query("INSERT INTO fields (id, name, auth_id, auth_mode, limits, cloud, created_at) VALUES (?,?,?,?,?,?,?)")
            .bind(f.id.as_str())
            .bind(&f.name)
            .bind(&f.auth_id)
            .bind(auth_mode_str(f.auth_mode))
            .bind(serde_json::to_string(&f.limits).unwrap_or_default())
            .bind(f.cloud.as_ref().and_then(|c| serde_json::to_string(c).ok()))
            .bind(f.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_insert(e, "a field with this name"))?;
        Ok(())
    }

    async fn update_field(&self, f: &Field) -> Result<()> {
        sqlx::query(
            "UPDATE fields SET name = ?, auth_mode = ?, limits = ?, cloud = ? WHERE id = ?",
        )
        .bind(&f.name)
        .bind(auth_mode_str(f.auth_mode))
        .bind(serde_json::to_string(&f.limits).unwrap_or_default())
        .bind(f.cloud.as_ref().and_then(|c| serde_json::to_string(c).ok()))
        .bind(f.id.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "a field with this name"))?;
        Ok(())
    }

    async fn fields(&self) -> Result<Vec<Field>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FIELD_COLS} FROM fields WHERE deleted = 0 ORDER BY created_at"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(field_of).collect()
    }

    async fn insert_device(&self, d: &Device, secret_hash: &str) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO devices ({DEVICE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        )))
        .bind(d.id.as_str())
        .bind(d.field_id.as_str())
        .bind(&d.unique_id)
        .bind(&d.name)
        .bind(d.sim.as_ref().and_then(|s| serde_json::to_string(s).ok()))
        .bind(d.critical)
        .bind(d.status.as_str())
        .bind(secret_hash)
        .bind(&d.cert_sha256)
        .bind(d.created_at)
        .bind(d.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            StoreError::from_insert(e, "a live device with this unique_id or certificate")
        })?;
        Ok(())
    }

    async fn live_devices(&self) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE status != 'deleted'"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device_of).collect()
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE id = ?"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_of).transpose()
    }

    async fn set_device_status(
        &self,
        id: &DeviceId,
        status: DeviceStatus,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE devices SET status = ?, updated_at = ? WHERE id = ? AND status != 'deleted'",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_device_cert(
        &self,
        id: &DeviceId,
        cert_sha256: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE devices SET cert_sha256 = ?, updated_at = ? WHERE id = ?")
            .bind(cert_sha256)
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_insert(e, "a device with this certificate"))?;
        Ok(())
    }

    async fn insert_token(
        &self,
        hash: &[u8; 32],
        device: &DeviceId,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO tokens (hash, device_id, issued_at, expires_at) VALUES (?,?,?,?)")
            .bind(&hash[..])
            .bind(device.as_str())
            .bind(issued_at)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_tokens(&self, device: &DeviceId) -> Result<u64> {
        let r = sqlx::query("UPDATE tokens SET revoked = 1 WHERE device_id = ? AND revoked = 0")
            .bind(device.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn live_tokens(&self, now: i64) -> Result<Vec<(Vec<u8>, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT hash, device_id, expires_at FROM tokens WHERE revoked = 0 AND expires_at > ?",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn purge_tokens(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM tokens WHERE expires_at <= ? OR revoked = 1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
