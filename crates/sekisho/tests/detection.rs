//! Threat detection against the real gateway: the trial's checks V12-V18 and V21-V24 with short windows
//! set through the template API, the underground car park (※1: no theft, no hijacking), and a real
//! takeover in the same sequence (detected). Silence (V14) and low rates (V15) run the gateway in
//! this process on a clock the test moves, with the shipped windows.

mod common;

use common::{Admin, Device, Gateway, TempDir, eventually, now_ms};
use reqwest::Method;
use sekisho_core::ManualClock;
use serde_json::{Value, json};
use std::time::Duration;

/// A field running `template` (a library name), without quiet hours, with `change` applied to its JSON.
async fn field_with(
    admin: &Admin,
    name: &str,
    template: &str,
    change: impl FnOnce(&mut Value),
) -> Value {
    let field = admin.field(name).await;
    let (s, mut t) = admin.get(&format!("/api/v1/templates/{template}")).await;
    assert_eq!(s, 200, "{t}");
    // Quiet hours would make every success at night a detection: only the test about them sets them.
    t["auth"]["quiet_hours"] = Value::Null;
    // These tests judge detection alone; what the response does is tested in response.rs.
    t["actions"] = json!({});
    t["playbook"] = json!([]);
    change(&mut t);
    let (s, v) = admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{}/template", field["id"].as_str().unwrap()),
            Some(t),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    field
}

async fn device(gw: &Gateway, admin: &Admin, field: &Value, unique: &str) -> Device {
    let reg = admin.device(field, unique).await;
    let mut d = Device::new(gw, &reg, unique);
    d.auth().await;
    d
}

/// Waits for a detection of `rule` (for `device`, if given) and returns it.
async fn detected(admin: &Admin, field: &Value, rule: &str, device: Option<&str>) -> Value {
    let fid = field["id"].as_str().unwrap();
    let path = match device {
        Some(d) => format!("/api/v1/fields/{fid}/detections?rule={rule}&device={d}"),
        None => format!("/api/v1/fields/{fid}/detections?rule={rule}"),
    };
    eventually(30, || async {
        let (_, v) = admin.get(&path).await;
        v["items"].as_array().and_then(|a| a.first().cloned())
    })
    .await
    .unwrap_or_else(|| panic!("no {rule} detection"))
}

async fn rules_of(admin: &Admin, field: &Value) -> Vec<String> {
    let (_, v) = admin
        .get(&format!(
            "/api/v1/fields/{}/detections?limit=100",
            field["id"].as_str().unwrap()
        ))
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap().to_owned())
        .collect()
}

const MIN: i64 = 60_000;

