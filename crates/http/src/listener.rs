//! The TLS accept loop shared by the device and admin listeners: connection cap, plaintext refusal,
//! handshake timeout, peer certificate, then HTTP/1.1 or HTTP/2 (ALPN) into an axum router.
//!
//! Every refused connection is a [`SecurityEvent`] in the store (best effort: when the store's queue is
//! full the event is counted and dropped, never the other way round — no device message is involved).

use axum::Router;
use axum::response::IntoResponse;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use sekisho_store::{SecurityEvent, Writer, now_ms, records::Record};
use sha2::Digest;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

pub mod caps;
mod drain;

pub use caps::AddressCaps;
use sekisho_core::ratelog::LogLimit;
use sekisho_core::traffic::{AddressCounters, IpCounters};

/// Sent with `503 too_many_connections`: when the client may try again.
const BUSY_RETRY_AFTER_SECS: u64 = 10;
/// A refused connection is answered within this long, or closed.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(10);

static ACCEPT_FAILED: LogLimit = LogLimit::per_minute(5);
static PLAINTEXT: LogLimit = LogLimit::per_minute(10);
static OVER_CAP: LogLimit = LogLimit::per_minute(10);

/// Who is on the other end of a request's connection; put into every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// SHA-256 of the DER client certificate the peer presented and rustls verified, if any.
    pub client_cert_sha256: Option<[u8; 32]>,
}

/// How one listener behaves.
#[derive(Clone)]
pub struct ListenerSpec {
    pub name: &'static str,
    pub tls: Arc<ServerConfig>,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    /// Counts bytes and connections per SIM address for the carrier comparison (device listener).
    pub address_counters: Option<Arc<dyn AddressCounters>>,
    /// What is left of a refused request's body is read and discarded, at most this much within
    /// `drain_timeout`, so that the client receives the answer ([`drain`]).
    pub drain_max_bytes: u64,
    pub drain_timeout: Duration,
    /// Connections per source address (device listener); none: only `max_connections`.
    pub caps: Option<Arc<AddressCaps>>,
    /// Connections over a cap answered `503 too_many_connections` at once at most; beyond, they are
    /// closed unanswered (and counted).
    pub refusal_slots: usize,
}

/// Counters for the operations view.
#[derive(Default, Debug)]
pub struct ListenerStats {
    pub accepted: AtomicU64,
    pub plaintext_refused: AtomicU64,
    pub handshake_failed: AtomicU64,
    /// Connections over the listener's `max_connections`.
    pub over_limit: AtomicU64,
    /// Connections over their source address's cap.
    pub address_over_limit: AtomicU64,
    /// Refused connections answered `503` (the rest of the refusals were closed unanswered).
    pub refusals_answered: AtomicU64,
    pub open: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Pem(String, String),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    Verifier(String),
}

mod certs;
pub use certs::{ServerCert, reload_on};

/// A server TLS configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1) and its certificate, which
/// [`ServerCert::reload`] replaces for new handshakes. With `client_cas`, clients may present a
/// certificate chaining to one of them (verified by rustls); clients without one are let in, and each
/// field decides whether it requires one.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_cas: &[PathBuf],
) -> Result<(ServerConfig, Arc<ServerCert>), TlsConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in client_cas {
            for c in certs::load_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsConfigError::Verifier(format!("{}: {e}", ca.display())))?;
            }
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let server_cert = Arc::new(ServerCert::load(cert, key, provider)?);
    let mut cfg = builder.with_cert_resolver(server_cert.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((cfg, server_cert))
}

static PLAINTEXT_REFUSAL: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = r#"{"error":"tls_required","message":"this port speaks HTTPS only; plain HTTP is refused"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

pub(crate) fn event(
    listener: &'static str,
    remote: SocketAddr,
    kind: &'static str,
    detail: Option<String>,
) -> Record {
    Record::Security(SecurityEvent {
        at: now_ms(),
        listener,
        source_ip: remote.ip().to_string(),
        kind,
        detail,
    })
}

/// Why a connection is refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// The listener holds `max_connections`.
    Listener,
    /// The source address holds its cap.
    Address,
}

impl Refusal {
    fn event(self) -> &'static str {
        match self {
            Refusal::Listener => "connection_limit",
            Refusal::Address => "address_connection_limit",
        }
    }
}

