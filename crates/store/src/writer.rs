//! The group-commit writer: the one task that writes hot-path rows. Callers queue operations on a bounded
//! channel; the task merges whatever is queued (up to `group_commit_max`) into one transaction, commits
//! (one fsync for all of them), then answers each caller. A message is acknowledged to a device only after
//! its commit returns, so a crash after `202` loses nothing.
//!
//! A full queue is refused with [`StoreError::Overloaded`] after a short wait: the device gets `503` and
//! retries; nothing is accepted and then dropped.

use crate::records::Record;
use crate::{StoreError, StoreOptions};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

type Reply = oneshot::Sender<Result<(), String>>;

struct Op {
    records: Vec<Record>,
    /// Rows that can be rebuilt from the message log: their commit need not be fsynced.
    rebuildable: bool,
    reply: Option<Reply>,
    /// Stop after this operation, closing the connection, then answer.
    close: bool,
}

/// The outcome of a queued operation, once the writer answers.
async fn committed(done: oneshot::Receiver<Result<(), String>>) -> Result<(), StoreError> {
    match done.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StoreError::Db(sqlx::Error::Protocol(e))),
        Err(_) => Err(StoreError::Closed),
    }
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
    enqueue_timeout: Duration,
    /// Notified after every commit that stored accepted messages (the cloud connector waits on it).
    pub committed: Arc<Notify>,
    stats: Arc<WriterStats>,
}

/// Counters for the operations view.
#[derive(Default, Debug)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub records: AtomicU64,
    pub failures: AtomicU64,
    pub refused: AtomicU64,
}

impl Writer {
    pub(crate) fn start(conn: SqliteConnection, opts: &StoreOptions) -> Self {
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let committed = Arc::new(Notify::new());
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(run(
            conn,
            rx,
            opts.sync_full,
            opts.group_commit_max.max(1),
            committed.clone(),
            stats.clone(),
        ));
        Self {
            tx,
            enqueue_timeout: opts.enqueue_timeout,
            committed,
            stats,
        }
    }

    /// Stores `records` in one transaction and returns once they are committed.
    pub async fn write(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.write_op(records, false).await
    }

    /// Like [`Writer::write`], for rows rebuilt from the message log after a loss (the history
    /// indexer's, with its cursor in the same transaction): with `sync = "full"` their commit is not
    /// fsynced by itself (`synchronous = NORMAL`). A power cut may undo such a commit, cursor included,
    /// never corrupt it; the indexer then copies the same records again. The next ordinary commit
    /// syncs the write-ahead log and everything before it.
    pub async fn write_rebuildable(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.write_op(records, true).await
    }

    async fn write_op(&self, records: Vec<Record>, rebuildable: bool) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.enqueue(Op {
            records,
            rebuildable,
            reply: Some(reply),
            close: false,
        })
        .await?;
        committed(done).await
    }

    fn refused(&self, e: mpsc::error::TrySendError<Op>) -> StoreError {
        match e {
            mpsc::error::TrySendError::Full(_) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                StoreError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        }
    }

    /// Queues `records` now, in call order, if there is room (else [`StoreError::Overloaded`]); the
    /// returned future resolves once they are committed. For callers whose writes must keep their
    /// order (RADIUS accounting) and who can refuse at once rather than wait (the client retransmits).
    pub fn submit(
        &self,
        records: Vec<Record>,
    ) -> Result<impl Future<Output = Result<(), StoreError>> + use<>, StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .try_send(Op {
                records,
                rebuildable: false,
                reply: Some(reply),
                close: false,
            })
            .map_err(|e| self.refused(e))?;
        Ok(committed(done))
    }

    /// Queues `records` only if there is room right now (connection events under a flood).
    pub fn try_submit(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.tx
            .try_send(Op {
                records,
                rebuildable: false,
                reply: None,
                close: false,
            })
            .map_err(|e| self.refused(e))
    }

    async fn enqueue(&self, op: Op) -> Result<(), StoreError> {
        match self.tx.send_timeout(op, self.enqueue_timeout).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Overloaded)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(StoreError::Closed),
        }
    }

    /// Commits what is queued, closes the writer's connection and stops the task. Later writes fail
    /// with [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        let op = Op {
            records: Vec::new(),
            rebuildable: false,
            reply: Some(reply),
            close: true,
        };
        if self.tx.send(op).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Operations waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Op>,
    sync_full: bool,
    max: usize,
    committed: Arc<Notify>,
    stats: Arc<WriterStats>,
) {
    let mut ops = Vec::with_capacity(max);
    let mut synced = sync_full;
    while rx.recv_many(&mut ops, max).await > 0 {
        let sync = sync_full && ops.iter().any(|o| !o.rebuildable);
        let result = match set_sync(&mut conn, &mut synced, sync).await {
            Ok(()) => commit(&mut conn, &ops).await,
            Err(e) => Err(e),
        };
        let n: usize = ops.iter().map(|o| o.records.len()).sum();
        let has_messages = ops
            .iter()
            .flat_map(|o| &o.records)
            .any(|r| matches!(r, Record::Message(_)));
        match &result {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.records.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, records = n, "store commit failed; callers are told");
            }
        }
        let closing = ops.iter().any(|o| o.close);
        let mut closers = Vec::new();
        for op in ops.drain(..) {
            match op.reply {
                Some(reply) if op.close => closers.push(reply),
                Some(reply) => {
                    let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                }
                None => {}
            }
        }
        if result.is_ok() && has_messages {
            committed.notify_waiters();
        }
        if closing {
            // Close the connection before answering: SQLCipher's connection must be gone before the
            // process exits, or its worker thread races OpenSSL's exit-time cleanup (SIGSEGV).
            rx.close();
            if let Err(e) = conn.close().await {
                tracing::warn!(error = %e, "closing the writer's connection");
            }
            for reply in closers {
                let _ = reply.send(Ok(()));
            }
            return;
        }
    }
}

