//! The `[device]` (the device listener) and `[auth]` (device authentication) sections of the
//! configuration. The gateway's configuration validates them with the rest of the file.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The device-facing TLS listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceListener {
    pub listen: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates whose device client certificates are accepted (mTLS), besides none.
    pub client_ca: Vec<PathBuf>,
    pub max_connections: usize,
    /// Connections one source address may hold (0: only `max_connections`).
    pub max_connections_per_address: u32,
    /// Connections an address inside a NAT range may hold (0: only `max_connections`). NAT ranges are
    /// `nat_ranges` and those of every field's template (`[network] nat_ranges`).
    pub max_connections_per_nat_address: u32,
    /// Networks where many devices share one address (a carrier's CGNAT, an edge gateway's uplink).
    #[serde(with = "nets")]
    pub nat_ranges: Vec<ipnet::IpNet>,
    /// Connections over a cap answered `503 too_many_connections` at once at most; the rest are closed.
    pub refusal_slots: usize,
    pub handshake_timeout_secs: u64,
    /// Time allowed to send a request's headers (also the keep-alive idle limit).
    pub header_timeout_secs: u64,
    /// Time allowed to send a request's body.
    pub body_timeout_secs: u64,
    /// A request refused before its body was read (`401`, `413`, …) has the rest of its body read and
    /// discarded, up to this many bytes within `body_timeout_secs`, so the client receives the answer.
    pub drain_max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub token_ttl_secs: u64,
    /// Failed token requests for one unique ID per minute before further ones get `429`.
    pub max_failures_per_unique_id: u32,
    /// Token requests (any outcome) from one source IP per minute before `429`.
    pub max_requests_per_ip: u32,
    /// Password-hash verifications running at once; more wait, then get `429`.
    pub concurrent_hashes: usize,
}

/// Networks written as strings (`"100.64.0.0/10"`, or one address).
mod nets {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        serde::de::Error::custom(format!(
                            "'{n}' is not a network (e.g. 100.64.0.0/10)"
                        ))
                    })
            })
            .collect()
    }
}

impl Default for DeviceListener {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".into(),
            cert: "tls/device.crt".into(),
            key: "tls/device.key".into(),
            client_ca: vec!["tls/device-ca.crt".into()],
            max_connections: 10_000,
            max_connections_per_address: 64,
            max_connections_per_nat_address: 4096,
            nat_ranges: Vec::new(),
            refusal_slots: 64,
            handshake_timeout_secs: 10,
            header_timeout_secs: 30,
            body_timeout_secs: 30,
            drain_max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_ttl_secs: 3600,
            max_failures_per_unique_id: 10,
            max_requests_per_ip: 600,
            concurrent_hashes: 4,
        }
    }
}
