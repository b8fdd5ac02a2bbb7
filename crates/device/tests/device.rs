//! The reference device client and the `sekisho-device` CLI against a fake gateway that plays the
//! gateway's side of the update contract over HTTPS on loopback (`common`).

mod common;

use common::{AUTH_ID, DEVICE_ID, Gateway, SECRET, Scratch, UNIQUE_ID};
use sekisho_device::{
    Artifact, ClientConfig, Credentials, DeviceClient, DeviceState, Kind, LocalState, Manifest,
    Process, PublicKey, SignedManifest, SigningKey, UpdateError, sha256_hex, sign,
};
use serde_json::{Value, json};

const FIRMWARE: &[u8] = b"\x7fELF sensord firmware 1.4.3, pretend this is a real image";

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn manifest(bytes: &[u8], version: &str, sequence: u64) -> Manifest {
    let sha256 = sha256_hex(bytes);
    Manifest {
        kind: Kind::Firmware,
        version: version.into(),
        sequence,
        field_id: "field-1".into(),
        artifact: Artifact {
            url: format!("/v1/device/artifacts/{sha256}"),
            sha256,
            size: bytes.len() as u64,
        },
        issued_at: "2026-05-01T09:00:00+09:00".into(),
        min_version: Some("1.2.0".into()),
    }
}

/// Offers `signed` and serves `bytes` under the manifest's hash.
fn offer(gw: &Gateway, signed: &SignedManifest, hash: &str, bytes: &[u8]) {
    gw.with(|g| {
        g.offer = Some(serde_json::to_value(signed).expect("json"));
        g.artifacts.insert(hash.to_owned(), bytes.to_vec());
    });
}

fn client(gw: &Gateway, dir: &Scratch) -> DeviceClient {
    let creds = Credentials {
        auth_id: AUTH_ID.into(),
        auth_secret: SECRET.into(),
        unique_id: UNIQUE_ID.into(),
    };
    let mut cfg = ClientConfig::new(&gw.base, creds, &dir.0);
    cfg.ca_pem = Some(gw.ca_pem.clone().into_bytes());
    DeviceClient::new(cfg).expect("client")
}

fn results(gw: &Gateway) -> Vec<Value> {
    gw.with(|g| g.results.clone())
}

/// Checks for an update and applies it with `trusted`, from a fresh `LocalState` read from disk.
async fn check_and_apply(
    c: &mut DeviceClient,
    trusted: &[PublicKey],
) -> Result<sekisho_device::Applied, UpdateError> {
    let signed = c
        .check_update()
        .await
        .expect("check")
        .expect("an update is offered");
    let mut local = LocalState::load(c.state_dir()).expect("state");
    c.apply_update(&signed, trusted, &mut local).await
}

#[tokio::test]
async fn good_update_applies_persists_and_is_reported() {
    let gw = common::start().await;
    let dir = Scratch::new("good");
    let mut c = client(&gw, &dir);
    assert!(
        c.check_update().await.expect("check").is_none(),
        "nothing offered: 204"
    );
    let m = manifest(FIRMWARE, "1.4.3", 42);
    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, FIRMWARE);

    let signed = c.check_update().await.expect("check").expect("offered");
    let mut local = LocalState::load(&dir.0).expect("state");
    let applied = c
        .apply_update(&signed, &[key(1).public_key()], &mut local)
        .await
        .expect("applied");

    assert_eq!(applied.manifest, m);
    assert_eq!(applied.reported, Ok(()));
    assert_eq!(
        applied.path,
        dir.0.join("firmware").join(&m.artifact.sha256)
    );
    assert_eq!(std::fs::read(&applied.path).expect("artifact"), FIRMWARE);
    let expected = LocalState {
        last_sequence: 42,
        version: Some("1.4.3".into()),
        config_hash: None,
    };
    assert_eq!(local, expected);
    assert_eq!(
        LocalState::load(&dir.0).expect("state"),
        expected,
        "persisted"
    );
    assert_eq!(
        results(&gw),
        vec![json!({"sequence": 42, "version": "1.4.3", "status": "applied", "reason": null})]
    );
    assert_eq!(c.device_id(), Some(DEVICE_ID));
    assert_eq!(
        gw.with(|g| (g.tokens_issued, g.unauthorized)),
        (1, 0),
        "one token reused"
    );

    // The same manifest again is now a rollback: refused before any download, and reported.
    let downloads = gw.with(|g| g.downloads.len());
    let e = check_and_apply(&mut c, &[key(1).public_key()])
        .await
        .expect_err("replay");
    assert_eq!(
        e,
        UpdateError::Rollback {
            sequence: 42,
            last: 42
        }
    );
    assert_eq!(gw.with(|g| g.downloads.len()), downloads);
    assert_eq!(
        results(&gw)[1],
        json!({"sequence": 42, "version": "1.4.3", "status": "rejected", "reason": "rollback"})
    );
}

