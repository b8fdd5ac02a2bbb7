//! Configuration: a TOML file plus environment/CLI overrides, parsed completely and validated whole
//! before any port opens. Every problem is listed; the binary exits 64 on any of them.
//!
//! The documented default configuration is `default.toml` beside this file (`sekisho config default`
//! prints it); a test keeps it equal to `Config::default()`.

pub mod file;

use sekisho_core::FieldLimits;
pub use sekisho_forward::CloudConfig;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// The documented default configuration, as written by `sekisho init`.
/// The carrier API's part (`[carrier.api]`) and the SMTP part (`[response.smtp]`) are their crates'
/// own documented defaults.
pub const DEFAULT_TOML: &str = concat!(
    include_str!("default.toml"),
    "\n",
    include_str!("../../carrier/src/config/default.toml"),
    "\n",
    include_str!("../../notify/src/mail/default.toml")
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub device: DeviceListener,
    pub admin: AdminListener,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    /// Limits given to new fields (each field can change its own).
    pub limits: FieldLimits,
    pub cloud: CloudConfig,
    pub detection: DetectionConfig,
    pub carrier: CarrierConfig,
    pub response: ResponseConfig,
    pub update: UpdateConfig,
    pub log: LogConfig,
    /// The data directory the paths were resolved against (not a key of the file).
    #[serde(skip)]
    pub data_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// File holding the 64-hex-digit database key (mode 0600). `SEKISHO_DB_KEY` overrides it.
    pub key_file: PathBuf,
    /// `full`: fsync every commit; `normal`: survives a crash of the process, not of the machine.
    pub sync: String,
    pub group_commit_max: usize,
    pub queue_capacity: usize,
    pub enqueue_timeout_ms: u64,
    /// Days to keep message metadata and bodies once forwarded (0 = forever).
    pub retention_days: u32,
    /// The encrypted message log: received messages are durable here before the device gets `202`.
    pub log_dir: PathBuf,
    /// A log segment is closed and a new one begun at this size (MiB).
    pub log_segment_mb: u64,
    /// Messages waiting for the log's writer at most (MiB); beyond it devices get 503.
    pub log_queue_mb: u64,
    /// Messages copied from the log into the searchable history per transaction.
    pub index_batch: usize,
}

pub use sekisho_admin::config::AdminListener;
pub use sekisho_detect::engine::DetectionConfig;
pub use sekisho_ingest::config::{AuthConfig, DeviceListener};
pub use sekisho_respond::ResponseConfig;

/// Update management: the manifest signing key and the artifact store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// The Ed25519 key that signs update manifests (PKCS#8 PEM, 0600); created by `init` or the first
    /// start when missing.
    pub key_file: PathBuf,
    /// Public keys of earlier signing keys, still published while devices move to the new one.
    pub previous_keys_file: PathBuf,
    /// Artifacts, stored as files named by their SHA-256.
    pub artifact_dir: PathBuf,
    pub max_artifact_bytes: u64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            key_file: "update.key".into(),
            previous_keys_file: "update-previous.pub".into(),
            artifact_dir: "artifacts".into(),
            max_artifact_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The carrier's side: RADIUS accounting from its packet gateway, and its SIM control API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarrierConfig {
    pub radius: RadiusConfig,
    pub api: sekisho_carrier::CarrierApiConfig,
}

