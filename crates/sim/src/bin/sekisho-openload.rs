//! `sekisho-openload`: an open-loop HTTPS load generator for the benchmarks (`scripts/bench/ingest.sh`
//! with `BENCH_OPEN_LOOP=1`). Not a test tool and not for production.
//!
//! Requests are scheduled at a fixed rate whatever the server does (open loop): request *i* is due at
//! `start + i / rate`, goes out on the first free keep-alive connection, and its latency is counted
//! from when it was due, not from when it was sent. A server that falls behind therefore shows its
//! queueing in the figures instead of slowing the generator down (no coordinated omission), which a
//! closed-loop tool such as wrk cannot show.
//!
//! ```text
//! sekisho-openload --url https://127.0.0.1:8443/v1/telemetry --cacert ca.crt --rate 5000 \
//!     --duration 20 [--warmup 2] [--connections 32] [--body-file body.json] [--header 'K: V']...
//! ```
//!
//! It prints one line, `OPENLOAD_RESULT key=value ...`, with the rate asked for and achieved, the
//! latency percentiles in microseconds, non-2xx answers and socket errors. It exits non-zero only when
//! it cannot start (bad arguments, no connection).

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const USAGE: &str = "usage: sekisho-openload --url https://HOST:PORT/PATH --cacert FILE --rate PER_SECOND \
--duration SECONDS [--warmup SECONDS] [--connections N] [--body-file FILE] [--header 'Name: value']...";

struct Args {
    host: String,
    port: u16,
    path: String,
    cacert: String,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
    body: Vec<u8>,
    headers: Vec<String>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut url, mut cacert, mut rate, mut duration) = (None, None, None, None);
    let (mut warmup, mut connections, mut body, mut headers) = (0.0, 32, Vec::new(), Vec::new());
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--cacert" => cacert = Some(value()?),
            "--rate" => rate = Some(number(value()?)?),
            "--duration" => duration = Some(number(value()?)?),
            "--warmup" => warmup = number(value()?)?,
            "--connections" => {
                connections = value()?
                    .parse()
                    .map_err(|_| "--connections: not a number".to_owned())?
            }
            "--body-file" => {
                let f = value()?;
                body = std::fs::read(&f).map_err(|e| format!("{f}: {e}"))?;
            }
            "--header" => headers.push(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("https://")
        .ok_or("--url must start with https://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority.rsplit_once(':').ok_or("--url needs a port")?;
    let rate = rate.ok_or("--rate is required")?;
    let duration = duration.ok_or("--duration is required")?;
    if !(rate > 0.0 && duration > 0.0 && warmup >= 0.0 && connections > 0) {
        return Err("--rate, --duration and --connections must be positive".into());
    }
    Ok(Args {
        host: host.to_owned(),
        port: port.parse().map_err(|_| format!("bad port {port}"))?,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
        cacert: cacert.ok_or("--cacert is required")?,
        rate,
        duration,
        warmup,
        connections,
        body,
        headers,
    })
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    non2xx: u64,
    errors: u64,
    /// Requests answered, warm-up included.
    answered: u64,
}

struct Target {
    tls: TlsConnector,
    name: ServerName<'static>,
    addr: String,
    request: Vec<u8>,
}

impl Target {
    async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        self.tls.connect(self.name.clone(), tcp).await
    }
}

/// Reads one HTTP/1.1 response (status line, headers, a `Content-Length` body); returns the status.
async fn response(conn: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed before the response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("response head is not UTF-8"))?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| bad("bad Content-Length"))
        })
        .transpose()?
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk[..(length - have).min(4096)]).await?;
        if n == 0 {
            return Err(bad("connection closed inside the body"));
        }
        have += n;
    }
    Ok(status)
}

/// One keep-alive connection: takes due times off the queue, sends, waits for the answer.
async fn connection(
    target: Arc<Target>,
    mut conn: Option<TlsStream<TcpStream>>,
    due: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    measured_from: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some(at) = due.lock().await.recv().await else {
            return tally;
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match target.connect().await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    tally.errors += 1;
                    continue;
                }
            },
        };
        let sent = async {
            c.write_all(&target.request).await?;
            c.flush().await?;
            response(c, &mut buf).await
        };
        match sent.await {
            Ok(status) => {
                tally.answered += 1;
                if at >= measured_from {
                    let us = at.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    tally.latencies_us.push(us);
                    if !(200..300).contains(&status) {
                        tally.non2xx += 1;
                    }
                }
            }
            Err(_) => {
                tally.errors += 1;
                conn = None;
            }
        }
    }
}

async fn run(a: Args) -> Result<String, String> {
    let pem = std::fs::read(&a.cacert).map_err(|e| format!("{}: {e}", a.cacert))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| format!("{}: {e}", a.cacert))?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\n",
        a.path,
        a.host,
        a.port,
        a.body.len()
    );
    for h in &a.headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(&a.body);
    let target = Arc::new(Target {
        tls: TlsConnector::from(Arc::new(config)),
        name: ServerName::try_from(a.host.clone()).map_err(|e| e.to_string())?,
        addr: format!("{}:{}", a.host, a.port),
        request,
    });

    // Every connection is open before the clock starts.
    let mut conns = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        conns.push(
            target
                .connect()
                .await
                .map_err(|e| format!("connect {}: {e}", target.addr))?,
        );
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(20);
    let measured_from = start + Duration::from_secs_f64(a.warmup);
    let end = measured_from + Duration::from_secs_f64(a.duration);
    let workers: Vec<_> = conns
        .into_iter()
        .map(|c| {
            tokio::spawn(connection(
                target.clone(),
                Some(c),
                rx.clone(),
                measured_from,
            ))
        })
        .collect();

    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut scheduled = 0u64;
    let mut next = start;
    while next < end {
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        // Everything due by now goes at once: the timer wakes at most once a millisecond.
        while next <= now && next < end {
            if next >= measured_from {
                scheduled += 1;
            }
            let _ = tx.send(next);
            next += interval;
        }
    }
    drop(tx);
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.map_err(|e| e.to_string())?;
        all.latencies_us.extend(t.latencies_us);
        all.non2xx += t.non2xx;
        all.errors += t.errors;
        all.answered += t.answered;
    }
    let finished = start.elapsed().as_secs_f64() - a.warmup;
    let mut l = all.latencies_us;
    l.sort_unstable();
    let pct = |p: f64| -> u32 {
        if l.is_empty() {
            return 0;
        }
        l[(((l.len() as f64) * p / 100.0).ceil() as usize).clamp(1, l.len()) - 1]
    };
    Ok(format!(
        "OPENLOAD_RESULT rate_asked={:.1} scheduled={} completed={} rate_done={:.1} p50_us={} p90_us={} \
         p99_us={} p999_us={} max_us={} non2xx={} errors={} connections={}",
        a.rate,
        scheduled,
        l.len(),
        l.len() as f64 / finished.max(a.duration),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        l.last().copied().unwrap_or(0),
        all.non2xx,
        all.errors,
        a.connections,
    ))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sekisho-openload: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sekisho-openload: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sekisho-openload: {e}");
            ExitCode::FAILURE
        }
    }
}
