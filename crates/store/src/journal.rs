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

/// How long the history indexer waits for a fuller batch when less than one is waiting.
const LINGER: Duration = Duration::from_millis(100);
/// The history indexer's name in `log_cursors`.
pub const HISTORY: &str = "history";
/// The detection feed's name in `log_cursors`.
pub const DETECTION: &str = "detection";
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
        | u8::from(m.body.is_some()) << 6
        | u8::from(m.bad_ts) << 7;
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
        bad_ts: has(7),
        body,
        log_offset: None,
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
    /// One past the last record handed to detection (`u64::MAX` while no feed runs).
    judged: Arc<watch::Sender<u64>>,
    /// Someone waits for the history: the indexer stops lingering and commits what it has.
    hurry: Arc<tokio::sync::Notify>,
    stats: Arc<IndexerStats>,
    damage_at_open: usize,
}

impl Journal {
    /// The journal over `log`, whose recovery pass at open found `damage_at_open` damaged places.
    pub fn new(log: Log, damage_at_open: usize) -> Self {
        Self {
            log,
            indexed: Arc::new(watch::channel(0).0),
            judged: Arc::new(watch::channel(u64::MAX).0),
            hurry: Arc::default(),
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

    /// The bodies of the messages at `offsets` (ascending), by offset; an offset no longer in the
    /// log, or a record without a body, has none. The file reads run on the blocking pool.
    pub async fn bodies(&self, offsets: Vec<u64>) -> Result<Vec<(u64, Vec<u8>)>> {
        let log = self.log.clone();
        let entries = tokio::task::spawn_blocking(move || log.read_offsets(&offsets))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(entries
            .into_iter()
            .filter_map(|e| Some((e.offset, decode(&e.bytes)?.body?)))
            .collect())
    }

    /// One past the last record the detection feed handed on; changes as it goes.
    pub fn judged(&self) -> watch::Receiver<u64> {
        self.judged.subscribe()
    }

    /// The detection feed's progress (it alone calls this).
    pub fn set_judged(&self, at: u64) {
        self.judged.send_replace(at);
    }

    /// Below this offset no consumer needs the log any more: whole segments under it may go.
    pub fn consumed(&self) -> u64 {
        (*self.indexed.borrow()).min(*self.judged.borrow())
    }

    /// Waits until everything durable in the log when called is in `messages` (at once if the
    /// indexer is stalled on a failure: it may stay so for as long as the disk is full).
    pub async fn caught_up(&self) {
        if self.stats.stalled.load(Ordering::Relaxed) {
            return;
        }
        let target = self.log.durable();
        let mut rx = self.indexed.subscribe();
        if *rx.borrow() < target {
            self.hurry.notify_one();
        }
        let _ = rx.wait_for(|i| *i >= target).await;
    }
}

/// Where the named consumer stands in the log (0 before its first batch).
pub async fn cursor(store: &Store, name: &str) -> Result<u64> {
    Ok(stored_cursor(store, name).await?.unwrap_or(0))
}

/// Where the named consumer stands in the log, `None` if it never stored a place.
pub async fn stored_cursor(store: &Store, name: &str) -> Result<Option<u64>> {
    let at: Option<i64> = sqlx::query_scalar("SELECT log_offset FROM log_cursors WHERE name = ?")
        .bind(name)
        .fetch_optional(&store.pool)
        .await?;
    Ok(at.map(|a| a.max(0) as u64))
}

/// The oldest row of `messages` at or after `from_seq` that points into the log, as (seq, offset).
async fn first_logged(store: &Store, from_seq: i64) -> Result<Option<(i64, u64)>> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT seq, log_offset FROM messages WHERE seq >= ? AND log_offset IS NOT NULL ORDER BY seq LIMIT 1",
    )
    .bind(from_seq)
    .fetch_optional(&store.pool)
    .await?;
    Ok(row.map(|(s, o)| (s, o.max(0) as u64)))
}

