//! Test utilities: a real `sekisho` process on loopback (init, serve, SIGKILL, restart) or the same
//! gateway in this test's process on a clock the test moves ([`Gateway::in_process`]), HTTPS clients
//! that trust its CA, and a real HTTPS cloud receiver that records what it gets and can fail on demand.
#![allow(dead_code)]

pub mod carrier;
pub mod cloud;
pub mod mfa;
pub mod smtp;
pub mod style;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sekisho")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sekisho-it-{tag}-{}-{}",
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

/// Runs `sekisho init` in `dir`.
pub fn init(dir: &Path) {
    let out = Command::new(bin())
        .args(["init", "--data-dir"])
        .arg(dir)
        .env("SEKISHO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Changes keys of `<dir>/sekisho.toml`: `[("cloud", "max_age_secs", 2.into())]`.
pub fn configure(dir: &Path, changes: &[(&str, &str, toml::Value)]) {
    let path = dir.join("sekisho.toml");
    let mut t: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    for (table, key, value) in changes {
        t.get_mut(*table)
            .and_then(|v| v.as_table_mut())
            .unwrap()
            .insert((*key).to_owned(), value.clone());
    }
    std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
}

/// How a gateway runs: a child process, or `sekisho_app::run` in this process.
enum Runner {
    Process(Child),
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

/// A running gateway.
pub struct Gateway {
    pub dir: PathBuf,
    runner: Runner,
    pub device: String,
    pub admin: String,
    /// The RADIUS accounting listener, when `[carrier.radius] listen` is set.
    pub radius: Option<String>,
    pub http: reqwest::Client,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Gateway {
    /// Initialises `dir` if needed and starts the gateway on ephemeral loopback ports.
    pub fn start_in(dir: &Path) -> Self {
        if !dir.join("sekisho.toml").exists() {
            init(dir);
        }
        Self::spawn(dir, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// Starts on the given addresses (a restart reuses the previous ones).
    pub fn spawn(dir: &Path, device: &str, admin: &str) -> Self {
        let mut child = Command::new(bin())
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--device-listen", device, "--admin-listen", admin])
            .env("SEKISHO_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut device, mut admin, mut radius) = (String::new(), String::new(), None);
        let mut lines = stdout.lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.trim().strip_prefix("device API : https://") {
                device = rest.split('/').next().unwrap().to_owned();
            }
            if let Some(rest) = line.trim().strip_prefix("RADIUS     : udp://") {
                radius = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("admin API  : https://") {
                admin = rest.split('/').next().unwrap().to_owned();
                break;
            }
        }
        assert!(
            !admin.is_empty(),
            "the gateway did not start: {:?}",
            child.try_wait()
        );
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (l1, l2) = (log.clone(), log.clone());
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            lines.for_each(|l| l1.lock().unwrap().push(l.unwrap_or_default()))
        });
        std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .for_each(|l| l2.lock().unwrap().push(l.unwrap_or_default()))
        });
        let http = client(dir, None);
        Self {
            dir: dir.to_owned(),
            runner: Runner::Process(child),
            device,
            admin,
            radius,
            http,
            log,
        }
    }

    /// The gateway in this test's process, initialised in `dir` if needed, on ephemeral loopback
    /// ports, keeping its domain time on `clock`. Needs a multi-threaded test runtime.
    pub async fn in_process(dir: &Path, clock: sekisho_core::clock::SharedClock) -> Self {
        if !dir.join("sekisho.toml").exists() {
            init(dir);
        }
        let any = Some("127.0.0.1:0".to_owned());
        let (config, key) = sekisho_app::load_config(dir, any.clone(), any, None)
            .unwrap_or_else(|p| panic!("configuration: {p:?}"));
        let device = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (d, a) = (device.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listeners = sekisho_app::Listeners {
            device,
            admin,
            radius: None,
            reload_tls: None,
        };
        let task = tokio::spawn(sekisho_app::run(listeners, config, key, clock, async {
            let _ = stopped.await;
        }));
        let gw = Self {
            dir: dir.to_owned(),
            runner: Runner::InProcess {
                stop: Some(stop),
                task,
            },
            device: d.to_string(),
            admin: a.to_string(),
            radius: None,
            http: client(dir, None),
            log: Default::default(),
        };
        // Serving once the admin API answers.
        let up = eventually(30, || async {
            gw.http
                .get(gw.aurl("/api/v1/openapi.json"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        assert!(up.is_some(), "the in-process gateway did not start");
        gw
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        match &self.runner {
            Runner::Process(c) => c.id(),
            Runner::InProcess { .. } => std::process::id(),
        }
    }

    /// Kills the process with SIGKILL (no shutdown code runs).
    pub fn kill9(&mut self) {
        let Runner::Process(child) = &mut self.runner else {
            panic!("an in-process gateway cannot be killed");
        };
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGKILL, then start again on the same ports.
    pub fn restart_after_kill9(mut self) -> Self {
        self.kill9();
        let (d, a, dir) = (self.device.clone(), self.admin.clone(), self.dir.clone());
        drop(self);
        Self::spawn(&dir, &d, &a)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.aurl("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One metric's value (`name` without the `sekisho_` prefix).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("sekisho_{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn durl(&self, path: &str) -> String {
        format!("https://{}{path}", self.device)
    }

    pub fn aurl(&self, path: &str) -> String {
        format!("https://{}{path}", self.admin)
    }

    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.aurl("/api/v1/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// A maintainer session.
    pub async fn admin(&self) -> Admin {
        let r = self.login("admin", ADMIN_PASSWORD).await;
        assert_eq!(r.status(), 200);
        let token = r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        Admin {
            base: format!("https://{}", self.admin),
            token,
            http: self.http.clone(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::InProcess { stop, task } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                task.abort();
            }
        }
    }
}

/// An HTTPS client trusting the gateway's CA, optionally presenting a client identity (PEM cert + key).
pub fn client(dir: &Path, identity: Option<(&str, &str)>) -> reqwest::Client {
    let ca = std::fs::read(dir.join("tls/ca.crt")).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .timeout(Duration::from_secs(30))
        .tls_info(true);
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// A logged-in admin API session.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Admin {
    /// `PUT path` with `body`, which must answer `200`; returns the answer.
    pub async fn put_ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.req(reqwest::Method::PUT, path, Some(body)).await;
        assert_eq!(s, 200, "PUT {path}: {v}");
        v
    }

    pub async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let answer = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => return (status, Value::String(text)),
        };
        if style::applies_to(path) {
            let problems = style::problems(&answer);
            assert!(
                problems.is_empty(),
                "{path}: the answer breaks the API style:\n{}\n{answer}",
                problems.join("\n")
            );
        }
        (status, answer)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.req(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn field(&self, name: &str) -> Value {
        let (s, f) = self.post("/api/v1/fields", json!({"name": name})).await;
        assert_eq!(s, 201, "{f}");
        f
    }

    /// Registers a device; returns the registration (`id`, `auth_secret`, `auth_id`).
    pub async fn device(&self, field: &Value, unique_id: &str) -> Value {
        let (s, d) = self
            .post(
                &format!("/api/v1/fields/{}/devices", field["id"].as_str().unwrap()),
                json!({"unique_id": unique_id}),
            )
            .await;
        assert_eq!(s, 201, "{d}");
        d
    }
}

/// A device speaking protocol v1.
pub struct Device {
    pub http: reqwest::Client,
    pub base: String,
    pub auth_id: String,
    pub secret: String,
    pub unique_id: String,
    pub token: String,
    pub device_id: String,
}

impl Device {
    pub fn new(gw: &Gateway, reg: &Value, unique_id: &str) -> Self {
        Self {
            http: gw.http.clone(),
            base: format!("https://{}", gw.device),
            auth_id: reg["auth_id"].as_str().unwrap().to_owned(),
            secret: reg["auth_secret"].as_str().unwrap().to_owned(),
            unique_id: unique_id.to_owned(),
            token: String::new(),
            device_id: String::new(),
        }
    }

    pub async fn request_token(
        &self,
        auth_id: &str,
        secret: &str,
        unique_id: &str,
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/auth/token", self.base))
            .json(&json!({"auth_id": auth_id, "auth_secret": secret, "unique_id": unique_id}))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    }

    /// Authenticates with the three factors; panics unless it succeeds.
    pub async fn auth(&mut self) -> &mut Self {
        let (s, v) = self
            .request_token(
                &self.auth_id.clone(),
                &self.secret.clone(),
                &self.unique_id.clone(),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        self.token = v["access_token"].as_str().unwrap().to_owned();
        self.device_id = v["device_id"].as_str().unwrap().to_owned();
        self
    }

    pub async fn send_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("device-id", &self.device_id)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn send(&self, body: Value) -> (u16, Value) {
        self.send_raw("/v1/telemetry", "application/json", body.to_string())
            .await
    }
}

/// A raw TLS connection to the gateway (handshake done, nothing sent).
pub async fn tls_connect(
    dir: &std::path::Path,
    addr: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    tls_connect_from(dir, addr, None).await
}

/// [`tls_connect`] from a given loopback source address (`127.0.0.2`…), as another device would.
pub async fn tls_connect_from(
    dir: &std::path::Path,
    addr: &str,
    source: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("tls/ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = match source {
        None => tokio::net::TcpStream::connect(addr).await?,
        Some(src) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(format!("{src}:0").parse().unwrap())?;
            socket.connect(addr.parse().unwrap()).await?
        }
    };
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
}

/// Sends `request` on `conn` and reads the answer until the gateway closes the connection.
pub async fn raw_exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    conn: &mut S,
    request: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds (an upper bound for a condition the
/// gateway must reach, never a measured duration).
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
