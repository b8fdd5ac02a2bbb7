//! Mail over SMTP: [`Mailer`] sends one plain-text UTF-8 [`Mail`] per call, through lettre with
//! rustls (aws-lc-rs) only.
//!
//! Each delivery opens its own connection (connect, STARTTLS or implicit TLS, AUTH, one
//! transaction, QUIT) under one deadline (`timeout_ms`). Notifications are rare, and a fresh
//! connection per mail keeps a cancelled or timed-out delivery from leaving a half-used
//! connection behind: lettre's pooled `AsyncSmtpTransport` puts connections back in its pool
//! even when the future using them was dropped mid-command, spawns tasks when it is built and
//! dropped (so it needs a runtime at both times), and its tokio stream sets no read timeout.
//! This module uses lettre's `AsyncSmtpConnection`, the layer that transport is built on.
//!
//! STARTTLS is required when configured: a server that does not offer it is an error, never a
//! fall back to clear text. The password is sent only after TLS (or to a loopback host with
//! `security = "none"`) and never logged. One refused recipient fails the whole mail (nothing
//! is sent); callers wanting per-recipient outcomes send one mail per recipient.
//!
//! This module does not decide when to send, and it does not retry: the caller does, guided by
//! [`NotifyError::retryable`].

pub(crate) mod config;

pub use config::{DEFAULT_TOML, PASSWORD_ENV, SECURITY, SmtpConfig};

use crate::error::{NotifyError, chain, has_rustls_error};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Largest mail text accepted (bytes); notification texts are a few KiB.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// One mail: plain text, UTF-8, to one or more recipients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// Recipients, each `user@example.jp` or `Name <user@example.jp>`.
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// Where replies should go, if not to the sender.
    pub reply_to: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    StartTls,
    Implicit,
    None,
}

/// Sends mail through the configured SMTP server. Cheap to clone; `Debug` shows no secret.
#[derive(Clone)]
pub struct Mailer {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    host: String,
    port: u16,
    security: Security,
    tls: TlsParameters,
    credentials: Option<Credentials>,
    from: Mailbox,
    hello: ClientId,
    timeout: Duration,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Mailer(disabled)"),
            Some(i) => f
                .debug_struct("Mailer")
                .field("host", &i.host)
                .field("port", &i.port)
                .field("security", &i.security)
                .field("auth", &i.credentials.is_some())
                .field("from", &i.from.to_string())
                .finish(),
        }
    }
}

/// Where in a delivery an SMTP error happened: the same reply code means different things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Connect,
    StartTls,
    Auth,
    Send,
}

impl Mailer {
    /// A mailer that sends nothing: every [`Mailer::send`] fails with `not_configured`.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Whether mail is on.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Builds the mailer from a configuration whose paths are resolved: validates it, reads the
    /// password ([`PASSWORD_ENV`] or `password_file`) and the CA file. `host = ""` gives
    /// [`Mailer::disabled`]. `Err` lists every problem. Connects to nothing.
    pub fn new(cfg: &SmtpConfig) -> Result<Self, Vec<String>> {
        let mut problems = cfg.validate();
        if !problems.is_empty() {
            return Err(problems);
        }
        if !cfg.enabled() {
            tracing::info!("mail: off ([response.smtp] host is not set)");
            return Ok(Self::disabled());
        }
        let credentials = credentials(cfg)
            .map_err(|e| problems.push(e))
            .ok()
            .flatten();
        let tls = tls_parameters(cfg).map_err(|e| problems.push(e)).ok();
        let from = cfg.from.parse::<Mailbox>();
        let (Some(tls), Ok(from), true) = (tls, from, problems.is_empty()) else {
            return Err(problems);
        };
        let security = match cfg.security.as_str() {
            "tls" => Security::Implicit,
            "none" => Security::None,
            _ => Security::StartTls,
        };
        let hello = cfg
            .hello_name
            .clone()
            .map_or_else(ClientId::default, ClientId::Domain);
        tracing::info!(
            host = %cfg.host,
            port = cfg.port,
            security = %cfg.security,
            auth = credentials.is_some(),
            pinned_ca = cfg.ca_file.is_some(),
            "mail: SMTP configured"
        );
        Ok(Self {
            inner: Some(Arc::new(Inner {
                host: cfg.host.clone(),
                port: cfg.port,
                security,
                tls,
                credentials,
                from,
                hello,
                timeout: Duration::from_millis(cfg.timeout_ms),
            })),
        })
    }