/// The router of a refused connection: every request gets `503 too_many_connections`.
fn busy_router(why: Refusal) -> Router {
    let message = match why {
        Refusal::Listener => "the gateway holds as many connections as it takes; retry later",
        Refusal::Address => {
            "this address holds as many connections as it may; close one, or retry later"
        }
    };
    Router::new().fallback(move || async move {
        let mut r =
            crate::error::ApiError::new(sekisho_core::ErrorCode::TooManyConnections, message)
                .retry_after(BUSY_RETRY_AFTER_SECS)
                .into_response();
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        r
    })
}

/// Accepts connections until `shutdown` turns true. Returns when the listener stops accepting.
pub async fn serve(
    listener: TcpListener,
    spec: ListenerSpec,
    router: Router,
    events: Writer,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(spec.max_connections));
    let refusal_slots = Arc::new(Semaphore::new(spec.refusal_slots));
    let busy = [
        busy_router(Refusal::Listener),
        busy_router(Refusal::Address),
    ];
    let acceptor = tokio_rustls::TlsAcceptor::from(spec.tls.clone());
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    if let Some(skipped) = ACCEPT_FAILED.allow() {
                        tracing::warn!(listener = spec.name, error = %e, skipped, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let counters = spec
            .address_counters
            .as_ref()
            .and_then(|s| s.counters_for(remote.ip()));
        if let Some(c) = &counters {
            c.connections.fetch_add(1, Ordering::Relaxed);
        }
        let admitted = match permits.clone().try_acquire_owned() {
            Err(_) => Err(Refusal::Listener),
            Ok(permit) => match spec.caps.as_ref().map(|c| c.enter(remote.ip())) {
                Some(None) => Err(Refusal::Address),
                Some(Some(guard)) => Ok((permit, Some(guard))),
                None => Ok((permit, None)),
            },
        };
        let conn = Conn {
            stream,
            remote,
            counters,
        };
        let (permit, guard) = match admitted {
            Ok(x) => x,
            Err(why) => {
                match why {
                    Refusal::Listener => stats.over_limit.fetch_add(1, Ordering::Relaxed),
                    Refusal::Address => stats.address_over_limit.fetch_add(1, Ordering::Relaxed),
                };
                let _ = events.try_submit(vec![event(spec.name, remote, why.event(), None)]);
                if let Some(skipped) = OVER_CAP.allow() {
                    tracing::warn!(listener = spec.name, remote = %remote, reason = why.event(), skipped,
                        "connection over a cap refused");
                }
                // Told in protocol where a slot is free to read its request; closed otherwise.
                let Ok(slot) = refusal_slots.clone().try_acquire_owned() else {
                    continue;
                };
                let router = busy[(why == Refusal::Address) as usize].clone();
                let (spec, events, stats, acceptor) = (
                    spec.clone(),
                    events.clone(),
                    stats.clone(),
                    acceptor.clone(),
                );
                tokio::spawn(async move {
                    let answered = tokio::time::timeout(
                        REFUSAL_DEADLINE,
                        handle(conn, &spec, router, &events, &stats, acceptor, true),
                    )
                    .await;
                    if answered.is_ok_and(|served| served) {
                        stats.refusals_answered.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(slot);
                });
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (spec, router, events, stats, acceptor) = (
            spec.clone(),
            router.clone(),
            events.clone(),
            stats.clone(),
            acceptor.clone(),
        );
        tokio::spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            handle(conn, &spec, router, &events, &stats, acceptor, false).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(guard);
            drop(permit);
        });
    }
}

/// An accepted connection, with the byte counters of its SIM when the carrier knows its address.
struct Conn {
    stream: TcpStream,
    remote: SocketAddr,
    counters: Option<Arc<IpCounters>>,
}

/// Serves one connection: plaintext refusal, TLS handshake, then HTTP. `refusal`: a connection over a
/// cap, answered once and closed. Returns whether HTTP was served (the handshake completed).
async fn handle(
    conn: Conn,
    spec: &ListenerSpec,
    router: Router,
    events: &Writer,
    stats: &ListenerStats,
    acceptor: tokio_rustls::TlsAcceptor,
    refusal: bool,
) -> bool {
    let Conn {
        stream,
        remote,
        counters,
    } = conn;
    let _ = stream.set_nodelay(true);
    // A TLS connection starts with a handshake record (0x16). Anything else is refused in plain words.
    let mut head = [0u8; 64];
    let n = match tokio::time::timeout(spec.handshake_timeout, stream.peek(&mut head)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return false,
    };
    let mut stream = Tracked::new(stream, counters);
    if head[0] != 0x16 {
        stream.meter.read(n);
        stats.plaintext_refused.fetch_add(1, Ordering::Relaxed);
        let line = String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        if let Some(skipped) = PLAINTEXT.allow() {
            tracing::info!(listener = spec.name, remote = %remote, skipped, "plaintext request on a TLS port refused");
        }
        let _ = events.try_submit(vec![event(spec.name, remote, "plaintext_http", Some(line))]);
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&PLAINTEXT_REFUSAL))
            .await;
        let _ = stream.shutdown().await;
        return false;
    }
    let tls = match tokio::time::timeout(spec.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
            let _ = events.try_submit(vec![event(
                spec.name,
                remote,
                "tls_handshake_failed",
                Some(e.to_string()),
            )]);
            return false;
        }
        Err(_) => {
            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
            let _ = events.try_submit(vec![event(
                spec.name,
                remote,
                "tls_handshake_timeout",
                None,
            )]);
            return false;
        }
    };
    let client_cert_sha256 = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| sha2::Sha256::digest(c).into());
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let info = ConnInfo {
        remote,
        client_cert_sha256,
    };
    let activity = Arc::new(Activity::default());
    let in_flight = activity.clone();
    let (drain_max, drain_timeout) = (spec.drain_max_bytes, spec.drain_timeout);
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info);
        let guard = InFlight::enter(&in_flight);
        // A body the handler leaves unread comes back here and is drained before the answer goes out.
        let slot = (!req.body().is_end_stream()).then(drain::Slot::default);
        let req = req.map(|b| match &slot {
            Some(slot) => axum::body::Body::new(drain::Reclaim::new(b, slot.clone())),
            None => axum::body::Body::new(b),
        });
        let fut = router.clone().oneshot(req);
        async move {
            let mut r = fut.await;
            if let Some(rest) = slot.as_ref().and_then(drain::take)
                && !drain::discard(rest, drain_max, drain_timeout).await
                && let Ok(resp) = &mut r
            {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            drop(guard);
            r
        }
    });
    let io = TokioIo::new(Tracked::new(tls, activity.clone()));
    // The protocol comes from ALPN, never from sniffing the first bytes (a read with no deadline).
    let conn: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), hyper::Error>> + Send>,
    > = if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_concurrent_streams(100);
        Box::pin(b.serve_connection(io, svc))
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(spec.header_timeout)
            .keep_alive(!refusal);
        Box::pin(b.serve_connection(io, svc))
    };
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(listener = spec.name, remote = %remote, error = %e, "connection ended with an error");
            }
        }
        _ = activity.idle_for(spec.header_timeout) => {
            tracing::debug!(listener = spec.name, remote = %remote, "idle connection closed");
        }
    }
    true
}

