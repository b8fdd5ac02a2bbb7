//! Webhooks against a real HTTP receiver (axum on loopback; HTTPS through rustls) that checks
//! each request's signature with [`verify`] the way a receiver should, and answers by path:
//! `/ok` 200, `/accepted` 202, `/unavailable` 503, `/busy` 429, `/request-timeout` 408,
//! `/bad` 400, `/gone` 404, `/moved` 302, `/slow` never in time.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use common::{Scratch, pki};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sekisho_core::{Action, ActionState, Rule, Severity, Threat};
use sekisho_notify::text::{Incident, webhook_body};
use sekisho_notify::webhook::{TIMESTAMP_TOLERANCE_SECS, fresh};
use sekisho_notify::{NotifyError, Webhook, WebhookClient, sign, verify};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

const SECRET: &[u8] = b"field-1 webhook secret, 32 bytes";
const TIMEOUT: Duration = Duration::from_secs(20);

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    event: String,
    idempotency_key: String,
    content_type: String,
    timestamp: i64,
    signature: String,
    body: Bytes,
    /// The receiver's own checks: signature valid, timestamp within 5 minutes.
    verified: bool,
    fresh: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn receive(
    State(log): State<Log>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let timestamp: i64 = h("x-sekisho-timestamp").parse().unwrap_or(i64::MIN);
    let signature = h("x-sekisho-signature");
    let seen = Seen {
        path: uri.path().to_owned(),
        event: h("x-sekisho-event"),
        idempotency_key: h("idempotency-key"),
        content_type: h("content-type"),
        timestamp,
        verified: verify(SECRET, timestamp, &body, &signature),
        fresh: fresh(timestamp, now()),
        signature,
        body,
    };
    log.lock().expect("log").push(seen);
    let status = match uri.path() {
        "/ok" => StatusCode::OK,
        "/accepted" => StatusCode::ACCEPTED,
        "/unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "/busy" => StatusCode::TOO_MANY_REQUESTS,
        "/request-timeout" => StatusCode::REQUEST_TIMEOUT,
        "/bad" => StatusCode::BAD_REQUEST,
        "/moved" => return (StatusCode::FOUND, [(header::LOCATION, "/ok")]).into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK
        }
        _ => StatusCode::NOT_FOUND,
    };
    status.into_response()
}

fn app(log: &Log) -> Router {
    Router::new().fallback(receive).with_state(log.clone())
}

/// A plain-HTTP receiver on loopback: its base URL and what it saw.
async fn receiver() -> (String, Log) {
    let log = Log::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app(&log);
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), log)
}

/// An HTTPS receiver with the certificate in `cert_pem`/`key_pem`.
async fn tls_receiver(cert_pem: &str, key_pem: &str) -> (String, Log) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let log = Log::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app(&log);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), log)
}

fn incident() -> Incident {
    Incident {
        field_name: "Factory A".into(),
        field_id: "f-1".into(),
        device_id: "d-1".into(),
        device_name: None,
        unique_id: "pump-0001".into(),
        threat: Threat::Spoofing,
        severity: Severity::Medium,
        rule: Rule::NetworkSharedIp.into(),
        summary: "One credential used from two addresses at once.".into(),
        evidence: json!({"addresses": ["198.51.100.1", "198.51.100.2"]}),
        first_at_ms: 1_777_600_000_000,
        last_at_ms: 1_777_600_000_000,
        count: 1,
        actions: vec![(Action::NotifyWebhook, ActionState::Running)],
        critical: false,
        console_url: None,
    }
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().expect("log").clone()
}

#[tokio::test]
async fn signed_post_is_verified_by_the_receiver() {
    let (base, log) = receiver().await;
    let hook = Webhook::new(&format!("{base}/ok"), SECRET, TIMEOUT).expect("webhook");
    let body = webhook_body(&incident(), 42);
    assert_eq!(hook.post("sekisho-action-7", &body).await, Ok(200));
    let accepted = Webhook::new(&format!("{base}/accepted"), SECRET, TIMEOUT).expect("webhook");
    assert_eq!(accepted.post("sekisho-action-8", &body).await, Ok(202));

    let got = seen(&log);
    assert_eq!(got.len(), 2);
    let r = &got[0];
    assert_eq!(r.path, "/ok");
    assert_eq!(r.event, "sekisho-action-7");
    assert_eq!(r.idempotency_key, "sekisho-action-7");
    assert_eq!(r.content_type, "application/json");
    assert!(r.verified, "signature checks out: {r:?}");
    assert!(
        r.fresh,
        "timestamp within {TIMESTAMP_TOLERANCE_SECS} s: {r:?}"
    );
    assert_eq!(r.signature, sign(SECRET, r.timestamp, &r.body));
    let sent: Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(sent, body);
    assert_eq!(sent["type"], "sekisho.detection");
    assert_eq!(sent["decision_id"], 42);

    // What a receiver must refuse: a changed body, another secret, a replayed old timestamp.
    let mut tampered = r.body.to_vec();
    let at = tampered
        .windows(9)
        .position(|w| w == b"shared_ip")
        .expect("rule network.shared_ip in body");
    tampered[at] = b'S';
    assert!(!verify(SECRET, r.timestamp, &tampered, &r.signature));
    assert!(!verify(
        b"another secret",
        r.timestamp,
        &r.body,
        &r.signature
    ));
    assert!(!verify(SECRET, r.timestamp + 1, &r.body, &r.signature));
    assert!(!fresh(
        r.timestamp - TIMESTAMP_TOLERANCE_SECS - 1,
        now().max(r.timestamp)
    ));
}

