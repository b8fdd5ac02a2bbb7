//! Update management end to end with the reference device client (`sekisho-update`): one approved
//! hash updates a whole field (V31) and each device is tracked until it reports the new version; a
//! tampered manifest, an artifact whose hash does not match and a replayed older manifest are refused
//! by the client and recorded by the gateway, and too many refusals halt the campaign.

mod common;

use common::{Admin, Gateway, TempDir, eventually};
use reqwest::Method;
use sekisho_device::{
    ClientConfig, Credentials, DeviceClient, DeviceState, PublicKey, UpdateError,
};
use serde_json::{Value, json};

struct Fleet {
    gw: Gateway,
    admin: Admin,
    fid: String,
    clients: Vec<(Value, DeviceClient)>,
    _dirs: Vec<TempDir>,
}

async fn fleet(tag: &str, n: usize) -> Fleet {
    let dir = TempDir::new(tag);
    let gw = Gateway::start_in(&dir.0);
    std::mem::forget(dir);
    let admin = gw.admin().await;
    let field = admin.field(tag).await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let ca = std::fs::read(gw.dir.join("tls/ca.crt")).unwrap();
    let mut clients = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..n {
        let uid = format!("{tag}-{i}");
        let reg = admin.device(&field, &uid).await;
        let state = TempDir::new(&uid);
        let mut cfg = ClientConfig::new(
            &format!("https://{}", gw.device),
            Credentials {
                auth_id: reg["auth_id"].as_str().unwrap().into(),
                auth_secret: reg["auth_secret"].as_str().unwrap().into(),
                unique_id: uid.clone(),
            },
            &state.0,
        );
        cfg.ca_pem = Some(ca.clone());
        let mut c = DeviceClient::new(cfg).unwrap();
        c.auth().await.unwrap();
        c.report_state(&running("1.4.2")).await.unwrap();
        clients.push((reg, c));
        dirs.push(state);
    }
    Fleet {
        gw,
        admin,
        fid,
        clients,
        _dirs: dirs,
    }
}

fn running(version: &str) -> DeviceState {
    serde_json::from_value(json!({"firmware_version": version, "processes": [{"name": "sensord", "path": "/usr/bin/sensord"}]})).unwrap()
}

impl Fleet {
    async fn trusted(&self) -> Vec<PublicKey> {
        let (s, k) = self.admin.get("/api/v1/update/keys").await;
        assert_eq!(s, 200, "{k}");
        vec![PublicKey::from_text(k["current"]["public_key"].as_str().unwrap()).unwrap()]
    }

