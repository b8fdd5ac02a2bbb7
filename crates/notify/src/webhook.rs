//! Signed webhooks: [`Webhook::post`] sends one JSON event to a receiver's URL, signed with the
//! receiver's shared secret.
//!
//! # The request
//!
//! `POST <url>` with `Content-Type: application/json` and:
//!
//! | header | value |
//! |---|---|
//! | `X-Sekisho-Event` | the event's id, the same on every retry of the same event |
//! | `Idempotency-Key` | the same id: a receiver drops an event it has already taken |
//! | `X-Sekisho-Timestamp` | when this attempt was signed, Unix seconds |
//! | `X-Sekisho-Signature` | `sha256=` + lowercase hex of HMAC-SHA256(secret, `<timestamp>.<body>`) |
//!
//! `<timestamp>` is the header's decimal text and `<body>` the exact bytes of the request body,
//! joined by one `.`. Each attempt is signed anew (a new timestamp), so a retry is not a replay.
//!
//! # How a receiver verifies
//!
//! 1. Read the body as bytes, before any JSON parsing (re-serialised JSON would not match).
//! 2. Reject a timestamp more than 5 minutes ([`TIMESTAMP_TOLERANCE_SECS`]) away from its own
//!    clock ([`fresh`]): a captured request cannot be replayed later.
//! 3. Compute HMAC-SHA256 with the shared secret over `timestamp + "." + body` and compare it
//!    with the header's hex in constant time ([`verify`] does 3).
//! 4. Drop an event whose `X-Sekisho-Event` it has seen before (retries repeat it).
//!
//! # Outcomes
//!
//! 2xx is delivered (`Ok(status)`). 408, 429, 5xx, connection failures and timeouts are
//! retryable; any other status (including 3xx: redirects are not followed) is final. The client
//! never follows redirects, never sends the secret itself, and logs only the URL's host.

use crate::error::{NotifyError, chain, has_rustls_error};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How far a signed timestamp may be from the receiver's clock, in seconds.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// Largest body sent (bytes).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Headers of a webhook request.
pub const HEADER_EVENT: &str = "X-Sekisho-Event";
pub const HEADER_TIMESTAMP: &str = "X-Sekisho-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Sekisho-Signature";

type HmacSha256 = Hmac<Sha256>;

/// An HTTP client for webhooks: built once, shared by every [`Webhook`] made from it (cheap to
/// clone). [`Webhook::new`] uses one per timeout, kept for the process's life.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    client: reqwest::Client,
}

impl WebhookClient {
    /// A client whose attempts take at most `timeout` (connection to the answer's status),
    /// trusting the system's roots, or — with `ca_file` — only the CAs in that PEM file.
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sekisho/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("ca_file: cannot read {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file: not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err(format!("ca_file: {} holds no certificate", ca.display()));
            }
            b = b.tls_certs_only(certs);
        }
        let client = b
            .build()
            .map_err(|e| format!("HTTP client: {}", chain(&e)))?;
        Ok(Self { client })
    }

    /// The process-wide client for `timeout` with the system's roots, built on first use.
    fn shared(timeout: Duration) -> Result<Self, String> {
        static CLIENTS: Mutex<Vec<(Duration, WebhookClient)>> = Mutex::new(Vec::new());
        let mut clients = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = clients.iter().find(|(t, _)| *t == timeout) {
            return Ok(c.clone());
        }
        let c = Self::new(timeout, None)?;
        clients.push((timeout, c.clone()));
        Ok(c)
    }

    /// A webhook to `url` signed with `secret`, sharing this client.
    pub fn webhook(&self, url: &str, secret: impl AsRef<[u8]>) -> Result<Webhook, NotifyError> {
        let secret = secret.as_ref().to_vec();
        if url.is_empty() {
            return Err(NotifyError::NotConfigured("webhook URL is empty".into()));
        }
        if secret.is_empty() {
            return Err(NotifyError::NotConfigured("webhook secret is empty".into()));
        }
        Ok(Webhook {
            url: check_url(url)?,
            secret,
            client: self.client.clone(),
        })
    }
}

/// `https`, or `http` to a loopback address only (the body describes incidents).
fn check_url(url: &str) -> Result<reqwest::Url, NotifyError> {
    let bad = |why: String| NotifyError::InvalidAddress(format!("webhook URL: {why}"));
    let u = reqwest::Url::parse(url).map_err(|e| bad(format!("'{url}' is not a URL ({e})")))?;
    let Some(host) = u.host_str() else {
        return Err(bad(format!("'{url}' has no host")));
    };
    match u.scheme() {
        "https" => Ok(u),
        "http" if crate::mail::config::is_loopback(host) => Ok(u),
        "http" => Err(bad(format!(
            "'{url}' is plain http: only https may carry an incident off this machine"
        ))),
        s => Err(bad(format!(
            "'{url}': scheme {s} is neither https nor http"
        ))),
    }
}

