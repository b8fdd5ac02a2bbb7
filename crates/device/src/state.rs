//! The device's side of updates on disk: [`LocalState`] (`state.json` in the state directory:
//! last applied sequence, firmware version, configuration hash) and the applied artifacts
//! (`<kind>/<sha256>`), both written atomically (temporary file, fsync, rename); and the
//! [`DeviceState`] self-report sent to `POST /v1/device/state`.
//!
//! Architecture invariant: a rejected update writes nothing here; an applied one writes its artifact
//! before the state that names it.

use sekisho_update::UpdateError;
use sekisho_update::manifest::Kind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The optional self-report template inside the state directory (a [`DeviceState`] whose
/// `firmware_version` and `config_hash` are filled from [`LocalState`] when left out).
pub const DEVICE_FILE: &str = "device.json";

/// What the device has applied. Missing file: nothing applied yet (sequence 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalState {
    /// The sequence of the last applied manifest; only a higher one is accepted.
    pub last_sequence: u64,
    /// The firmware version running (from the last firmware manifest applied).
    #[serde(default)]
    pub version: Option<String>,
    /// `sha256:<hex>` of the configuration applied last.
    #[serde(default)]
    pub config_hash: Option<String>,
}

impl LocalState {
    /// Reads `dir/state.json`; the default when the file does not exist.
    pub fn load(dir: &Path) -> Result<Self, UpdateError> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                UpdateError::Io(format!("{} is not a state file: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(UpdateError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes `dir/state.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), UpdateError> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_atomic(&dir.join(STATE_FILE), &json)
    }
}

/// Where an applied artifact of `kind` with hash `sha256` is kept.
pub fn artifact_path(dir: &Path, kind: Kind, sha256: &str) -> PathBuf {
    let sub = match kind {
        Kind::Firmware => "firmware",
        Kind::Config => "config",
    };
    dir.join(sub).join(sha256)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced, then renamed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let io =
        |what: &str, e: std::io::Error| UpdateError::Io(format!("{what} {}: {e}", path.display()));
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io("cannot create the directory of", e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).map_err(|e| io("cannot create a temporary file for", e))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("cannot write", e));
    }
    Ok(())
}

/// One running process, as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
}

/// One installed software package, as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
}

/// `POST /v1/device/state`'s body: the device's self-report for audit (spec §5.5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Left out when unknown (never sent empty: an empty version would compare as "older").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// `sha256:<hex>`; left out when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(default)]
    pub processes: Vec<Process>,
    #[serde(default)]
    pub software: Vec<Software>,
    /// Anything else the device wants audited.
    #[serde(default)]
    pub facts: Map<String, Value>,
}

impl DeviceState {
    /// `dir/device.json` when present (else an empty report), with `firmware_version` and
    /// `config_hash` taken from `local` where the file leaves them empty.
    pub fn from_dir(dir: &Path, local: &LocalState) -> Result<Self, UpdateError> {
        let path = dir.join(DEVICE_FILE);
        let mut state: Self = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                UpdateError::Io(format!("{} is not a device report: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                return Err(UpdateError::Io(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        if state.firmware_version.is_none() {
            state.firmware_version.clone_from(&local.version);
        }
        if state.config_hash.is_none() {
            state.config_hash.clone_from(&local.config_hash);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sekisho-update-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn local_state_persists_and_defaults_when_missing() {
        let dir = scratch("persist");
        assert_eq!(LocalState::load(&dir), Ok(LocalState::default()));
        let s = LocalState {
            last_sequence: 42,
            version: Some("1.4.3".into()),
            config_hash: Some(format!("sha256:{}", "ab".repeat(32))),
        };
        s.save(&dir).expect("save");
        assert_eq!(LocalState::load(&dir), Ok(s.clone()));
        let raw: Value =
            serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).expect("read"))
                .expect("json");
        assert_eq!(raw["last_sequence"], 42);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::write(dir.join(STATE_FILE), "{broken").expect("write");
        assert_eq!(
            LocalState::load(&dir).map_err(|e| e.code()),
            Err("io_failed")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn device_report_fills_version_and_hash_from_local_state() {
        let dir = scratch("report");
        std::fs::create_dir_all(&dir).expect("dir");
        let local = LocalState {
            last_sequence: 1,
            version: Some("1.4.2".into()),
            config_hash: Some("sha256:00".into()),
        };
        let empty = DeviceState::from_dir(&dir, &local).expect("report");
        assert_eq!(
            (
                empty.firmware_version.as_deref(),
                empty.config_hash.as_deref()
            ),
            (Some("1.4.2"), Some("sha256:00"))
        );
        let unknown = DeviceState::from_dir(&dir, &LocalState::default()).expect("report");
        let v = serde_json::to_value(&unknown).expect("json");
        assert!(
            v.get("firmware_version").is_none() && v.get("config_hash").is_none(),
            "{v}"
        );
        std::fs::write(
            dir.join(DEVICE_FILE),
            r#"{"processes":[{"name":"sensord","path":"/usr/bin/sensord","publisher":"Acme"}],
                "software":[{"name":"openssl","version":"3.0.11"}],"facts":{"board":"rev-b"}}"#,
        )
        .expect("write");
        let r = DeviceState::from_dir(&dir, &local).expect("report");
        assert_eq!(r.firmware_version.as_deref(), Some("1.4.2"));
        assert_eq!(r.processes[0].publisher.as_deref(), Some("Acme"));
        let v = serde_json::to_value(&r).expect("json");
        assert!(v["processes"][0].get("sha256").is_none());
        assert_eq!(v["software"][0]["version"], "3.0.11");
        assert_eq!(v["facts"]["board"], "rev-b");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
