//! The admin API speaks one style (docs/api.md). A gateway is given something to show on every
//! endpoint — a field with a cloud that is down, a device with a SIM, messages, a detection with its
//! decision, actions and collected report, self-reports, audit runs, baselines, a learning period, a
//! campaign — then every GET path of the published OpenAPI document is called, and each answer is
//! checked by `common::style` (as every answer the other tests read is): lists are `{items,
//! next_before}`, times RFC 3339 under `*_at` names, no JSON text inside strings.

mod common;

use common::style::problems;
use common::{Device, Gateway, TempDir, eventually};
use reqwest::Method;
use serde_json::{Value, json};

#[test]
fn the_style_check_finds_each_kind_of_break() {
    let ok = json!({"items": [], "next_before": null, "created_at": "2026-11-25T13:00:00Z"});
    assert!(problems(&ok).is_empty());
    for bad in [
        json!([]),
        json!({"items": []}),
        json!({"x": {"created_at": 1795611600000i64}}),
        json!({"at": "2026-11-25T13:00:00Z"}),
        json!({"input": "{\"a\": 1}"}),
        json!({"rules": "[]"}),
    ] {
        assert_eq!(problems(&bad).len(), 1, "{bad}");
    }
    assert!(problems(&json!({"summary": "42", "note": "[x"})).is_empty());
}

/// A self-report as the device API takes it.
fn state(config_hash: &str) -> Value {
    json!({"firmware_version": "1.4.2", "config_hash": config_hash,
           "processes": [{"name": "sensord", "path": "/usr/bin/sensord"}],
           "software": [{"name": "openssl", "version": "3.0.11"}], "facts": {"uptime": 100}})
}

#[tokio::test]
async fn every_documented_answer_follows_the_api_style() {
    let dir = TempDir::new("style");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("style").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let put = |path: String, body: Value| {
        let admin = admin.clone();
        async move {
            let (s, v) = admin.req(Method::PUT, &path, Some(body)).await;
            assert_eq!(s, 200, "{path}: {v}");
            v
        }
    };

    // A message larger than the template allows is a hijacking: its report is collected.
    let (_, mut t) = admin.get("/api/v1/templates/generic").await;
    t["size"]["max_bytes"] = 300.into();
    t["actions"] = json!({"hijacking": ["collect_info", "notify_admin"]});
    put(format!("/api/v1/fields/{fid}/template"), t).await;
    // Nothing listens there: messages stay pending (the outbox has an oldest pending message).
    put(
        format!("/api/v1/fields/{fid}/cloud"),
        json!({"url": "http://127.0.0.1:9/ingest"}),
    )
    .await;
    let (s, reg) = admin
        .post(
            &format!("/api/v1/fields/{fid}/devices"),
            json!({"unique_id": "car-7", "sim": {"imsi": "440100000000077"}}),
        )
        .await;
    assert_eq!(s, 201, "{reg}");
    let did = reg["id"].as_str().unwrap().to_owned();
    let mut dev = Device::new(&gw, &reg, "car-7");
    dev.auth().await;
    let body = json!({"seq": 1, "ts": 1795600800000i64, "t": 20.5});
    assert_eq!(dev.send(body).await.0, 202);
    let oversized = json!({"seq": 2, "blob": "x".repeat(600)});
    assert_eq!(dev.send(oversized).await.0, 202);

    // Self-reports: one without a baseline, one while learning; baselines for the field and device.
    let report =
        |h: &str| dev.send_raw("/v1/device/state", "application/json", state(h).to_string());
    assert_eq!(report("sha256:aa").await.0, 202);
    let (s, v) = admin
        .post(
            &format!("/api/v1/fields/{fid}/baseline/learn"),
            json!({"duration": "1h"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(report("sha256:bb").await.0, 202);
    put(
        format!("/api/v1/fields/{fid}/baseline"),
        json!({"config_hash": "sha256:aa"}),
    )
    .await;
    put(
        format!("/api/v1/fields/{fid}/devices/{did}/baseline"),
        json!({"processes": ["sensord"]}),
    )
    .await;

    // A campaign with the device's progress.
    let r = admin
        .http
        .post(format!(
            "{}/api/v1/update/artifacts?kind=firmware&version=1.5.0",
            admin.base
        ))
        .bearer_auth(&admin.token)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 64])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sha256 = r.json::<Value>().await.unwrap()["sha256"].clone();
    put(
        format!("/api/v1/fields/{fid}/update"),
        json!({"kind": "firmware", "sha256": sha256}),
    )
    .await;

    let reports = format!("/api/v1/fields/{fid}/devices/{did}/reports");
    let rid = eventually(30, || async {
        let (_, v) = admin.get(&reports).await;
        v["items"].as_array()?.first()?["id"].as_i64()
    })
    .await
    .expect("the device's information is collected");
    let settled = eventually(30, || async {
        let (_, v) = admin
            .get(&format!("/api/v1/response/actions?device={did}"))
            .await;
        let items = v["items"].as_array()?.clone();
        let busy = items
            .iter()
            .any(|a| matches!(a["state"].as_str(), Some("pending" | "running")));
        (items.len() >= 2 && !busy).then_some(items)
    })
    .await;
    assert!(settled.is_some(), "the response's actions end");

    // Every GET the OpenAPI document lists.
    let (s, doc) = admin.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_none() || !common::style::applies_to(path) {
            continue;
        }
        let url = path
            .replace("{field}", &fid)
            .replace("{device}", &did)
            .replace("{name}", "generic")
            .replace("{id}", &rid.to_string());
        assert!(
            !url.contains('{'),
            "a path parameter this test does not fill: {path}"
        );
        let (s, v) = admin.get(&url).await;
        // Without a carrier API the carrier cannot be asked; every other answer has content.
        let want = if path.ends_with("/sim/carrier") {
            409
        } else {
            200
        };
        assert_eq!(s, want, "{url}: {v}");
        checked.push(path.clone());
    }
    assert!(checked.len() >= 35, "{checked:?}");
}