/// Deletes the log segments nobody needs; returns how many. A segment goes once every consumer is
/// past it (the indexer, the detection feed) and no row of `messages` points into it any more: the
/// history and the outbox read bodies there, so a segment holding a pending message stays, and the
/// log follows the history's retention period. `first_seq` carries the oldest such row from one
/// call to the next (rows go from the front, so the search starts there).
pub async fn trim(journal: &Journal, store: &Store, first_seq: &mut i64) -> Result<usize> {
    let mut keep_from = journal.consumed();
    let mut first = first_logged(store, *first_seq).await?;
    if first.is_none() && *first_seq > 0 {
        // Every row from there on is gone: new rows may have started again from the first seq.
        first = first_logged(store, 0).await?;
    }
    match first {
        Some((seq, offset)) => {
            *first_seq = seq;
            keep_from = keep_from.min(offset);
        }
        None => *first_seq = 0,
    }
    let log = journal.log.clone();
    tokio::task::spawn_blocking(move || log.remove_before(keep_from))
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?
        .map_err(|e| StoreError::Io(e.to_string()))
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
        // Less than a batch waiting: linger for more, so that a quiet gateway makes a few large
        // commits instead of one per group commit of the log (each costs its encrypted pages and wakes
        // the forwarders). A reader waiting for the history (`caught_up`) or a stop ends it at once.
        if journal.log.durable().saturating_sub(at) < batch as u64 {
            tokio::select! {
                _ = tokio::time::sleep(LINGER) => {}
                _ = journal.hurry.notified() => {}
                r = durable.wait_for(|d| d.saturating_sub(at) >= batch as u64) => if r.is_err() { return },
                _ = stopped.wait_for(|s| *s) => {}
            }
        }
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
                // The body stays in the log; the row points at it.
                Some(m) => records.push(Record::Message(MessageRecord {
                    log_offset: Some(e.offset as i64),
                    body: None,
                    ..m
                })),
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
            bad_ts: rejected.is_none(),
            body: body.map(<[u8]>::to_vec),
            log_offset: None,
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

    #[tokio::test]
    async fn bodies_stay_in_the_log_and_a_segment_goes_only_when_no_row_needs_it() {
        use crate::prelude::*;
        let (store, dir) = crate::test_util::open_temp("journal-trim").await;
        let opts = sekisho_log::LogOptions {
            segment_bytes: 4096,
            ..Default::default()
        };
        let (log, _) = Log::open(&dir.0.join("log"), [3; 32], opts).unwrap();
        let journal = Journal::new(log, 0);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(index(journal.clone(), store.clone(), 50, stopped));
        let recs: Vec<_> = (0..300)
            .map(|i| MessageRecord {
                id: format!("m{i}"),
                at: i,
                ..rec(None, Some(format!("{{\"i\":{i}}}").as_bytes()))
            })
            .collect();
        for chunk in recs.chunks(10) {
            journal.append(chunk).unwrap().await.unwrap();
        }
        journal.caught_up().await;
        assert!(journal.log().disk_usage().0 >= 4, "several segments");
        // The rows point into the log and hold no body; the body is read there.
        let (field, body, at) = store.message_body("m7").await.unwrap().unwrap();
        assert_eq!((field.as_deref(), body), (Some("f1"), None));
        let at = at.unwrap() as u64;
        assert_eq!(
            journal.bodies(vec![at]).await.unwrap(),
            vec![(at, b"{\"i\":7}".to_vec())]
        );
        // Every consumer is past all of it, but every message is still pending: nothing goes.
        let mut first_seq = 0;
        assert_eq!(trim(&journal, &store, &mut first_seq).await.unwrap(), 0);
        // The first 200 are forwarded and purged: the segments holding only them go.
        let seqs: Vec<i64> = store
            .pending("f1", 200)
            .await
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        store.mark_forwarded(&seqs, 1).await.unwrap();
        assert_eq!(store.purge_history(i64::MAX).await.unwrap(), 200);
        assert!(trim(&journal, &store, &mut first_seq).await.unwrap() >= 1);
        let start = journal.log().start();
        assert!(start > 0 && start <= 200, "{start}");
        // What the outbox still holds is all there, bodies included.
        let pending = store.pending("f1", 1000).await.unwrap();
        assert_eq!(pending.len(), 100);
        let offsets: Vec<u64> = pending
            .iter()
            .map(|p| p.log_offset.unwrap() as u64)
            .collect();
        let bodies = journal.bodies(offsets).await.unwrap();
        assert_eq!(bodies.len(), 100);
        assert_eq!(bodies[0].1, b"{\"i\":200}");
        // With every row gone, the search starts again from the front.
        store
            .mark_forwarded(&pending.iter().map(|p| p.seq).collect::<Vec<_>>(), 1)
            .await
            .unwrap();
        store.purge_history(i64::MAX).await.unwrap();
        trim(&journal, &store, &mut first_seq).await.unwrap();
        assert_eq!(first_seq, 0);
        stop.send(true).unwrap();
        task.await.unwrap();
        journal.log().close();
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