#[tokio::test]
async fn config_update_records_the_config_hash() {
    let gw = common::start().await;
    let dir = Scratch::new("config");
    let conf = br#"{"interval": 30}"#;
    let mut m = manifest(conf, "cfg-7", 7);
    m.kind = Kind::Config;
    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, conf);
    let mut c = client(&gw, &dir);
    let applied = check_and_apply(&mut c, &[key(1).public_key()])
        .await
        .expect("applied");
    assert_eq!(applied.path, dir.0.join("config").join(&m.artifact.sha256));
    let local = LocalState::load(&dir.0).expect("state");
    assert_eq!(
        local.config_hash,
        Some(format!("sha256:{}", m.artifact.sha256))
    );
    assert_eq!((local.last_sequence, local.version), (7, None));
}

/// Each refused update: nothing written in the state directory, reported `rejected` with `reason`.
async fn assert_refused(
    gw: &Gateway,
    dir: &Scratch,
    trusted: &[PublicKey],
    reason: &str,
    claimed: (u64, &str),
) {
    let before = dir.files();
    let mut c = client(gw, dir);
    let e = check_and_apply(&mut c, trusted).await.expect_err("refused");
    assert_eq!(e.code(), reason, "{e}");
    assert!(e.is_rejection());
    assert_eq!(dir.files(), before, "a refused update writes nothing");
    let last = results(gw).pop().expect("the rejection is reported");
    assert_eq!(
        last,
        json!({"sequence": claimed.0, "version": claimed.1, "status": "rejected", "reason": reason})
    );
}

#[tokio::test]
async fn tampered_manifest_is_refused_and_reported() {
    let gw = common::start().await;
    let dir = Scratch::new("tampered");
    let m = manifest(FIRMWARE, "1.4.3", 42);
    let mut signed = sign(&m, &key(1));
    signed.payload = signed.payload.replace("\"1.4.3\"", "\"9.9.9\"");
    offer(&gw, &signed, &m.artifact.sha256, FIRMWARE);
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "bad_signature",
        (42, "9.9.9"),
    )
    .await;
    assert!(
        gw.with(|g| g.downloads.is_empty()),
        "nothing downloaded for a bad signature"
    );
}

#[tokio::test]
async fn manifest_signed_by_an_untrusted_key_is_refused() {
    let gw = common::start().await;
    let dir = Scratch::new("unknown");
    let m = manifest(FIRMWARE, "1.4.3", 42);
    offer(&gw, &sign(&m, &key(66)), &m.artifact.sha256, FIRMWARE);
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "unknown_key",
        (42, "1.4.3"),
    )
    .await;
}

#[tokio::test]
async fn artifact_with_the_wrong_hash_or_size_is_refused() {
    let gw = common::start().await;
    let dir = Scratch::new("hash");
    let m = manifest(FIRMWARE, "1.4.3", 42);
    let mut evil = FIRMWARE.to_vec();
    evil[0] ^= 0xff; // same size, other bytes
    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, &evil);
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "hash_mismatch",
        (42, "1.4.3"),
    )
    .await;

    let mut longer = FIRMWARE.to_vec();
    longer.extend_from_slice(b" and a payload");
    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, &longer);
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "size_mismatch",
        (42, "1.4.3"),
    )
    .await;

    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, &FIRMWARE[..10]);
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "size_mismatch",
        (42, "1.4.3"),
    )
    .await;

    gw.with(|g| g.artifacts.clear());
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "download_failed",
        (42, "1.4.3"),
    )
    .await;
}

#[tokio::test]
async fn artifact_url_off_the_gateway_is_refused() {
    let gw = common::start().await;
    let dir = Scratch::new("offsite");
    let mut m = manifest(FIRMWARE, "1.4.3", 42);
    m.artifact.url = "https://example.invalid/fw.bin".into();
    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, FIRMWARE);
    assert_refused(
        &gw,
        &dir,
        &[key(1).public_key()],
        "download_failed",
        (42, "1.4.3"),
    )
    .await;
}

#[tokio::test]
async fn rollback_is_refused_without_download() {
    let gw = common::start().await;
    let dir = Scratch::new("rollback");
    let applied = LocalState {
        last_sequence: 42,
        version: Some("1.4.3".into()),
        config_hash: None,
    };
    applied.save(&dir.0).expect("state");
    let old = b"firmware 1.4.1 with a known hole";
    let m = manifest(old, "1.4.1", 41);
    offer(&gw, &sign(&m, &key(1)), &m.artifact.sha256, old);
    assert_refused(&gw, &dir, &[key(1).public_key()], "rollback", (41, "1.4.1")).await;
    assert_eq!(LocalState::load(&dir.0).expect("state"), applied);
    assert!(gw.with(|g| g.downloads.is_empty()));
}

