//! A fake gateway that plays the gateway's side of the update contract (token, telemetry, state,
//! update, artifacts, result) over real HTTPS on loopback (rustls, a throw-away rcgen CA), and
//! records what the device sent. Scratch directories removed on drop.

#![allow(dead_code)] // each test binary uses its own part

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

pub const AUTH_ID: &str = "field-1-auth";
pub const SECRET: &str = "device secret 0001";
pub const UNIQUE_ID: &str = "pump-0001";
pub const DEVICE_ID: &str = "d-0001";
const TOKEN: &str = "token-0001";

/// What the fake gateway offers and what it saw.
#[derive(Default)]
pub struct Shared {
    /// The `GET /v1/device/update` body; `None` → 204.
    pub offer: Option<Value>,
    /// Artifacts by the hash in their URL (a test may serve wrong bytes under a hash).
    pub artifacts: HashMap<String, Vec<u8>>,
    /// Becomes `offer` when the next telemetry message arrives, whose answer then carries an
    /// update command (an approval landing mid-run).
    pub offer_after_telemetry: Option<Value>,
    /// Commands returned with the next telemetry answer.
    pub commands: Vec<Value>,
    /// Bodies of `POST /v1/device/update/result`, in order.
    pub results: Vec<Value>,
    pub states: Vec<Value>,
    pub telemetry: Vec<Value>,
    /// Hashes of the artifacts requested.
    pub downloads: Vec<String>,
    pub tokens_issued: u32,
    /// Refuse the next authenticated request with `401` (a revoked or expired token).
    pub revoke_next: bool,
    /// Requests refused for a missing or wrong bearer token / Device-Id.
    pub unauthorized: u32,
}

pub type Gw = Arc<Mutex<Shared>>;

pub struct Gateway {
    pub base: String,
    pub ca_pem: String,
    pub shared: Gw,
}

impl Gateway {
    pub fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        f(&mut self.shared.lock().expect("gateway state"))
    }
}

async fn token(State(gw): State<Gw>, Json(body): Json<Value>) -> Response {
    let ok = body["auth_id"] == AUTH_ID
        && body["auth_secret"] == SECRET
        && body["unique_id"] == UNIQUE_ID;
    if !ok {
        let err = json!({"error": "invalid_credentials", "message": "invalid credentials"});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    gw.lock().expect("gw").tokens_issued += 1;
    Json(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600, "device_id": DEVICE_ID}))
        .into_response()
}

/// Bearer token and `Device-Id` as for telemetry.
async fn device_auth(
    State(gw): State<Gw>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let revoked = std::mem::take(&mut gw.lock().expect("gw").revoke_next);
    if revoked || h("authorization") != format!("Bearer {TOKEN}") || h("device-id") != DEVICE_ID {
        gw.lock().expect("gw").unauthorized += 1;
        let err = json!({"error": "invalid_token", "message": "no valid token"});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    next.run(req).await
}

async fn telemetry(State(gw): State<Gw>, Json(body): Json<Value>) -> Response {
    let mut g = gw.lock().expect("gw");
    g.telemetry.push(body);
    if let Some(offer) = g.offer_after_telemetry.take() {
        g.offer = Some(offer);
        g.commands
            .push(json!({"type": "update", "reason": "approved version changed"}));
    }
    let commands = std::mem::take(&mut g.commands);
    let id = format!("m-{}", g.telemetry.len());
    (
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "commands": commands})),
    )
        .into_response()
}

async fn state(State(gw): State<Gw>, Json(body): Json<Value>) -> Response {
    let mut g = gw.lock().expect("gw");
    g.states.push(body);
    let commands = std::mem::take(&mut g.commands);
    let answer = json!({"id": g.states.len(), "changed": [], "commands": commands});
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

async fn update(State(gw): State<Gw>) -> Response {
    match gw.lock().expect("gw").offer.clone() {
        Some(offer) => Json(offer).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn artifact(State(gw): State<Gw>, UrlPath(sha): UrlPath<String>) -> Response {
    let mut g = gw.lock().expect("gw");
    g.downloads.push(sha.clone());
    match g.artifacts.get(&sha) {
        Some(bytes) => Bytes::from(bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn result(State(gw): State<Gw>, Json(body): Json<Value>) -> StatusCode {
    gw.lock().expect("gw").results.push(body);
    StatusCode::ACCEPTED
}

fn router(gw: &Gw) -> Router {
    let device = Router::new()
        .route("/v1/telemetry", post(telemetry))
        .route("/v1/device/state", post(state))
        .route("/v1/device/update", get(update))
        .route("/v1/device/update/result", post(result))
        .route("/v1/device/artifacts/{sha256}", get(artifact))
        .layer(middleware::from_fn_with_state(gw.clone(), device_auth));
    Router::new()
        .route("/v1/auth/token", post(token))
        .merge(device)
        .with_state(gw.clone())
}

/// A CA and a certificate it signed for `localhost` and `127.0.0.1`: (CA PEM, cert PEM, key PEM).
fn pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "sekisho-update test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("leaf");
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Starts the fake gateway on `127.0.0.1:0` over HTTPS.
pub async fn start() -> Gateway {
    let (ca_pem, cert_pem, key_pem) = pki();
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
    let shared = Gw::default();
    let app = router(&shared);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Gateway {
        base: format!("https://127.0.0.1:{port}"),
        ca_pem,
        shared,
    }
}

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sekisho-update-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    /// The names under the directory, recursively, sorted (to assert "nothing written").
    pub fn files(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(
                        p.strip_prefix(base)
                            .unwrap_or(&p)
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out.sort();
        out
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