/// V14 with the shipped smart-home windows (15 min, 1 h, 6 h), on a gateway whose clock the test
/// moves: each step fires when the gateway's time passes it, and not before, with no waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v14_silence_steps_follow_the_gateway_clock() {
    let dir = TempDir::new("v14-clock");
    let clock = ManualClock::new(now_ms());
    let gw = Gateway::in_process(&dir.0, clock.clone()).await;
    let admin = gw.admin().await;
    let field = field_with(&admin, "home", "smart-home", |_| {}).await;
    let regime = {
        let (_, t) = admin
            .get(&format!(
                "/api/v1/fields/{}/template",
                field["id"].as_str().unwrap()
            ))
            .await;
        t["template"]["regimes"]["normal"].clone()
    };
    assert_eq!(
        (
            regime["silence_notice"].as_str(),
            regime["silence_warning"].as_str(),
            regime["silence_theft"].as_str()
        ),
        (Some("15m"), Some("1h"), Some("6h")),
        "the shipped windows: {regime}"
    );
    let d = device(&gw, &admin, &field, "HUB-QUIET").await;
    assert_eq!(d.send(json!({"temp": 21})).await.0, 202);
    let silence_rules = || async {
        let mut r = rules_of(&admin, &field).await;
        r.retain(|x| x.starts_with("silence."));
        r.sort();
        r
    };
    // 14 minutes of the gateway's time: the silence worker wakes once on it (its 1 s sleep is on the
    // same clock) and must find nothing. The wall-time pause only gives that one pass time to run.
    clock.advance(Duration::from_secs(14 * 60));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(silence_rules().await.is_empty());
    for (by_secs, step) in [
        (2 * 60, "silence.notice"),
        (45 * 60, "silence.warning"),
        (5 * 3600, "silence.theft"),
    ] {
        clock.advance(Duration::from_secs(by_secs));
        detected(&admin, &field, step, Some(&d.device_id)).await;
    }
    assert_eq!(
        silence_rules().await,
        ["silence.notice", "silence.theft", "silence.warning"],
        "each step once"
    );
    let (_, v) = admin
        .get(&format!(
            "/api/v1/fields/{}/detections?rule=silence.theft",
            field["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        v["items"][0]["evidence"]["silent_secs"].as_i64().unwrap() >= 6 * 3600,
        "{v}"
    );
}

#[tokio::test]
async fn v12_v13_frequency_per_regime_with_evidence() {
    let dir = TempDir::new("v12");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = field_with(&admin, "cars", "car-mobility", |_| {}).await;
    // Running (normal: every 5 minutes): a message every 10 s of device time is far too frequent.
    let running = device(&gw, &admin, &field, "CAR-RUNNING").await;
    let t0 = now_ms() - 30 * MIN;
    for i in 0..5 {
        assert_eq!(
            running
                .send(json!({"engine": "on", "ts": t0 + i * 10_000, "seq": i}))
                .await
                .0,
            202
        );
    }
    let d = detected(&admin, &field, "rate.max", Some(&running.device_id)).await;
    assert_eq!(
        (d["threat"].as_str(), d["severity"].as_str()),
        (Some("hijacking"), Some("high"))
    );
    let e = &d["evidence"];
    assert_eq!(
        (
            e["regime"].as_str(),
            e["max_messages"].as_i64(),
            e["basis"].as_str()
        ),
        (Some("on"), Some(3), Some("device_time"))
    );
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .contains("the template allows 3"),
        "{d}"
    );
    // Engine off (normal: every 6 hours): one message an hour is too frequent.
    let parked = device(&gw, &admin, &field, "CAR-PARKED").await;
    let t0 = now_ms() - 4 * 60 * MIN;
    for i in 0..3 {
        assert_eq!(
            parked
                .send(json!({"engine": "off", "ts": t0 + i * 60 * MIN, "seq": i}))
                .await
                .0,
            202
        );
    }
    let d = detected(&admin, &field, "rate.max", Some(&parked.device_id)).await;
    assert_eq!(d["evidence"]["regime"], "off");
    assert_eq!(d["evidence"]["window_secs"], 6 * 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v15_low_rates_warn() {
    let dir = TempDir::new("v15");
    let gw = Gateway::in_process(&dir.0, ManualClock::new(now_ms())).await;
    let admin = gw.admin().await;
    let field = field_with(&admin, "home", "smart-home", |_| {}).await;
    // V15: a sensor whose data falls below the normal rate (every 20 minutes instead of 5).
    let slow = device(&gw, &admin, &field, "HUB-SLOW").await;
    let t0 = now_ms() - 3 * 60 * MIN;
    for i in 0..4 {
        assert_eq!(
            slow.send(json!({"ts": t0 + i * 20 * MIN, "seq": i}))
                .await
                .0,
            202
        );
    }
    let low = detected(&admin, &field, "rate.min", Some(&slow.device_id)).await;
    assert_eq!(
        (
            low["threat"].as_str(),
            low["evidence"]["min_messages"].as_i64()
        ),
        (Some("theft"), Some(3))
    );
}

/// V16 and V17 on a clock the test moves, with the shipped burst rule (10 requests for one unique ID
/// within 1 min): a success at 22:00 is not in the quiet hours (01:00-05:00) and one at 02:00 is; ten
/// failures spread over more than a minute are no burst, ten within one are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v16_v17_authentication_bursts_and_quiet_hours_follow_the_gateway_clock() {
    let dir = TempDir::new("v16");
    let midnight = now_ms() - now_ms().rem_euclid(24 * 60 * MIN);
    let clock = ManualClock::new(midnight - 2 * 60 * MIN);
    let gw = Gateway::in_process(&dir.0, clock.clone()).await;
    let admin = gw.admin().await;
    let field = field_with(&admin, "cars", "car-mobility", |t| {
        t["utc_offset"] = json!("+00:00");
        t["auth"]["quiet_hours"] = json!({"start": "01:00", "end": "05:00"});
    })
    .await;
    let reg = admin.device(&field, "IMEI-V16").await;
    let mut d = Device::new(&gw, &reg, "IMEI-V16");
    // 22:00: a success outside the quiet hours.
    d.auth().await;
    // Five failures, then five more 61 s later: never ten within a minute.
    for i in 0..10 {
        if i == 5 {
            clock.advance(Duration::from_secs(61));
        }
        let (s, _) = d.request_token(&d.auth_id, "guess", "IMEI-V16").await;
        assert_eq!(s, 401);
    }
    // 02:00: a success inside them.
    clock.set(midnight + 2 * 60 * MIN);
    d.auth().await;
    let q = detected(&admin, &field, "auth.quiet_hours", Some(&d.device_id)).await;
    assert_eq!(q["threat"], "unauthorized_access");
    assert_eq!(
        q["evidence"]["attempted_at"]
            .as_str()
            .and_then(sekisho_core::time::parse_rfc3339),
        Some(midnight + 2 * 60 * MIN)
    );
    // Detection judges the `received` topic in order: the success at 22:00 and the spread failures
    // came before this one, and neither was a detection.
    assert_eq!(rules_of(&admin, &field).await, vec!["auth.quiet_hours"]);
    // Ten failures within a minute: a burst.
    for _ in 0..10 {
        let (s, _) = d.request_token(&d.auth_id, "guess", "IMEI-V16").await;
        assert!(s == 401 || s == 429);
    }
    let b = detected(&admin, &field, "auth.burst", None).await;
    assert_eq!(
        (b["threat"].as_str(), b["evidence"]["count"].as_i64()),
        (Some("unauthorized_access"), Some(10))
    );
    assert_eq!(b["evidence"]["unique_id"], "IMEI-V16");
}

#[tokio::test]
async fn v18_v23_v24_timestamps_size_and_format() {
    let dir = TempDir::new("v18");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = field_with(&admin, "home", "smart-home", |t| {
        t["size"]["max_bytes"] = json!(200)
    })
    .await;
    let d = device(&gw, &admin, &field, "HUB-V18").await;
    let id = d.device_id.clone();
    // V18: a timestamp an hour in the future.
    assert_eq!(
        d.send(json!({"ts": now_ms() + 60 * MIN, "temp": 20}))
            .await
            .0,
        202
    );
    let f = detected(&admin, &field, "ts.future", Some(&id)).await;
    assert!(f["evidence"]["ahead_secs"].as_i64().unwrap() >= 3500);
    // V23: larger than the template's size limit (accepted: the field's hard limit is larger) ...
    assert_eq!(d.send(json!({"pad": "x".repeat(300)})).await.0, 202);
    let s = detected(&admin, &field, "size.max", Some(&id)).await;
    assert_eq!(s["evidence"]["max_bytes"], 200);
    // ... and beyond the hard limit: refused and detected (grouped into the same incident).
    assert_eq!(d.send(json!({"pad": "x".repeat(70_000)})).await.0, 413);
    // V24: truncated JSON: refused and detected.
    assert_eq!(
        d.send_raw("/v1/telemetry", "application/json", r#"{"temp": 2"#)
            .await
            .0,
        400
    );
    let m = detected(&admin, &field, "format.malformed", Some(&id)).await;
    assert_eq!(m["evidence"]["error"], "malformed_json");
    let size = eventually(10, || async {
        let (_, v) = admin
            .get(&format!(
                "/api/v1/fields/{}/detections?rule=size.max",
                field["id"].as_str().unwrap()
            ))
            .await;
        (v["items"][0]["count"].as_i64() == Some(2)).then_some(())
    })
    .await;
    assert!(
        size.is_some(),
        "repeated findings are grouped into one detection"
    );
}

#[tokio::test]
async fn v21_v22_shared_addresses_and_off_network_use() {
    let dir = TempDir::new("v21");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    // V21: two devices from one address (every test device sends from 127.0.0.1).
    let field = field_with(&admin, "cars", "car-mobility", |_| {}).await;
    let a = device(&gw, &admin, &field, "CAR-A").await;
    let b = device(&gw, &admin, &field, "CAR-B").await;
    assert_eq!(a.send(json!({"engine": "on"})).await.0, 202);
    assert_eq!(b.send(json!({"engine": "on"})).await.0, 202);
    let s = detected(&admin, &field, "network.shared_ip", None).await;
    assert_eq!(
        (s["threat"].as_str(), s["evidence"]["devices"].as_i64()),
        (Some("spoofing"), Some(2))
    );
    // Declared NAT: no detection.
    let nat = field_with(&admin, "nat", "car-mobility", |t| {
        t["network"]["nat_ranges"] = json!(["127.0.0.0/8"])
    })
    .await;
    let c = device(&gw, &admin, &nat, "CAR-C").await;
    let d = device(&gw, &admin, &nat, "CAR-D").await;
    assert_eq!(c.send(json!({"engine": "on"})).await.0, 202);
    assert_eq!(d.send(json!({"engine": "on"})).await.0, 202);

    // V22: outside the field's networks: detected (authentication and data)...
    let school = field_with(&admin, "school", "education", |t| {
        t["network"]["allowed"] = json!(["10.0.0.0/8"]);
        t["network"]["off_network"] = json!("detect");
    })
    .await;
    let e = device(&gw, &admin, &school, "STUDENT-1").await;
    assert_eq!(e.send(json!({"page": 1})).await.0, 202);
    let off = detected(&admin, &school, "network.off_network", Some(&e.device_id)).await;
    assert_eq!(off["evidence"]["source_ip"], "127.0.0.1");
    // ... or refused when the field blocks (※4 lets each field decide).
    let closed = field_with(&admin, "closed", "education", |t| {
        t["network"]["allowed"] = json!(["10.0.0.0/8"]);
        t["network"]["off_network"] = json!("block");
    })
    .await;
    let reg = admin.device(&closed, "STUDENT-2").await;
    let f = Device::new(&gw, &reg, "STUDENT-2");
    let (s, v) = f.request_token(&f.auth_id, &f.secret, "STUDENT-2").await;
    assert_eq!((s, v["error"].as_str()), (403, Some("off_network")));
    assert!(
        eventually(5, || async {
            rules_of(&admin, &nat).await.is_empty().then_some(())
        })
        .await
        .is_some()
    );
}

/// ※1: a car in an underground car park. Normal cadence in device time, radio lost for a while, then
/// the stored messages flushed within a second. Neither theft nor hijacking; at most a notice.
#[tokio::test]
async fn underground_car_park_is_not_a_threat_but_a_takeover_is() {
    let dir = TempDir::new("carpark");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = field_with(&admin, "cars", "car-mobility", |t| {
        // Short gateway-time silence steps so the test sees the notice, well apart from warning/theft.
        let r = &mut t["regimes"]["on"];
        r["silence_notice"] = json!("2s");
        r["silence_warning"] = json!("10m");
        r["silence_theft"] = json!("6h");
    })
    .await;
    let car = device(&gw, &admin, &field, "OBD-CARPARK").await;
    let t0 = now_ms() - 3 * 60 * MIN;
    // 13 messages every 5 minutes (one hour of driving), then the car park.
    for i in 0..13 {
        assert_eq!(
            car.send(json!({"engine": "on", "ts": t0 + i * 5 * MIN, "seq": i, "speed": 30}))
                .await
                .0,
            202
        );
    }
    let notice = detected(&admin, &field, "silence.notice", Some(&car.device_id)).await;
    assert_eq!(notice["severity"], "notice");
    // Back on the surface: 8 stored messages (40 minutes underground) in one batch and a few singles.
    let backlog: Vec<Value> = (13..21)
        .map(|i| json!({"engine": "on", "ts": t0 + i * 5 * MIN, "seq": i, "buffered": true}))
        .collect();
    let (s, v) = car
        .send_raw(
            "/v1/telemetry/batch",
            "application/json",
            Value::Array(backlog).to_string(),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    for i in 21..24 {
        assert_eq!(
            car.send(json!({"engine": "on", "ts": t0 + i * 5 * MIN, "seq": i, "buffered": true}))
                .await
                .0,
            202
        );
    }
    // A marker: an oversized message after the flush. Findings are stored in order, so once the marker's
    // detection is visible, everything the flush could have raised is visible too.
    let pad = "x".repeat(5000);
    assert_eq!(
        car.send(json!({"engine": "on", "ts": t0 + 24 * 5 * MIN, "seq": 24, "pad": pad}))
            .await
            .0,
        202
    );
    detected(&admin, &field, "size.max", Some(&car.device_id)).await;
    let rules = rules_of(&admin, &field).await;
    assert_eq!(
        rules,
        vec!["size.max", "silence.notice"],
        "the car park raised {rules:?}"
    );

    // A takeover in the same sequence: a clone replays an old message ...
    assert_eq!(
        car.send(json!({"engine": "on", "ts": t0 + 20 * 5 * MIN, "seq": 20}))
            .await
            .0,
        202
    );
    detected(&admin, &field, "seq.reused", Some(&car.device_id)).await;
    detected(&admin, &field, "ts.out_of_order", Some(&car.device_id)).await;
    // ... and pushes "buffered" data faster than any car records it (every 10 s of device time).
    for i in 0..5 {
        let ts = t0 + 25 * 5 * MIN + i * 10_000;
        assert_eq!(
            car.send(json!({"engine": "on", "ts": ts, "seq": 100 + i, "buffered": true}))
                .await
                .0,
            202
        );
    }
    let r = detected(&admin, &field, "rate.max", Some(&car.device_id)).await;
    assert_eq!(r["evidence"]["basis"], "device_time");
}

#[tokio::test]
async fn templates_are_validated_whole_versioned_and_accept_toml() {
    let dir = TempDir::new("templates");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let (_, lib) = admin.get("/api/v1/templates").await;
    let names: Vec<&str> = lib["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["car-mobility", "smart-home", "education", "generic"]
    );
    let field = admin.field("f").await;
    let fid = field["id"].as_str().unwrap();
    let (_, cur) = admin.get(&format!("/api/v1/fields/{fid}/template")).await;
    assert_eq!(
        (cur["version"].as_i64(), cur["template"]["name"].as_str()),
        (Some(1), Some("generic"))
    );

    let (_, mut bad) = admin.get("/api/v1/templates/car-mobility").await;
    bad["utc_offset"] = json!("JST");
    bad["regime"]["default"] = json!("flying");
    bad["actions"]["theft"] = json!(["explode"]);
    let (s, v) = admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{fid}/template"),
            Some(bad),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let msg = v["message"].as_str().unwrap();
    for needle in ["utc_offset", "regime.default", "explode"] {
        assert!(msg.contains(needle), "{needle} missing from: {msg}");
    }
    let (_, still) = admin.get(&format!("/api/v1/fields/{fid}/template")).await;
    assert_eq!(still["version"], 1, "a refused template changes nothing");

    let toml = "name = \"mine\"\nutc_offset = \"+09:00\"\n[regime]\ndefault = \"x\"\n[regimes.x]\nmax_messages = 2\nwindow = \"1m\"\n";
    let r = gw
        .http
        .put(gw.aurl(&format!("/api/v1/fields/{fid}/template")))
        .bearer_auth(&admin.token)
        .header("content-type", "application/toml")
        .body(toml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, v) = admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{fid}/template"),
            Some(lib[0].clone()),
        )
        .await;
    assert_eq!(s, 400, "a library entry is not a template: {v}");
    let (_, versions) = admin
        .get(&format!("/api/v1/fields/{fid}/template/versions"))
        .await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);
    assert_eq!(versions["items"][0]["created_by"], "admin");
    // It runs: 3 messages within a minute break "2 per minute".
    let d = device(&gw, &admin, &field, "DEV-1").await;
    for i in 0..3 {
        assert_eq!(d.send(json!({"i": i})).await.0, 202);
    }
    let r = detected(&admin, &field, "rate.max", None).await;
    assert_eq!(r["evidence"]["regime"], "x");
    // The stored template survives a restart.
    let gw = gw.restart_after_kill9();
    let admin = gw.admin().await;
    let (_, cur) = admin.get(&format!("/api/v1/fields/{fid}/template")).await;
    assert_eq!(
        (cur["version"].as_i64(), cur["template"]["name"].as_str()),
        (Some(2), Some("mine"))
    );
}

#[tokio::test]
async fn field_scripts_detect_and_their_faults_never_stop_the_gateway() {
    let dir = TempDir::new("scripts");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let speeding = r#"
        function on_message(msg, device, field)
          if msg.data and msg.data.speed and msg.data.speed > 180 then
            emit{threat="hijacking", severity="high", summary="speed " .. msg.data.speed .. " km/h in " .. device.regime,
                 evidence={speed=msg.data.speed, limit=180, unique_id=device.unique_id}}
          end
        end"#;
    let census = r#"
        function on_tick(devices, field, now)
          for _, d in ipairs(devices) do
            if d.silence_step == 0 and now - d.last_seen > 0 then
              emit{threat="theft", severity="notice", summary="census", device=d.id, evidence={seen=d.last_seen}}
            end
          end
        end"#;
    let field = field_with(&admin, "cars", "car-mobility", |t| {
        t["scripts"] = json!([
            {"name": "speeding", "on": "message", "source": speeding},
            {"name": "broken", "on": "message", "source": "function on_message(msg) local x = msg.data.missing.deeper end"},
            {"name": "spinner", "on": "message", "source": "function on_message() while true do end end"},
            {"name": "hog", "on": "message", "source": "function on_message() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1048576) end end"},
            {"name": "census", "on": "periodic", "every": "1s", "source": census},
        ]);
    })
    .await;
    let car = device(&gw, &admin, &field, "CAR-SCRIPTED").await;
    for (i, speed) in [120, 250, 90].iter().enumerate() {
        assert_eq!(
            car.send(json!({"engine": "on", "seq": i, "speed": speed}))
                .await
                .0,
            202,
            "scripts never cost a message"
        );
    }
    let d = detected(&admin, &field, "script.speeding", Some(&car.device_id)).await;
    assert_eq!(
        (d["threat"].as_str(), d["summary"].as_str()),
        (Some("hijacking"), Some("speed 250 km/h in on"))
    );
    assert_eq!(d["evidence"]["unique_id"], "CAR-SCRIPTED");
    detected(&admin, &field, "script.census", Some(&car.device_id)).await;

    let fid = field["id"].as_str().unwrap();
    let faults = eventually(30, || async {
        let (_, v) = admin
            .get(&format!("/api/v1/fields/{fid}/script-faults"))
            .await;
        let kinds: std::collections::HashSet<(String, String)> = v["items"]
            .as_array()?
            .iter()
            .map(|f| {
                (
                    f["script"].as_str().unwrap().to_owned(),
                    f["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (kinds.len() >= 3).then_some(kinds)
    })
    .await
    .expect("faults recorded");
    for (script, kind) in [
        ("broken", "error"),
        ("spinner", "timeout"),
        ("hog", "memory"),
    ] {
        assert!(
            faults.contains(&(script.to_owned(), kind.to_owned())),
            "{script}/{kind} missing: {faults:?}"
        );
    }
    // Still serving, every message stored.
    assert_eq!(
        car.send(json!({"engine": "on", "seq": 9, "speed": 60}))
            .await
            .0,
        202
    );
    let (_, h) = admin
        .get(&format!(
            "/api/v1/history/messages?device={}&outcome=accepted",
            car.device_id
        ))
        .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 4);

    // A script that does not compile is refused with its line, with the template's other problems.
    let (_, mut t) = admin.get("/api/v1/templates/generic").await;
    t["utc_offset"] = json!("nowhere");
    t["scripts"] = json!([{"name": "typo", "on": "message", "source": "function on_message()\n  if then\nend"},
                          {"name": "idle", "on": "periodic", "every": "1m", "source": "function on_message() end"}]);
    let (s, v) = admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{fid}/template"),
            Some(t),
        )
        .await;
    assert_eq!(s, 400);
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("scripts.typo:") && msg.contains(":2"), "{msg}");
    assert!(
        msg.contains("defines no on_tick()") && msg.contains("utc_offset"),
        "{msg}"
    );
}

#[tokio::test]
async fn fields_start_from_a_library_template() {
    let dir = TempDir::new("fieldtemplate");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let (s, f) = admin
        .post(
            "/api/v1/fields",
            json!({"name": "cars", "template": "car-mobility"}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["template"], "car-mobility");
    let (_, t) = admin
        .get(&format!(
            "/api/v1/fields/{}/template",
            f["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (t["version"].as_i64(), t["created_by"].as_str()),
        (Some(1), Some("admin"))
    );
    assert_eq!(t["template"]["regime"]["key"], "engine");
    let (_, plain) = admin.post("/api/v1/fields", json!({"name": "other"})).await;
    assert_eq!(plain["template"], "generic", "the configured default");
    let (s, v) = admin
        .post(
            "/api/v1/fields",
            json!({"name": "x", "template": "spaceship"}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("car-mobility, smart-home, education, generic")
    );
    let (_, all) = admin.get("/api/v1/fields").await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        2,
        "a refused field is not created"
    );
}

#[tokio::test]
async fn traffic_volume_over_a_window_is_detected() {
    let dir = TempDir::new("volume");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = field_with(&admin, "home", "smart-home", |t| {
        t["regimes"]["normal"]["max_volume_bytes"] = json!(2000);
        t["regimes"]["normal"]["volume_window"] = json!("1h");
        t["regimes"]["normal"]["max_messages"] = json!(0);
    })
    .await;
    let d = device(&gw, &admin, &field, "HUB-VOLUME").await;
    for i in 0..3 {
        assert_eq!(d.send(json!({"i": i, "pad": "v".repeat(900)})).await.0, 202);
    }
    let v = detected(&admin, &field, "volume.max", Some(&d.device_id)).await;
    assert_eq!(
        (
            v["threat"].as_str(),
            v["evidence"]["max_volume_bytes"].as_i64()
        ),
        (Some("hijacking"), Some(2000))
    );
    assert!(v["evidence"]["bytes"].as_i64().unwrap() > 2000);
}
