//! The `[admin]` section of the configuration: the admin listener, sessions, logins and `/metrics`.
//! The gateway's configuration validates it with the rest of the file.

use sekisho_core::throttle::Throttle;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The admin API's TLS listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminListener {
    pub listen: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub max_connections: usize,
    pub session_ttl_secs: u64,
    /// Failed logins for one user name within `login_lockout_secs` before it is locked for that long.
    pub login_max_failures: u32,
    pub login_lockout_secs: u64,
    /// A file holding the bearer token `GET /metrics` requires (mode 0600, 16 characters or more).
    /// Empty: the metrics are open.
    pub metrics_token_file: PathBuf,
}

impl Default for AdminListener {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9443".into(),
            cert: "tls/admin.crt".into(),
            key: "tls/admin.key".into(),
            max_connections: 256,
            session_ttl_secs: 8 * 3600,
            login_max_failures: 5,
            login_lockout_secs: 300,
            metrics_token_file: PathBuf::new(),
        }
    }
}

impl AdminListener {
    /// The login throttle: `login_max_failures` within `login_lockout_secs`.
    pub fn login_throttle(&self) -> Throttle {
        Throttle::new(
            (self.login_lockout_secs.max(1) * 1000) as i64,
            self.login_max_failures,
        )
    }
}
