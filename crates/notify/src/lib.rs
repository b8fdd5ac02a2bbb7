//! Sekisho's notifications: the transports and the texts of the threat response's notify
//! actions (spec §5.4).
//!
//! - [`mail`]: [`Mailer`] sends a plain-text UTF-8 [`Mail`] over SMTP (lettre, rustls with
//!   aws-lc-rs: STARTTLS, implicit TLS, or clear text to loopback only), configured by
//!   [`SmtpConfig`] (`[response.smtp]`).
//! - [`webhook`]: [`Webhook`] posts signed JSON (HMAC-SHA256 over timestamp and body); [`sign`] and
//!   [`verify`] let receivers check it.
//! - [`text`]: the incident mail in Japanese, English or both, and the webhook's JSON.
//! - [`NotifyError`]: why a delivery failed, whether trying again may help, and a stable code.
//!
//! Architecture invariant: this crate does not decide when to notify, whom, or how often to retry,
//! and records nothing: the gateway's response executor does. It never logs a password, a secret
//! or a mail body.

#![forbid(unsafe_code)]

mod error;
pub mod mail;
pub mod text;
pub mod webhook;

pub use error::NotifyError;
pub use mail::{Mail, Mailer, SmtpConfig};
pub use text::{Incident, Lang, incident_mail, webhook_body};
pub use webhook::{Webhook, WebhookClient, sign, verify};
