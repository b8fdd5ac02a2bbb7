//! Sekisho's message log: the acknowledgement path's durable write.
//!
//! An append-only log of records in segment files, each group commit one AEAD-sealed frame
//! ([`segment`] has the format). Appenders copy their record into the open batch under a short lock and
//! get a [`Ticket`]; one **writer thread** seals the batch and writes it, one **sync thread**
//! `fdatasync`s, so batch N+1 is sealed and written while batch N syncs. A ticket resolves only after
//! the sync that holds its record: a device is answered `202` after that, so a crash after the answer
//! loses nothing.
//!
//! Readers address records by **offset** (0, 1, 2, … for the log's life). They see only durable
//! records. [`Log::remove_before`] deletes whole segments below an offset every consumer has passed.
//!
//! At open, [`recover`] authenticates every frame, cuts a torn tail and reports any damage; the writer
//! then starts a new segment with a new key.
//!
//! Architecture invariant: this crate knows bytes and offsets, not messages. It never logs a record.

#![forbid(unsafe_code)]

mod recover;
pub mod segment;

pub use recover::{Damage, DamageKind, Recovery};
use segment::{FRAME_HEADER_LEN, HEADER_LEN, MasterKey, SegmentHeader, SegmentKey};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use tokio::sync::watch;

/// How the log writes.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// `true`: a record is durable after `fdatasync`; `false`: after the write (survives a process crash,
    /// not a power loss).
    pub sync: bool,
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Bytes waiting for the writer above which appends are refused ([`LogError::Overloaded`]).
    pub max_pending_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            sync: true,
            segment_bytes: 64 << 20,
            max_pending_bytes: 16 << 20,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// Too many bytes wait for the writer: refuse rather than queue without bound.
    #[error("the message log's write queue is full")]
    Overloaded,
    /// The log is closed (shutdown).
    #[error("the message log is closed")]
    Closed,
    /// The write or the sync failed (full disk, I/O error); the records were not stored.
    #[error("the message log could not write: {0}")]
    Io(Arc<str>),
}

/// Counters for the operations view.
#[derive(Debug, Default)]
pub struct LogStats {
    pub frames: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub syncs: AtomicU64,
    pub failures: AtomicU64,
    pub refused: AtomicU64,
}

type Outcome = Option<Result<u64, LogError>>;

