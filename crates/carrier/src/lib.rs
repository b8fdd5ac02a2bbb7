//! The carrier integration (spec ① and V19/V20/V26): SIM control through the carrier's API — suspend,
//! resume, read the status and the usage of a device's SIM (V26, and the "stop SIM" / "resume SIM"
//! actions of threat response) — and what the carrier's packet gateway reports over RADIUS.
//!
//! The runtime the gateway starts:
//! - [`sims`]: the live SIM table (SIM ↔ current address ↔ session bytes, per-address counters the
//!   device listener feeds), which detection reads for V19/V20.
//! - [`accounting`]: the RADIUS accounting listener, its only writer (`[carrier.radius]`).
//! - [`control`]: [`control::SimService`], the connector in force and every SIM call recorded.
//! - [`settings`]: the carrier API setting the admin API keeps in the data directory.
//!
//! The gateway holds one `Arc<dyn SimControl>` built by [`connect`] from the `[carrier.api]`
//! configuration ([`CarrierApiConfig`]). Three connectors implement it:
//!
//! - [`mvno`] — the widespread IoT-MVNO API shape (subscribers addressed by IMSI:
//!   `POST /v1/subscribers/{imsi}/deactivate`, `…/activate`, `GET /v1/subscribers/{imsi}`, traffic
//!   statistics under `/v1/stats/air/…`).
//! - [`rest`] — a generic connector driven by request templates and JSON-pointer response mappings,
//!   for any other carrier REST API.
//! - [`Disabled`] — no carrier configured: every call answers [`CarrierError::NotConfigured`].
//!
//! Both HTTP connectors share one client core (`http`): per-attempt timeout, retries with exponential
//! backoff and jitter, `Retry-After` honoured, typed errors. The rules:
//!
//! - **What is retried**: transport errors, timeouts, `408`, `429` and `5xx`, for every operation.
//!   Reads are safe to repeat, and suspend/resume are state transitions ("make it suspended"), so
//!   repeating one that already took effect changes nothing. Other `4xx` are never retried.
//! - **Idempotency**: suspending a suspended SIM (or resuming an active one) succeeds. A carrier may
//!   answer such a no-op with `2xx` or with `409 Conflict`; on `409` the connector reads the SIM's
//!   status and succeeds when the SIM is in the wanted state (a terminated SIM counts as suspended:
//!   it carries no traffic), otherwise the call fails with [`CarrierError::Refused`].
//! - **Accounting**: every operation returns a [`Call`]: its result, how many HTTP requests it made
//!   (`attempts`: retries, an ICCID → IMSI look-up, and the status read after a `409` or after a
//!   `2xx` that did not show the new state, all count) and how long it took — what the gateway
//!   records for each call (operation, SIM, [`Call::code`], attempts, duration).
//!
//! What an operator must configure for a real carrier: the API base URL, the API token (a file, or an
//! environment variable), and — when the carrier's certificate is not issued by a public CA — the CA
//! that signed it (`ca_file`); optionally a client certificate for mTLS.
//!
//! The carrier simulator the tests and the README's tour use is `sekisho-sim`'s `carrier` module (and
//! its binary `sekisho-carrier-sim`): the gateway links no fake carrier.
//!
//! Architecture invariants: the connectors ([`mvno`], [`rest`], [`connect`]) know nothing of devices,
//! fields or the store — they turn "this SIM" into carrier API calls and answers; the runtime modules
//! write the store and read the registry through the handles they are given, never through the
//! gateway. The API token never appears in a log line, an error or a
//! `Debug` output.
#![forbid(unsafe_code)]

pub mod accounting;
pub mod config;
pub mod control;
mod error;
mod http;
pub mod mvno;
pub mod rest;
pub mod settings;
pub mod sims;
mod template;

pub use config::{CarrierApiConfig, OpTemplate, RestTemplates, connect};
pub use error::CarrierError;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;

/// A SIM as the carrier knows it: by IMSI (the subscriber) or by ICCID (the card).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SimId {
    /// 6 to 15 digits.
    Imsi(String),
    /// 18 to 22 digits; the last may be `F` (padding).
    Iccid(String),
}

impl SimId {
    /// A checked IMSI.
    pub fn imsi(s: &str) -> Result<Self, CarrierError> {
        let id = Self::Imsi(s.trim().to_owned());
        id.check()?;
        Ok(id)
    }

    /// A checked ICCID (a trailing `f` is written `F`).
    pub fn iccid(s: &str) -> Result<Self, CarrierError> {
        let id = Self::Iccid(s.trim().to_ascii_uppercase());
        id.check()?;
        Ok(id)
    }

