//! Recovery after SIGKILL, measured (`scripts/bench/recovery.sh` drives it):
//!
//! - `recovery fill DIR N`: appends N records (300 bytes each, like an encoded telemetry message) in
//!   pipelined batches, prints `acked N` once every one is durable, then waits to be killed.
//! - `recovery check DIR N`: opens the log (the recovery pass, timed), reads every record back and
//!   checks each is the one written at its offset; prints the figures and exits non-zero if any
//!   acknowledged record is missing or wrong.

use sekisho_log::{Log, LogOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

const KEY: [u8; 32] = [0x5e; 32];
const SIZE: usize = 300;

fn record(offset: u64) -> Vec<u8> {
    let mut r = format!("{{\"offset\":{offset},\"pad\":\"").into_bytes();
    r.resize(SIZE - 2, b'x');
    r.extend_from_slice(b"\"}");
    r
}

async fn fill(dir: &Path, n: u64) {
    let (log, _) = Log::open(dir, KEY, LogOptions::default()).expect("open");
    // One appender, batches of 256, up to 16 batches in flight: offsets are known before the append.
    let mut in_flight = std::collections::VecDeque::new();
    let mut acked = 0u64;
    let mut next = 0u64;
    while next < n {
        let end = (next + 256).min(n);
        let records: Vec<Vec<u8>> = (next..end).map(record).collect();
        let ticket = log
            .append_all(records.iter().map(Vec::as_slice))
            .expect("append");
        in_flight.push_back((next, end, ticket));
        next = end;
        while in_flight.len() > 16 || (next == n && !in_flight.is_empty()) {
            let (first, end, t) = in_flight.pop_front().expect("in flight");
            assert_eq!(t.durable().await.expect("durable"), first);
            acked = end;
        }
    }
    println!("acked {acked}");
    std::io::stdout().flush().ok();
    std::thread::park();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: recovery fill|check DIR N";
    let (mode, dir, n) = match &args[1..] {
        [m, d, n] => (m.as_str(), Path::new(d), n.parse::<u64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match mode {
        "fill" => rt.block_on(fill(dir, n)),
        "check" => check(dir, n),
        _ => panic!("{usage}"),
    }
}

fn check(dir: &Path, n: u64) {
    let start = Instant::now();
    let (log, report) = Log::open(dir, KEY, LogOptions::default()).expect("open");
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let mut next = 0u64;
    let mut wrong = 0u64;
    loop {
        let batch = log.read(next, 65_536).expect("read");
        let Some(last) = batch.last() else { break };
        next = last.offset + 1;
        wrong += batch.iter().filter(|e| e.bytes != record(e.offset)).count() as u64;
    }
    let read_ms = start.elapsed().as_secs_f64() * 1e3;
    let (segments, bytes) = log.disk_usage();
    log.close();
    let lost = n.saturating_sub(report.records.min(next));
    println!(
        "recovery: {open_ms:.0} ms to open ({} records in {segments} segments, {:.1} MiB), \
         {read_ms:.0} ms to read all back; acknowledged {n}, recovered {}, lost {lost}, wrong {wrong}, \
         damage {:?}",
        report.records,
        bytes as f64 / (1 << 20) as f64,
        report.records,
        report
            .damage
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    if lost > 0 || wrong > 0 {
        std::process::exit(1);
    }
}
