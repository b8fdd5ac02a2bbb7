use super::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "sekisho-log-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const KEY: [u8; 32] = [5; 32];

fn record(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 7) as usize)).into_bytes()
}

fn small_segments() -> LogOptions {
    LogOptions {
        segment_bytes: 2048,
        ..LogOptions::default()
    }
}

/// Appends `n` records in batches of `per`, waiting for each batch; returns each batch's offsets.
async fn fill(log: &Log, start: u64, n: u64, per: u64) -> Vec<std::ops::Range<u64>> {
    let mut batches = Vec::new();
    let mut i = start;
    while i < start + n {
        let end = (i + per).min(start + n);
        let recs: Vec<Vec<u8>> = (i..end).map(record).collect();
        let ticket = log.append_all(recs.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(ticket.durable().await.unwrap(), i, "the first of the run");
        batches.push(i..end);
        i = end;
    }
    batches
}

fn read_all(log: &Log) -> Vec<Entry> {
    log.read(0, usize::MAX).unwrap()
}

fn offsets(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.offset).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    recover::list(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[tokio::test]
async fn records_are_durable_in_order_and_survive_a_reopen() {
    let dir = TempDir::new("order");
    let (log, report) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
    assert_eq!((report.records, report.next_offset), (0, 0));
    fill(&log, 0, 50, 8).await;
    assert_eq!(log.durable(), 50);
    let got = read_all(&log);
    assert_eq!(offsets(&got), (0..50).collect::<Vec<_>>());
    assert!(got.iter().all(|e| e.bytes == record(e.offset)));
    assert_eq!(log.read(47, 10).unwrap().len(), 3);
    assert_eq!(offsets(&log.read(10, 2).unwrap()), vec![10, 11]);
    log.close();
    assert!(matches!(log.append(b"late"), Err(LogError::Closed)));

    let (log, report) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
    assert_eq!((report.records, report.next_offset), (50, 50));
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    assert_eq!(log.append(b"next").unwrap().durable().await.unwrap(), 50);
    assert_eq!(read_all(&log).len(), 51);
    log.close();
}

#[tokio::test]
async fn concurrent_appenders_get_distinct_offsets_and_one_sync_serves_many() {
    let dir = TempDir::new("concurrent");
    let (log, _) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let off = log.append(&record(i)).unwrap().durable().await.unwrap();
            (off, i)
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let entries = read_all(&log);
    assert_eq!(entries.len(), 400);
    for (off, i) in got {
        assert_eq!(entries[off as usize].bytes, record(i));
    }
    let syncs = log.stats().syncs.load(Ordering::Relaxed);
    assert!((1..=400).contains(&syncs), "{syncs}");
    log.close();
}

#[tokio::test]
async fn no_record_is_in_plaintext_and_another_key_opens_nothing() {
    let dir = TempDir::new("plaintext");
    let (log, _) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
    let secret = b"IMSI-440101234567890";
    log.append(secret).unwrap().durable().await.unwrap();
    log.close();
    for f in segment_files(&dir.0) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret));
        assert!(!bytes.windows(4).any(|w| w == b"IMSI"));
    }
    let err = Log::open(&dir.0, [6; 32], LogOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    // The wrong key changed nothing: the right one still reads the record.
    let (log, report) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
    assert!(report.damage.is_empty());
    assert_eq!(read_all(&log)[0].bytes, secret);
    log.close();
}

#[tokio::test]
async fn segments_rotate_and_retention_removes_only_closed_segments_below_the_offset() {
    let dir = TempDir::new("retention");
    let (log, _) = Log::open(&dir.0, KEY, small_segments()).unwrap();
    fill(&log, 0, 300, 10).await;
    let (n, _) = log.disk_usage();
    assert!(n >= 4, "{n} segments");
    assert_eq!(log.remove_before(0).unwrap(), 0);
    let removed = log.remove_before(150).unwrap();
    assert!(removed >= 1);
    let start = log.start();
    assert!(start > 0 && start <= 150, "{start}");
    let rest = read_all(&log);
    assert_eq!(offsets(&rest), (start..300).collect::<Vec<_>>());
    // Even past the end, the active segment stays.
    log.remove_before(u64::MAX).unwrap();
    assert_eq!(log.disk_usage().0, 1);
    assert_eq!(log.append(b"more").unwrap().durable().await.unwrap(), 300);
    log.close();
    let (log, report) = Log::open(&dir.0, KEY, small_segments()).unwrap();
    assert_eq!(report.next_offset, 301);
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    log.close();
}

