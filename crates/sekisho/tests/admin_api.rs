//! The admin API: V06 (register and delete from the management function), roles and field scoping,
//! login throttling, history search, status, metrics, OpenAPI, error format; device mTLS.

mod common;

use common::{ADMIN_PASSWORD, Device, Gateway, TempDir};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn v06_devices_are_registered_listed_inspected_and_deleted() {
    let dir = TempDir::new("v06");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("education").await;
    let fid = field["id"].as_str().unwrap();
    let body = json!({"unique_id": "student-0042", "name": "Chromebook 42", "critical": true,
                      "sim": {"imsi": "440101111111111", "iccid": "8981100000000000001", "msisdn": "+819011112222"}});
    let (s, reg) = admin
        .post(&format!("/api/v1/fields/{fid}/devices"), body.clone())
        .await;
    assert_eq!(s, 201, "{reg}");
    assert_eq!(reg["device"]["critical"], true);
    assert_eq!(reg["device"]["sim"]["iccid"], "8981100000000000001");
    assert!(reg["auth_secret"].as_str().unwrap().len() >= 43);
    // The same unique id twice in a field: 409.
    let (s, v) = admin
        .post(&format!("/api/v1/fields/{fid}/devices"), body)
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")));
    // Bad input: every problem listed at once.
    let (s, v) = admin
        .post(
            &format!("/api/v1/fields/{fid}/devices"),
            json!({"unique_id": "has space", "sim": {"imsi": "12x"}}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("unique_id") && msg.contains("imsi"), "{msg}");

    let (_, list) = admin.get(&format!("/api/v1/fields/{fid}/devices")).await;
    assert_eq!(list["total"], 1);
    let did = reg["id"].as_str().unwrap();
    let mut dev = Device::new(&gw, &reg, "student-0042");
    dev.auth().await;
    assert_eq!(dev.send(json!({"page": "/lesson/3"})).await.0, 202);
    let (s, detail) = admin
        .get(&format!("/api/v1/fields/{fid}/devices/{did}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(detail["device"]["name"], "Chromebook 42");
    assert_eq!(detail["recent_messages"].as_array().unwrap().len(), 1);
    assert_eq!(detail["recent_auth_attempts"][0]["outcome"], "success");
    assert!(
        detail
            .to_string()
            .find(reg["auth_secret"].as_str().unwrap())
            .is_none(),
        "the secret never comes back"
    );

    let (s, _) = admin
        .req(
            Method::DELETE,
            &format!("/api/v1/fields/{fid}/devices/{did}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, list) = admin.get(&format!("/api/v1/fields/{fid}/devices")).await;
    assert_eq!(list["total"], 0);
    // History keeps what the device did.
    let (_, h) = admin
        .get(&format!("/api/v1/history/messages?device={did}"))
        .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn roles_scope_what_each_user_sees_and_changes() {
    let dir = TempDir::new("roles");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let cars = admin.field("cars").await;
    let home = admin.field("home").await;
    let (cid, hid) = (cars["id"].as_str().unwrap(), home["id"].as_str().unwrap());
    for (u, role, fields) in [
        ("alice", "field_admin", json!([cid])),
        ("sam", "analyst", json!([])),
    ] {
        let (s, v) = admin.post("/api/v1/users", json!({"username": u, "password": "a-long-enough-pass", "role": role, "fields": fields})).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = admin
        .post(
            "/api/v1/users",
            json!({"username": "bob", "password": "short", "role": "field_admin"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["message"].as_str().unwrap().contains("12 characters")
            && v["message"]
                .as_str()
                .unwrap()
                .contains("at least one field")
    );

    let session = |name: &str| {
        let gw = &gw;
        let name = name.to_owned();
        async move {
            let r = gw.login(&name, "a-long-enough-pass").await;
            assert_eq!(r.status(), 200);
            common::Admin {
                base: format!("https://{}", gw.admin),
                token: r.json::<Value>().await.unwrap()["token"]
                    .as_str()
                    .unwrap()
                    .into(),
                http: gw.http.clone(),
            }
        }
    };
    let alice = session("alice").await;
    let sam = session("sam").await;

    // alice sees and manages cars only; home does not exist for her.
    let (_, fields) = alice.get("/api/v1/fields").await;
    assert_eq!(fields["items"].as_array().unwrap().len(), 1);
    assert_eq!(alice.get(&format!("/api/v1/fields/{hid}")).await.0, 404);
    assert_eq!(
        alice
            .post(
                &format!("/api/v1/fields/{hid}/devices"),
                json!({"unique_id": "x"})
            )
            .await
            .0,
        404
    );
    assert_eq!(
        alice
            .post(
                &format!("/api/v1/fields/{cid}/devices"),
                json!({"unique_id": "CAR-A"})
            )
            .await
            .0,
        201
    );
    assert_eq!(
        alice
            .post("/api/v1/fields", json!({"name": "mine"}))
            .await
            .0,
        403
    );
    assert_eq!(alice.get("/api/v1/system/status").await.0, 403);
    assert_eq!(alice.get("/api/v1/history/security").await.0, 403);
    assert_eq!(
        alice
            .get(&format!("/api/v1/history/messages?field={hid}"))
            .await
            .0,
        404
    );

    // sam reads everything, changes nothing.
    let (_, fields) = sam.get("/api/v1/fields").await;
    assert_eq!(fields["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        sam.post(
            &format!("/api/v1/fields/{hid}/devices"),
            json!({"unique_id": "y"})
        )
        .await
        .0,
        403
    );
    assert_eq!(sam.get("/api/v1/system/status").await.0, 200);
    assert_eq!(sam.get("/api/v1/users").await.0, 403);

    // History is scoped the same way: alice never sees home's messages.
    let reg = admin.device(&home, "HOME-1").await;
    let mut d = Device::new(&gw, &reg, "HOME-1");
    d.auth().await;
    assert_eq!(d.send(json!({"t": 20})).await.0, 202);
    let (_, mine) = alice.get("/api/v1/history/messages").await;
    assert!(mine["items"].as_array().unwrap().is_empty(), "{mine}");
    let (_, all) = sam.get("/api/v1/history/messages").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let (_, auth) = alice.get("/api/v1/history/auth").await;
    assert!(auth["items"].as_array().unwrap().is_empty());

    // Logging out ends the session.
    let (s, _) = alice.post("/api/v1/logout", json!({})).await;
    assert_eq!(s, 204);
    assert_eq!(alice.get("/api/v1/me").await.0, 401);
}

#[tokio::test]
async fn logins_are_throttled_and_errors_are_json() {
    let dir = TempDir::new("login");
    let gw = Gateway::start_in(&dir.0);
    for _ in 0..5 {
        let r = gw.login("admin", "wrong-password-123").await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    // Locked now, even with the right password.
    let r = gw.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Another user name is not locked (unknown users answer like wrong passwords).
    assert_eq!(gw.login("nobody", "whatever-password").await.status(), 401);

    let h = &gw.http;
    let r = h.get(gw.aurl("/api/v1/fields")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = h
        .post(gw.aurl("/api/v1/login"))
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap()["error"].clone()
        ),
        (400, json!("malformed_json"))
    );
    let r = h
        .post(gw.aurl("/api/v1/login"))
        .json(&json!({"username": "a", "password": "b", "extra": 1}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("extra"), "{v}");
    let r = h
        .post(gw.aurl("/api/v1/login"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = h.get(gw.aurl("/api/v1/nope")).send().await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap()["error"].clone()
        ),
        (404, json!("not_found"))
    );
}

#[tokio::test]
async fn history_pages_and_filters_status_metrics_and_openapi() {
    let dir = TempDir::new("history");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    let reg = admin.device(&field, "CAR-H").await;
    let mut d = Device::new(&gw, &reg, "CAR-H");
    d.auth().await;
    for i in 0..25 {
        assert_eq!(
            d.send(json!({"seq": i, "ts": "2026-11-25T10:00:00Z"}))
                .await
                .0,
            202
        );
    }
    assert_eq!(
        d.send_raw("/v1/telemetry", "application/json", "{oops")
            .await
            .0,
        400
    );

    // Paging newest first with a cursor, through every row exactly once.
    let mut seen = Vec::new();
    let mut path = "/api/v1/history/messages?limit=10&outcome=accepted".to_owned();
    loop {
        let (s, page) = admin.get(&path).await;
        assert_eq!(s, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["device_seq"].as_i64().unwrap()),
        );
        match page["next_before"].as_i64() {
            Some(c) => {
                path = format!("/api/v1/history/messages?limit=10&outcome=accepted&before={c}")
            }
            None => break,
        }
    }
    assert_eq!(seen, (0..25).rev().collect::<Vec<_>>());
    let (_, m) = admin.get("/api/v1/history/messages?limit=1").await;
    let first = &m["items"][0];
    assert_eq!(
        (first["outcome"].as_str(), first["reason"].as_str()),
        (Some("rejected"), Some("malformed_json"))
    );
    let (_, m) = admin
        .get("/api/v1/history/messages?limit=1&outcome=accepted")
        .await;
    assert_eq!(m["items"][0]["device_time_at"], "2026-11-25T10:00:00Z");
    let id = m["items"][0]["id"].as_str().unwrap();
    let body = gw
        .http
        .get(gw.aurl(&format!("/api/v1/history/messages/{id}/body")))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        body.json::<Value>().await.unwrap(),
        json!({"seq": 24, "ts": "2026-11-25T10:00:00Z"})
    );
    let (_, none) = admin
        .get("/api/v1/history/messages?until=2020-01-01T00:00:00Z")
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (s, bad) = admin.get("/api/v1/history/messages?since=yesterday").await;
    assert_eq!((s, bad["error"].as_str()), (400, Some("invalid_request")));

    let (s, st) = admin.get("/api/v1/system/status").await;
    assert_eq!(s, 200);
    assert_eq!(
        (st["fields"].as_i64(), st["devices"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(st["messages_accepted"], 25);
    assert_eq!(st["messages_rejected"], 1);
    assert_eq!(st["outbox"]["pending"], 25);
    assert!(st["store"]["commits"].as_i64().unwrap() >= 1);
    assert!(st["store"]["file_bytes"].as_i64().unwrap() > 0);
    // 25 accepted and 1 refused message are in the log; the history had them all before answering.
    let log = &st["log"];
    assert_eq!(
        (log["durable_offset"].as_i64(), log["index_lag"].as_i64()),
        (Some(26), Some(0))
    );
    assert_eq!(log["indexed_offset"], 26);
    assert!(log["syncs"].as_i64().unwrap() >= 1 && log["file_bytes"].as_i64().unwrap() > 0);
    assert_eq!(
        (log["failures"].as_i64(), log["damage_at_open"].as_i64()),
        (Some(0), Some(0))
    );

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("\nsekisho_messages_accepted_total 25\n"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE sekisho_devices gauge"));
    assert!(
        gw.metric("received_published_total").await >= 25,
        "every stored message went to detection"
    );
    // Every metric is documented.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md"),
    )
    .unwrap();
    for name in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = name.split(' ').next().unwrap();
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is missing from docs/api.md"
        );
    }
    assert!(
        !metrics.contains(reg["id"].as_str().unwrap()),
        "no device ids in metrics"
    );

    for (url, paths) in [
        (
            gw.aurl("/api/v1/openapi.json"),
            vec![
                "/api/v1/login",
                "/api/v1/fields/{field}/devices",
                "/api/v1/history/messages",
                "/api/v1/system/status",
            ],
        ),
        (
            gw.durl("/v1/openapi.json"),
            vec!["/v1/auth/token", "/v1/telemetry", "/v1/telemetry/batch"],
        ),
    ] {
        let doc: Value = gw.http.get(url).send().await.unwrap().json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for p in paths {
            assert!(
                doc["paths"].get(p).is_some(),
                "{p} missing from the OpenAPI document"
            );
        }
    }
}

#[tokio::test]
async fn certificate_fields_authenticate_devices_by_mtls() {
    let dir = TempDir::new("mtls");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let (s, field) = admin
        .post(
            "/api/v1/fields",
            json!({"name": "meters", "auth_mode": "certificate"}),
        )
        .await;
    assert_eq!(s, 201);
    let fid = field["id"].as_str().unwrap();
    let reg = admin.device(&field, "METER-1").await;
    let did = reg["id"].as_str().unwrap();
    let (s, cert) = admin
        .post(
            &format!("/api/v1/fields/{fid}/devices/{did}/certificate"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{cert}");
    let (s, detail) = admin
        .get(&format!("/api/v1/fields/{fid}/devices/{did}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(detail["device"]["certificate_sha256"], cert["sha256"]);

    // The secret alone is not enough in a certificate field.
    let mut plain = Device::new(&gw, &reg, "METER-1");
    let (s, _) = plain
        .request_token(&plain.auth_id, &plain.secret, "METER-1")
        .await;
    assert_eq!(s, 401);

    // With the certificate, an empty token request authenticates the device.
    let http = common::client(
        &dir.0,
        Some((
            cert["certificate_pem"].as_str().unwrap(),
            cert["private_key_pem"].as_str().unwrap(),
        )),
    );
    let r = http
        .post(gw.durl("/v1/auth/token"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(tok["device_id"], did);
    let mut dev = Device::new(&gw, &reg, "METER-1");
    dev.http = http;
    dev.token = tok["access_token"].as_str().unwrap().into();
    dev.device_id = did.into();
    assert_eq!(dev.send(json!({"kwh": 12.5})).await.0, 202);

    // The same token over a connection without the certificate is refused.
    plain.token = dev.token.clone();
    plain.device_id = did.into();
    let (s, v) = plain.send(json!({"kwh": 13})).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("certificate_required"))
    );

    // A certificate from another CA does not even complete the handshake.
    let rogue = sekisho_registry::pki::Ca::generate("rogue").unwrap();
    let (rc, rk) = rogue.issue(did, &[did.to_owned()], true).unwrap();
    let rogue_http = common::client(&dir.0, Some((&rc, &rk)));
    assert!(
        rogue_http
            .post(gw.durl("/v1/auth/token"))
            .json(&json!({}))
            .send()
            .await
            .is_err()
    );
    let (_, auth) = admin.get("/api/v1/history/auth?outcome=success").await;
    assert_eq!(auth["items"][0]["method"], "certificate");
}

#[tokio::test]
async fn device_inspect_shows_the_latest_self_report_and_audit() {
    let dir = TempDir::new("inspect");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("homes").await;
    let fid = field["id"].as_str().unwrap();
    let reg = admin.device(&field, "hub-9").await;
    let path = format!(
        "/api/v1/fields/{fid}/devices/{}",
        reg["id"].as_str().unwrap()
    );
    // Before the first report: both there, both null.
    let (s, v) = admin.get(&path).await;
    assert_eq!(s, 200, "{v}");
    let keys = v.as_object().unwrap();
    assert!(
        keys.contains_key("latest_report") && keys.contains_key("latest_audit"),
        "{v}"
    );
    assert_eq!(
        (&v["latest_report"], &v["latest_audit"]),
        (&Value::Null, &Value::Null)
    );

    let mut dev = Device::new(&gw, &reg, "hub-9");
    dev.auth().await;
    let report = |hash: &str| {
        json!({"firmware_version": "1.4.2", "config_hash": hash,
               "processes": [{"name": "sensord", "path": "/usr/bin/sensord"}]})
        .to_string()
    };
    let send = |body: String| dev.send_raw("/v1/device/state", "application/json", body);
    assert_eq!(send(report("sha256:aa")).await.0, 202);
    let (_, v) = admin.get(&path).await;
    assert_eq!(
        v["latest_report"]["report"]["config_hash"], "sha256:aa",
        "{v}"
    );
    assert_eq!(v["latest_report"]["changed"], json!(["first_report"]));
    assert_eq!(
        (&v["latest_audit"]["trigger"], &v["latest_audit"]["outcome"]),
        (&json!("report"), &json!("no_baseline")),
        "{v}"
    );

    // A baseline the report breaks: the re-audit is the latest, with what it found.
    let (s, b) = admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{fid}/baseline"),
            Some(json!({"config_hash": "sha256:zz"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, v) = admin.get(&path).await;
    let audit = &v["latest_audit"];
    assert_eq!(
        (&audit["trigger"], &audit["outcome"]),
        (&json!("baseline"), &json!("findings")),
        "{v}"
    );
    let found = &audit["findings"][0];
    assert_eq!(
        (&found["rule"], &found["severity"]),
        (&json!("audit.config_mismatch"), &json!("high")),
        "{v}"
    );
    assert_eq!(found["evidence"]["config_hash"], "sha256:aa", "{v}");

    // The next report is the latest one, with what changed, and audits clean.
    assert_eq!(send(report("sha256:zz")).await.0, 202);
    let (_, v) = admin.get(&path).await;
    assert_eq!(v["latest_report"]["changed"], json!(["config_hash"]), "{v}");
    assert_eq!(v["latest_audit"]["outcome"], "clean", "{v}");
    assert_eq!(v["latest_audit"]["findings"], json!([]));
}

/// Writes the metrics token file with `mode`.
fn token_file(dir: &std::path::Path, token: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("metrics.token");
    std::fs::write(&p, token).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    common::configure(
        dir,
        &[("admin", "metrics_token_file", "metrics.token".into())],
    );
}

#[tokio::test]
async fn metrics_can_be_put_behind_a_bearer_token() {
    let dir = TempDir::new("metrics-token");
    common::init(&dir.0);
    // A token file others may read is a configuration problem: exit 64 before any port opens.
    token_file(&dir.0, "scrape-token-0123456789", 0o644);
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(&dir.0)
        .args([
            "--device-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("admin.metrics_token_file") && err.contains("0600"),
        "{err}"
    );

    token_file(&dir.0, "scrape-token-0123456789\n", 0o600);
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let scrape = |auth: Option<&str>| {
        let mut r = gw.http.get(gw.aurl("/metrics"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Not a session token either: the scraper's token is its own.
    let session = format!("Bearer {}", admin.token);
    for refused in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(session.as_str()),
    ] {
        let (s, body) = scrape(refused).await;
        assert_eq!(s, 401, "{refused:?}: {body}");
        assert!(body.contains("\"error\":\"unauthorized\""), "{body}");
    }
    let (s, body) = scrape(Some("Bearer scrape-token-0123456789")).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("# TYPE sekisho_messages_accepted_total counter"),
        "{body}"
    );
    assert!(
        !gw.log_text().contains("scrape-token-0123456789"),
        "the token is never logged"
    );
}
