//! Device audit end to end: devices report their state with the reference device client
//! (`sekisho-update`), a baseline is learned from healthy ones and approved in one action (※5), then an
//! altered configuration (V27), an unknown process (V28) and a downgraded firmware (V30) are detected
//! and the administrator is mailed (a real aiosmtpd), with the device's self-report in the collected
//! information (V29).

mod common;

use common::smtp::{PASSWORD, SmtpServer, SmtpTls, USER};
use common::{Admin, Device, Gateway, TempDir, eventually};
use sekisho_device::{ClientConfig, Credentials, DeviceClient, DeviceState};
use serde_json::{Value, json};

/// Reports `state` with the reference client; `Ok` is the gateway's 202.
async fn report(c: &mut DeviceClient, state: Value) {
    let s: DeviceState = serde_json::from_value(state).unwrap();
    c.report_state(&s).await.unwrap();
}

/// A self-report; processes given by name run from /usr/bin.
fn state(fw: &str, cfg: &str, procs: Value) -> Value {
    let procs: Vec<Value> = procs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p {
            Value::String(n) => json!({"name": n, "path": format!("/usr/bin/{n}")}),
            other => {
                let mut o = other.clone();
                o["path"] = json!(format!("/opt/{}", o["name"].as_str().unwrap()));
                o
            }
        })
        .collect();
    json!({"firmware_version": fw, "config_hash": cfg, "processes": procs,
           "software": [{"name": "openssl", "version": "3.0.11"}], "facts": {"uptime": 100}})
}

/// What the device's latest report changed, as the gateway recorded it.
async fn changed(admin: &Admin, fid: &str, device: &Value) -> Value {
    let (_, h) = admin
        .get(&format!(
            "/api/v1/fields/{fid}/devices/{}/state",
            device["id"].as_str().unwrap()
        ))
        .await;
    h["items"][0]["changed"].clone()
}

