//! Fields, devices and users as plain data.

use crate::ids::{DeviceId, FieldId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Lifecycle of a device's authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Authenticates and sends normally.
    Active,
    /// Authentication stopped (V25): tokens revoked, new ones refused with `403 device_disabled`.
    Disabled,
    /// Only the update and state endpoints stay open (used by threat response).
    Quarantined,
    /// Removed from the registry; its credentials no longer work (V07). Kept for history.
    Deleted,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Quarantined => "quarantined",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "disabled" => Self::Disabled,
            "quarantined" => Self::Quarantined,
            "deleted" => Self::Deleted,
            _ => return None,
        })
    }
}

/// How the devices of a field prove who they are when asking for a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Three factors: the field's auth ID, the device's secret and its unique ID.
    #[default]
    Secret,
    /// A client certificate registered to the device (mTLS); every request must come over it.
    Certificate,
    /// Either of the two.
    Either,
}

impl AuthMode {
    pub fn allows_secret(self) -> bool {
        matches!(self, Self::Secret | Self::Either)
    }
    pub fn allows_certificate(self) -> bool {
        matches!(self, Self::Certificate | Self::Either)
    }
}

/// Per-field bounds on what a device may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FieldLimits {
    /// Largest accepted body in bytes (`413 payload_too_large` above it).
    pub max_body_bytes: u32,
    /// Deepest accepted JSON nesting (`400 json_too_deep` above it).
    pub max_json_depth: u32,
    /// Most objects in one `/v1/telemetry/batch` request (`413 batch_too_large` above it).
    pub max_batch_len: u32,
}

impl Default for FieldLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_json_depth: 32,
            max_batch_len: 500,
        }
    }
}

impl FieldLimits {
    /// Every violated bound, as readable messages.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(16..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            out.push("max_body_bytes must be between 16 and 16777216".to_owned());
        }
        if !(1..=128).contains(&self.max_json_depth) {
            out.push("max_json_depth must be between 1 and 128".to_owned());
        }
        if !(1..=10_000).contains(&self.max_batch_len) {
            out.push("max_batch_len must be between 1 and 10000".to_owned());
        }
        out
    }
}

/// Where a field's data goes: the field's cloud service (HTTPS, JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudDestination {
    /// `https://…` (or `http://` only towards loopback, for local testing).
    pub url: String,
    /// Value of the `Authorization` header sent to the cloud, if any. Never returned by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// PEM CA bundle to trust for this destination instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// PEM client certificate chain for mTLS towards the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// PEM private key of that certificate. Never returned by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

impl CloudDestination {
    /// Every problem with this destination, as readable messages.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let lower = self.url.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            if !matches!(host, "127.0.0.1" | "localhost" | "[") && !host.starts_with("127.") {
                out.push(
                    "url must be https:// (http:// is allowed only towards loopback)".to_owned(),
                );
            }
        } else if !lower.starts_with("https://") {
            out.push("url must start with https://".to_owned());
        }
        if self.client_cert_pem.is_some() != self.client_key_pem.is_some() {
            out.push("client_cert_pem and client_key_pem go together".to_owned());
        }
        out
    }

    /// The destination as the API shows it: secrets replaced by a marker.
    pub fn redacted(&self) -> Self {
        Self {
            url: self.url.clone(),
            authorization: self.authorization.as_ref().map(|_| "<redacted>".to_owned()),
            ca_pem: self.ca_pem.clone(),
            client_cert_pem: self.client_cert_pem.clone(),
            client_key_pem: self
                .client_key_pem
                .as_ref()
                .map(|_| "<redacted>".to_owned()),
        }
    }
}

/// A field (tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub id: FieldId,
    pub name: String,
    /// The common auth ID every device of the field presents (first authentication factor).
    pub auth_id: String,
    pub auth_mode: AuthMode,
    pub limits: FieldLimits,
    pub cloud: Option<CloudDestination>,
    pub created_at: i64,
}

/// A SIM's identity as the carrier knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sim {
    pub imsi: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
}

impl Sim {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let digits = |s: &str, lo: usize, hi: usize| {
            (lo..=hi).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(&self.imsi, 6, 15) {
            out.push("sim.imsi must be 6 to 15 digits".to_owned());
        }
        if self.iccid.as_deref().is_some_and(|i| !digits(i, 18, 22)) {
            out.push("sim.iccid must be 18 to 22 digits".to_owned());
        }
        if self
            .msisdn
            .as_deref()
            .is_some_and(|m| !digits(m.trim_start_matches('+'), 5, 15))
        {
            out.push("sim.msisdn must be 5 to 15 digits, optionally after '+'".to_owned());
        }
        out
    }
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    pub field_id: FieldId,
    /// IMEI, MAC, serial number or user id: identifies, never authenticates on its own.
    pub unique_id: String,
    pub name: Option<String>,
    pub sim: Option<Sim>,
    /// Critical devices (medical, safety) are never cut off automatically.
    pub critical: bool,
    pub status: DeviceStatus,
    /// Hex SHA-256 of the DER client certificate registered to the device, if any.
    pub cert_sha256: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a console/API user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the gateway: every field, users, system status.
    Maintainer,
    /// Manages the fields assigned to it, and only those.
    FieldAdmin,
    /// Reads every field (detections, history), changes nothing.
    Analyst,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Maintainer => "maintainer",
            Self::FieldAdmin => "field_admin",
            Self::Analyst => "analyst",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "maintainer" => Self::Maintainer,
            "field_admin" => Self::FieldAdmin,
            "analyst" => Self::Analyst,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(url: &str) -> CloudDestination {
        CloudDestination {
            url: url.into(),
            authorization: Some("Bearer s3cret".into()),
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
        }
    }

    #[test]
    fn cloud_urls_must_be_https_except_loopback() {
        assert!(dest("https://cloud.example/ingest").problems().is_empty());
        assert!(dest("http://127.0.0.1:8080/x").problems().is_empty());
        assert!(dest("http://localhost:8080/x").problems().is_empty());
        assert_eq!(dest("http://cloud.example/x").problems().len(), 1);
        assert_eq!(dest("ftp://cloud.example/x").problems().len(), 1);
    }

    #[test]
    fn redaction_hides_secrets() {
        let r = dest("https://c/x").redacted();
        assert_eq!(r.authorization.as_deref(), Some("<redacted>"));
    }

    #[test]
    fn sim_identity_is_checked() {
        let ok = Sim {
            imsi: "440101234567890".into(),
            iccid: None,
            msisdn: Some("+819012345678".into()),
        };
        assert!(ok.problems().is_empty());
        let bad = Sim {
            imsi: "44a".into(),
            iccid: Some("1".into()),
            msisdn: None,
        };
        assert_eq!(bad.problems().len(), 2);
    }

    #[test]
    fn limits_are_bounded() {
        assert!(FieldLimits::default().problems().is_empty());
        let l = FieldLimits {
            max_body_bytes: 1,
            max_json_depth: 0,
            max_batch_len: 0,
        };
        assert_eq!(l.problems().len(), 3);
    }
}