    /// The digits, without the kind.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Imsi(s) | Self::Iccid(s) => s,
        }
    }

    /// `Err(Invalid)` unless the identifier has the shape of its kind. Connectors check before any
    /// request, so a malformed identifier never reaches the carrier.
    pub fn check(&self) -> Result<(), CarrierError> {
        match self {
            Self::Imsi(s) => {
                if (6..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok(());
                }
                Err(CarrierError::Invalid(format!(
                    "IMSI '{}' is not 6 to 15 digits",
                    shorten(s)
                )))
            }
            Self::Iccid(s) => {
                let digits = s.strip_suffix(['F', 'f']).unwrap_or(s);
                if (18..=22).contains(&s.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok(());
                }
                Err(CarrierError::Invalid(format!(
                    "ICCID '{}' is not 18 to 22 digits (the last may be F)",
                    shorten(s)
                )))
            }
        }
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(32).filter(|c| !c.is_control()).collect()
}

/// `imsi:440101234567890` or `iccid:8981100000000000000`.
impl fmt::Display for SimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Imsi(s) => write!(f, "imsi:{s}"),
            Self::Iccid(s) => write!(f, "iccid:{s}"),
        }
    }
}

/// Parses what `Display` writes, or bare digits: up to 15 is an IMSI, 18 or more an ICCID.
impl FromStr for SimId {
    type Err = CarrierError;

    fn from_str(s: &str) -> Result<Self, CarrierError> {
        let s = s.trim();
        if let Some(v) = s.strip_prefix("imsi:") {
            return Self::imsi(v);
        }
        if let Some(v) = s.strip_prefix("iccid:") {
            return Self::iccid(v);
        }
        if s.len() <= 15 {
            Self::imsi(s)
        } else {
            Self::iccid(s)
        }
    }
}

impl TryFrom<String> for SimId {
    type Error = CarrierError;
    fn try_from(s: String) -> Result<Self, CarrierError> {
        s.parse()
    }
}

impl From<SimId> for String {
    fn from(id: SimId) -> String {
        id.to_string()
    }
}

/// What the carrier says about a SIM's subscription. Serialized as `active`, `suspended`,
/// `terminated`, or the carrier's own word for anything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum SimState {
    /// The SIM may carry traffic.
    Active,
    /// The carrier stops its traffic (deactivated, suspended); it can be resumed.
    Suspended,
    /// Permanently ended.
    Terminated,
    /// Any other state the carrier reports (e.g. `ready`, `standby`), as it wrote it.
    Unknown(String),
}

impl SimState {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Terminated => "terminated",
            Self::Unknown(s) => s,
        }
    }
}

impl fmt::Display for SimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for SimState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "active" => Self::Active,
            "suspended" => Self::Suspended,
            "terminated" => Self::Terminated,
            _ => Self::Unknown(s),
        }
    }
}

impl From<SimState> for String {
    fn from(s: SimState) -> String {
        match s {
            SimState::Unknown(s) => s,
            other => other.as_str().to_owned(),
        }
    }
}

/// A SIM's status as the carrier reports it. Fields the carrier does not report are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStatus {
    pub imsi: Option<String>,
    pub iccid: Option<String>,
    pub msisdn: Option<String>,
    pub state: SimState,
    /// Whether the SIM has a data session now.
    pub online: Option<bool>,
    /// The address of its data session.
    pub ip: Option<IpAddr>,
}

/// A SIM's cumulative traffic as the carrier counts it. Uplink is what the SIM sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUsage {
    pub uplink_bytes: u64,
    pub downlink_bytes: u64,
}

/// The operations of [`SimControl`], named for logs and records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Suspend,
    Resume,
    Status,
    Usage,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Status => "status",
            Self::Usage => "usage",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation's outcome with what it cost: the record the gateway keeps for every carrier call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call<T> {
    pub result: Result<T, CarrierError>,
    /// HTTP requests sent for this operation, retries included (0 when none was sent).
    pub attempts: u32,
    /// Wall-clock time the operation took, waits between retries included.
    pub elapsed_ms: u64,
}

impl<T> Call<T> {
    /// `ok`, or the error's stable code ([`CarrierError::code`]).
    pub fn code(&self) -> &'static str {
        match &self.result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    pub fn into_result(self) -> Result<T, CarrierError> {
        self.result
    }
}

/// What every [`SimControl`] operation returns: a boxed future, so the trait stays object-safe.
pub type CarrierFuture<'a, T> = Pin<Box<dyn Future<Output = Call<T>> + Send + 'a>>;