#[tokio::test]
async fn records_are_read_by_their_offsets_across_frames_and_segments() {
    let dir = TempDir::new("offsets");
    let (log, _) = Log::open(&dir.0, KEY, small_segments()).unwrap();
    fill(&log, 0, 300, 10).await;
    assert!(log.disk_usage().0 >= 4);
    // Scattered offsets, several in one frame, some in other segments, one past the end.
    let wanted = [0, 3, 4, 9, 10, 150, 151, 298, 299, 300, 5000];
    let got = log.read_offsets(&wanted).unwrap();
    assert_eq!(offsets(&got), vec![0, 3, 4, 9, 10, 150, 151, 298, 299]);
    for e in &got {
        assert_eq!(e.bytes, record(e.offset), "record {}", e.offset);
    }
    // Removed records have no entry; the others still come.
    let removed = log.remove_before(150).unwrap();
    assert!(removed >= 1);
    let start = log.start();
    let got = log.read_offsets(&[0, start, 299]).unwrap();
    assert_eq!(offsets(&got), vec![start, 299]);
    assert!(log.read_offsets(&[]).unwrap().is_empty());
    log.close();
}

/// Frames of the newest segment as (byte range, offsets), read from the file.
fn frames_of(path: &Path) -> Vec<(std::ops::Range<u64>, std::ops::Range<u64>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = HEADER_LEN;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let h = segment::FrameHeader::decode(&bytes[pos..]).unwrap();
        let end = pos + h.frame_len() as usize;
        out.push((
            pos as u64..end as u64,
            h.first..h.first + u64::from(h.count),
        ));
        pos = end;
    }
    out
}

