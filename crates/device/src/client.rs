//! The reference device client of device protocol v1 ([`DeviceClient`]): token, telemetry, the
//! state self-report, and the update cycle — check, verify, refuse rollback, download, check size
//! and hash, write, persist, report the result (rejections too).
//!
//! Architecture invariant: HTTPS only, no redirects followed, the bearer token goes only to the
//! gateway's own origin (an artifact URL elsewhere is refused); every body read is bounded.

use crate::state::{DeviceState, LocalState, artifact_path, write_atomic};
use reqwest::{Method, StatusCode, Url};
use sekisho_update::error::{UpdateError, chain};
use sekisho_update::keys::PublicKey;
use sekisho_update::manifest::{Kind, Manifest, SignedManifest, check_artifact, verify};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The three factors of `POST /v1/auth/token`. `Debug` hides the secret.
#[derive(Clone)]
pub struct Credentials {
    pub auth_id: String,
    pub auth_secret: String,
    pub unique_id: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_id", &self.auth_id)
            .field("auth_secret", &"<hidden>")
            .field("unique_id", &self.unique_id)
            .finish()
    }
}

/// How to reach the gateway and where the device keeps its state.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://host:port` of the gateway's device listener.
    pub gateway: String,
    /// PEM CA certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub credentials: Credentials,
    /// Where `state.json` and applied artifacts live.
    pub state_dir: PathBuf,
    /// Connection and API request timeout.
    pub timeout: Duration,
    /// Whole-download timeout for an artifact.
    pub download_timeout: Duration,
    /// Artifacts announced larger than this are refused (`download_failed`).
    pub max_artifact_bytes: u64,
}

impl ClientConfig {
    pub fn new(gateway: &str, credentials: Credentials, state_dir: &Path) -> Self {
        Self {
            gateway: gateway.to_owned(),
            ca_pem: None,
            credentials,
            state_dir: state_dir.to_owned(),
            timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(600),
            max_artifact_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `POST /v1/auth/token`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub access_token: String,
    pub device_id: String,
    pub expires_in: u64,
}

/// `POST /v1/device/update/result`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResult {
    pub sequence: u64,
    pub version: String,
    /// `applied` or `rejected`.
    pub status: String,
    /// The rejection's [`UpdateError::code`]; `null` when applied.
    pub reason: Option<String>,
}

/// An update that was applied.
#[derive(Debug)]
pub struct Applied {
    pub manifest: Manifest,
    /// Where the artifact was written.
    pub path: PathBuf,
    /// Whether the gateway took the `applied` report (the update stays applied either way).
    pub reported: Result<(), UpdateError>,
}

const API_BODY_LIMIT: usize = 64 * 1024;

struct Session {
    info: TokenInfo,
    expires: Instant,
}

/// A device talking to one gateway. Requests re-authenticate once on `401` or an expired token.
pub struct DeviceClient {
    http: reqwest::Client,
    base: Url,
    cfg: ClientConfig,
    session: Option<Session>,
}

impl DeviceClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, UpdateError> {
        let base = Url::parse(&cfg.gateway)
            .map_err(|e| UpdateError::Config(format!("gateway URL {:?}: {e}", cfg.gateway)))?;
        if base.scheme() != "https" || base.host_str().is_none() {
            return Err(UpdateError::Config(format!(
                "gateway URL {:?} must be https://host[:port]",
                cfg.gateway
            )));
        }
        let mut b = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sekisho-device/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| UpdateError::Config(format!("CA: not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(UpdateError::Config("CA: no certificate in the PEM".into()));
            }
            b = b.tls_certs_only(certs);
        }
        let http = b
            .build()
            .map_err(|e| UpdateError::Config(format!("HTTP client: {}", chain(&e))))?;
        Ok(Self {
            http,
            base,
            cfg,
            session: None,
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.cfg.state_dir
    }

    /// The device id of the current token, once authenticated.
    pub fn device_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.info.device_id.as_str())
    }

    /// `POST /v1/auth/token` with the three factors; keeps the token for later requests.
    pub async fn auth(&mut self) -> Result<TokenInfo, UpdateError> {
        let c = &self.cfg.credentials;
        let body = serde_json::json!({
            "auth_id": c.auth_id, "auth_secret": c.auth_secret, "unique_id": c.unique_id,
        });
        let resp = self
            .http
            .post(self.url("/v1/auth/token")?)
            .timeout(self.cfg.timeout)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let resp = expect(resp, &[StatusCode::OK]).await?;
        let info: TokenInfo = read_json(resp).await?;
        // Renew a little before the gateway would refuse it.
        let life = Duration::from_secs(info.expires_in.saturating_sub(30).max(1));
        self.session = Some(Session {
            info: info.clone(),
            expires: Instant::now() + life,
        });
        Ok(info)
    }