/// Control of SIMs through a carrier. Used by the gateway as `Arc<dyn SimControl>`.
///
/// Every operation checks the [`SimId`] first ([`CarrierError::Invalid`], no request sent).
pub trait SimControl: Send + Sync {
    /// `mvno`, `rest` or `none`.
    fn name(&self) -> &'static str;
    /// Stops the SIM's traffic. Idempotent: suspending a suspended (or terminated) SIM succeeds.
    /// Answers the SIM's status after the change.
    fn suspend<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimStatus>;
    /// Lets the SIM carry traffic again. Idempotent: resuming an active SIM succeeds.
    fn resume<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimStatus>;
    /// The SIM's status now.
    fn status<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimStatus>;
    /// The SIM's cumulative traffic.
    fn usage<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimUsage>;
}

/// No carrier API configured (`kind = "none"`): every operation fails with
/// [`CarrierError::NotConfigured`] without sending anything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disabled;

fn not_configured<'a, T: Send + 'a>() -> CarrierFuture<'a, T> {
    Box::pin(std::future::ready(Call {
        result: Err(CarrierError::NotConfigured),
        attempts: 0,
        elapsed_ms: 0,
    }))
}

impl SimControl for Disabled {
    fn name(&self) -> &'static str {
        "none"
    }
    fn suspend<'a>(&'a self, _: &'a SimId) -> CarrierFuture<'a, SimStatus> {
        not_configured()
    }
    fn resume<'a>(&'a self, _: &'a SimId) -> CarrierFuture<'a, SimStatus> {
        not_configured()
    }
    fn status<'a>(&'a self, _: &'a SimId) -> CarrierFuture<'a, SimStatus> {
        not_configured()
    }
    fn usage<'a>(&'a self, _: &'a SimId) -> CarrierFuture<'a, SimUsage> {
        not_configured()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_ids_are_checked() {
        for (input, ok) in [
            ("440101234567890", true),
            ("440101", true),
            ("44010", false),
            ("4401012345678901", false),
            ("44010123456789a", false),
            ("", false),
        ] {
            assert_eq!(SimId::imsi(input).is_ok(), ok, "imsi {input}");
        }
        for (input, ok) in [
            ("898110000000000000", true),
            ("8981100000000000000F", true),
            ("8981100000000000000f", true),
            ("89811000000000000000001", false),
            ("89811000000000000", false),
            ("8981100000000F000000", false),
        ] {
            assert_eq!(SimId::iccid(input).is_ok(), ok, "iccid {input}");
        }
        assert_eq!(
            SimId::Imsi("12".into()).check().unwrap_err().code(),
            "invalid"
        );
    }

    #[test]
    fn sim_ids_print_and_parse() {
        let imsi: SimId = "440101234567890".parse().unwrap();
        assert_eq!(imsi, SimId::Imsi("440101234567890".into()));
        assert_eq!(imsi.to_string(), "imsi:440101234567890");
        assert_eq!(imsi.to_string().parse::<SimId>().unwrap(), imsi);
        let iccid: SimId = "8981100000000000000f".parse().unwrap();
        assert_eq!(iccid.to_string(), "iccid:8981100000000000000F");
        assert!("1234567890123456".parse::<SimId>().is_err());
        let json = serde_json::to_string(&iccid).unwrap();
        assert_eq!(serde_json::from_str::<SimId>(&json).unwrap(), iccid);
        assert!(serde_json::from_str::<SimId>("\"imsi:12\"").is_err());
    }

    #[test]
    fn states_serialize_as_words() {
        let v = serde_json::to_value([
            SimState::Active,
            SimState::Suspended,
            SimState::Terminated,
            SimState::Unknown("ready".into()),
        ])
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!(["active", "suspended", "terminated", "ready"])
        );
        let back: Vec<SimState> = serde_json::from_value(v).unwrap();
        assert_eq!(back[3], SimState::Unknown("ready".into()));
        assert_eq!(back[1], SimState::Suspended);
    }

    #[tokio::test]
    async fn disabled_answers_not_configured() {
        let d: std::sync::Arc<dyn SimControl> = std::sync::Arc::new(Disabled);
        let sim = SimId::imsi("440101234567890").unwrap();
        let call = d.suspend(&sim).await;
        assert_eq!(call.result, Err(CarrierError::NotConfigured));
        assert_eq!((call.attempts, call.code()), (0, "not_configured"));
        assert_eq!(d.name(), "none");
        assert!(d.usage(&sim).await.result.is_err());
    }
}
