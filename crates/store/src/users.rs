//! Console/API users, their fields, their sessions (stored as SHA-256 only) and the admin action log.

use crate::{Result, Store, StoreError};
use sekisho_core::{FieldId, Role, UserId};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use std::future::Future;

/// A user as stored (with the password hash, which never leaves the gateway).
#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub fields: Vec<FieldId>,
    pub created_at: i64,
    /// A confirmed second factor (TOTP) is required for this user's disruptive actions. Read from the
    /// store; `insert_user` always stores a user without one (see [`Store::enable_totp`]).
    pub mfa_enabled: bool,
}

/// A user's TOTP state: the secret (pending while not enabled) and the last step used.
#[derive(Clone)]
pub struct TotpState {
    pub secret: Option<Vec<u8>>,
    pub enabled: bool,
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpState")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("enabled", &self.enabled)
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// Console/API users, sessions, second factors and the admin action log (②).
pub trait UserRepo: Send + Sync {
    fn insert_user(&self, u: &UserRow) -> impl Future<Output = Result<()>> + Send;
    fn user_by_name(&self, username: &str) -> impl Future<Output = Result<Option<UserRow>>> + Send;
    fn user(&self, id: &UserId) -> impl Future<Output = Result<Option<UserRow>>> + Send;
    fn users(&self) -> impl Future<Output = Result<Vec<UserRow>>> + Send;
    fn user_count(&self) -> impl Future<Output = Result<i64>> + Send;
    /// Replaces a user's password hash and ends the user's sessions; `false` if there is no such user.
    fn set_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// A user's TOTP state.
    fn totp_state(&self, user: &UserId) -> impl Future<Output = Result<Option<TotpState>>> + Send;
    /// Starts (or restarts) enrolment with a new pending secret; `false` if the user has a second
    /// factor enabled already (or does not exist).
    fn set_pending_totp(
        &self,
        user: &UserId,
        secret: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Enables the pending secret `secret` (the one a code was just checked against), remembering the
    /// confirming code's step; `false` if it is no longer the pending secret.
    fn enable_totp(
        &self,
        user: &UserId,
        secret: &[u8],
        step: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Uses `step` of an enabled second factor: `false` if that step (or a later one) was used already,
    /// so two requests racing with one code cannot both pass.
    fn use_totp_step(&self, user: &UserId, step: i64) -> impl Future<Output = Result<bool>> + Send;
    /// Removes a user's second factor, enabled or pending; `false` if there was none.
    fn clear_totp(&self, user: &UserId) -> impl Future<Output = Result<bool>> + Send;
    fn insert_session(
        &self,
        hash: &[u8; 32],
        user: &UserId,
        expires_at: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The user of a live session.
    fn session_user(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> impl Future<Output = Result<Option<UserId>>> + Send;
    fn delete_session(&self, hash: &[u8; 32]) -> impl Future<Output = Result<()>> + Send;
    /// Records what a person did through the admin API.
    fn log_admin(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl UserRepo for Store {
    async fn insert_user(&self, u: &UserRow) -> Result<()> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?,?,?,?,?)",
        )
        .bind(u.id.as_str())
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_insert(e, "a user with this name"))?;
        for f in &u.fields {
            sqlx::query("INSERT INTO user_fields (user_id, field_id) VALUES (?,?)")
                .bind(u.id.as_str())
                .bind(f.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        self.user_where("username", username).await
    }

    async fn user(&self, id: &UserId) -> Result<Option<UserRow>> {
        self.user_where("id", id.as_str()).await
    }

    async fn users(&self) -> Result<Vec<UserRow>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM users ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.user(&UserId(id)).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        let r = sqlx::query("UPDATE users SET password_hash = ? WHERE username = ?")
            .bind(password_hash)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?)",
        )
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn totp_state(&self, user: &UserId) -> Result<Option<TotpState>> {
        let row =
            sqlx::query("SELECT totp_secret, mfa_enabled, totp_last_step FROM users WHERE id = ?")
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TotpState {
            secret: r.try_get("totp_secret")?,
            enabled: r.try_get::<i64, _>("mfa_enabled")? != 0,
            last_step: r.try_get("totp_last_step")?,
        }))
    }

    async fn set_pending_totp(&self, user: &UserId, secret: &[u8]) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE id = ? AND mfa_enabled = 0",
        )
        .bind(secret)
        .bind(user.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn enable_totp(&self, user: &UserId, secret: &[u8], step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET mfa_enabled = 1, totp_last_step = ? \
             WHERE id = ? AND mfa_enabled = 0 AND totp_secret = ?",
        )
        .bind(step)
        .bind(user.as_str())
        .bind(secret)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET totp_last_step = ? WHERE id = ? AND mfa_enabled = 1 \
             AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(user.as_str())
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn clear_totp(&self, user: &UserId) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET totp_secret = NULL, mfa_enabled = 0, totp_last_step = NULL \
             WHERE id = ? AND (totp_secret IS NOT NULL OR mfa_enabled = 1)",
        )
        .bind(user.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_session(&self, hash: &[u8; 32], user: &UserId, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO sessions (hash, user_id, expires_at) VALUES (?,?,?)")
            .bind(&hash[..])
            .bind(user.as_str())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_user(&self, hash: &[u8; 32], now: i64) -> Result<Option<UserId>> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM sessions WHERE hash = ? AND expires_at > ?")
                .bind(&hash[..])
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(UserId))
    }

    async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = ?")
            .bind(&hash[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn log_admin(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO admin_log (at, actor, action, target, detail) VALUES (?,?,?,?,?)")
            .bind(at)
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    async fn user_where(&self, clause: &str, arg: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, username, password_hash, role, created_at, mfa_enabled FROM users WHERE {clause} = ?"
        )))
        .bind(arg)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let id: String = r.try_get("id")?;
        let fields: Vec<String> =
            sqlx::query_scalar("SELECT field_id FROM user_fields WHERE user_id = ?")
                .bind(&id)
                .fetch_all(&self.pool)
                .await?;
        Ok(Some(UserRow {
            id: UserId(id),
            username: r.try_get("username")?,
            password_hash: r.try_get("password_hash")?,
            role: Role::parse(r.try_get::<&str, _>("role")?).unwrap_or(Role::Analyst),
            fields: fields.into_iter().map(FieldId).collect(),
            created_at: r.try_get("created_at")?,
            mfa_enabled: r.try_get::<i64, _>("mfa_enabled")? != 0,
        }))
    }
}