/// When a connection last moved a byte, and how many requests it has in progress.
#[derive(Default)]
pub struct Activity {
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(now_ms() as u64, Ordering::Relaxed);
    }

    /// Completes once the connection has had no request in progress and no I/O for `limit`.
    async fn idle_for(&self, limit: Duration) {
        self.touch();
        loop {
            let idle = Duration::from_millis(
                (now_ms() as u64).saturating_sub(self.last_ms.load(Ordering::Relaxed)),
            );
            if idle >= limit && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(idle).max(Duration::from_millis(100))).await;
        }
    }
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// What a [`Tracked`] stream reports its I/O to.
pub trait Meter {
    fn read(&self, n: usize);
    fn wrote(&self, n: usize);
}

impl Meter for Option<Arc<IpCounters>> {
    fn read(&self, n: usize) {
        if let Some(c) = self {
            c.read(n);
        }
    }

    fn wrote(&self, n: usize) {
        if let Some(c) = self {
            c.wrote(n);
        }
    }
}

impl Meter for Arc<Activity> {
    fn read(&self, _: usize) {
        self.touch();
    }

    fn wrote(&self, _: usize) {
        self.touch();
    }
}

/// An I/O stream that reports every byte moved to its meter.
pub struct Tracked<T, M> {
    inner: T,
    meter: M,
}

impl<T, M> Tracked<T, M> {
    pub fn new(inner: T, meter: M) -> Self {
        Self { inner, meter }
    }
}

impl<T: AsyncRead + Unpin, M: Meter + Unpin> AsyncRead for Tracked<T, M> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.meter.read(n);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, M: Meter + Unpin> AsyncWrite for Tracked<T, M> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.meter.wrote(n);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.meter.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
