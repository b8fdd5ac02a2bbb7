//! From a validated configuration to a running connector: the HTTP client (timeouts, CA, client
//! certificate, no redirects), the token header, and [`connect`].

use super::{CarrierApiConfig, resolve};
use crate::http::{HttpCore, RetryPolicy};
use crate::{Disabled, SimControl};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

impl CarrierApiConfig {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            initial_ms: self.backoff_initial_ms,
            max_ms: self.backoff_max_ms,
        }
    }

    /// The HTTP core for a validated configuration.
    fn http_core(&self, base: &Path) -> Result<HttpCore, String> {
        let read = |name: &str, p: &Path| {
            let p = resolve(base, p);
            std::fs::read(&p).map_err(|e| format!("{name}: cannot read {}: {e}", p.display()))
        };
        let timeout = Duration::from_millis(self.timeout_ms);
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sekisho/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read("ca_file", ca)?)
                .map_err(|e| format!("ca_file: not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("ca_file: holds no certificate".into());
            }
            b = b.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) {
            let mut pem = read("client_cert_file", cert)?;
            pem.push(b'\n');
            pem.extend(read("client_key_file", key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("client_cert_file/client_key_file: {e}"))?;
            b = b.identity(id);
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        let token = self.token(base)?;
        let value = if self.auth_scheme.is_empty() {
            token.expose().to_owned()
        } else {
            format!("{} {}", self.auth_scheme, token.expose())
        };
        let auth = HeaderName::from_bytes(self.auth_header.as_bytes())
            .ok()
            .zip(HeaderValue::from_str(&value).ok())
            .ok_or("auth_header: cannot carry the token")?;
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(k, v);
            }
        }
        Ok(HttpCore::new(
            client,
            &self.base_url,
            Some(auth),
            headers,
            self.retry_policy(),
        ))
    }
}

/// Builds the configured connector: [`Disabled`] for `none`. `Err` lists every problem.
pub fn connect(cfg: &CarrierApiConfig, base: &Path) -> Result<Arc<dyn SimControl>, Vec<String>> {
    let problems = cfg.validate(base);
    if !problems.is_empty() {
        return Err(problems);
    }
    match cfg.kind.as_str() {
        "mvno" => {
            let core = cfg.http_core(base).map_err(|e| vec![e])?;
            Ok(Arc::new(crate::mvno::Mvno::new(core)))
        }
        "rest" => {
            let core = cfg.http_core(base).map_err(|e| vec![e])?;
            Ok(Arc::new(crate::rest::Rest::new(core, cfg.rest.clone())))
        }
        _ => Ok(Arc::new(Disabled)),
    }
}
