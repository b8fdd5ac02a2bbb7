//! The carrier API configuration (the gateway's `[carrier.api]` table), its validation, and
//! [`connect`], which builds the configured connector.
//!
//! Conventions are the gateway's: every key optional, unknown keys refused, durations as integer
//! `_ms`, paths relative to the data directory (the `base` given to [`CarrierApiConfig::validate`],
//! [`CarrierApiConfig::resolve_paths`] and [`connect`]). Problems are reported with the key name
//! relative to this table (`base_url: …`); the gateway prefixes `carrier.api.`.
//!
//! TLS: the carrier's certificate is checked against the system's trusted roots, or — when `ca_file`
//! is set — against the CAs in that file **only** (pinning a private or carrier-specific CA).
//! Plain `http://` is accepted for loopback addresses only (a local simulator or proxy): the token
//! must not cross a network in clear.

mod client;
mod templates;

pub use client::connect;
pub use templates::{OpTemplate, RestTemplates};

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The documented default `[carrier.api]` configuration, with comments, as the gateway's default
/// configuration file should show it (a test keeps it equal to [`CarrierApiConfig::default`]).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// `[carrier.api]`: how to reach the carrier's SIM API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarrierApiConfig {
    /// `none` (no SIM control), `mvno` (the IoT-MVNO API shape) or `rest` (templates below).
    pub kind: String,
    /// The API's base URL, e.g. `https://api.carrier.example`; request paths are appended to it.
    pub base_url: String,
    /// File holding the API token (whitespace around it is ignored). Keep it mode 0600.
    pub token_file: PathBuf,
    /// Environment variable that, when set and not empty, holds the token instead of `token_file`
    /// (empty: no variable is read).
    pub token_env: String,
    /// Header carrying the token.
    pub auth_header: String,
    /// Written before the token in that header (`Bearer <token>`); empty: the token alone.
    pub auth_scheme: String,
    /// Extra headers sent with every request (e.g. an API key id, a tenant).
    pub headers: BTreeMap<String, String>,
    /// PEM file of the CAs trusted for the carrier's certificate, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mTLS to the carrier; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Time one attempt may take, connection to last byte.
    pub timeout_ms: u64,
    /// Retries after a failed attempt (transport error, timeout, 408, 429, 5xx).
    pub retries: u32,
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts, also the cap on the carrier's `Retry-After`.
    pub backoff_max_ms: u64,
    /// Requests and answer mapping of the `rest` connector.
    pub rest: RestTemplates,
}

impl Default for CarrierApiConfig {
    fn default() -> Self {
        Self {
            kind: "none".into(),
            base_url: String::new(),
            token_file: "carrier.token".into(),
            token_env: "SEKISHO_CARRIER_TOKEN".into(),
            auth_header: "Authorization".into(),
            auth_scheme: "Bearer".into(),
            headers: BTreeMap::new(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            timeout_ms: 10_000,
            retries: 3,
            backoff_initial_ms: 500,
            backoff_max_ms: 10_000,
            rest: RestTemplates::default(),
        }
    }
}

/// The API token. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

const KINDS: [&str; 3] = ["none", "mvno", "rest"];

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

impl CarrierApiConfig {
    /// Makes relative paths relative to `base` (the data directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        self.token_file = resolve(base, &self.token_file);
        for p in [
            &mut self.ca_file,
            &mut self.client_cert_file,
            &mut self.client_key_file,
        ]
        .into_iter()
        .flatten()
        {
            *p = resolve(base, p);
        }
    }