async fn detections(admin: &Admin, fid: &str) -> Vec<Value> {
    let (_, v) = admin
        .get(&format!("/api/v1/fields/{fid}/detections?limit=100"))
        .await;
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_learned_baseline_catches_altered_config_unknown_processes_and_downgrades() {
    let tls = SmtpTls::new();
    let smtp = SmtpServer::start(&tls, None);
    let dir = TempDir::new("audit");
    common::init(&dir.0);
    std::fs::write(dir.0.join("smtp.password"), PASSWORD).unwrap();
    let smtp_cfg: toml::Table = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\nusername = \"{USER}\"\nca_file = \"{}\"\nfrom = \"Sekisho <gw@gateway.test>\"\n",
        smtp.port,
        tls.ca.display()
    ))
    .unwrap();
    common::configure(
        &dir.0,
        &[("response", "smtp", toml::Value::Table(smtp_cfg))],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("homes").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let (_, mut t) = admin.get("/api/v1/templates/generic").await;
    t["actions"] = json!({"hijacking": ["notify_admin", "collect_info"]});
    // The field's own audit logic: a device that says its debug port is open.
    t["scripts"] = json!([{"name": "debug_port", "on": "audit", "source":
        "function on_report(report, device, baseline)\n  if report.facts and report.facts.debug_port then\n    emit({threat = 'hijacking', severity = 'medium', summary = 'debug port open on ' .. device.unique_id})\n  end\nend"}]);
    admin
        .put_ok(&format!("/api/v1/fields/{fid}/template"), t)
        .await;
    admin
        .put_ok(
            &format!("/api/v1/fields/{fid}/notify"),
            json!({"admin_emails": ["ops@example.jp"], "language": "en"}),
        )
        .await;
    let ca = std::fs::read(gw.dir.join("tls/ca.crt")).unwrap();
    let mut devices = Vec::new();
    let mut state_dirs = Vec::new();
    for name in ["hub-1", "hub-2", "hub-3"] {
        let reg = admin.device(&field, name).await;
        let mut d = Device::new(&gw, &reg, name);
        d.auth().await;
        let dir = TempDir::new(name);
        let mut cfg = ClientConfig::new(
            &format!("https://{}", gw.device),
            Credentials {
                auth_id: reg["auth_id"].as_str().unwrap().into(),
                auth_secret: reg["auth_secret"].as_str().unwrap().into(),
                unique_id: name.into(),
            },
            &dir.0,
        );
        cfg.ca_pem = Some(ca.clone());
        let mut client = DeviceClient::new(cfg).unwrap();
        client.auth().await.unwrap();
        devices.push((reg, d, client));
        state_dirs.push(dir);
    }

    // Without a baseline, reports are stored and audited as such.
    report(
        &mut devices[0].2,
        state("1.4.2", "sha256:aa", json!(["sensord"])),
    )
    .await;
    assert_eq!(
        changed(&admin, &fid, &devices[0].0).await,
        json!(["first_report"])
    );

    // ※5: learn from healthy devices, then approve the proposal in one action.
    let (s, l) = admin
        .post(
            &format!("/api/v1/fields/{fid}/baseline/learn"),
            json!({"duration": "1h"}),
        )
        .await;
    assert_eq!(s, 200, "{l}");
    let healthy = [
        state("1.4.2", "sha256:aa", json!(["sensord", "uplinkd"])),
        state(
            "1.4.2",
            "sha256:aa",
            json!(["sensord", {"name": "ntpd", "publisher": "Acme"}]),
        ),
        state("1.4.2", "sha256:aa", json!(["sensord", "uplinkd"])),
    ];
    for ((_, _, c), s) in devices.iter_mut().zip(&healthy) {
        report(c, s.clone()).await;
    }
    let (_, p) = admin
        .get(&format!("/api/v1/fields/{fid}/baseline/proposal"))
        .await;
    assert_eq!(p["devices"], 3, "{p}");
    assert_eq!(
        p["proposal"]["processes"],
        json!(["ntpd", "sensord", "uplinkd"]),
        "{p}"
    );
    assert_eq!(p["proposal"]["publishers"], json!(["Acme"]));
    assert_eq!(p["proposal"]["config_hash"], "sha256:aa");
    let (s, b) = admin
        .post(
            &format!("/api/v1/fields/{fid}/baseline/proposal/approve"),
            json!({}),
        )
        .await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(1)), "{b}");
    assert!(
        detections(&admin, &fid).await.is_empty(),
        "learning judges nothing"
    );

    // V27, V28 (and the lower finding for a trusted publisher), V30.
    report(
        &mut devices[0].2,
        state("1.4.2", "sha256:EVIL", json!(["sensord", "uplinkd"])),
    )
    .await;
    assert_eq!(
        changed(&admin, &fid, &devices[0].0).await,
        json!(["config_hash"])
    );
    report(
        &mut devices[1].2,
        state(
            "1.4.2",
            "sha256:aa",
            json!(["sensord", "xmrig", {"name": "acme-agent", "publisher": "Acme"}]),
        ),
    )
    .await;
    report(
        &mut devices[2].2,
        state("1.3.0", "sha256:aa", json!(["sensord"])),
    )
    .await;
    let found = eventually(20, || async {
        let d = detections(&admin, &fid).await;
        (d.len() >= 4).then_some(d)
    })
    .await
    .expect("four audit findings");
    let by = |rule: &str| {
        found
            .iter()
            .find(|d| d["rule"] == rule)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let ids: Vec<Value> = devices.iter().map(|d| d.0["id"].clone()).collect();
    let id = |i: usize| ids[i].clone();
    let cfg = by("audit.config_mismatch");
    assert_eq!(
        (cfg["device_id"].clone(), cfg["severity"].clone()),
        (id(0), json!("high"))
    );
    assert_eq!(by("audit.unknown_process")["device_id"], id(1));
    assert!(
        by("audit.unknown_process")["summary"]
            .as_str()
            .unwrap()
            .contains("xmrig")
    );
    assert_eq!(by("audit.unlisted_signed_process")["severity"], "low");
    assert_eq!(by("audit.firmware_downgrade")["device_id"], id(2));
    assert!(found.iter().all(|d| d["threat"] == "hijacking"));

    // The administrator is notified — once per device and incident: hub-2's two findings are one
    // incident — with the device's information collected (V29).
    let mails = eventually(30, || async { Some(smtp.mails()).filter(|m| m.len() >= 3) })
        .await
        .expect("a mail per device");
    assert!(mails.iter().any(|m| {
        m["text"]
            .as_str()
            .unwrap()
            .contains("audit.config_mismatch")
    }));
    let dev0 = id(0);
    let rpath = format!(
        "/api/v1/fields/{fid}/devices/{}/reports",
        dev0.as_str().unwrap()
    );
    let rid = eventually(20, || async {
        let (_, r) = admin.get(&rpath).await;
        r["items"].as_array()?.first()?["id"].as_i64()
    })
    .await
    .unwrap();
    let (_, r) = admin.get(&format!("{rpath}/{rid}")).await;
    assert_eq!(
        r["self_report"]["report"]["config_hash"], "sha256:EVIL",
        "{r}"
    );

    // History: every report with what changed, every audit run.
    let (_, h) = admin
        .get(&format!(
            "/api/v1/fields/{fid}/devices/{}/state",
            dev0.as_str().unwrap()
        ))
        .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3, "{h}");
    let (_, runs) = admin.get(&format!("/api/v1/fields/{fid}/audit-runs")).await;
    let outcomes: Vec<&str> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "learning").count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "findings").count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.last(), Some(&"no_baseline"));

    // The field's audit script judges what the built-in checks do not know.
    let mut open = state("1.4.2", "sha256:aa", json!(["sensord"]));
    open["facts"] = json!({"debug_port": true});
    report(&mut devices[2].2, open).await;
    let script = eventually(20, || async {
        let d = detections(&admin, &fid).await;
        d.into_iter().find(|d| d["rule"] == "script.debug_port")
    })
    .await
    .expect("the audit script's finding");
    assert_eq!(script["device_id"], id(2));

    // A new baseline re-judges every device's latest report at once.
    admin
        .put_ok(
            &format!("/api/v1/fields/{fid}/baseline"),
            json!({"config_hash": "sha256:zz"}),
        )
        .await;
    let (_, runs) = admin.get(&format!("/api/v1/fields/{fid}/audit-runs")).await;
    let rebaselined = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "baseline" && r["outcome"] == "findings")
        .count();
    assert_eq!(rebaselined, 3, "{runs}");

    // A quarantined device still reports its state; its data is refused.
    let (s, v) = admin
        .post(
            &format!(
                "/api/v1/fields/{fid}/devices/{}/actions",
                dev0.as_str().unwrap()
            ),
            json!({"action": "quarantine"}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("done")), "{v}");
    assert_eq!(
        devices[0].1.send(json!({"seq": 1})).await.1["error"],
        "device_quarantined"
    );
    report(
        &mut devices[0].2,
        state("1.4.2", "sha256:aa", json!(["sensord"])),
    )
    .await;
}