/// Seeded randomness for the damage tests; the seed is printed so a failure can be replayed.
fn rng() -> fastrand::Rng {
    let seed = std::env::var("LOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("LOG_TEST_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

#[tokio::test]
async fn a_tail_cut_anywhere_keeps_every_whole_frame_and_reports_the_rest() {
    let mut rng = rng();
    for round in 0..12 {
        let dir = TempDir::new("torn");
        let (log, _) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
        fill(&log, 0, 120, 1 + rng.u64(..12)).await;
        log.close();
        let path = segment_files(&dir.0).pop().unwrap();
        let frames = frames_of(&path);
        let len = std::fs::metadata(&path).unwrap().len();
        let cut = rng.u64(HEADER_LEN as u64..len);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let kept: Vec<u64> = frames
            .iter()
            .filter(|(bytes, _)| bytes.end <= cut)
            .flat_map(|(_, offs)| offs.clone())
            .collect();
        let torn_frame = frames.iter().any(|(b, _)| b.start < cut && b.end > cut);

        let (log, report) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
        assert_eq!(
            offsets(&read_all(&log)),
            kept,
            "round {round}, cut at {cut}"
        );
        assert_eq!(report.next_offset, kept.len() as u64);
        if torn_frame {
            assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
            let d = &report.damage[0];
            assert_eq!(d.kind, DamageKind::TornTail);
            assert_eq!(
                d.bytes,
                cut - frames.iter().find(|(b, _)| b.end > cut).unwrap().0.start
            );
        } else {
            assert!(report.damage.is_empty(), "{:?}", report.damage);
        }
        // The log goes on from the cut, in a new segment, and reopens clean.
        let next = log.append(b"after").unwrap().durable().await.unwrap();
        assert_eq!(next, kept.len() as u64);
        log.close();
        let (log, report) = Log::open(&dir.0, KEY, LogOptions::default()).unwrap();
        assert!(report.damage.is_empty(), "{:?}", report.damage);
        assert_eq!(read_all(&log).len(), kept.len() + 1);
        log.close();
    }
}

#[tokio::test]
async fn a_flipped_byte_loses_only_its_frame_and_says_which_records() {
    let mut rng = rng();
    for round in 0..12 {
        let dir = TempDir::new("flip");
        let (log, _) = Log::open(&dir.0, KEY, small_segments()).unwrap();
        fill(&log, 0, 200, 1 + rng.u64(..9)).await;
        log.close();
        let files = segment_files(&dir.0);
        // Any segment but the newest (whose damaged last frame would be a torn tail).
        let path = &files[rng.usize(..files.len() - 1)];
        let frames = frames_of(path);
        let (bytes, lost) = frames[rng.usize(..frames.len())].clone();
        let at = rng.u64(bytes.clone());
        let mut data = std::fs::read(path).unwrap();
        data[at as usize] ^= 1 << rng.u8(..8);
        std::fs::write(path, &data).unwrap();

        let (log, report) = Log::open(&dir.0, KEY, small_segments()).unwrap();
        let got = offsets(&read_all(&log));
        let expected: Vec<u64> = (0..200).filter(|o| !lost.contains(o)).collect();
        assert_eq!(
            got,
            expected,
            "round {round}: byte {at} of {}",
            path.display()
        );
        // A reader standing at the lost records moves on to the next one there is, in small steps too.
        let after = expected.iter().find(|o| **o >= lost.start).copied();
        assert_eq!(
            offsets(&log.read(lost.start, 1).unwrap()).first().copied(),
            after
        );
        let mut stepped = Vec::new();
        let mut at = 0;
        loop {
            let page = offsets(&log.read(at, 3).unwrap());
            let Some(last) = page.last().copied() else {
                break;
            };
            stepped.extend(page);
            at = last + 1;
        }
        assert_eq!(stepped, expected, "reading 3 at a time");
        // Every record not read back is named in the report.
        let reported: Vec<u64> = report
            .damage
            .iter()
            .flat_map(|d| d.lost.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            reported,
            lost.clone().collect::<Vec<_>>(),
            "{:?}",
            report.damage
        );
        assert!(report.damage.iter().all(|d| d.kind == DamageKind::Corrupt));
        assert_eq!(report.next_offset, 200);
        log.close();
    }
}

#[tokio::test]
async fn a_damaged_segment_header_sets_the_segment_aside_and_names_its_records() {
    let dir = TempDir::new("header");
    let (log, _) = Log::open(&dir.0, KEY, small_segments()).unwrap();
    fill(&log, 0, 200, 10).await;
    log.close();
    let files = recover::list(&dir.0).unwrap();
    let (base, path) = files[1].clone();
    let next = files[2].0;
    let mut data = std::fs::read(&path).unwrap();
    data[30] ^= 0xff; // inside the salt
    std::fs::write(&path, &data).unwrap();
    let (log, report) = Log::open(&dir.0, KEY, small_segments()).unwrap();
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    let d = &report.damage[0];
    assert_eq!(
        (d.kind, d.lost.clone()),
        (DamageKind::UnreadableSegment, Some(base..next))
    );
    assert!(d.segment.exists() && !path.exists());
    let got = offsets(&read_all(&log));
    assert_eq!(
        got,
        (0..200)
            .filter(|o| !(base..next).contains(o))
            .collect::<Vec<_>>()
    );
    log.close();
}

#[tokio::test]
async fn a_full_queue_is_refused_not_dropped() {
    let dir = TempDir::new("full");
    let opts = LogOptions {
        max_pending_bytes: 64,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(&dir.0, KEY, opts).unwrap();
    let big = [1u8; 40];
    // Readers' lock held: the writer takes the first batch, writes it, then waits for this lock.
    let held = log.shared.segments.write().unwrap();
    let a = log.append(&big).unwrap();
    while log.shared.open.lock().unwrap().count > 0 {
        std::thread::yield_now();
    }
    // An empty batch takes any record; one more would pass 64 pending bytes.
    let b = log.append(&big).unwrap();
    assert!(matches!(log.append(&big), Err(LogError::Overloaded)));
    assert_eq!(log.stats().refused.load(Ordering::Relaxed), 1);
    drop(held);
    assert_eq!(
        (a.durable().await.unwrap(), b.durable().await.unwrap()),
        (0, 1)
    );
    assert_eq!(read_all(&log).len(), 2);
    log.close();
}