#[tokio::test]
async fn key_rotation_accepts_old_and_new_keys() {
    let gw = common::start().await;
    let dir = Scratch::new("rotation");
    let trusted = [key(1).public_key(), key(2).public_key()];
    let mut c = client(&gw, &dir);
    for (seq, signer) in [(1u64, key(1)), (2, key(2))] {
        let m = manifest(FIRMWARE, &format!("1.4.{seq}"), seq);
        offer(&gw, &sign(&m, &signer), &m.artifact.sha256, FIRMWARE);
        let applied = check_and_apply(&mut c, &trusted).await.expect("applied");
        assert_eq!(applied.manifest.sequence, seq);
    }
    assert_eq!(
        LocalState::load(&dir.0).expect("state").version.as_deref(),
        Some("1.4.2")
    );
}

#[tokio::test]
async fn telemetry_and_state_report_reach_the_gateway() {
    let gw = common::start().await;
    let dir = Scratch::new("telemetry");
    let mut c = client(&gw, &dir);
    gw.with(|g| g.commands.push(json!({"type": "update"})));
    let (status, commands) = c
        .send_telemetry(&json!({"temp": 21.5, "seq": 1}))
        .await
        .expect("sent");
    assert_eq!((status, commands), (202, vec![json!({"type": "update"})]));
    let state = DeviceState {
        firmware_version: Some("1.4.2".into()),
        config_hash: Some(format!("sha256:{}", "0".repeat(64))),
        processes: vec![Process {
            name: "sensord".into(),
            path: "/usr/bin/sensord".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    gw.with(|g| g.commands.push(json!({"type": "reauth"})));
    let commands = c.report_state(&state).await.expect("reported");
    assert_eq!(commands, vec![json!({"type": "reauth"})]);
    let (telemetry, states) = gw.with(|g| (g.telemetry.clone(), g.states.clone()));
    assert_eq!(telemetry, vec![json!({"temp": 21.5, "seq": 1})]);
    assert_eq!(states[0]["firmware_version"], "1.4.2");
    assert_eq!(
        states[0]["processes"][0],
        json!({"name": "sensord", "path": "/usr/bin/sensord"})
    );
}

#[tokio::test]
async fn a_refused_token_is_renewed_once() {
    let gw = common::start().await;
    let dir = Scratch::new("renew");
    let mut c = client(&gw, &dir);
    c.send_telemetry(&json!({"seq": 1})).await.expect("sent");
    gw.with(|g| g.revoke_next = true);
    c.send_telemetry(&json!({"seq": 2}))
        .await
        .expect("sent after renewal");
    assert_eq!(
        gw.with(|g| (g.tokens_issued, g.unauthorized, g.telemetry.len())),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn wrong_secret_and_untrusted_ca_fail_cleanly() {
    let gw = common::start().await;
    let dir = Scratch::new("auth");
    let creds = Credentials {
        auth_id: AUTH_ID.into(),
        auth_secret: "wrong".into(),
        unique_id: UNIQUE_ID.into(),
    };
    let mut cfg = ClientConfig::new(&gw.base, creds, &dir.0);
    cfg.ca_pem = Some(gw.ca_pem.clone().into_bytes());
    let e = DeviceClient::new(cfg)
        .expect("client")
        .auth()
        .await
        .expect_err("401");
    assert_eq!(
        e,
        UpdateError::Status {
            status: 401,
            code: "invalid_credentials".into()
        }
    );

    let other = common::start().await; // another CA
    let creds = Credentials {
        auth_id: AUTH_ID.into(),
        auth_secret: SECRET.into(),
        unique_id: UNIQUE_ID.into(),
    };
    let mut cfg = ClientConfig::new(&gw.base, creds, &dir.0);
    cfg.ca_pem = Some(other.ca_pem.clone().into_bytes());
    let e = DeviceClient::new(cfg)
        .expect("client")
        .auth()
        .await
        .expect_err("TLS");
    assert_eq!(e.code(), "gateway_unreachable", "{e}");
}

/// Runs `sekisho-device` with the gateway's flags, `args`, and the device secret from the
/// environment: (exit code, stdout).
async fn cli(
    gw: &Gateway,
    dir: &Scratch,
    trust: &[&std::path::Path],
    args: &[&str],
) -> (i32, String) {
    let ca = dir.0.join("ca.pem");
    if !ca.exists() {
        std::fs::write(&ca, &gw.ca_pem).expect("ca");
    }
    let state = dir.0.join("device");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sekisho-device"));
    cmd.args([
        "--gateway",
        &gw.base,
        "--auth-id",
        AUTH_ID,
        "--unique-id",
        UNIQUE_ID,
    ])
    .arg("--ca")
    .arg(&ca)
    .arg("--state-dir")
    .arg(&state)
    .env("SEKISHO_DEVICE_SECRET", SECRET)
    .env_remove("SEKISHO_GATEWAY")
    .kill_on_drop(true);
    for t in trust {
        cmd.arg("--trust").arg(t);
    }
    let out = cmd.args(args).output().await.expect("run sekisho-device");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(SECRET), "the secret leaked: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn cli_updates_refuses_and_reports_exit_codes() {
    let gw = common::start().await;
    let dir = Scratch::new("cli");
    let key_path = dir.0.join("publisher.pem");
    // keygen writes the key (0600) and its public half as SPKI PEM.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sekisho-device"))
        .args(["keygen", "--out"])
        .arg(&key_path)
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{out:?}");
    let pub_path = key_path.with_extension("pub");
    let publisher = SigningKey::load(&key_path).expect("key");
    assert_eq!(
        PublicKey::load(&pub_path).expect("pub"),
        publisher.public_key()
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("keygen output");
    assert_eq!(shown["key_id"], publisher.public_key().key_id());

    let (code, _) = cli(&gw, &dir, &[&pub_path], &["update"]).await;
    assert_eq!(code, 0, "current");
    // The publisher signs a manifest file with the CLI; the envelope verifies with the library.
    let m = manifest(FIRMWARE, "1.4.3", 42);
    let manifest_path = dir.0.join("manifest.json");
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&m).expect("json"),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sekisho-device"))
        .args(["sign", "--key"])
        .arg(&key_path)
        .arg(&manifest_path)
        .output()
        .expect("sign");
    assert!(out.status.success(), "{out:?}");
    let envelope: SignedManifest = serde_json::from_slice(&out.stdout).expect("envelope");
    assert_eq!(
        sekisho_device::verify(&envelope, &[publisher.public_key()]),
        Ok(m.clone())
    );
    offer(&gw, &envelope, &m.artifact.sha256, FIRMWARE);
    let (code, stdout) = cli(&gw, &dir, &[&pub_path], &["update"]).await;
    assert_eq!(code, 0, "{stdout}");
    let shown: Value = serde_json::from_str(stdout.trim()).expect("update output");
    assert_eq!(
        (shown["update"].as_str(), shown["sequence"].as_u64()),
        (Some("applied"), Some(42))
    );
    let (code, _) = cli(&gw, &dir, &[&pub_path], &["update"]).await;
    assert_eq!(code, 2, "the same manifest again is a rollback");
    let reasons: Vec<Value> = results(&gw).iter().map(|r| r["reason"].clone()).collect();
    assert_eq!(reasons, vec![Value::Null, json!("rollback")]);

    let (code, _) = cli(&gw, &dir, &[&pub_path], &["report"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        gw.with(|g| g.states[0]["firmware_version"].clone()),
        "1.4.3"
    );

    // Usage errors: no trusted key for update, an unknown command, bad JSON.
    assert_eq!(cli(&gw, &dir, &[], &["update"]).await.0, 64);
    assert_eq!(cli(&gw, &dir, &[&pub_path], &["fly"]).await.0, 64);
    assert_eq!(
        cli(&gw, &dir, &[&pub_path], &["send", "{not json"]).await.0,
        64
    );
}

#[tokio::test]
async fn cli_run_updates_when_telemetry_carries_an_update_command() {
    let gw = common::start().await;
    let dir = Scratch::new("run");
    let pub_path = dir.0.join("trust.pub");
    std::fs::write(&pub_path, key(1).public_key().to_base64()).expect("pub");
    let m = manifest(FIRMWARE, "1.4.3", 42);
    let signed = sign(&m, &key(1));
    // The update is approved only once the device is running: the start-up check sees 204; the
    // command on the first telemetry answer triggers a check in the second round.
    gw.with(|g| {
        g.offer_after_telemetry = Some(serde_json::to_value(&signed).expect("json"));
        g.artifacts
            .insert(m.artifact.sha256.clone(), FIRMWARE.to_vec());
    });
    let (code, stdout) = cli(
        &gw,
        &dir,
        &[&pub_path],
        &[
            "run",
            "--every",
            "1",
            "--iterations",
            "2",
            "--telemetry",
            r#"{"temp": 20}"#,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("\"applied\""), "{stdout}");
    let (telemetry, states, results) =
        gw.with(|g| (g.telemetry.clone(), g.states.clone(), g.results.clone()));
    assert_eq!(telemetry[0], json!({"temp": 20, "seq": 1}));
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["status"], "applied");
    assert_eq!(
        states.last().expect("state reported")["firmware_version"],
        "1.4.3",
        "re-reported after the update"
    );
}