    /// Delivers `mail`, within the configured time. `Ok` means the server accepted it for every
    /// recipient.
    pub async fn send(&self, mail: &Mail) -> Result<(), NotifyError> {
        let Some(inner) = &self.inner else {
            return Err(NotifyError::NotConfigured(
                "mail is off ([response.smtp] host is not set)".into(),
            ));
        };
        let message = inner.message(mail)?;
        let outcome = tokio::time::timeout(inner.timeout, inner.deliver(&message)).await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(NotifyError::Timeout(format!(
                "{}:{} did not take the mail within {} ms",
                inner.host,
                inner.port,
                inner.timeout.as_millis()
            )))
        });
        match &outcome {
            Ok(()) => tracing::info!(
                host = %inner.host,
                recipients = mail.to.len(),
                "mail: delivered to the SMTP server"
            ),
            Err(e) => tracing::warn!(
                host = %inner.host,
                code = e.code(),
                retryable = e.retryable(),
                error = %e,
                "mail: not delivered"
            ),
        }
        outcome
    }
}

/// The AUTH credentials, if a user name is set: the password from the environment or the file.
fn credentials(cfg: &SmtpConfig) -> Result<Option<Credentials>, String> {
    if cfg.username.is_empty() {
        return Ok(None);
    }
    let password = match SmtpConfig::password_from_env() {
        Some(p) => p,
        None => {
            let text = std::fs::read_to_string(&cfg.password_file).map_err(|e| {
                format!(
                    "password_file: cannot read {}: {e}",
                    cfg.password_file.display()
                )
            })?;
            text.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        return Err(format!(
            "password_file: {} is empty",
            cfg.password_file.display()
        ));
    }
    Ok(Some(Credentials::new(cfg.username.clone(), password)))
}

/// TLS for `host`: the system's roots, or only the CAs of `ca_file`.
fn tls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, String> {
    let domain = cfg.host.trim_start_matches('[').trim_end_matches(']');
    let mut b = TlsParameters::builder(domain.to_owned());
    if let Some(ca) = &cfg.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("ca_file: cannot read {}: {e}", ca.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file: not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("ca_file: {} holds no certificate", ca.display()));
        }
        b = b.certificate_store(CertificateStore::None);
        for der in certs {
            let cert = Certificate::from_der(der.to_vec())
                .map_err(|e| format!("ca_file: {}", chain(&e)))?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build_rustls().map_err(|e| format!("TLS: {}", chain(&e)))
}

impl Inner {
    /// The message with its headers (From, To, Reply-To, Subject, Date, Message-ID) and envelope.
    fn message(&self, mail: &Mail) -> Result<Message, NotifyError> {
        if mail.to.is_empty() {
            return Err(NotifyError::InvalidMessage("no recipient".into()));
        }
        if mail.text.len() > MAX_TEXT_BYTES {
            return Err(NotifyError::InvalidMessage(format!(
                "text is {} bytes, more than {MAX_TEXT_BYTES}",
                mail.text.len()
            )));
        }
        let subject: String = mail
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .date_now()
            .message_id(Some(message_id(self.from.email.domain())));
        for to in &mail.to {
            b = b.to(mailbox("to", to)?);
        }
        if let Some(r) = &mail.reply_to {
            b = b.reply_to(mailbox("reply_to", r)?);
        }
        b.header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(|e| NotifyError::InvalidMessage(e.to_string()))
    }

    async fn deliver(&self, message: &Message) -> Result<(), NotifyError> {
        let wrapper = (self.security == Security::Implicit).then(|| self.tls.clone());
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )
        .await
        .map_err(|e| smtp_error(Stage::Connect, &e))?;
        if self.security == Security::StartTls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(NotifyError::Tls(format!(
                    "{} does not offer STARTTLS (security = \"starttls\" never falls back to clear \
                     text)",
                    self.host
                )));
            }
            conn.starttls(self.tls.clone(), &self.hello)
                .await
                .map_err(|e| smtp_error(Stage::StartTls, &e))?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(|e| smtp_error(Stage::Auth, &e))?;
        }
        conn.send(message.envelope(), &message.formatted())
            .await
            .map_err(|e| smtp_error(Stage::Send, &e))?;
        // The server has taken the mail; a failed QUIT changes nothing.
        let _ = conn.quit().await;
        Ok(())
    }
}

fn mailbox(key: &str, text: &str) -> Result<Mailbox, NotifyError> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| NotifyError::InvalidAddress(format!("{key}: '{text}': {e}")))
}

