//! The durable outbox towards the cloud (subsystem ① cloud connector's storage side): accepted messages
//! wait as `pending` rows, in arrival order, until the cloud acknowledges them or they are dead-lettered.
//! Nothing leaves `pending` except to `forwarded` or `dead`, and a `dead` row has a reason.

use crate::{Result, Store};
use sqlx::AssertSqlSafe;
use std::future::Future;

/// A message waiting for the cloud.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub device_id: Option<String>,
    /// The device's JSON, when the row holds it; else it is in the message log at `log_offset`.
    pub body: Option<Vec<u8>>,
    pub log_offset: Option<i64>,
    pub forward_attempts: i64,
}

/// A dead-lettered message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub message_seq: i64,
    pub message_id: String,
    pub device_id: Option<String>,
    pub received_at: i64,
    pub dead_at: i64,
    pub reason: String,
}

/// How many messages are in each forwarding state.
#[derive(Debug, Clone, Default)]
pub struct OutboxCounts {
    pub pending: i64,
    pub forwarded: i64,
    pub dead: i64,
    pub oldest_pending_at: Option<i64>,
}

fn in_list(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ",?" });
    }
    s
}

/// The cloud outbox: pending, forwarded and dead-lettered messages (①).
pub trait OutboxRepo: Send + Sync {
    /// The oldest pending messages of a field, in arrival order.
    fn pending(&self, field: &str, limit: i64)
    -> impl Future<Output = Result<Vec<Pending>>> + Send;
    /// Marks messages delivered.
    fn mark_forwarded(&self, seqs: &[i64], at: i64) -> impl Future<Output = Result<()>> + Send;
    /// Counts one failed delivery attempt.
    fn note_attempt(&self, seqs: &[i64]) -> impl Future<Output = Result<()>> + Send;
    /// Moves messages to the dead-letter table with a reason.
    fn dead_letter(
        &self,
        field: &str,
        seqs: &[i64],
        reason: &str,
        at: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Dead-letters every pending message of a field received before `cutoff`; returns how many.
    /// Pending rows are in arrival order, so the oldest one tells whether there is anything to do: the
    /// common case (nothing too old) is one index lookup, however long the backlog.
    fn expire_pending(
        &self,
        field: &str,
        cutoff: i64,
        reason: &str,
        at: i64,
    ) -> impl Future<Output = Result<usize>> + Send;
    fn dead_letters(
        &self,
        field: &str,
        before: Option<i64>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;
    /// Forwarding states of a field's messages (or of all fields).
    fn outbox_counts(
        &self,
        field: Option<&str>,
    ) -> impl Future<Output = Result<OutboxCounts>> + Send;
}

impl OutboxRepo for Store {
    async fn pending(&self, field: &str, limit: i64) -> Result<Vec<Pending>> {
        Ok(sqlx::query_as(
            "SELECT seq, id, at, device_id, body, log_offset, forward_attempts FROM messages \
             WHERE field_id = ? AND forward_status = 'pending' ORDER BY seq LIMIT ?",
        )
        .bind(field)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn mark_forwarded(&self, seqs: &[i64], at: i64) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE messages SET forward_status = 'forwarded', forwarded_at = ?, forward_attempts = forward_attempts + 1 \
             WHERE forward_status = 'pending' AND seq IN ({})",
            in_list(seqs.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(at);
        for s in seqs {
            q = q.bind(s);
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn note_attempt(&self, seqs: &[i64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE messages SET forward_attempts = forward_attempts + 1 WHERE seq IN ({})",
            in_list(seqs.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for s in seqs {
            q = q.bind(s);
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn dead_letter(&self, field: &str, seqs: &[i64], reason: &str, at: i64) -> Result<()> {
        let mut tx = self.pool.begin_with(crate::WRITE_TX).await?;
        for s in seqs {
            let moved = sqlx::query("UPDATE messages SET forward_status = 'dead' WHERE seq = ? AND forward_status = 'pending'")
                .bind(s)
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() == 1 {
                sqlx::query(
                    "INSERT INTO dead_letters (message_seq, at, field_id, reason) VALUES (?,?,?,?)",
                )
                .bind(s)
                .bind(at)
                .bind(field)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn expire_pending(
        &self,
        field: &str,
        cutoff: i64,
        reason: &str,
        at: i64,
    ) -> Result<usize> {
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM messages WHERE field_id = ? AND forward_status = 'pending' ORDER BY seq LIMIT 1",
        )
        .bind(field)
        .fetch_optional(&self.pool)
        .await?;
        if oldest.is_none_or(|t| t >= cutoff) {
            return Ok(0);
        }
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM (SELECT seq, at FROM messages WHERE field_id = ? AND forward_status = 'pending' \
             ORDER BY seq LIMIT 10000) WHERE at < ?",
        )
        .bind(field)
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        self.dead_letter(field, &seqs, reason, at).await?;
        Ok(seqs.len())
    }

    async fn dead_letters(
        &self,
        field: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT d.message_seq, m.id AS message_id, m.device_id, m.at AS received_at, d.at AS dead_at, d.reason \
             FROM dead_letters d JOIN messages m ON m.seq = d.message_seq \
             WHERE d.field_id = ? AND d.message_seq < ? ORDER BY d.message_seq DESC LIMIT ?",
        )
        .bind(field)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn outbox_counts(&self, field: Option<&str>) -> Result<OutboxCounts> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT forward_status, count(*), min(at) FROM messages WHERE (?1 IS NULL OR field_id = ?1) \
             AND forward_status != 'none' GROUP BY forward_status",
        )
        .bind(field)
        .fetch_all(&self.pool)
        .await?;
        let mut c = OutboxCounts::default();
        for (status, n, oldest) in rows {
            match status.as_str() {
                "pending" => {
                    c.pending = n;
                    c.oldest_pending_at = oldest;
                }
                "forwarded" => c.forwarded = n,
                "dead" => c.dead = n,
                _ => {}
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::records::{MessageRecord, Record};
    use crate::test_util::open_temp;

    fn msg(i: i64) -> Record {
        Record::Message(MessageRecord {
            id: format!("m{i}"),
            at: i,
            field_id: Some("f".into()),
            device_id: Some("d".into()),
            source_ip: "127.0.0.1".into(),
            size: 2,
            rejected: None,
            device_ts: None,
            device_seq: None,
            buffered: false,
            bad_ts: false,
            body: Some(format!("{{\"i\":{i}}}").into_bytes()),
            log_offset: None,
        })
    }

    #[tokio::test]
    async fn pending_moves_to_forwarded_or_dead_never_away() {
        let (store, _dir) = open_temp("outbox").await;
        store
            .writer
            .write((1..=5).map(msg).collect())
            .await
            .unwrap();
        let p = store.pending("f", 2).await.unwrap();
        assert_eq!(p.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
        store.note_attempt(&[1, 2]).await.unwrap();
        store.mark_forwarded(&[1, 2], 100).await.unwrap();
        assert_eq!(
            store.expire_pending("f", 4, "too old", 200).await.unwrap(),
            1
        );
        let c = store.outbox_counts(Some("f")).await.unwrap();
        assert_eq!(
            (c.pending, c.forwarded, c.dead, c.oldest_pending_at),
            (2, 2, 1, Some(4))
        );
        let dead = store.dead_letters("f", None, 10).await.unwrap();
        assert_eq!(
            (dead[0].message_id.as_str(), dead[0].reason.as_str()),
            ("m3", "too old")
        );
        let p = store.pending("f", 10).await.unwrap();
        assert_eq!(p[0].body.as_deref(), Some(&b"{\"i\":4}"[..]));
        assert_eq!(store.pending("f", 10).await.unwrap()[0].forward_attempts, 0);
        store.close().await;
    }
}