/// One receiver: its URL and shared secret. `Debug` shows neither the secret nor the URL's path.
#[derive(Clone)]
pub struct Webhook {
    url: reqwest::Url,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("host", &self.url.host_str().unwrap_or(""))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Webhook {
    /// A webhook to `url` signed with `secret`, whose attempts take at most `timeout`, trusting
    /// the system's roots. Its client is shared with every webhook of the same timeout (built
    /// once per process); [`WebhookClient`] makes one with a pinned CA.
    pub fn new(
        url: &str,
        secret: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Self, NotifyError> {
        WebhookClient::shared(timeout)
            .map_err(NotifyError::NotConfigured)?
            .webhook(url, secret)
    }

    /// The receiver's host (for records and logs).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("")
    }

    /// Posts `body` as the event `event_id`, signed now. `Ok` is the receiver's 2xx status.
    pub async fn post(&self, event_id: &str, body: &serde_json::Value) -> Result<u16, NotifyError> {
        if event_id.is_empty()
            || event_id.len() > 200
            || !event_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(NotifyError::InvalidMessage(
                "event id must be 1-200 visible ASCII characters".into(),
            ));
        }
        let bytes =
            serde_json::to_vec(body).map_err(|e| NotifyError::InvalidMessage(e.to_string()))?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(NotifyError::InvalidMessage(format!(
                "body is {} bytes, more than {MAX_BODY_BYTES}",
                bytes.len()
            )));
        }
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let signature = sign(&self.secret, timestamp, &bytes);
        let outcome = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, event_id)
            .header("Idempotency-Key", event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(bytes)
            .send()
            .await
            .map_err(|e| transport_error(&e))
            .and_then(|r| {
                let s = r.status().as_u16();
                if r.status().is_success() {
                    Ok(s)
                } else {
                    Err(NotifyError::HttpStatus(s))
                }
            });
        match &outcome {
            Ok(s) => tracing::info!(
                host = self.host(),
                event_id,
                status = s,
                "webhook: delivered"
            ),
            Err(e) => tracing::warn!(
                host = self.host(),
                event_id,
                code = e.code(),
                retryable = e.retryable(),
                error = %e,
                "webhook: not delivered"
            ),
        }
        outcome
    }
}

fn transport_error(e: &reqwest::Error) -> NotifyError {
    let text = chain(e);
    if e.is_timeout() {
        NotifyError::Timeout(text)
    } else if has_rustls_error(e) {
        NotifyError::Tls(text)
    } else {
        NotifyError::Connect(text)
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Sekisho-Signature` value: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header_value` is the signature of `timestamp` and `body` under `secret`, compared in
/// constant time. It does not judge the timestamp's age: see [`fresh`].
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header_value: &str) -> bool {
    let Some(hex_sig) = header_value.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

/// Whether a signed `timestamp` is within [`TIMESTAMP_TOLERANCE_SECS`] of `now` (both Unix
/// seconds), either way.
pub fn fresh(timestamp: i64, now: i64) -> bool {
    now.abs_diff(timestamp) <= TIMESTAMP_TOLERANCE_SECS.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        let s = sign(b"secret", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            s,
            "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert!(verify(
            b"secret",
            1_700_000_000,
            br#"{"a":1}"#,
            &s.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(verify(b"secret", 1_700_000_000, br#"{"a":1}"#, &s));
        assert!(!verify(b"secret", 1_700_000_001, br#"{"a":1}"#, &s));
        assert!(!verify(b"other", 1_700_000_000, br#"{"a":1}"#, &s));
        assert!(!verify(b"secret", 1_700_000_000, br#"{"a":2}"#, &s));
        assert!(!verify(b"secret", 1_700_000_000, br#"{"a":1}"#, &s[7..]));
        assert!(!verify(
            b"secret",
            1_700_000_000,
            br#"{"a":1}"#,
            "sha256=zz"
        ));
        assert!(!verify(b"secret", 1_700_000_000, br#"{"a":1}"#, "sha256="));
    }

    #[test]
    fn freshness_window() {
        assert!(fresh(1000, 1000));
        assert!(fresh(1000, 1300));
        assert!(fresh(1300, 1000));
        assert!(!fresh(1000, 1301));
        assert!(!fresh(i64::MIN, i64::MAX));
    }

    #[test]
    fn urls_must_be_https_off_loopback() {
        let c = WebhookClient::new(Duration::from_secs(1), None).expect("client");
        assert!(c.webhook("https://hooks.example.jp/x?k=1", "s").is_ok());
        assert!(c.webhook("http://127.0.0.1:8080/x", "s").is_ok());
        assert!(c.webhook("http://localhost/x", "s").is_ok());
        let code = |u: &str| c.webhook(u, "s").expect_err(u).code();
        assert_eq!(code("http://hooks.example.jp/x"), "invalid_address");
        assert_eq!(code("ftp://hooks.example.jp/x"), "invalid_address");
        assert_eq!(code("not a url"), "invalid_address");
        assert_eq!(code(""), "not_configured");
        assert_eq!(
            c.webhook("https://h.example.jp", Vec::new())
                .expect_err("no secret")
                .code(),
            "not_configured"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let w = Webhook::new(
            "https://h.example.jp/p/token",
            "s3cr3t",
            Duration::from_secs(1),
        )
        .expect("webhook");
        let d = format!("{w:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("token"), "{d}");
    }
}