/// `<random.millis@domain>`: unique without asking the host name.
fn message_id(domain: &str) -> String {
    let mut r = [0u8; 12];
    // A failed random source leaves zeros; the time part still tells mails apart.
    let _ = getrandom::fill(&mut r);
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("<{}.{ms}@{domain}>", hex::encode(r))
}

/// Maps a lettre error to a [`NotifyError`], by kind, reply code and stage.
fn smtp_error(stage: Stage, e: &SmtpError) -> NotifyError {
    let text = chain(e);
    if e.is_timeout() {
        return NotifyError::Timeout(text);
    }
    if e.is_tls() || has_rustls_error(e) {
        return NotifyError::Tls(text);
    }
    if let Some(code) = e.status() {
        let code = u16::from(code);
        let message = std::error::Error::source(e).map_or_else(String::new, |s| s.to_string());
        return match (e.is_transient(), stage) {
            (true, _) => NotifyError::SmtpTemporary { code, message },
            (false, Stage::Auth) => NotifyError::Auth(format!("{code} {message}")),
            (false, Stage::StartTls) => {
                NotifyError::Tls(format!("STARTTLS refused: {code} {message}"))
            }
            (false, _) => NotifyError::SmtpRejected { code, message },
        };
    }
    if e.is_client() {
        return match stage {
            Stage::Auth => NotifyError::Auth(text),
            Stage::StartTls => NotifyError::Tls(text),
            Stage::Connect | Stage::Send => NotifyError::InvalidMessage(text),
        };
    }
    if e.is_response() {
        return NotifyError::Protocol(text);
    }
    NotifyError::Connect(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        Mailer::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port: 1,
            from: "Sekisho <sekisho@example.jp>".into(),
            ..SmtpConfig::default()
        })
        .expect("valid configuration")
    }

    fn inner(m: &Mailer) -> &Inner {
        m.inner.as_deref().expect("enabled")
    }

    #[test]
    fn off_without_host() {
        let m = Mailer::new(&SmtpConfig::default()).expect("valid");
        assert!(!m.enabled());
        assert_eq!(format!("{m:?}"), "Mailer(disabled)");
    }

    #[test]
    fn bad_configuration_lists_problems() {
        let e = Mailer::new(&SmtpConfig {
            host: "smtp.example.jp".into(),
            ca_file: Some("/nonexistent".into()),
            ..SmtpConfig::default()
        })
        .expect_err("invalid");
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn message_has_headers_and_survives_japanese() {
        let m = mailer();
        let msg = inner(&m)
            .message(&Mail {
                to: vec!["管理者 <admin@example.jp>".into(), "pic@example.jp".into()],
                subject: "[Sekisho] 乗っ取りの疑い\r\nBcc: x@evil".into(),
                text: "本文です。\n二行目".into(),
                reply_to: Some("soc@example.jp".into()),
            })
            .expect("builds");
        let raw = String::from_utf8(msg.formatted()).expect("ASCII on the wire");
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(raw.contains("@example.jp>"), "{raw}");
        assert!(raw.contains("Date: "), "{raw}");
        assert!(raw.contains("Reply-To: soc@example.jp"), "{raw}");
        assert!(raw.contains("Subject: [Sekisho] =?utf-8?"), "{raw}");
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(raw.is_ascii(), "{raw}");
        let to: Vec<String> = msg
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["admin@example.jp", "pic@example.jp"]);
    }

    #[test]
    fn bad_addresses_and_messages_are_refused() {
        let m = mailer();
        let i = inner(&m);
        let mail = |to: &str| Mail {
            to: vec![to.into()],
            subject: "s".into(),
            text: "t".into(),
            reply_to: None,
        };
        assert_eq!(
            i.message(&mail("no-at-sign")).unwrap_err().code(),
            "invalid_address"
        );
        let none = Mail {
            to: vec![],
            ..mail("a@b.jp")
        };
        assert_eq!(i.message(&none).unwrap_err().code(), "invalid_message");
        let big = Mail {
            text: "x".repeat(MAX_TEXT_BYTES + 1),
            ..mail("a@b.jp")
        };
        assert_eq!(i.message(&big).unwrap_err().code(), "invalid_message");
    }

    #[tokio::test]
    async fn disabled_mailer_is_not_configured() {
        let e = Mailer::disabled()
            .send(&Mail::default())
            .await
            .expect_err("off");
        assert_eq!(e.code(), "not_configured");
        assert!(!e.retryable());
    }
}