/// The open batch: records waiting for the writer.
struct Open {
    /// `FRAME_HEADER_LEN` reserved bytes, then `len ‖ bytes` per record.
    buf: Vec<u8>,
    count: u32,
    done: watch::Sender<Outcome>,
    closing: bool,
    /// Set after a failed sync: nothing more is accepted.
    broken: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FramePos {
    first: u64,
    pos: u64,
}

/// One segment file, as readers see it.
pub(crate) struct Segment {
    base: u64,
    /// One past the last record written into it.
    end: u64,
    path: PathBuf,
    file: Arc<File>,
    key: Arc<SegmentKey>,
    frames: Vec<FramePos>,
}

struct Shared {
    dir: PathBuf,
    opts: LogOptions,
    open: Mutex<Open>,
    wake: Condvar,
    /// One past the last durable record.
    durable: watch::Sender<u64>,
    segments: RwLock<Vec<Segment>>,
    stats: LogStats,
}

/// The message log; cheap to clone.
#[derive(Clone)]
pub struct Log {
    shared: Arc<Shared>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// The place of one record, or of a run of consecutive records, in a batch until the batch is
/// durable.
pub struct Ticket {
    done: watch::Receiver<Outcome>,
    index: u32,
}

impl Ticket {
    /// Waits for the sync that holds the record(s); returns the (first) record's offset.
    pub async fn durable(mut self) -> Result<u64, LogError> {
        let outcome = self
            .done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| LogError::Closed)?
            .clone();
        match outcome {
            Some(Ok(first)) => Ok(first + u64::from(self.index)),
            Some(Err(e)) => Err(e),
            None => Err(LogError::Closed),
        }
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Reads, authenticates and splits the frame at `f`, handing each record and its offset to `each`.
fn read_frame(
    file: &File,
    key: &SegmentKey,
    f: FramePos,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(u64, &[u8]),
) -> io::Result<()> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut h, f.pos)?;
    let header = segment::FrameHeader::decode(&h)
        .ok_or_else(|| io::Error::other("a frame header changed on disk"))?;
    buf.resize(header.len as usize, 0);
    file.read_exact_at(buf, f.pos + FRAME_HEADER_LEN as u64)?;
    let plain = key
        .open(&header, buf)
        .ok_or_else(|| io::Error::other("a frame no longer authenticates"))?;
    let records = segment::split_records(plain, header.count)
        .ok_or_else(|| io::Error::other("a frame's records do not parse"))?;
    for (i, r) in records.into_iter().enumerate() {
        each(header.first + i as u64, r);
    }
    Ok(())
}

fn io_error(e: &io::Error) -> LogError {
    LogError::Io(e.to_string().into())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segment the writer appends to.
struct Active {
    file: Arc<File>,
    key: Arc<SegmentKey>,
    len: u64,
    nonce: u64,
}

impl Active {
    fn create(dir: &Path, master: &MasterKey, base: u64) -> io::Result<(Self, Segment)> {
        let mut salt = [0u8; 32];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| io::Error::other("no randomness"))?;
        let header = SegmentHeader {
            key_id: master.id,
            base,
            salt,
        };
        let path = recover::segment_path(dir, base);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)?;
        let key = SegmentKey::derive(master, &salt);
        file.write_all(&header.encode(&key))?;
        file.sync_all()?;
        sync_dir(dir)?;
        let file = Arc::new(file);
        let key = Arc::new(key);
        let seg = Segment {
            base,
            end: base,
            path,
            file: file.clone(),
            key: key.clone(),
            frames: Vec::new(),
        };
        Ok((
            Self {
                file,
                key,
                len: HEADER_LEN as u64,
                nonce: 0,
            },
            seg,
        ))
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`: recovers what is there, then starts the writer on a
    /// new segment. The report lists any damage found; the log opens whatever it says.
    pub fn open(dir: &Path, key: [u8; 32], opts: LogOptions) -> io::Result<(Self, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let master = MasterKey::new(segment::KEY_ID_DATABASE, key);
        let (mut segments, report) = recover::recover(dir, &master)?;
        for d in &report.damage {
            tracing::error!(damage = %d, "message log damage found at open");
        }
        let next = report.next_offset;
        let (active, seg) = Active::create(dir, &master, next)?;
        segments.push(seg);
        let (done, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            opts,
            open: Mutex::new(Open {
                buf: vec![0; FRAME_HEADER_LEN],
                count: 0,
                done,
                closing: false,
                broken: None,
            }),
            wake: Condvar::new(),
            durable: watch::channel(next).0,
            segments: RwLock::new(segments),
            stats: LogStats::default(),
        });
        let (to_sync, synced) = mpsc::channel();
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || write_loop(&s, master, active, next, to_sync))?,
        );
        if shared.opts.sync {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("log-sync".into())
                    .spawn(move || sync_loop(&s, synced))?,
            );
        }
        Ok((
            Self {
                shared,
                threads: Arc::new(Mutex::new(threads)),
            },
            report,
        ))
    }

    /// Appends one record to the open batch.
    pub fn append(&self, record: &[u8]) -> Result<Ticket, LogError> {
        self.append_all(std::iter::once(record))
    }

    /// Appends records to the same batch, in order, so they get consecutive offsets: one ticket for
    /// all of them, whose offset is the first one's. At least one record.
    pub fn append_all<'a>(
        &self,
        records: impl IntoIterator<Item = &'a [u8]> + Clone,
    ) -> Result<Ticket, LogError> {
        let bytes: usize = records.clone().into_iter().map(|r| 4 + r.len()).sum();
        let mut open = self.shared.open.lock().expect("log lock");
        if open.closing {
            return Err(LogError::Closed);
        }
        if let Some(e) = &open.broken {
            return Err(LogError::Io(e.clone()));
        }
        if open.count > 0 && open.buf.len() + bytes > self.shared.opts.max_pending_bytes {
            self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LogError::Overloaded);
        }
        let ticket = Ticket {
            done: open.done.subscribe(),
            index: open.count,
        };
        for r in records {
            open.buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            open.buf.extend_from_slice(r);
            open.count += 1;
        }
        let first = ticket.index == 0 && open.count > 0;
        drop(open);
        if first {
            self.shared.wake.notify_one();
        }
        Ok(ticket)
    }

    /// One past the last durable record: readers see offsets below it.
    pub fn durable(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// Changes of [`Log::durable`], to wait for new records.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.durable.subscribe()
    }

    /// The oldest offset still in the log.
    pub fn start(&self) -> u64 {
        let segs = self.shared.segments.read().expect("log lock");
        segs.iter()
            .find(|s| s.end > s.base)
            .or(segs.last())
            .map_or(0, |s| s.base)
    }

    /// Up to `max` durable records from offset `from` on (an offset lost to reported damage is
    /// skipped: the first entry's offset tells). Blocking file reads: call from a blocking context.
    pub fn read(&self, from: u64, max: usize) -> io::Result<Vec<Entry>> {
        let durable = self.durable();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // The frames to read, taken under the lock; the reads and decryption happen after it, so the
        // writer (which takes the lock after every frame) never waits for a reader's I/O.
        let mut frames: Vec<(Arc<File>, Arc<SegmentKey>, FramePos)> = Vec::new();
        let mut useful = 0usize;
        {
            let segs = self.shared.segments.read().expect("log lock");
            let first_seg = segs.partition_point(|s| s.end <= from);
            'segments: for seg in &segs[first_seg..] {
                let start = seg
                    .frames
                    .partition_point(|f| f.first <= from)
                    .saturating_sub(1);
                for f in &seg.frames[start..] {
                    // Enough once a frame starting at or after `from` is in and this one starts past
                    // `from + max` (a frame after a gap left by damage counts as the first such).
                    let enough = f.first >= from.saturating_add(max as u64) && useful > 0;
                    if f.first >= durable || enough {
                        break 'segments;
                    }
                    useful += usize::from(f.first >= from);
                    frames.push((seg.file.clone(), seg.key.clone(), *f));
                }
            }
        }
        for (file, key, f) in frames {
            if out.len() >= max {
                break;
            }
            read_frame(&file, &key, f, &mut buf, |offset, r| {
                if offset >= from && offset < durable && out.len() < max {
                    out.push(Entry {
                        offset,
                        bytes: r.to_vec(),
                    });
                }
            })?;
        }
        Ok(out)
    }

    /// The durable records at `offsets` (ascending), each frame read and decrypted once. An offset
    /// that is no longer in the log (removed, or lost to reported damage) has no entry. Blocking file
    /// reads: call from a blocking context.
    pub fn read_offsets(&self, offsets: &[u64]) -> io::Result<Vec<Entry>> {
        let durable = self.durable();
        let mut frames: Vec<(Arc<File>, Arc<SegmentKey>, FramePos)> = Vec::new();
        {
            let segs = self.shared.segments.read().expect("log lock");
            for &o in offsets.iter().filter(|&&o| o < durable) {
                let Some(seg) = segs.get(segs.partition_point(|s| s.end <= o)) else {
                    break;
                };
                let i = seg.frames.partition_point(|f| f.first <= o);
                let Some(f) = i.checked_sub(1).map(|i| seg.frames[i]) else {
                    continue;
                };
                if frames
                    .last()
                    .is_none_or(|(_, _, last)| last.pos != f.pos || last.first != f.first)
                {
                    frames.push((seg.file.clone(), seg.key.clone(), f));
                }
            }
        }
        let mut out = Vec::with_capacity(offsets.len());
        let mut buf = Vec::new();
        for (file, key, f) in frames {
            read_frame(&file, &key, f, &mut buf, |offset, r| {
                if offsets.binary_search(&offset).is_ok() && offset < durable {
                    out.push(Entry {
                        offset,
                        bytes: r.to_vec(),
                    });
                }
            })?;
        }
        Ok(out)
    }

    /// Deletes every closed segment whose records all lie below `offset`; returns how many.
    pub fn remove_before(&self, offset: u64) -> io::Result<usize> {
        let mut segs = self.shared.segments.write().expect("log lock");
        let active = segs.len().saturating_sub(1);
        let n = segs[..active].partition_point(|s| s.end <= offset);
        for s in segs.drain(..n) {
            std::fs::remove_file(&s.path)?;
        }
        drop(segs);
        if n > 0 {
            sync_dir(&self.shared.dir)?;
        }
        Ok(n)
    }

    /// Segment files and their total size.
    pub fn disk_usage(&self) -> (usize, u64) {
        let segs = self.shared.segments.read().expect("log lock");
        let bytes = segs
            .iter()
            .filter_map(|s| s.file.metadata().ok())
            .map(|m| m.len())
            .sum();
        (segs.len(), bytes)
    }

    pub fn stats(&self) -> &LogStats {
        &self.shared.stats
    }

    /// Writes and syncs what is queued, then stops the threads. Later appends fail with
    /// [`LogError::Closed`].
    pub fn close(&self) {
        self.shared.open.lock().expect("log lock").closing = true;
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().expect("log lock"));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A written frame waiting for its sync.
struct Written {
    file: Arc<File>,
    end: u64,
    done: watch::Sender<Outcome>,
    first: u64,
}

fn write_loop(
    shared: &Shared,
    master: MasterKey,
    mut active: Active,
    mut next: u64,
    to_sync: mpsc::Sender<Written>,
) {
    let mut spare = vec![0u8; FRAME_HEADER_LEN];
    loop {
        let (mut buf, count, done) = {
            let mut open = shared.open.lock().expect("log lock");
            while open.count == 0 && !open.closing {
                open = shared.wake.wait(open).expect("log lock");
            }
            if open.count == 0 {
                return;
            }
            let count = std::mem::take(&mut open.count);
            let buf = std::mem::replace(&mut open.buf, std::mem::take(&mut spare));
            let done = std::mem::replace(&mut open.done, watch::channel(None).0);
            (buf, count, done)
        };
        let first = next;
        active.key.seal(&mut buf, first, count, active.nonce);
        active.nonce += 1;
        let pos = active.len;
        match (&*active.file).write_all(&buf) {
            Ok(()) => {
                active.len += buf.len() as u64;
                next += u64::from(count);
                let stats = &shared.stats;
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.records.fetch_add(u64::from(count), Ordering::Relaxed);
                stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                {
                    let mut segs = shared.segments.write().expect("log lock");
                    let seg = segs.last_mut().expect("the active segment");
                    seg.frames.push(FramePos { first, pos });
                    seg.end = next;
                }
                if shared.opts.sync {
                    let w = Written {
                        file: active.file.clone(),
                        end: next,
                        done,
                        first,
                    };
                    if to_sync.send(w).is_err() {
                        return;
                    }
                } else {
                    shared.durable.send_replace(next);
                    done.send_replace(Some(Ok(first)));
                }
            }
            Err(e) => {
                // Cut what part of the frame reached the file, so the next frame follows the last good one.
                shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, records = count, "message log write failed; appenders are told");
                let _ = active.file.set_len(pos);
                done.send_replace(Some(Err(io_error(&e))));
            }
        }
        buf.truncate(FRAME_HEADER_LEN);
        spare = buf;
        if active.len >= shared.opts.segment_bytes {
            // The old segment's frames are synced by the sync thread (it holds the file); the new one
            // is created and its directory entry synced before any frame goes into it.
            match Active::create(&shared.dir, &master, next) {
                Ok((a, seg)) => {
                    active = a;
                    shared.segments.write().expect("log lock").push(seg);
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a new log segment; the current one grows")
                }
            }
        }
    }
}

fn sync_loop(shared: &Shared, rx: mpsc::Receiver<Written>) {
    let mut batch = Vec::new();
    while let Ok(w) = rx.recv() {
        batch.push(w);
        batch.extend(rx.try_iter());
        let mut result = Ok(());
        for (i, w) in batch.iter().enumerate() {
            let seen = batch[..i].iter().any(|o| Arc::ptr_eq(&o.file, &w.file));
            if !seen && let Err(e) = w.file.sync_data() {
                result = Err(e);
                break;
            }
        }
        shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                let end = batch.last().map_or(0, |w| w.end);
                shared.durable.send_replace(end);
                for w in batch.drain(..) {
                    w.done.send_replace(Some(Ok(w.first)));
                }
            }
            Err(e) => {
                // After a failed fsync the page cache cannot be trusted: stop accepting (the gateway
                // answers 503) rather than acknowledge on top of it.
                shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "message log sync failed; the log refuses further appends");
                let err = io_error(&e);
                shared.open.lock().expect("log lock").broken = Some(e.to_string().into());
                for w in batch.drain(..) {
                    w.done.send_replace(Some(Err(err.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
