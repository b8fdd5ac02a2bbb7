//! The command line: init is complete and idempotent, a bad configuration lists every problem and
//! exits 64 before any port opens, the documented default configuration is what runs.

mod common;

use common::TempDir;
use std::process::Command;

#[test]
fn bad_configuration_lists_every_problem_and_exits_64() {
    let dir = TempDir::new("badcfg");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("device", "max_connections", 0.into()),
            ("store", "sync", "sometimes".into()),
            ("cloud", "batch_max", 0.into()),
            ("admin", "cert", "missing.crt".into()),
        ],
    );
    let out = Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(&dir.0)
        .args(["--device-listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "device.listen",
        "device.max_connections",
        "store.sync",
        "cloud.batch_max",
        "admin.cert",
        "5 problem(s)",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing started"
    );

    // An unknown key is named.
    std::fs::write(
        dir.0.join("sekisho.toml"),
        "[device]\nlisten = \"127.0.0.1:0\"\nlistne = 1\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["config", "check", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));

    // A wrong database key is refused before serving.
    let good = TempDir::new("badkey");
    common::init(&good.0);
    let out = Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(&good.0)
        .args([
            "--device-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("SEKISHO_DB_KEY", "00".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("database key does not open"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_is_complete_idempotent_and_generates_a_password_when_none_is_given() {
    let dir = TempDir::new("init");
    let out = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(&dir.0)
        .env_remove("SEKISHO_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("password: ") && text.contains("shown once"),
        "{text}"
    );
    for f in [
        "sekisho.toml",
        "db.key",
        "sekisho.db",
        "tls/ca.crt",
        "tls/device.crt",
        "tls/device.key",
        "tls/admin.crt",
        "tls/device-ca.crt",
    ] {
        assert!(dir.0.join(f).exists(), "{f} missing");
    }
    let key = std::fs::read(dir.0.join("db.key")).unwrap();
    let again = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already initialised"));
    assert_eq!(
        std::fs::read(dir.0.join("db.key")).unwrap(),
        key,
        "a second init changes nothing"
    );
    let ok = Command::new(common::bin())
        .args(["config", "check", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let default = Command::new(common::bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    assert_eq!(
        default.stdout,
        std::fs::read(dir.0.join("sekisho.toml")).unwrap()
    );

    // A too-short password from the environment is refused, and nothing is half-created.
    let short = TempDir::new("init-short");
    let out = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(short.0.join("d"))
        .env("SEKISHO_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(!short.0.join("d/sekisho.toml").exists());
}

#[tokio::test]
async fn passwd_resets_a_password_and_ends_sessions() {
    let dir = TempDir::new("passwd");
    common::init(&dir.0);
    let out = Command::new(common::bin())
        .args(["passwd", "--data-dir"])
        .arg(&dir.0)
        .env("SEKISHO_NEW_PASSWORD", "a-brand-new-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gw = common::Gateway::start_in(&dir.0);
    assert_eq!(
        gw.login("admin", common::ADMIN_PASSWORD).await.status(),
        401
    );
    assert_eq!(
        gw.login("admin", "a-brand-new-password").await.status(),
        200
    );
}

#[test]
fn the_published_openapi_documents_are_current() {
    for api in ["device", "admin"] {
        let out = Command::new(common::bin())
            .args(["openapi", api])
            .output()
            .unwrap();
        assert!(out.status.success());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../docs/openapi/{api}.json"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed.trim(),
            String::from_utf8_lossy(&out.stdout).trim(),
            "{} is stale: run `sekisho openapi {api} > docs/openapi/{api}.json`",
            path.display()
        );
    }
}
