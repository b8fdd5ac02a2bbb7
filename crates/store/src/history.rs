//! History (subsystem ⑦): searching received messages, authentication attempts and connection events,
//! filtered and paged newest first with a cursor (`before` = the last row id of the previous page).

use crate::{Result, Store};
use sqlx::{QueryBuilder, Sqlite};
use std::future::Future;

/// Filters shared by the history searches. `visible_fields = None` means every field.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub visible_fields: Option<Vec<String>>,
    pub field: Option<String>,
    pub device: Option<String>,
    pub outcome: Option<String>,
    pub source_ip: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A stored message's field id, body (absent for a refused message, and for a message whose body is
/// in the message log) and place in the message log.
pub type MessageBody = (Option<String>, Option<Vec<u8>>, Option<i64>);

/// Metadata of one received message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageMeta {
    /// Row id: arrival order, and the paging cursor.
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    pub source_ip: String,
    pub size: i64,
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// The error code of a rejected message.
    pub reason: Option<String>,
    pub device_ts: Option<i64>,
    pub device_seq: Option<i64>,
    pub buffered: bool,
    /// `pending`, `forwarded`, `dead` (dead-lettered) or `none` (rejected, nothing to forward).
    pub forward_status: String,
    pub forward_attempts: i64,
    pub forwarded_at: Option<i64>,
}

/// One token request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthAttemptRow {
    pub id: i64,
    pub at: i64,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    pub unique_id: Option<String>,
    pub source_ip: String,
    pub method: String,
    pub outcome: String,
    pub reason: Option<String>,
}

/// One connection-level event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecurityEventRow {
    pub id: i64,
    pub at: i64,
    pub listener: String,
    pub source_ip: String,
    pub kind: String,
    pub detail: Option<String>,
}

fn push_filters(
    q: &mut QueryBuilder<Sqlite>,
    f: &Filter,
    id_col: &str,
    has_field: bool,
    has_outcome: bool,
) {
    q.push(" WHERE 1=1");
    if has_field {
        if let Some(vis) = &f.visible_fields {
            q.push(" AND field_id IN (");
            let mut sep = q.separated(", ");
            sep.push_bind("");
            for v in vis {
                sep.push_bind(v.clone());
            }
            q.push(")");
        }
        if let Some(v) = &f.field {
            q.push(" AND field_id = ").push_bind(v.clone());
        }
        if let Some(v) = &f.device {
            q.push(" AND device_id = ").push_bind(v.clone());
        }
    }
    if let Some(v) = f.outcome.as_ref().filter(|_| has_outcome) {
        q.push(" AND outcome = ").push_bind(v.clone());
    }
    if let Some(v) = &f.source_ip {
        q.push(" AND source_ip = ").push_bind(v.clone());
    }
    if let Some(v) = f.since {
        q.push(" AND at >= ").push_bind(v);
    }
    if let Some(v) = f.until {
        q.push(" AND at < ").push_bind(v);
    }
    if let Some(v) = f.before {
        q.push(format!(" AND {id_col} < ")).push_bind(v);
    }
    q.push(format!(" ORDER BY {id_col} DESC LIMIT "))
        .push_bind(f.limit.clamp(1, 1000));
}

/// The received-message, authentication and security-event history (⑦).
pub trait HistoryRepo: Send + Sync {
    fn search_messages(&self, f: &Filter) -> impl Future<Output = Result<Vec<MessageMeta>>> + Send;
    fn search_auth_attempts(
        &self,
        f: &Filter,
    ) -> impl Future<Output = Result<Vec<AuthAttemptRow>>> + Send;
    fn search_security_events(
        &self,
        f: &Filter,
    ) -> impl Future<Output = Result<Vec<SecurityEventRow>>> + Send;
    /// Removes history older than `cutoff`: messages no longer waiting for the cloud, auth attempts,
    /// connection events. Pending messages are kept whatever their age. Returns the rows removed.
    fn purge_history(&self, cutoff: i64) -> impl Future<Output = Result<u64>> + Send;
    /// The stored body of an accepted message, when the user may see its field.
    fn message_body(&self, id: &str) -> impl Future<Output = Result<Option<MessageBody>>> + Send;
}

