//! The carrier API connection set at run time (`PUT /api/v1/system/carrier`), so that an operator can
//! point the gateway at its carrier — or rotate the token, pin another CA — without editing the
//! configuration file or restarting the gateway every device depends on.
//!
//! What the admin API sets is kept in the data directory beside the configuration file:
//! `carrier-api.toml` (a `[carrier.api]` table, relative paths) and, under `carrier/`, the token and
//! the PEM files (mode 0600). While `carrier-api.toml` exists it replaces the configuration file's
//! `[carrier.api]`, at start as at run time; removing it through the API returns to the file's.
//!
//! Invariant: a setting is written only after it validated and its connector was built; the files of
//! the previous setting are replaced whole (written beside, then renamed), so a crash leaves one or the
//! other, never a mix.

use crate::CarrierApiConfig;
use std::path::{Path, PathBuf};

/// The override file, relative to the data directory.
pub const FILE: &str = "carrier-api.toml";
const DIR: &str = "carrier";

/// What a new setting carries besides the `[carrier.api]` keys: the secrets and certificates, as text.
#[derive(Default)]
pub struct Material {
    pub token: Option<String>,
    pub ca_pem: Option<String>,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
}

/// The setting in force at start: `carrier-api.toml` when it exists, else `None` (the file's).
pub fn load(data_dir: &Path) -> Result<Option<CarrierApiConfig>, String> {
    let path = data_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut cfg: CarrierApiConfig =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    cfg.resolve_paths(data_dir);
    Ok(Some(cfg))
}

fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    sekisho_registry::pki::write_file(path, data, true)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Writes `material` and `cfg` under `staging` (a fresh directory); returns the configuration that
/// reads them there, for validation before [`commit`].
pub fn stage(
    staging: &Path,
    mut cfg: CarrierApiConfig,
    m: &Material,
) -> std::io::Result<CarrierApiConfig> {
    std::fs::create_dir_all(staging.join(DIR))?;
    let put = |name: &str, text: &Option<String>| -> std::io::Result<Option<PathBuf>> {
        let Some(t) = text else { return Ok(None) };
        let rel = PathBuf::from(DIR).join(name);
        write(&staging.join(&rel), t.as_bytes())?;
        Ok(Some(rel))
    };
    if let Some(rel) = put("token", &m.token)? {
        cfg.token_file = rel;
    }
    // The token set here is the one used: no environment variable overrides it.
    cfg.token_env = String::new();
    cfg.ca_file = put("ca.pem", &m.ca_pem)?;
    cfg.client_cert_file = put("client.crt", &m.client_cert_pem)?;
    cfg.client_key_file = put("client.key", &m.client_key_pem)?;
    let text = toml::to_string(&cfg).map_err(std::io::Error::other)?;
    write(&staging.join(FILE), text.as_bytes())?;
    cfg.resolve_paths(staging);
    Ok(cfg)
}

/// Moves a staged setting into `data_dir` (replacing the previous one) and removes `staging`.
pub fn commit(staging: &Path, data_dir: &Path) -> std::io::Result<CarrierApiConfig> {
    let old = data_dir.join(DIR);
    let _ = std::fs::remove_dir_all(&old);
    std::fs::rename(staging.join(DIR), &old)?;
    std::fs::rename(staging.join(FILE), data_dir.join(FILE))?;
    let _ = std::fs::remove_dir_all(staging);
    load(data_dir)
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::other("the carrier setting vanished"))
}

/// Removes the setting: the configuration file's `[carrier.api]` applies again. `false` when there
/// was none.
pub fn remove(data_dir: &Path) -> std::io::Result<bool> {
    let existed = match std::fs::remove_file(data_dir.join(FILE)) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let _ = std::fs::remove_dir_all(data_dir.join(DIR));
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_setting_reads_its_own_files_and_survives_a_reload() {
        let dir = std::env::temp_dir().join(format!("sekisho-carrier-set-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            load(&dir).unwrap().is_none(),
            "none set: the file's applies"
        );
        let cfg = CarrierApiConfig {
            kind: "mvno".into(),
            base_url: "https://127.0.0.1:7443".into(),
            ..Default::default()
        };
        let m = Material {
            token: Some("demo-token".into()),
            ..Default::default()
        };
        let staging = dir.join(".carrier-staging");
        let staged = stage(&staging, cfg, &m).unwrap();
        assert_eq!(staged.token(Path::new("")).unwrap().expose(), "demo-token");
        let live = commit(&staging, &dir).unwrap();
        assert_eq!(live.token(Path::new("")).unwrap().expose(), "demo-token");
        assert_eq!(live.token_env, "", "the environment does not override it");
        assert!(!staging.exists());
        assert_eq!(
            load(&dir).unwrap().unwrap().base_url,
            "https://127.0.0.1:7443"
        );
        assert!(remove(&dir).unwrap());
        assert!(load(&dir).unwrap().is_none());
        assert!(!remove(&dir).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
