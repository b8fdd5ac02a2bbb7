//! The optional bearer token in front of `GET /metrics` (`[admin] metrics_token_file`). Empty: the
//! metrics are open, as a scraper on the same host expects. Set: the file is read once at start (it
//! must be readable by its owner only, and hold at least 16 characters) and every scrape must send
//! `Authorization: Bearer <token>`, compared in constant time; anything else gets `401`.
//!
//! It does not know the metrics: their handler calls [`check`] first. The token is never logged.

use crate::Admin;
use http::HeaderMap;
use sekisho_core::ErrorCode;
use sekisho_http::{ApiError, ApiResult};
use std::path::Path;
use subtle::ConstantTimeEq;

/// The shortest token taken.
const MIN_LEN: usize = 16;

/// The metrics token in `path`, or `None` when no file is configured (an empty path).
pub fn load(path: &Path) -> Result<Option<String>, String> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let name =
        |e: &dyn std::fmt::Display| format!("admin.metrics_token_file: {}: {e}", path.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| name(&e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(name(&format!(
                "others may read it (mode {:o}); make it mode 0600",
                mode & 0o777
            )));
        }
    }
    let token = std::fs::read_to_string(path).map_err(|e| name(&e))?;
    let token = token.trim();
    if token.chars().count() < MIN_LEN {
        return Err(name(&format!(
            "the token needs {MIN_LEN} characters or more"
        )));
    }
    Ok(Some(token.to_owned()))
}

/// Passes when no token is configured, or when the request carries it.
pub fn check(app: &Admin, headers: &HeaderMap) -> ApiResult<()> {
    let Some(want) = app.metrics_token.as_deref() else {
        return Ok(());
    };
    let got = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the metrics need Authorization: Bearer <the metrics token>",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tag: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("sekisho-mt-{tag}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        p
    }

    #[test]
    fn a_token_file_must_be_private_and_long_enough() {
        assert_eq!(load(Path::new("")), Ok(None));
        let ok = file("ok", "scrape-token-0123456789\n", 0o600);
        assert_eq!(load(&ok), Ok(Some("scrape-token-0123456789".into())));
        let short = file("short", "short", 0o600);
        assert!(load(&short).unwrap_err().contains("16 characters"));
        let open = file("open", "scrape-token-0123456789", 0o644);
        #[cfg(unix)]
        assert!(load(&open).unwrap_err().contains("mode 644"));
        assert!(load(Path::new("/nonexistent/metrics.token")).is_err());
        for p in [ok, short, open] {
            let _ = std::fs::remove_file(p);
        }
    }
}