/// Switches the connection's `synchronous` setting when the batch needs the other one.
async fn set_sync(
    conn: &mut SqliteConnection,
    now: &mut bool,
    want: bool,
) -> Result<(), sqlx::Error> {
    if *now != want {
        let sql = if want {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        sqlx::query(sql).execute(&mut *conn).await?;
        *now = want;
    }
    Ok(())
}

async fn commit(conn: &mut SqliteConnection, ops: &[Op]) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin_with(crate::WRITE_TX).await?;
    let all = || ops.iter().flat_map(|o| o.records.iter());
    let messages: Vec<_> = all()
        .filter_map(|r| {
            if let Record::Message(m) = r {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    for chunk in messages.chunks(500) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO messages (id, at, field_id, device_id, source_ip, size, outcome, reason, device_ts, \
             device_seq, buffered, forward_status, body, log_offset) ",
        );
        q.push_values(chunk, |mut b, m| {
            b.push_bind(&m.id)
                .push_bind(m.at)
                .push_bind(&m.field_id)
                .push_bind(&m.device_id)
                .push_bind(&m.source_ip)
                .push_bind(m.size)
                .push_bind(if m.rejected.is_some() {
                    "rejected"
                } else {
                    "accepted"
                })
                .push_bind(m.rejected)
                .push_bind(m.device_ts)
                .push_bind(m.device_seq)
                .push_bind(m.buffered)
                .push_bind(if m.rejected.is_some() {
                    "none"
                } else {
                    "pending"
                })
                .push_bind(m.body.as_deref())
                .push_bind(m.log_offset);
        });
        q.build().execute(&mut *tx).await?;
    }
    let attempts: Vec<_> = all()
        .filter_map(|r| {
            if let Record::Auth(a) = r {
                Some(a)
            } else {
                None
            }
        })
        .collect();
    for chunk in attempts.chunks(500) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO auth_attempts (at, field_id, device_id, unique_id, source_ip, method, outcome, reason) ",
        );
        q.push_values(chunk, |mut b, a| {
            b.push_bind(a.at)
                .push_bind(&a.field_id)
                .push_bind(&a.device_id)
                .push_bind(&a.unique_id)
                .push_bind(&a.source_ip)
                .push_bind(a.method)
                .push_bind(a.outcome)
                .push_bind(a.reason);
        });
        q.build().execute(&mut *tx).await?;
    }
    let events: Vec<_> = all()
        .filter_map(|r| {
            if let Record::Security(e) = r {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    for chunk in events.chunks(500) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO security_events (at, listener, source_ip, kind, detail) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.at)
                .push_bind(e.listener)
                .push_bind(&e.source_ip)
                .push_bind(e.kind)
                .push_bind(&e.detail);
        });
        q.build().execute(&mut *tx).await?;
    }
    // Accounting rows and live-session changes, in the order they were queued.
    for r in all() {
        match r {
            Record::Accounting(a) => {
                let inserted = sqlx::query(
                    "INSERT OR IGNORE INTO accounting (at, client_ip, packet_key, status, imsi, msisdn, framed_ip, \
                     session_id, input_octets, output_octets, session_time) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                )
                .bind(a.at)
                .bind(&a.client_ip)
                .bind(&a.packet_key[..])
                .bind(a.status)
                .bind(&a.imsi)
                .bind(&a.msisdn)
                .bind(&a.framed_ip)
                .bind(&a.session_id)
                .bind(a.input_octets)
                .bind(a.output_octets)
                .bind(a.session_time)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if let Some(s) = a.session.as_ref().filter(|_| inserted > 0) {
                    sqlx::query(
                        "INSERT OR REPLACE INTO sim_sessions (imsi, session_id, client_ip, framed_ip, msisdn, online, \
                         started_at, updated_at, input_octets, output_octets) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    )
                    .bind(&s.imsi)
                    .bind(&s.session_id)
                    .bind(&s.client_ip)
                    .bind(&s.framed_ip)
                    .bind(&s.msisdn)
                    .bind(s.online)
                    .bind(s.started_at)
                    .bind(s.updated_at)
                    .bind(s.input_octets)
                    .bind(s.output_octets)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Record::SessionsOffline { client_ip, at } => {
                sqlx::query(
                    "UPDATE sim_sessions SET online = 0, updated_at = ? WHERE client_ip = ? AND online = 1",
                )
                .bind(at)
                .bind(client_ip)
                .execute(&mut *tx)
                .await?;
            }
            Record::Cursor { name, offset } => {
                sqlx::query("INSERT OR REPLACE INTO log_cursors (name, log_offset) VALUES (?, ?)")
                    .bind(name)
                    .bind(offset)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use crate::records::{MessageRecord, Record};
    use crate::test_util::open_temp;

    fn msg(i: usize) -> Record {
        Record::Message(MessageRecord {
            id: format!("m{i}"),
            at: 1,
            field_id: Some("f".into()),
            device_id: Some("d".into()),
            source_ip: "127.0.0.1".into(),
            size: 2,
            rejected: None,
            device_ts: None,
            device_seq: Some(i as i64),
            buffered: false,
            bad_ts: false,
            body: Some(b"{}".to_vec()),
            log_offset: None,
        })
    }

    #[tokio::test]
    async fn concurrent_writes_are_all_committed() {
        let (store, _dir) = open_temp("writer").await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let w = store.writer.clone();
            tasks.push(tokio::spawn(async move { w.write(vec![msg(i)]).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM messages WHERE forward_status = 'pending'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(n, 200);
        assert!(
            store
                .writer
                .stats()
                .commits
                .load(std::sync::atomic::Ordering::Relaxed)
                <= 200
        );
        store.close().await;
    }

    async fn level(c: &mut sqlx::SqliteConnection) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(c)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn rebuildable_batches_switch_fsync_off_and_ordinary_ones_back_on() {
        let (store, _dir) = open_temp("writer-sync").await;
        let mut conn = store.pool.acquire().await.unwrap();
        assert_eq!(level(&mut conn).await, 2, "FULL as opened");
        let mut now = true;
        super::set_sync(&mut conn, &mut now, false).await.unwrap();
        assert_eq!((level(&mut conn).await, now), (1, false), "NORMAL");
        super::set_sync(&mut conn, &mut now, true).await.unwrap();
        assert_eq!((level(&mut conn).await, now), (2, true), "FULL again");
        drop(conn);
        // Both kinds of write commit.
        store.writer.write_rebuildable(vec![msg(1)]).await.unwrap();
        store.writer.write(vec![msg(2)]).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(n, 2);
        store.close().await;
    }

    #[tokio::test]
    async fn a_failed_commit_is_reported_to_every_caller() {
        let (store, _dir) = open_temp("writer-fail").await;
        store.writer.write(vec![msg(1)]).await.unwrap();
        // The same message id again violates the UNIQUE constraint: the whole operation fails, loudly.
        let err = store.writer.write(vec![msg(1)]).await.unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        store.close().await;
    }
}
