//! What is on disk: V10 (nothing readable in the database files or the message log), V11 (a copy cannot
//! be queried or read), and a full disk (refused with 503, nothing acknowledged is lost, the gateway
//! keeps running).

mod common;

use common::{Device, Gateway, TempDir};
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn db_files(dir: &Path) -> Vec<std::path::PathBuf> {
    ["sekisho.db", "sekisho.db-wal", "sekisho.db-shm"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

/// The message log's segment files.
fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("log"))
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn v10_v11_database_files_reveal_nothing_and_a_copy_cannot_be_queried() {
    let dir = TempDir::new("atrest");
    let mut gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("smart-home-tokyo").await;
    let (s, reg) = admin
        .post(
            &format!("/api/v1/fields/{}/devices", field["id"].as_str().unwrap()),
            json!({"unique_id": "IMEI-490154203237518", "name": "living-room-hub", "sim": {"imsi": "440109876543210", "msisdn": "+819012345678"}}),
        )
        .await;
    assert_eq!(s, 201);
    let mut d = Device::new(&gw, &reg, "IMEI-490154203237518");
    d.auth().await;
    for i in 0..50 {
        assert_eq!(
            d.send(json!({"resident": "YAMADA-TARO", "door": "open", "i": i}))
                .await
                .0,
            202
        );
    }
    // SIGKILL leaves the WAL and the message log as they are, with the latest data in them.
    gw.kill9();
    let mut files = db_files(&dir.0);
    assert!(
        files.iter().any(|f| f.ends_with("sekisho.db-wal")),
        "the WAL is there to be checked too"
    );
    let segments = log_files(&dir.0);
    assert!(
        !segments.is_empty(),
        "the message log is there to be checked too"
    );
    files.extend(segments.iter().cloned());
    let needles = [
        "IMEI-490154203237518",
        "440109876543210",
        "819012345678",
        "living-room-hub",
        "smart-home-tokyo",
        "YAMADA-TARO",
        reg["id"].as_str().unwrap(),
        reg["auth_id"].as_str().unwrap(),
        "argon2id",
        "admin",
    ];
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_ne!(
            bytes.get(..16),
            Some(&b"SQLite format 3\0"[..]),
            "{} has a plain SQLite header",
            f.display()
        );
        for n in needles {
            let found = bytes.windows(n.len()).any(|w| w == n.as_bytes());
            assert!(!found, "{n} readable in {}", f.display());
        }
    }

    // V11: a copy of the database, opened by plain SQLite, is not a database.
    let copy = TempDir::new("atrest-copy");
    for f in &files {
        std::fs::copy(f, copy.0.join(f.file_name().unwrap())).unwrap();
    }
    let out = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from sqlite_master').fetchone())"])
        .arg(copy.0.join("sekisho.db"))
        .output()
        .expect("python3");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file is not a database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... nor does SQLCipher open it with another key.
    let wrong = sekisho_store::DbKey::from_bytes([0x42; 32]);
    let err = sekisho_store::open(&copy.0.join("sekisho.db"), &wrong, Default::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, sekisho_store::StoreError::BadKey(_)), "{err}");
    // A copy of the message log is no more readable: another key opens none of it.
    let copied_log = copy.0.join("log");
    std::fs::create_dir_all(&copied_log).unwrap();
    for f in &segments {
        std::fs::copy(f, copied_log.join(f.file_name().unwrap())).unwrap();
    }
    let err = sekisho_log::Log::open(&copied_log, [0x42; 32], Default::default())
        .err()
        .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    // With the key, the copies hold all 50 messages (so the test above looked at real data): the
    // log has every acknowledged one, the history whatever the indexer had copied before the kill.
    let key =
        sekisho_store::DbKey::from_hex(&std::fs::read_to_string(dir.0.join("db.key")).unwrap())
            .unwrap();
    let store = sekisho_store::open(&copy.0.join("sekisho.db"), &key, Default::default())
        .await
        .unwrap();
    let indexed = sekisho_store::journal::cursor(&store, sekisho_store::journal::HISTORY)
        .await
        .unwrap();
    store.close().await;
    let (log, report) =
        sekisho_log::Log::open(&copied_log, key.bytes(), Default::default()).unwrap();
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    let bodies: Vec<_> = log
        .read(0, 1000)
        .unwrap()
        .into_iter()
        .filter_map(|e| sekisho_store::journal::decode(&e.bytes)?.body)
        .filter(|b| b.windows(11).any(|w| w == b"YAMADA-TARO"))
        .collect();
    log.close();
    assert_eq!(bodies.len(), 50);
    assert!(indexed <= report.records);
    // The restarted gateway indexes what the kill interrupted: all 50 are in the history.
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let all = common::eventually(30, || async {
        let (_, v) = admin
            .get("/api/v1/history/messages?outcome=accepted&limit=1000")
            .await;
        let n = v["items"].as_array().map_or(0, Vec::len);
        (n == 50).then_some(n)
    })
    .await;
    assert_eq!(
        all,
        Some(50),
        "every acknowledged message reaches the history after the kill"
    );
    // The key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.0.join("db.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.0.join("tls/device.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}

/// A small tmpfs, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Self {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (the test suite runs as root)"
        );
        Self(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_is_refused_with_503_and_loses_nothing_acknowledged() {
    let dir = TempDir::new("fulldisk");
    let _disk = SmallDisk::mount(&dir.0, "24m");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    let reg = admin.device(&field, "OBD-FULL").await;
    let mut d = Device::new(&gw, &reg, "OBD-FULL");
    d.auth().await;
    assert_eq!(d.send(json!({"before": true})).await.0, 202);

    // Fill the disk.
    let filler = dir.0.join("filler");
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1M",
            "count=64",
        ])
        .output();
    let pad = "x".repeat(60_000);
    let mut acked = 0;
    let mut refused = None;
    for i in 0..400 {
        let (s, v) = d.send(json!({"i": i, "pad": pad})).await;
        match s {
            202 => acked += 1,
            503 => {
                refused = Some(v);
                break;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    let v = refused.expect("a full disk must refuse, not accept");
    assert_eq!(v["error"], "store_unavailable", "{v}");

    // Room again: the gateway kept running and accepts, and everything acknowledged is still there.
    std::fs::remove_file(&filler).unwrap();
    let ok = common::eventually(30, || async {
        (d.send(json!({"after": true})).await.0 == 202).then_some(())
    })
    .await;
    assert!(ok.is_some(), "accepts again once there is room");
    let path = format!(
        "/api/v1/fields/{}/dead-letters",
        field["id"].as_str().unwrap()
    );
    let pending = common::eventually(30, || async {
        let (_, dl) = admin.get(&path).await;
        let pending = dl["outbox"]["pending"].as_i64().unwrap();
        (pending >= acked + 2).then_some(pending)
    })
    .await;
    assert!(
        pending.is_some(),
        "every acknowledged message is indexed and waits for the cloud ({acked} + 2 acknowledged)"
    );
    assert!(
        gw.log_text().contains("message log write failed"),
        "the failure was logged"
    );
}