    /// The API token: `token_env`'s variable when set and not empty, else `token_file`'s content.
    pub fn token(&self, base: &Path) -> Result<Token, String> {
        let from_env = (!self.token_env.is_empty())
            .then(|| std::env::var(&self.token_env).ok())
            .flatten()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let token = match from_env {
            Some(t) => t,
            None => {
                let path = resolve(base, &self.token_file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "token_file: cannot read {} ({e}) and {} is not set",
                        path.display(),
                        if self.token_env.is_empty() {
                            "no token variable"
                        } else {
                            &self.token_env
                        }
                    )
                })?;
                let t = text.trim().to_owned();
                if t.is_empty() {
                    return Err(format!("token_file: {} is empty", path.display()));
                }
                t
            }
        };
        if HeaderValue::from_str(&token).is_err() || token.contains(char::is_whitespace) {
            // Never quote the token itself.
            return Err("token: contains whitespace or characters a header cannot carry".into());
        }
        Ok(Token(token))
    }

    /// Every problem with this configuration (empty when usable). Files are checked to exist;
    /// `kind = "none"` has nothing to check.
    pub fn validate(&self, base: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind == "none" {
            return out;
        }
        if !KINDS.contains(&self.kind.as_str()) {
            out.push(format!(
                "kind: '{}' is not one of none, mvno, rest",
                self.kind
            ));
        }
        if let Some(p) = base_url_problem(&self.base_url) {
            out.push(format!("base_url: {p}"));
        }
        if let Err(p) = self.token(base) {
            out.push(p);
        }
        self.header_problems(&mut out);
        self.file_problems(base, &mut out);
        for (name, v) in [
            ("timeout_ms", self.timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
        ] {
            if v == 0 {
                out.push(format!("{name} must be greater than 0"));
            }
        }
        if self.retries > 10 {
            out.push(format!("retries: {} is more than 10", self.retries));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            out.push("backoff_max_ms must be at least backoff_initial_ms".into());
        }
        if self.kind == "rest" {
            out.extend(
                self.rest
                    .problems()
                    .into_iter()
                    .map(|p| format!("rest.{p}")),
            );
        }
        out
    }

    fn header_problems(&self, out: &mut Vec<String>) {
        if HeaderName::from_bytes(self.auth_header.as_bytes()).is_err() {
            out.push(format!(
                "auth_header: '{}' is not a header name",
                self.auth_header
            ));
        }
        if self
            .auth_scheme
            .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            out.push("auth_scheme: must be one word (e.g. Bearer) or empty".into());
        }
        for (k, v) in &self.headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err() {
                out.push(format!("headers: '{k}' is not a header name"));
            } else if k.eq_ignore_ascii_case(&self.auth_header) {
                out.push(format!(
                    "headers: '{k}' is the auth_header; the token goes there"
                ));
            }
            if HeaderValue::from_str(v).is_err() {
                out.push(format!(
                    "headers.{k}: the value has characters a header cannot carry"
                ));
            }
        }
    }

    fn file_problems(&self, base: &Path, out: &mut Vec<String>) {
        for (name, p) in [
            ("ca_file", &self.ca_file),
            ("client_cert_file", &self.client_cert_file),
            ("client_key_file", &self.client_key_file),
        ] {
            if let Some(p) = p {
                let p = resolve(base, p);
                if !p.is_file() {
                    out.push(format!(
                        "{name}: {} does not exist or is not a file",
                        p.display()
                    ));
                }
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            out.push(
                "client_cert_file and client_key_file go together: give both or neither".into(),
            );
        }
    }
}

fn base_url_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return Some("not set (the carrier API's URL, e.g. https://api.carrier.example)".into());
    }
    let u = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("'{url}' is not a URL ({e})")),
    };
    if u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Some(format!(
            "'{url}' must not carry a query, a fragment or credentials"
        ));
    }
    let Some(host) = u.host_str() else {
        return Some(format!("'{url}' has no host"));
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match u.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "'{url}' is plain http: only https may carry the token off this machine"
        )),
        s => Some(format!("'{url}': scheme {s} is neither https nor http")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_https_off_loopback() {
        for (url, ok) in [
            ("https://api.carrier.example", true),
            ("https://api.carrier.example/v2/", true),
            ("http://127.0.0.1:8080", true),
            ("http://localhost:1", true),
            ("http://[::1]:1", true),
            ("http://api.carrier.example", false),
            ("ftp://api.carrier.example", false),
            ("https://u:p@api.carrier.example", false),
            ("https://api.carrier.example/?x=1", false),
            ("api.carrier.example", false),
            ("", false),
        ] {
            assert_eq!(base_url_problem(url).is_none(), ok, "{url}");
        }
    }

    #[test]
    fn the_token_is_redacted() {
        let t = Token("s3cret".into());
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn the_documented_default_is_the_default() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Carrier {
            api: CarrierApiConfig,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            carrier: Carrier,
        }
        let doc: Doc = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(doc.carrier.api, CarrierApiConfig::default());
        assert!(
            CarrierApiConfig::default()
                .validate(Path::new("/nonexistent"))
                .is_empty()
        );
    }

    #[test]
    fn default_templates_are_valid() {
        assert_eq!(RestTemplates::default().problems(), Vec::<String>::new());
    }
}