    /// `POST /v1/telemetry`: the status and the pending commands (`{"type": "update", …}`, …).
    pub async fn send_telemetry(&mut self, body: &Value) -> Result<(u16, Vec<Value>), UpdateError> {
        let url = self.url("/v1/telemetry")?;
        let resp = self
            .authed(Method::POST, url, Some(body), self.cfg.timeout)
            .await?;
        let status = resp.status().as_u16();
        let resp = expect(resp, &[StatusCode::ACCEPTED, StatusCode::OK]).await?;
        let bytes = read_limited(resp, API_BODY_LIMIT).await?;
        Ok((status, commands_of(&bytes)))
    }

    /// `POST /v1/device/state`: the pending commands the answer carries (none when it has no
    /// `commands`).
    pub async fn report_state(&mut self, state: &DeviceState) -> Result<Vec<Value>, UpdateError> {
        let url = self.url("/v1/device/state")?;
        let body = serde_json::to_value(state).unwrap_or_default();
        let resp = self
            .authed(Method::POST, url, Some(&body), self.cfg.timeout)
            .await?;
        let resp = expect(resp, &[StatusCode::ACCEPTED, StatusCode::OK]).await?;
        let bytes = read_limited(resp, API_BODY_LIMIT).await?;
        Ok(commands_of(&bytes))
    }