pub use sekisho_carrier::accounting::{RadiusClientConfig, RadiusConfig};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or a tracing filter directive.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "sekisho.db".into(),
            key_file: "db.key".into(),
            sync: "full".into(),
            group_commit_max: 512,
            queue_capacity: 8192,
            enqueue_timeout_ms: 2000,
            retention_days: 90,
            log_dir: "log".into(),
            log_segment_mb: 64,
            log_queue_mb: 16,
            index_batch: 4096,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    /// Parses TOML text; every unknown key, wrong type or unreadable duration is an error naming it
    /// and its line.
    pub fn from_toml(text: &str) -> Result<Self, Vec<String>> {
        let parsed = Self::parse(text);
        if parsed.problems.is_empty() {
            Ok(parsed.value)
        } else {
            Err(parsed
                .problems
                .into_iter()
                .map(|p| match p.line {
                    Some(l) => format!("line {l}: {}", p.text),
                    None => p.text,
                })
                .collect())
        }
    }

    /// Parses TOML text key by key: the configuration of every good key, where each key is, and the
    /// problems of the others ([`file::parse`]).
    pub fn parse(text: &str) -> file::Parsed<Self> {
        file::parse(text)
    }

    /// Makes relative paths relative to `data_dir`.
    pub fn resolve_paths(&mut self, data_dir: &Path) {
        self.data_dir = data_dir.to_owned();
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = data_dir.join(&*p);
            }
        };
        fix(&mut self.device.cert);
        fix(&mut self.device.key);
        self.device.client_ca.iter_mut().for_each(fix);
        fix(&mut self.admin.cert);
        fix(&mut self.admin.key);
        if !self.admin.metrics_token_file.as_os_str().is_empty() {
            fix(&mut self.admin.metrics_token_file);
        }
        fix(&mut self.store.path);
        fix(&mut self.store.key_file);
        fix(&mut self.store.log_dir);
        for c in &mut self.carrier.radius.clients {
            fix(&mut c.secret_file);
        }
        self.carrier.api.resolve_paths(data_dir);
        self.response.smtp.resolve_paths(data_dir);
        fix(&mut self.update.key_file);
        fix(&mut self.update.previous_keys_file);
        fix(&mut self.update.artifact_dir);
    }

    /// Every problem with the configuration (empty when it is usable). Files are checked too.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(listen_problem("device.listen", &self.device.listen, 8443));
        out.extend(listen_problem("admin.listen", &self.admin.listen, 9443));
        let mut file = |name: &str, p: &Path| {
            if !p.is_file() {
                out.push(format!(
                    "{name}: {} does not exist or is not a file",
                    p.display()
                ));
            }
        };
        file("device.cert", &self.device.cert);
        file("device.key", &self.device.key);
        for (i, ca) in self.device.client_ca.iter().enumerate() {
            file(&format!("device.client_ca[{i}]"), ca);
        }
        file("admin.cert", &self.admin.cert);
        file("admin.key", &self.admin.key);
        let mut positive = |name: &str, v: u64| {
            if v == 0 {
                out.push(format!("{name} must be greater than 0"));
            }
        };
        positive("device.max_connections", self.device.max_connections as u64);
        positive(
            "device.handshake_timeout_secs",
            self.device.handshake_timeout_secs,
        );
        positive(
            "device.header_timeout_secs",
            self.device.header_timeout_secs,
        );
        positive("device.body_timeout_secs", self.device.body_timeout_secs);
        positive("admin.max_connections", self.admin.max_connections as u64);
        positive("admin.session_ttl_secs", self.admin.session_ttl_secs);
        positive(
            "admin.login_max_failures",
            self.admin.login_max_failures as u64,
        );
        positive("store.group_commit_max", self.store.group_commit_max as u64);
        positive("store.queue_capacity", self.store.queue_capacity as u64);
        positive("store.enqueue_timeout_ms", self.store.enqueue_timeout_ms);
        positive("auth.token_ttl_secs", self.auth.token_ttl_secs);
        positive(
            "auth.max_failures_per_unique_id",
            self.auth.max_failures_per_unique_id as u64,
        );
        positive(
            "auth.max_requests_per_ip",
            self.auth.max_requests_per_ip as u64,
        );
        positive("auth.concurrent_hashes", self.auth.concurrent_hashes as u64);
        positive("update.max_artifact_bytes", self.update.max_artifact_bytes);
        positive("response.concurrency", self.response.concurrency as u64);
        positive("response.max_attempts", self.response.max_attempts as u64);
        positive(
            "response.backoff_initial_ms",
            self.response.backoff_initial_ms,
        );
        positive(
            "response.webhook_timeout_ms",
            self.response.webhook_timeout_ms,
        );
        out.extend(self.cloud.problems());
        if !matches!(self.store.sync.as_str(), "full" | "normal") {
            out.push(format!(
                "store.sync: '{}' is neither 'full' nor 'normal'",
                self.store.sync
            ));
        }
        out.extend(self.detection.problems());
        let radius = &self.carrier.radius;
        if !radius.listen.is_empty() {
            out.extend(listen_problem(
                "carrier.radius.listen",
                &radius.listen,
                1813,
            ));
            if radius.clients.is_empty() {
                out.push("carrier.radius.clients: a listener with no client accepts nothing; add the packet gateways".into());
            }
        }
        if let Err(p) = sekisho_carrier::accounting::clients(radius) {
            out.extend(p);
        }
        out.extend(
            self.carrier
                .api
                .validate(Path::new(""))
                .into_iter()
                .map(|p| format!("carrier.api.{p}")),
        );
        if self.response.backoff_max_ms < self.response.backoff_initial_ms {
            out.push("response.backoff_max_ms must be at least response.backoff_initial_ms".into());
        }
        out.extend(
            self.response
                .smtp
                .validate()
                .into_iter()
                .map(|p| format!("response.smtp.{p}")),
        );
        if !matches!(self.log.format.as_str(), "text" | "json") {
            out.push(format!(
                "log.format: '{}' is neither 'text' nor 'json'",
                self.log.format
            ));
        }
        out.extend(
            self.limits
                .problems()
                .into_iter()
                .map(|p| format!("limits.{p}")),
        );
        out
    }
}

