//! The acknowledgement path's storage: received messages go into the encrypted message log
//! ([`sekisho_log`]) and are acknowledged once it has synced them; the **history indexer** then copies
//! them into the SQL store (`messages`) in large batches, off the hot path, and keeps its place in the
//! log (`log_cursors`) in the same transaction. After a crash it goes on from that place, so every
//! logged message is indexed exactly once.
//!
//! A record in the log is one [`MessageRecord`] in a compact binary form ([`encode`]).

use crate::records::{MessageRecord, Record};
use crate::{Result, Store, StoreError};
use sekisho_log::{Log, LogError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The history indexer's name in `log_cursors`.
pub const HISTORY: &str = "history";
const VERSION: u8 = 1;

impl From<LogError> for StoreError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Overloaded => Self::Overloaded,
            LogError::Closed => Self::Closed,
            LogError::Io(e) => Self::Io(e.to_string()),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

/// Appends `m`'s log form to `out`.
pub fn encode(m: &MessageRecord, out: &mut Vec<u8>) {
    let flags = u8::from(m.field_id.is_some())
        | u8::from(m.device_id.is_some()) << 1
        | u8::from(m.rejected.is_some()) << 2
        | u8::from(m.device_ts.is_some()) << 3
        | u8::from(m.device_seq.is_some()) << 4
        | u8::from(m.buffered) << 5
        | u8::from(m.body.is_some()) << 6;
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&m.at.to_le_bytes());
    out.extend_from_slice(&m.size.to_le_bytes());
    put_str(out, &m.id);
    put_str(out, &m.source_ip);
    for s in [&m.field_id, &m.device_id].into_iter().flatten() {
        put_str(out, s);
    }
    if let Some(r) = m.rejected {
        put_str(out, r);
    }
    for n in [m.device_ts, m.device_seq].into_iter().flatten() {
        out.extend_from_slice(&n.to_le_bytes());
    }
    if let Some(b) = &m.body {
        out.extend_from_slice(b);
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The record [`encode`] wrote; `None` if `b` is not one.
pub fn decode(b: &[u8]) -> Option<MessageRecord> {
    let mut c = Cursor(b);
    let [version, flags] = c.take(2)? else {
        return None;
    };
    if *version != VERSION {
        return None;
    }
    let has = |bit: u8| flags & (1 << bit) != 0;
    let at = c.i64()?;
    let size = c.i64()?;
    let id = c.string()?;
    let source_ip = c.string()?;
    let field_id = if has(0) { Some(c.string()?) } else { None };
    let device_id = if has(1) { Some(c.string()?) } else { None };
    let rejected = if has(2) {
        let code: sekisho_core::ErrorCode = c.string()?.parse().ok()?;
        Some(code.as_str())
    } else {
        None
    };
    let device_ts = if has(3) { Some(c.i64()?) } else { None };
    let device_seq = if has(4) { Some(c.i64()?) } else { None };
    let body = has(6).then(|| c.0.to_vec());
    Some(MessageRecord {
        id,
        at,
        field_id,
        device_id,
        source_ip,
        size,
        rejected,
        device_ts,
        device_seq,
        buffered: has(5),
        body,
    })
}

/// Counters for the operations view.
#[derive(Debug, Default)]
pub struct IndexerStats {
    pub indexed: AtomicU64,
    /// Log records that are not messages this version can read (reported one by one in the log).
    pub unreadable: AtomicU64,
    pub failures: AtomicU64,
    /// Whether the indexer's last attempt failed (the disk may be full): nobody should wait for it.
    pub stalled: std::sync::atomic::AtomicBool,
}

/// The message log as the hot path and the indexer see it; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    log: Log,
    /// One past the last record copied into `messages`.
    indexed: Arc<watch::Sender<u64>>,
    stats: Arc<IndexerStats>,
    damage_at_open: usize,
}

impl Journal {
    /// The journal over `log`, whose recovery pass at open found `damage_at_open` damaged places.
    pub fn new(log: Log, damage_at_open: usize) -> Self {
        Self {
            log,
            indexed: Arc::new(watch::channel(0).0),
            stats: Arc::default(),
            damage_at_open,
        }
    }

    pub fn damage_at_open(&self) -> usize {
        self.damage_at_open
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends `records` to the log now, in order, or refuses ([`StoreError::Overloaded`] when its
    /// queue is full). The future resolves once the sync that holds them is done.
    pub fn append(
        &self,
        records: &[MessageRecord],
    ) -> Result<impl Future<Output = Result<()>> + use<>> {
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(|r| 64 + r.body.as_ref().map_or(0, Vec::len))
                .sum(),
        );
        let mut ends = Vec::with_capacity(records.len());
        for r in records {
            encode(r, &mut buf);
            ends.push(buf.len());
        }
        let slices = ends.iter().scan(0, |start, &end| {
            let s = &buf[*start..end];
            *start = end;
            Some(s)
        });
        let ticket = if records.is_empty() {
            None
        } else {
            Some(self.log.append_all(slices)?)
        };
        Ok(async move {
            match ticket {
                Some(t) => t.durable().await.map(|_| ()).map_err(StoreError::from),
                None => Ok(()),
            }
        })
    }

    /// One past the last record in `messages`; changes as the indexer goes.
    pub fn indexed(&self) -> watch::Receiver<u64> {
        self.indexed.subscribe()
    }

    pub fn stats(&self) -> &IndexerStats {
        &self.stats
    }

    /// Waits until everything durable in the log when called is in `messages` (at once if the
    /// indexer is stalled on a failure: it may stay so for as long as the disk is full).
    pub async fn caught_up(&self) {
        if self.stats.stalled.load(Ordering::Relaxed) {
            return;
        }
        let target = self.log.durable();
        let mut rx = self.indexed.subscribe();
        let _ = rx.wait_for(|i| *i >= target).await;
    }
}

/// Where the named consumer stands in the log (0 before its first batch).
pub async fn cursor(store: &Store, name: &str) -> Result<u64> {
    let at: Option<i64> = sqlx::query_scalar("SELECT log_offset FROM log_cursors WHERE name = ?")
        .bind(name)
        .fetch_optional(&store.pool)
        .await?;
    Ok(at.unwrap_or(0).max(0) as u64)
}

/// The history indexer: copies the log into `messages`, `batch` records per transaction, until
/// `stopped`. A failed commit is retried (the disk may be full); nothing is skipped but records this
/// version cannot read, each reported.
pub async fn index(
    journal: Journal,
    store: Store,
    batch: usize,
    mut stopped: watch::Receiver<bool>,
) {
    let mut at = match cursor(&store, HISTORY).await {
        Ok(at) => at,
        Err(e) => {
            tracing::error!(error = %e, "the history indexer cannot read its place in the log; not indexing");
            return;
        }
    };
    journal.indexed.send_replace(at);
    let mut durable = journal.log.subscribe();
    let stats = journal.stats.clone();
    loop {
        let log = journal.log.clone();
        let read = tokio::task::spawn_blocking(move || log.read(at, batch)).await;
        let entries = match read {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::error!(error = %e, offset = at, "the history indexer cannot read the log; retrying");
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.stalled.store(true, Ordering::Relaxed);
                if pause(&mut stopped, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        let Some(last) = entries.last().map(|e| e.offset) else {
            tokio::select! {
                r = durable.wait_for(|d| *d > at) => if r.is_err() { return },
                _ = stopped.wait_for(|s| *s) => return,
            }
            continue;
        };
        let mut records = Vec::with_capacity(entries.len() + 1);
        for e in &entries {
            match decode(&e.bytes) {
                Some(m) => records.push(Record::Message(m)),
                None => {
                    stats.unreadable.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        offset = e.offset,
                        "a message log record does not parse; not indexed"
                    );
                }
            }
        }
        let n = records.len() as u64;
        records.push(Record::Cursor {
            name: HISTORY,
            offset: (last + 1) as i64,
        });
        match store.writer.write_rebuildable(records).await {
            Ok(()) => {
                at = last + 1;
                stats.stalled.store(false, Ordering::Relaxed);
                stats.indexed.fetch_add(n, Ordering::Relaxed);
                journal.indexed.send_replace(at);
            }
            Err(StoreError::Closed) => return,
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.stalled.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, offset = at, "store commit failed for indexed messages; retrying");
                if pause(&mut stopped, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}

/// Waits `d` (an I/O retry guard, on tokio's timer); `true` if stopped meanwhile.
async fn pause(stopped: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stopped.wait_for(|s| *s) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rejected: Option<&'static str>, body: Option<&[u8]>) -> MessageRecord {
        MessageRecord {
            id: "0190-abc".into(),
            at: 1_700_000_000_123,
            field_id: Some("f1".into()),
            device_id: rejected.is_none().then(|| "d1".to_owned()),
            source_ip: "2001:db8::1".into(),
            size: 42,
            rejected,
            device_ts: Some(-5),
            device_seq: None,
            buffered: true,
            body: body.map(<[u8]>::to_vec),
        }
    }

    async fn count(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_indexer_copies_each_logged_message_once_across_restarts() {
        let (store, dir) = crate::test_util::open_temp("journal").await;
        let log_dir = dir.0.join("log");
        let append = |j: &Journal, range: std::ops::Range<usize>| {
            let recs: Vec<_> = range
                .map(|i| MessageRecord {
                    id: format!("m{i}"),
                    ..rec(None, Some(b"{}"))
                })
                .collect();
            j.append(&recs).unwrap()
        };
        for round in 0..2 {
            let (log, _) = Log::open(&log_dir, [3; 32], Default::default()).unwrap();
            let journal = Journal::new(log, 0);
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(index(journal.clone(), store.clone(), 16, stopped));
            let (from, to) = if round == 0 { (0, 100) } else { (100, 105) };
            append(&journal, from..to).await.unwrap();
            journal.caught_up().await;
            assert_eq!(count(&store).await, to as i64);
            assert_eq!(cursor(&store, HISTORY).await.unwrap(), to as u64);
            assert_eq!(
                journal.stats().indexed.load(Ordering::Relaxed),
                (to - from) as u64
            );
            stop.send(true).unwrap();
            task.await.unwrap();
            journal.log().close();
        }
        store.close().await;
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        for m in [
            rec(None, Some(b"{\"t\":1}")),
            rec(None, Some(b"")),
            rec(Some("malformed_json"), None),
        ] {
            let mut b = Vec::new();
            encode(&m, &mut b);
            let d = decode(&b).unwrap();
            assert_eq!(format!("{d:?}"), format!("{m:?}"));
        }
        let mut b = Vec::new();
        encode(&rec(Some("payload_too_large"), None), &mut b);
        assert!(decode(&b[..b.len() - 3]).is_none(), "cut short");
        b[0] = 9;
        assert!(decode(&b).is_none(), "another version");
        assert!(decode(&[]).is_none());
    }
}