    /// Uploads `bytes` as firmware `version`; returns its SHA-256.
    async fn upload(&self, version: &str, bytes: Vec<u8>) -> String {
        let r = self
            .admin
            .http
            .post(format!(
                "{}/api/v1/update/artifacts?kind=firmware&version={version}",
                self.admin.base
            ))
            .bearer_auth(&self.admin.token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn approve(&self, sha256: &str, max_failures: i64) -> Value {
        let (s, v) = self
            .admin
            .req(
                Method::PUT,
                &format!("/api/v1/fields/{}/update", self.fid),
                Some(json!({"kind": "firmware", "sha256": sha256, "max_failures": max_failures})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn campaign(&self) -> Value {
        let (_, v) = self
            .admin
            .get(&format!("/api/v1/fields/{}/update", self.fid))
            .await;
        v["items"][0].clone()
    }
}

fn firmware(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn one_approved_hash_updates_the_whole_field_and_old_manifests_are_refused() {
    let mut f = fleet("fleet", 3).await;
    let trusted = f.trusted().await;
    // 2 MB: larger than the admin API's usual body limit.
    let v143 = firmware(2 * 1024 * 1024, 1);
    let sha = f.upload("1.4.3", v143.clone()).await;
    f.approve(&sha, 0).await;

    let mut first = None;
    for (_, c) in f.clients.iter_mut() {
        let (s, commands) = c.send_telemetry(&json!({"seq": 1})).await.unwrap();
        assert_eq!(s, 202);
        assert!(
            sekisho_device::client::wants_update(&commands),
            "{commands:?}"
        );
        let signed = c
            .check_update()
            .await
            .unwrap()
            .expect("an update is offered");
        let applied = c
            .apply_update(
                &signed,
                &trusted,
                &mut sekisho_device::LocalState::load(c.state_dir()).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&applied.path).unwrap(),
            v143,
            "the artifact as approved"
        );
        c.report_state(&running("1.4.3")).await.unwrap();
        assert!(c.check_update().await.unwrap().is_none(), "current: 204");
        let (_, commands) = c.send_telemetry(&json!({"seq": 2})).await.unwrap();
        assert!(
            !sekisho_device::client::wants_update(&commands),
            "{commands:?}"
        );
        first.get_or_insert(signed);
    }
    let camp = f.campaign().await;
    assert_eq!(camp["counts"], json!({"confirmed": 3}), "{camp}");

    // A newer approval, applied by one device; then an attacker replays the older manifest to it.
    let sha144 = f.upload("1.4.4", firmware(4096, 2)).await;
    f.approve(&sha144, 0).await;
    let (_, c) = &mut f.clients[0];
    let signed = c.check_update().await.unwrap().unwrap();
    let mut local = sekisho_device::LocalState::load(c.state_dir()).unwrap();
    c.apply_update(&signed, &trusted, &mut local).await.unwrap();
    let replay = c
        .apply_update(first.as_ref().unwrap(), &trusted, &mut local)
        .await;
    assert!(
        matches!(replay, Err(UpdateError::Rollback { .. })),
        "{replay:?}"
    );
    let found = eventually(20, || async {
        let (_, v) = f
            .admin
            .get(&format!(
                "/api/v1/fields/{}/detections?rule=update.rejected",
                f.fid
            ))
            .await;
        v["items"].as_array()?.first().cloned()
    })
    .await
    .expect("the refusal is recorded as a detection");
    assert_eq!(found["evidence"]["reason"], "rollback", "{found}");

    // A configuration is rolled out the same way and confirmed by the device's configuration hash.
    let conf = b"interval = 300\nserver = gw.example\n".to_vec();
    let r = f
        .admin
        .http
        .post(format!(
            "{}/api/v1/update/artifacts?kind=config&version=cfg-7",
            f.admin.base
        ))
        .bearer_auth(&f.admin.token)
        .header("content-type", "application/octet-stream")
        .body(conf.clone())
        .send()
        .await
        .unwrap();
    let conf_sha = r.json::<Value>().await.unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = f
        .admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{}/update", f.fid),
            Some(json!({"kind": "config", "sha256": conf_sha})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, c) = &mut f.clients[1];
    let signed = c
        .check_update()
        .await
        .unwrap()
        .expect("the configuration is offered");
    let mut local = sekisho_device::LocalState::load(c.state_dir()).unwrap();
    let applied = c.apply_update(&signed, &trusted, &mut local).await.unwrap();
    assert_eq!(std::fs::read(&applied.path).unwrap(), conf);
    let mut state = running("1.4.3");
    state.config_hash = Some(format!("sha256:{conf_sha}"));
    c.report_state(&state).await.unwrap();
    let (_, camps) = f
        .admin
        .get(&format!("/api/v1/fields/{}/update", f.fid))
        .await;
    let cfg = camps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "config")
        .unwrap()
        .clone();
    assert_eq!(cfg["counts"]["confirmed"], 1, "{cfg}");
}

#[tokio::test]
async fn tampered_manifests_and_corrupt_artifacts_are_refused_recorded_and_halt_the_campaign() {
    let mut f = fleet("tamper", 3).await;
    let trusted = f.trusted().await;
    let sha = f.upload("2.0.0", firmware(10_000, 3)).await;
    f.approve(&sha, 2).await;

    // Device 0 gets a manifest altered on the way: the signature no longer matches.
    let (_, c) = &mut f.clients[0];
    let mut signed = c.check_update().await.unwrap().unwrap();
    signed.payload = signed.payload.replace("2.0.0", "2.0.1");
    let mut local = sekisho_device::LocalState::load(c.state_dir()).unwrap();
    let r = c.apply_update(&signed, &trusted, &mut local).await;
    assert!(matches!(r, Err(UpdateError::BadSignature)), "{r:?}");

    // Device 1 downloads an artifact that is not the approved one (corrupted in the store).
    std::fs::write(f.gw.dir.join("artifacts").join(&sha), firmware(10_000, 99)).unwrap();
    let (_, c) = &mut f.clients[1];
    let signed = c.check_update().await.unwrap().unwrap();
    let mut local = sekisho_device::LocalState::load(c.state_dir()).unwrap();
    let r = c.apply_update(&signed, &trusted, &mut local).await;
    assert!(matches!(r, Err(UpdateError::HashMismatch)), "{r:?}");
    assert!(local.version.is_none(), "nothing applied");

    let camp = f.campaign().await;
    let reasons: Vec<(&str, &str)> = camp["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "rejected")
        .map(|p| {
            (
                p["device_id"].as_str().unwrap(),
                p["reason"].as_str().unwrap(),
            )
        })
        .collect();
    let id = |i: usize| f.clients[i].0["id"].as_str().unwrap();
    assert!(reasons.contains(&(id(0), "bad_signature")), "{reasons:?}");
    assert!(reasons.contains(&(id(1), "hash_mismatch")), "{reasons:?}");
    // Two refusals reach the threshold: the campaign halts and the third device is not offered it.
    assert_eq!(camp["status"], "halted", "{camp}");
    let (_, c) = &mut f.clients[2];
    assert!(c.check_update().await.unwrap().is_none());
    let (_, commands) = c.send_telemetry(&json!({"seq": 1})).await.unwrap();
    assert!(!sekisho_device::client::wants_update(&commands));
    let rules = eventually(20, || async {
        let (_, v) = f
            .admin
            .get(&format!(
                "/api/v1/fields/{}/detections?rule=update.rejected",
                f.fid
            ))
            .await;
        Some(v["items"].as_array()?.len()).filter(|n| *n >= 2)
    })
    .await;
    assert_eq!(rules, Some(2), "one detection per refusing device");
}