impl HistoryRepo for Store {
    async fn search_messages(&self, f: &Filter) -> Result<Vec<MessageMeta>> {
        let mut q = QueryBuilder::new(
            "SELECT seq, id, at, field_id, device_id, source_ip, size, outcome, reason, device_ts, device_seq, \
             buffered, forward_status, forward_attempts, forwarded_at FROM messages",
        );
        push_filters(&mut q, f, "seq", true, true);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn search_auth_attempts(&self, f: &Filter) -> Result<Vec<AuthAttemptRow>> {
        let mut q = QueryBuilder::new(
            "SELECT id, at, field_id, device_id, unique_id, source_ip, method, outcome, reason FROM auth_attempts",
        );
        push_filters(&mut q, f, "id", true, true);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn search_security_events(&self, f: &Filter) -> Result<Vec<SecurityEventRow>> {
        let mut q = QueryBuilder::new(
            "SELECT id, at, listener, source_ip, kind, detail FROM security_events",
        );
        push_filters(&mut q, f, "id", false, false);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn purge_history(&self, cutoff: i64) -> Result<u64> {
        let mut n = 0;
        for sql in [
            "DELETE FROM dead_letters WHERE message_seq IN (SELECT seq FROM messages WHERE at < ?1 AND forward_status = 'dead')",
            "DELETE FROM messages WHERE at < ?1 AND forward_status != 'pending'",
            "DELETE FROM auth_attempts WHERE at < ?1",
            "DELETE FROM security_events WHERE at < ?1",
            "DELETE FROM accounting WHERE at < ?1",
            "DELETE FROM sim_actions WHERE at < ?1",
            "DELETE FROM audit_runs WHERE at < ?1",
        ] {
            n += sqlx::query(sql)
                .bind(cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    async fn message_body(&self, id: &str) -> Result<Option<MessageBody>> {
        Ok(
            sqlx::query_as("SELECT field_id, body, log_offset FROM messages WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{MessageRecord, Record};
    use crate::test_util::open_temp;

    fn msg(i: i64, field: &str, rejected: Option<&'static str>) -> Record {
        Record::Message(MessageRecord {
            id: format!("m{i}"),
            at: i * 10,
            field_id: Some(field.into()),
            device_id: Some(format!("d{}", i % 2)),
            source_ip: "10.0.0.1".into(),
            size: 3,
            rejected,
            device_ts: None,
            device_seq: None,
            buffered: false,
            bad_ts: false,
            body: rejected.is_none().then(|| b"{}".to_vec()),
            log_offset: None,
        })
    }

    #[tokio::test]
    async fn messages_filter_and_page() {
        let (store, _dir) = open_temp("history").await;
        let recs = (1..=10).map(|i| {
            msg(
                i,
                if i <= 6 { "fa" } else { "fb" },
                (i == 3).then_some("malformed_json"),
            )
        });
        store.writer.write(recs.collect()).await.unwrap();

        let page = |f: Filter| {
            let store = store.clone();
            async move {
                store
                    .search_messages(&f)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.seq)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            page(Filter {
                limit: 3,
                ..Default::default()
            })
            .await,
            vec![10, 9, 8]
        );
        assert_eq!(
            page(Filter {
                limit: 3,
                before: Some(8),
                ..Default::default()
            })
            .await,
            vec![7, 6, 5]
        );
        assert_eq!(
            page(Filter {
                limit: 50,
                field: Some("fb".into()),
                ..Default::default()
            })
            .await,
            vec![10, 9, 8, 7]
        );
        assert_eq!(
            page(Filter {
                limit: 50,
                outcome: Some("rejected".into()),
                ..Default::default()
            })
            .await,
            vec![3]
        );
        assert_eq!(
            page(Filter {
                limit: 50,
                device: Some("d1".into()),
                since: Some(50),
                ..Default::default()
            })
            .await,
            vec![9, 7, 5]
        );
        // A user who sees only field "fa" never gets rows of "fb", whatever else it asks.
        let vis = Some(vec!["fa".to_owned()]);
        assert_eq!(
            page(Filter {
                limit: 3,
                visible_fields: vis.clone(),
                ..Default::default()
            })
            .await,
            vec![6, 5, 4]
        );
        assert!(
            page(Filter {
                limit: 3,
                visible_fields: vis,
                field: Some("fb".into()),
                ..Default::default()
            })
            .await
            .is_empty()
        );
        store.close().await;
    }
}