/// What is wrong with a listen address: `address:port` (`0.0.0.0:8443`, `[::]:8443`) or
/// `host:port` (`gw.example.jp:8443`), a name that must resolve now (it is resolved again when the port
/// is bound).
pub fn listen_problem(key: &str, v: &str, example_port: u16) -> Option<String> {
    if v.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let form = || {
        format!(
            "{key}: '{v}' is not an address:port or host:port (e.g. 0.0.0.0:{example_port}, \
             localhost:{example_port})"
        )
    };
    let Some((host, port)) = v.rsplit_once(':') else {
        return Some(form());
    };
    if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
        return Some(form());
    }
    match v.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => None,
        Ok(None) => Some(format!("{key}: '{host}' resolves to no address")),
        Err(e) => Some(format!("{key}: '{host}' does not resolve: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_is_the_default() {
        assert_eq!(Config::from_toml(DEFAULT_TOML).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = Config::from_toml("[device]\nlisten = \"0.0.0.0:1\"\nlistn = 3\n").unwrap_err();
        assert!(e[0].contains("listn"), "{e:?}");
    }

    #[test]
    fn listen_addresses_take_addresses_and_names_that_resolve() {
        for ok in ["0.0.0.0:8443", "[::1]:0", "localhost:0", "127.0.0.1:65535"] {
            assert_eq!(listen_problem("k", ok, 1), None, "{ok}");
        }
        for (bad, says) in [
            ("nowhere", "is not an address:port or host:port"),
            ("::1", "is not an address:port or host:port"),
            ("localhost:99999", "is not an address:port or host:port"),
            (":8443", "is not an address:port or host:port"),
            ("nosuch.invalid:8443", "'nosuch.invalid' does not resolve"),
        ] {
            let p = listen_problem("device.listen", bad, 8443).unwrap_or_default();
            assert!(
                p.starts_with("device.listen: ") && p.contains(says),
                "{bad}: {p}"
            );
        }
    }

    #[test]
    fn durations_read_in_the_template_form_or_as_numbers_of_the_keys_unit() {
        let c = Config::from_toml(
            "[admin]\nsession_ttl_secs = \"2h\"\nlogin_lockout_secs = 60\n\
             [store]\nenqueue_timeout_ms = \"3s\"\n[response]\ncatch_up_hours = \"2d\"\n",
        )
        .unwrap();
        assert_eq!(c.admin.session_ttl_secs, 7200);
        assert_eq!(c.admin.login_lockout_secs, 60);
        assert_eq!(c.store.enqueue_timeout_ms, 3000);
        assert_eq!(c.response.catch_up_hours, 48);
        let e = Config::from_toml("[cloud]\ntimeout_secs = \"ten\"\n").unwrap_err();
        assert!(
            e[0].starts_with("line 2: cloud.timeout_secs: 'ten' is not a duration"),
            "{e:?}"
        );
    }

    #[test]
    fn wrong_keys_in_every_section_and_nested_tables_are_all_listed_with_lines() {
        let e = Config::from_toml(
            "[device]\nlisten = 8443\nlistn = \"x\"\n[store]\nsync = 1\n\
             [carrier.radius]\nclients = [{ address = \"10.0.0.1\" }]\n\
             [response.smtp]\nport = \"smtp\"\n[nosuch]\n",
        )
        .unwrap_err();
        let want = [
            "line 2: device.listen: invalid type: integer",
            "line 3: device.listn: unknown field `listn`",
            "line 5: store.sync: invalid type: integer",
            "line 7: carrier.radius.clients[0]: missing field `secret_file`",
            "line 9: response.smtp.port: invalid type: string",
            "line 10: nosuch: unknown field `nosuch`",
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(want) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
    }

    #[test]
    fn every_problem_is_listed() {
        let mut c = Config::from_toml(
            "[device]\nlisten = \"nowhere\"\nmax_connections = 0\n[store]\nsync = \"sometimes\"\n[limits]\nmax_json_depth = 0\n\
             [carrier.radius]\nlisten = \"0.0.0.0\"\nclients = [{ address = \"pgw\", secret_file = \"none\" }]\n",
        )
        .unwrap();
        c.resolve_paths(Path::new("/nonexistent"));
        let p = c.problems();
        for needle in [
            "device.listen",
            "device.max_connections",
            "store.sync",
            "limits.max_json_depth",
            "device.cert",
            "carrier.radius.listen",
            "carrier.radius.clients[0].address",
            "carrier.radius.clients[0].secret_file",
        ] {
            assert!(
                p.iter().any(|x| x.contains(needle)),
                "{needle} missing from {p:#?}"
            );
        }
    }
}
