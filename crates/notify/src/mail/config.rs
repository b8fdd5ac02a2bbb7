//! `[response.smtp]`: where and how mail is sent, and its validation.
//!
//! Conventions are the gateway's: every key optional, unknown keys refused, durations as integer
//! `_ms`, relative paths made relative to the data directory by [`SmtpConfig::resolve_paths`].
//! Problems are reported with the key name relative to this table (`host: …`); the gateway
//! prefixes `response.smtp.`. This module reads no network; it only checks that files exist.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The documented default `[response.smtp]` table, with comments (a test keeps it equal to
/// [`SmtpConfig::default`]).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Environment variable that, when set and not empty, holds the SMTP password instead of
/// `password_file`.
pub const PASSWORD_ENV: &str = "SEKISHO_SMTP_PASSWORD";

/// The accepted values of `security`.
pub const SECURITY: [&str; 3] = ["starttls", "tls", "none"];

/// `[response.smtp]`: the SMTP server that carries notification mail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Host name or address of the SMTP server; empty: mail is off.
    pub host: String,
    /// 587 (STARTTLS, submission) or 465 (implicit TLS).
    pub port: u16,
    /// `starttls` (required, never a clear-text fallback), `tls` (implicit, port 465), or `none`
    /// (loopback hosts only).
    pub security: String,
    /// SMTP AUTH user name; empty: no AUTH.
    pub username: String,
    /// File holding the password (trailing newline ignored). [`PASSWORD_ENV`] overrides it.
    pub password_file: PathBuf,
    /// The sender mailbox, e.g. `Sekisho <sekisho@example.jp>`.
    pub from: String,
    /// PEM file of the CAs trusted for the server's certificate, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Time one delivery may take, from connecting to the server's acceptance of the message.
    pub timeout_ms: u64,
    /// Name sent in EHLO; unset: this machine's host name.
    pub hello_name: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password_file: "smtp.password".into(),
            from: String::new(),
            ca_file: None,
            timeout_ms: 10_000,
            hello_name: None,
        }
    }
}