#[tokio::test]
async fn status_decides_retry() {
    let (base, log) = receiver().await;
    let body = webhook_body(&incident(), 1);
    // (path, status answered, worth retrying)
    let cases = [
        ("/unavailable", 503, true),
        ("/busy", 429, true),
        ("/request-timeout", 408, true),
        ("/bad", 400, false),
        ("/gone", 404, false),
        ("/moved", 302, false),
    ];
    for (path, status, retry) in cases {
        let hook = Webhook::new(&format!("{base}{path}"), SECRET, TIMEOUT).expect("webhook");
        let e = hook.post("ev-1", &body).await.expect_err(path);
        assert_eq!(e, NotifyError::HttpStatus(status), "{path}");
        assert_eq!(e.code(), "http_status");
        assert_eq!(e.retryable(), retry, "{path}");
    }
    let paths: Vec<String> = seen(&log).into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths.len(),
        cases.len(),
        "one request each, redirect not followed: {paths:?}"
    );
    assert!(!paths.contains(&"/ok".to_owned()));
    assert!(seen(&log).iter().all(|s| s.verified));
}

#[tokio::test]
async fn transport_failures_are_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }; // closed again: nothing listens there now
    let body = webhook_body(&incident(), 1);
    let down = Webhook::new(&format!("http://127.0.0.1:{port}/ok"), SECRET, TIMEOUT).expect("hook");
    let e = down.post("ev-1", &body).await.expect_err("refused");
    assert_eq!(e.code(), "connection_failed", "{e}");
    assert!(e.retryable());

    let (base, _log) = receiver().await;
    let slow =
        Webhook::new(&format!("{base}/slow"), SECRET, Duration::from_millis(300)).expect("webhook");
    let e = slow.post("ev-1", &body).await.expect_err("slow");
    assert_eq!(e.code(), "timeout", "{e}");
    assert!(e.retryable());
}

#[tokio::test]
async fn https_with_a_pinned_ca() {
    let dir = Scratch::new("webhook-tls");
    let server = pki(&dir, "server");
    let other = pki(&dir, "other");
    let (base, log) = tls_receiver(&server.cert_pem, &server.key_pem).await;
    let body = webhook_body(&incident(), 3);

    let pinned = WebhookClient::new(TIMEOUT, Some(&server.ca)).expect("client");
    let hook = pinned
        .webhook(&format!("{base}/ok"), SECRET)
        .expect("webhook");
    assert_eq!(hook.post("ev-tls", &body).await, Ok(200));
    let got = seen(&log);
    assert_eq!(got.len(), 1);
    assert!(got[0].verified && got[0].fresh, "{:?}", got[0]);

    // Another CA pinned, or the system's roots: the receiver's certificate is not trusted.
    let wrong = WebhookClient::new(TIMEOUT, Some(&other.ca)).expect("client");
    let system = Webhook::new(&format!("{base}/ok"), SECRET, TIMEOUT).expect("webhook");
    for hook in [
        wrong
            .webhook(&format!("{base}/ok"), SECRET)
            .expect("webhook"),
        system,
    ] {
        let e = hook.post("ev-tls", &body).await.expect_err("untrusted");
        assert_eq!(e.code(), "tls_failed", "{e}");
        assert!(!e.retryable());
    }
    assert_eq!(seen(&log).len(), 1, "nothing reached the receiver");
}

#[tokio::test]
async fn bad_event_ids_and_urls_are_refused_before_sending() {
    let (base, log) = receiver().await;
    let hook = Webhook::new(&format!("{base}/ok"), SECRET, TIMEOUT).expect("webhook");
    for id in ["", "two words", "line\nbreak", &"x".repeat(201)] {
        let e = hook.post(id, &json!({})).await.expect_err("bad id");
        assert_eq!(e.code(), "invalid_message", "{id:?}");
    }
    assert!(seen(&log).is_empty());
    let e = Webhook::new("http://hooks.example.jp/x", SECRET, TIMEOUT).expect_err("clear text");
    assert_eq!(e.code(), "invalid_address");
    assert!(WebhookClient::new(TIMEOUT, Some(std::path::Path::new("/nonexistent"))).is_err());
}