    /// `GET /v1/device/update`: the signed manifest offered, `None` on `204` (device current).
    pub async fn check_update(&mut self) -> Result<Option<SignedManifest>, UpdateError> {
        let url = self.url("/v1/device/update")?;
        let resp = self
            .authed(Method::GET, url, None, self.cfg.timeout)
            .await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let resp = expect(resp, &[StatusCode::OK]).await?;
        let bytes = read_limited(resp, API_BODY_LIMIT).await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| UpdateError::Malformed(format!("update envelope: {e}")))
    }

    /// `POST /v1/device/update/result`.
    pub async fn report_result(&mut self, result: &UpdateResult) -> Result<(), UpdateError> {
        let url = self.url("/v1/device/update/result")?;
        let body = serde_json::to_value(result).unwrap_or_default();
        let resp = self
            .authed(Method::POST, url, Some(&body), self.cfg.timeout)
            .await?;
        expect(resp, &[StatusCode::ACCEPTED, StatusCode::OK])
            .await
            .map(drop)
    }

    /// Verifies, refuses a rollback, downloads, checks size and hash, writes the artifact, persists
    /// the new sequence (and version or configuration hash) in `store` and `state.json`, then reports
    /// `applied`. A rejection writes nothing and is reported `rejected` with its reason (the
    /// sequence and version the payload claims, `0` and `""` when unreadable) before it is returned;
    /// a failure to report a rejection is not returned. I/O errors are returned unreported.
    pub async fn apply_update(
        &mut self,
        signed: &SignedManifest,
        trusted: &[PublicKey],
        store: &mut LocalState,
    ) -> Result<Applied, UpdateError> {
        match self.try_apply(signed, trusted, store).await {
            Ok((manifest, path)) => {
                let result = UpdateResult {
                    sequence: manifest.sequence,
                    version: manifest.version.clone(),
                    status: "applied".into(),
                    reason: None,
                };
                let reported = self.report_result(&result).await;
                Ok(Applied {
                    manifest,
                    path,
                    reported,
                })
            }
            Err(e) if e.is_rejection() => {
                let (sequence, version) = claimed(&signed.payload);
                let result = UpdateResult {
                    sequence,
                    version,
                    status: "rejected".into(),
                    reason: Some(e.code().to_owned()),
                };
                let _ = self.report_result(&result).await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn try_apply(
        &mut self,
        signed: &SignedManifest,
        trusted: &[PublicKey],
        store: &mut LocalState,
    ) -> Result<(Manifest, PathBuf), UpdateError> {
        let manifest = verify(signed, trusted)?;
        if manifest.sequence <= store.last_sequence {
            return Err(UpdateError::Rollback {
                sequence: manifest.sequence,
                last: store.last_sequence,
            });
        }
        let bytes = self.download(&manifest).await?;
        check_artifact(&bytes, &manifest)?;
        let dir = self.cfg.state_dir.clone();
        let path = artifact_path(&dir, manifest.kind, &manifest.artifact.sha256);
        write_atomic(&path, &bytes)?;
        let mut next = store.clone();
        next.last_sequence = manifest.sequence;
        match manifest.kind {
            Kind::Firmware => next.version = Some(manifest.version.clone()),
            Kind::Config => next.config_hash = Some(format!("sha256:{}", manifest.artifact.sha256)),
        }
        next.save(&dir)?;
        *store = next;
        Ok((manifest, path))
    }

    /// The artifact's bytes, reading at most one byte more than the manifest announces.
    async fn download(&mut self, manifest: &Manifest) -> Result<Vec<u8>, UpdateError> {
        let size = manifest.artifact.size;
        if size > self.cfg.max_artifact_bytes {
            return Err(UpdateError::DownloadFailed(format!(
                "{size} bytes is more than this device accepts ({})",
                self.cfg.max_artifact_bytes
            )));
        }
        let url = self
            .base
            .join(&manifest.artifact.url)
            .map_err(|e| UpdateError::DownloadFailed(format!("artifact URL: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(UpdateError::DownloadFailed(
                "the artifact URL is not on the gateway".into(),
            ));
        }
        let failed = |e: UpdateError| UpdateError::DownloadFailed(e.to_string());
        let timeout = self.cfg.download_timeout;
        let resp = self
            .authed(Method::GET, url, None, timeout)
            .await
            .map_err(failed)?;
        let resp = expect(resp, &[StatusCode::OK]).await.map_err(failed)?;
        let limit = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let bytes = read_limited_lenient(resp, limit).await.map_err(failed)?;
        if bytes.len() as u64 > size {
            return Err(UpdateError::SizeMismatch {
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    fn url(&self, path: &str) -> Result<Url, UpdateError> {
        self.base
            .join(path)
            .map_err(|e| UpdateError::Config(format!("{path}: {e}")))
    }

    /// Sends with the bearer token and `Device-Id`; authenticates first when there is no valid
    /// token, and once more on `401`.
    async fn authed(
        &mut self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpdateError> {
        for attempt in 0..2 {
            let fresh = self
                .session
                .as_ref()
                .is_some_and(|s| Instant::now() < s.expires);
            if !fresh {
                self.auth().await?;
            }
            let Some(s) = &self.session else { continue };
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(timeout)
                .bearer_auth(&s.info.access_token)
                .header("Device-Id", &s.info.device_id);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(transport)?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.session = None;
                continue;
            }
            return Ok(resp);
        }
        Err(UpdateError::Status {
            status: 401,
            code: "invalid_token".into(),
        })
    }
}

/// The `commands` array of an answer; none when the body is not JSON or has none.
fn commands_of(body: &[u8]) -> Vec<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("commands").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// `true` when `commands` holds `{"type": "update", …}`.
pub fn wants_update(commands: &[Value]) -> bool {
    commands
        .iter()
        .any(|c| c.get("type").and_then(Value::as_str) == Some("update"))
}

/// The sequence and version an (unverified) payload claims, for a rejection report.
fn claimed(payload: &str) -> (u64, String) {
    let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let sequence = v.get("sequence").and_then(Value::as_u64).unwrap_or(0);
    let version: String = v
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(64)
        .collect();
    (sequence, version)
}

fn transport(e: reqwest::Error) -> UpdateError {
    UpdateError::Transport(chain(&e))
}

/// `resp` when its status is one of `ok`, else `Status` with the gateway's `error` code.
async fn expect(
    resp: reqwest::Response,
    ok: &[StatusCode],
) -> Result<reqwest::Response, UpdateError> {
    let status = resp.status();
    if ok.contains(&status) {
        return Ok(resp);
    }
    let body = read_limited_lenient(resp, API_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Err(UpdateError::Status {
        status: status.as_u16(),
        code,
    })
}

async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, UpdateError> {
    let bytes = read_limited(resp, API_BODY_LIMIT).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UpdateError::Transport(format!("unexpected answer: {e}")))
}

/// The body, failing when it is longer than `limit`.
async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, UpdateError> {
    let bytes = read_limited_lenient(resp, limit.saturating_add(1)).await?;
    if bytes.len() > limit {
        return Err(UpdateError::Transport(format!(
            "answer longer than {limit} bytes"
        )));
    }
    Ok(bytes)
}

/// At most `limit` bytes of the body (stops reading there).
async fn read_limited_lenient(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, UpdateError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        let room = limit - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_reports_what_the_payload_claims() {
        assert_eq!(
            claimed(r#"{"sequence":42,"version":"1.4.3"}"#),
            (42, "1.4.3".into())
        );
        assert_eq!(claimed("garbage"), (0, String::new()));
        assert_eq!(
            claimed(r#"{"sequence":-1,"version":7}"#),
            (0, String::new())
        );
    }

    #[test]
    fn gateway_must_be_https() {
        let creds = Credentials {
            auth_id: "a".into(),
            auth_secret: "s".into(),
            unique_id: "u".into(),
        };
        for url in ["http://127.0.0.1:8443", "not a url", "https://"] {
            let e = DeviceClient::new(ClientConfig::new(url, creds.clone(), Path::new("/tmp")))
                .err()
                .map(|e| e.code());
            assert_eq!(e, Some("bad_configuration"), "{url}");
        }
        assert!(!format!("{creds:?}").contains("\"s\""));
    }
}