/// Whether `host` names this machine's loopback (`localhost`, `127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Whether `name` is a plausible DNS name (letters, digits, `-`, `.`; labels 1-63 long).
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl SmtpConfig {
    /// Whether mail is on (a host is set).
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }

    /// Makes relative paths relative to `base` (the data directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        self.password_file = resolve(base, &self.password_file);
        if let Some(ca) = &mut self.ca_file {
            *ca = resolve(base, ca);
        }
    }

    /// Whether the password comes from [`PASSWORD_ENV`].
    pub(crate) fn password_from_env() -> Option<String> {
        std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty())
    }

    /// Every problem of this table, each as `key: what is wrong`. Files are checked as given:
    /// call [`SmtpConfig::resolve_paths`] first. With mail off (`host = ""`) only the values that
    /// do not depend on a server are checked.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !SECURITY.contains(&self.security.as_str()) {
            out.push(format!(
                "security: '{}' is not one of {}",
                self.security,
                SECURITY.join(", ")
            ));
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            out.push("timeout_ms: must be between 100 and 600000".into());
        }
        if let Some(h) = &self.hello_name
            && !is_dns_name(h)
            && h.parse::<IpAddr>().is_err()
        {
            out.push(format!("hello_name: '{h}' is not a host name or address"));
        }
        if !self.enabled() {
            return out;
        }
        self.server_problems(&mut out);
        self.sender_problems(&mut out);
        self.file_problems(&mut out);
        out
    }

    fn server_problems(&self, out: &mut Vec<String>) {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        if !is_dns_name(&self.host) && bare.parse::<IpAddr>().is_err() {
            out.push(format!(
                "host: '{}' is not a host name or address (no scheme, no port: use port)",
                self.host
            ));
        }
        if self.port == 0 {
            out.push("port: must be 1-65535".into());
        }
        if self.security == "none" && !is_loopback(&self.host) {
            out.push(format!(
                "security: \"none\" sends mail and the password in clear; it is allowed only for a \
                 loopback host (127.0.0.1, ::1, localhost), not '{}'",
                self.host
            ));
        }
    }

    fn sender_problems(&self, out: &mut Vec<String>) {
        if self.from.is_empty() {
            out.push("from: not set (the sender, e.g. \"Sekisho <sekisho@example.jp>\")".into());
        } else if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            out.push(format!("from: '{}' is not a mail address ({e})", self.from));
        }
        if self.username.chars().any(char::is_control) {
            out.push("username: must not hold control characters".into());
        }
    }

    fn file_problems(&self, out: &mut Vec<String>) {
        if !self.username.is_empty()
            && Self::password_from_env().is_none()
            && !self.password_file.is_file()
        {
            out.push(format!(
                "password_file: {} does not exist or is not a file (username is set; or set {})",
                self.password_file.display(),
                PASSWORD_ENV
            ));
        }
        if let Some(ca) = &self.ca_file
            && !ca.is_file()
        {
            out.push(format!(
                "ca_file: {} does not exist or is not a file",
                ca.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Root {
        response: Response,
    }
    #[derive(Deserialize)]
    struct Response {
        smtp: SmtpConfig,
    }

    #[test]
    fn documented_default_is_the_default() {
        let root: Root = toml::from_str(DEFAULT_TOML).expect("default.toml parses");
        assert_eq!(root.response.smtp, SmtpConfig::default());
        assert!(SmtpConfig::default().validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<SmtpConfig>("hots = \"x\"").is_err());
    }

    fn on() -> SmtpConfig {
        SmtpConfig {
            host: "smtp.example.jp".into(),
            from: "Sekisho <sekisho@example.jp>".into(),
            ..SmtpConfig::default()
        }
    }

    /// One case: a change to a valid configuration, and the keys its problems must name.
    fn check(change: impl FnOnce(&mut SmtpConfig), keys: &[&str]) {
        let mut c = on();
        change(&mut c);
        let problems = c.validate();
        let named: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(named, keys, "{problems:?}");
    }

    #[test]
    fn validation_names_every_bad_key() {
        check(|_| {}, &[]);
        check(|c| c.security = "ssl".into(), &["security"]);
        check(|c| c.timeout_ms = 0, &["timeout_ms"]);
        check(|c| c.hello_name = Some("bad name".into()), &["hello_name"]);
        check(|c| c.host = "smtp://mail.example.jp".into(), &["host"]);
        check(|c| c.host = "mail.example.jp:25".into(), &["host"]);
        check(|c| c.port = 0, &["port"]);
        check(|c| c.security = "none".into(), &["security"]);
        check(
            |c| {
                c.security = "none".into();
                c.host = "127.0.0.1".into();
            },
            &[],
        );
        check(|c| c.host = "::1".into(), &[]);
        check(|c| c.from = String::new(), &["from"]);
        check(|c| c.from = "not an address".into(), &["from"]);
        check(
            |c| c.ca_file = Some("/nonexistent/ca.pem".into()),
            &["ca_file"],
        );
        check(
            |c| {
                c.security = "x".into();
                c.port = 0;
                c.from = String::new();
            },
            &["security", "port", "from"],
        );
    }

    #[test]
    fn mail_off_checks_only_server_independent_values() {
        let c = SmtpConfig {
            security: "bogus".into(),
            from: "not an address".into(),
            ..SmtpConfig::default()
        };
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn paths_resolve_against_the_data_directory() {
        let mut c = SmtpConfig {
            ca_file: Some("tls/ca.pem".into()),
            ..SmtpConfig::default()
        };
        c.resolve_paths(Path::new("/var/lib/sekisho"));
        assert_eq!(c.password_file, Path::new("/var/lib/sekisho/smtp.password"));
        assert_eq!(
            c.ca_file.as_deref(),
            Some(Path::new("/var/lib/sekisho/tls/ca.pem"))
        );
    }
}
