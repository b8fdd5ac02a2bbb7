//! A real HTTPS cloud service for the tests: its own CA (given to the gateway as the destination's
//! `ca_pem`), a TLS listener on loopback, and a switch to answer 503 or stop listening altogether.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sekisho_registry::pki::Ca;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tower::ServiceExt;

#[derive(Default)]
pub struct Received {
    /// Every envelope message received, in order of arrival (duplicates kept).
    pub messages: Mutex<Vec<Value>>,
    /// Headers of every request (authorization, idempotency-key).
    pub headers: Mutex<Vec<(Option<String>, Option<String>)>>,
    /// When not 0, answer with this status instead of 200.
    pub fail_with: AtomicU16,
    /// Answer 500 to any request whose body contains this (a message this cloud cannot take).
    pub poison: Mutex<Option<String>>,
}

pub struct Cloud {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub received: Arc<Received>,
    task: Option<tokio::task::JoinHandle<()>>,
    tls: Arc<rustls::ServerConfig>,
}

async fn ingest(
    State(r): State<Arc<Received>>,
    headers: http::HeaderMap,
    body: Bytes,
) -> http::StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    r.headers
        .lock()
        .unwrap()
        .push((h("authorization"), h("idempotency-key")));
    let code = r.fail_with.load(Ordering::Relaxed);
    if code != 0 {
        return http::StatusCode::from_u16(code).unwrap();
    }
    if let Some(p) = r.poison.lock().unwrap().as_deref()
        && String::from_utf8_lossy(&body).contains(p)
    {
        return http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    let v: Value = serde_json::from_slice(&body).expect("the gateway sends JSON");
    r.messages
        .lock()
        .unwrap()
        .extend(v["messages"].as_array().unwrap().iter().cloned());
    http::StatusCode::OK
}

impl Cloud {
    pub async fn start() -> Self {
        let ca = Ca::generate("test cloud CA").unwrap();
        let (cert, key) = ca
            .issue("cloud", &["localhost".into(), "127.0.0.1".into()], false)
            .unwrap();
        use rustls_pki_types::pem::PemObject;
        let certs =
            vec![rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Self {
            addr,
            ca_pem: ca.cert_pem,
            received: Arc::default(),
            task: None,
            tls: Arc::new(tls),
        };
        c.serve(listener);
        c
    }

    fn serve(&mut self, listener: TcpListener) {
        let router = Router::new()
            .route("/ingest", post(ingest))
            .with_state(self.received.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.clone());
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| router.clone().oneshot(req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        }));
    }

    /// Stops listening: connections are refused, as when the cloud is down.
    pub fn go_down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn come_back(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind the cloud's port: {e}"),
            }
        };
        self.serve(listener);
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/ingest", self.addr.port())
    }

    /// The destination body for `PUT /api/v1/fields/{f}/cloud`.
    pub fn destination(&self) -> Value {
        serde_json::json!({"url": self.url(), "authorization": "Bearer cloud-secret", "ca_pem": self.ca_pem})
    }

    pub fn ids(&self) -> Vec<String> {
        self.received
            .messages
            .lock()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }
}
