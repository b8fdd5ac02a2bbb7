//! The cloud connector against a real HTTPS cloud: delivery with envelope and order, outage and
//! recovery, SIGKILL after 202, refused messages, dead letters.

mod common;

use common::cloud::Cloud;
use common::{Device, Gateway, TempDir, eventually};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

async fn set_cloud(admin: &common::Admin, field: &Value, cloud: &Cloud) {
    let (s, v) = admin
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/fields/{}/cloud", field["id"].as_str().unwrap()),
            Some(cloud.destination()),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["authorization"], "<redacted>", "secrets never come back");
}

async fn wait_for(cloud: &Cloud, n: usize) -> Vec<Value> {
    eventually(60, || async {
        let m = cloud.received.messages.lock().unwrap().clone();
        (m.len() >= n).then_some(m)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the cloud got {} of {n} messages",
            cloud.received.messages.lock().unwrap().len()
        )
    })
}

#[tokio::test]
async fn messages_reach_the_cloud_in_order_with_their_envelope() {
    let dir = TempDir::new("deliver");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    let cloud = Cloud::start().await;
    set_cloud(&admin, &field, &cloud).await;
    let mut devs = Vec::new();
    for i in 0..3 {
        let reg = admin.device(&field, &format!("CAR-{i}")).await;
        let mut d = Device::new(&gw, &reg, &format!("CAR-{i}"));
        d.auth().await;
        devs.push(d);
    }
    let mut sent = Vec::new();
    for seq in 0..20 {
        for d in &devs {
            let body = json!({"seq": seq, "engine": "on", "speed": 1.25});
            let (s, v) = d.send(body).await;
            assert_eq!(s, 202);
            sent.push((d.device_id.clone(), v["id"].as_str().unwrap().to_owned()));
        }
    }
    let (s, v) = devs[0]
        .send_raw(
            "/v1/telemetry/batch",
            "application/json",
            r#"[{"seq":20,"buffered":true},{"seq":21,"buffered":true}]"#,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let got = wait_for(&cloud, 62).await;
    assert_eq!(got.len(), 62, "each message once when nothing failed");
    // Per device, the cloud sees the device's order.
    for d in &devs {
        let seqs: Vec<i64> = got
            .iter()
            .filter(|m| m["device_id"] == d.device_id.as_str())
            .map(|m| m["data"]["seq"].as_i64().unwrap())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted);
    }
    let first = &got[0];
    assert_eq!(first["field_id"], field["id"]);
    assert_eq!(
        first["data"],
        json!({"seq": 0, "engine": "on", "speed": 1.25})
    );
    assert_eq!(
        first["id"].as_str().unwrap(),
        sent[0].1,
        "the message id is the idempotency key"
    );
    assert!(first["received_at"].as_str().unwrap().ends_with('Z'));
    let headers = cloud.received.headers.lock().unwrap().clone();
    assert!(
        headers
            .iter()
            .all(|(auth, key)| auth.as_deref() == Some("Bearer cloud-secret") && key.is_some())
    );
    // History says forwarded.
    let pending = eventually(10, || async {
        let (_, h) = admin.get("/api/v1/history/messages?limit=100").await;
        h["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["forward_status"] == "forwarded")
            .then_some(())
    })
    .await;
    assert!(pending.is_some());
}

#[tokio::test]
async fn an_outage_delays_delivery_and_loses_nothing() {
    let dir = TempDir::new("outage");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("cloud", "backoff_initial_ms", 100.into()),
            ("cloud", "backoff_max_ms", 400.into()),
            ("cloud", "batch_max", 7.into()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("home").await;
    let mut cloud = Cloud::start().await;
    set_cloud(&admin, &field, &cloud).await;
    let reg = admin.device(&field, "HUB-1").await;
    let mut d = Device::new(&gw, &reg, "HUB-1");
    d.auth().await;

    // The cloud answers 503, then goes away entirely, while the device keeps sending.
    cloud.received.fail_with.store(503, Ordering::Relaxed);
    for seq in 0..10 {
        assert_eq!(d.send(json!({"seq": seq})).await.0, 202);
    }
    let failing = eventually(30, || async {
        (cloud.received.headers.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    assert!(failing.is_some(), "the gateway retried");
    cloud.go_down();
    for seq in 10..30 {
        assert_eq!(d.send(json!({"seq": seq})).await.0, 202);
    }
    let (_, dl) = admin
        .get(&format!(
            "/api/v1/fields/{}/dead-letters",
            field["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(dl["outbox"]["pending"], 30, "{dl}");
    assert!(gw.log_text().contains("cloud delivery failed"));

    // Back up: everything arrives, in order, nothing twice (no 2xx was ever lost).
    cloud.received.fail_with.store(0, Ordering::Relaxed);
    cloud.come_back().await;
    let got = wait_for(&cloud, 30).await;
    let seqs: Vec<i64> = got
        .iter()
        .map(|m| m["data"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (0..30).collect::<Vec<_>>());
    // The cloud has them; the gateway marks them forwarded once it has read the 2xx.
    let newest = eventually(30, || async {
        let (_, m) = admin.get("/api/v1/history/messages?limit=1").await;
        let m = m["items"][0].clone();
        (m["forward_status"] == "forwarded").then_some(m)
    })
    .await
    .expect("the newest message is marked forwarded");
    assert!(
        newest["forward_attempts"].as_i64().unwrap() >= 1,
        "{newest}"
    );
}

#[tokio::test]
async fn sigkill_after_202_loses_nothing() {
    let dir = TempDir::new("sigkill");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("cloud", "backoff_initial_ms", 100.into()),
            ("cloud", "backoff_max_ms", 300.into()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    let mut cloud = Cloud::start().await;
    set_cloud(&admin, &field, &cloud).await;
    cloud.go_down();
    let reg = admin.device(&field, "OBD-1").await;
    let mut d = Device::new(&gw, &reg, "OBD-1");
    d.auth().await;

    // Concurrent senders; every id that got 202 must reach the cloud after a SIGKILL and restart.
    let mut acked = HashSet::new();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (http, base, token, id) = (
            d.http.clone(),
            d.base.clone(),
            d.token.clone(),
            d.device_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for seq in 0..25 {
                let r = http
                    .post(format!("{base}/v1/telemetry"))
                    .bearer_auth(&token)
                    .header("device-id", &id)
                    .json(&json!({"t": t, "seq": seq}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 202 {
                    ids.push(
                        r.json::<Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
            }
            ids
        }));
    }
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 100);
    let gw = gw.restart_after_kill9();
    // The old connections died with the process; the device reconnects.
    d.http = common::client(&dir.0, None);
    // The token survived the restart too (stored as a hash).
    assert_eq!(d.send(json!({"after": "restart"})).await.0, 202);
    cloud.come_back().await;
    let got = wait_for(&cloud, 101).await;
    let ids: HashSet<String> = got
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = acked.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    drop(gw);
}

/// Expiry with the shipped `max_age_secs` (7 days) on a clock the test moves, then a cloud that
/// refuses one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_expired_messages_are_dead_lettered_and_reported() {
    let dir = TempDir::new("dead");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("cloud", "backoff_initial_ms", 100.into()),
            ("cloud", "backoff_max_ms", 200.into()),
        ],
    );
    let clock = sekisho_core::ManualClock::new(common::now_ms());
    let gw = Gateway::in_process(&dir.0, clock.clone()).await;
    let admin = gw.admin().await;
    let field = admin.field("school").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let reg = admin.device(&field, "CHROMEBOOK-1").await;
    let mut d = Device::new(&gw, &reg, "CHROMEBOOK-1");
    d.auth().await;

    // No destination yet: the message waits. A week and a second later it is older than
    // `max_age_secs`; the forwarder, woken by the new destination, dead-letters it with the reason
    // before it reads anything to send.
    assert_eq!(d.send(json!({"n": 1})).await.0, 202);
    clock.advance(std::time::Duration::from_secs(7 * 86_400 + 1));
    // The week also ended the admin session and the device's token.
    let admin = gw.admin().await;
    d.auth().await;
    let cloud = Cloud::start().await;
    cloud.received.fail_with.store(400, Ordering::Relaxed);
    set_cloud(&admin, &field, &cloud).await;
    let dl = eventually(30, || async {
        let (_, v) = admin
            .get(&format!("/api/v1/fields/{fid}/dead-letters"))
            .await;
        (v["items"].as_array().unwrap().len() == 1).then_some(v)
    })
    .await
    .expect("dead-lettered");
    assert!(
        dl["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("max_age"),
        "{dl}"
    );
    assert_eq!(dl["outbox"]["dead"], 1);

    // A cloud that refuses one message (400) gets the others; the refused one is dead-lettered with the answer.
    assert_eq!(d.send(json!({"n": 2})).await.0, 202);
    let dl = eventually(30, || async {
        let (_, v) = admin
            .get(&format!("/api/v1/fields/{fid}/dead-letters"))
            .await;
        (v["items"].as_array().unwrap().len() == 2).then_some(v)
    })
    .await
    .expect("refused message dead-lettered");
    assert!(
        dl["items"][0]["reason"].as_str().unwrap().contains("400"),
        "{dl}"
    );
    cloud.received.fail_with.store(0, Ordering::Relaxed);
    assert_eq!(d.send(json!({"n": 3})).await.0, 202);
    let got = wait_for(&cloud, 1).await;
    assert_eq!(got[0]["data"], json!({"n": 3}));
    let (_, status) = admin.get("/api/v1/system/status").await;
    assert_eq!(status["outbox"]["dead"], 2, "{status}");
}

#[tokio::test]
async fn a_message_the_cloud_keeps_failing_never_stalls_the_field() {
    let dir = TempDir::new("poison");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("cloud", "backoff_initial_ms", 20.into()),
            ("cloud", "backoff_max_ms", 40.into()),
            ("cloud", "isolate_after", 2.into()),
            ("cloud", "poison_after", 3.into()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let mut a = Device::new(&gw, &admin.device(&field, "CAR-A").await, "CAR-A");
    let mut b = Device::new(&gw, &admin.device(&field, "CAR-B").await, "CAR-B");
    a.auth().await;
    b.auth().await;

    // The cloud answers 500 to one message (say its parser chokes on it) and takes every other one.
    let cloud = Cloud::start().await;
    *cloud.received.poison.lock().unwrap() = Some("cannot-parse-me".into());
    assert_eq!(a.send(json!({"note": "cannot-parse-me"})).await.0, 202);
    for n in 0..9 {
        assert_eq!(b.send(json!({"n": n})).await.0, 202);
    }
    set_cloud(&admin, &field, &cloud).await;
    let got = wait_for(&cloud, 9).await;
    let ns: Vec<i64> = got.iter().filter_map(|m| m["data"]["n"].as_i64()).collect();
    assert_eq!(ns, (0..9).collect::<Vec<_>>(), "the others, in order");
    let (_, dl) = admin
        .get(&format!("/api/v1/fields/{fid}/dead-letters"))
        .await;
    let items = dl["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{dl}");
    let reason = items[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("kept failing") && reason.contains("500"),
        "{reason}"
    );
    assert_eq!(gw.metric("forward_poisoned_total").await, 1);

    // A cloud that fails everything is down, not poisoned: nothing is dead-lettered, however many
    // attempts fail, and everything arrives once it is back.
    cloud.received.fail_with.store(503, Ordering::Relaxed);
    for n in 10..13 {
        assert_eq!(b.send(json!({"n": n})).await.0, 202);
    }
    let before = gw.metric("forward_failures_total").await;
    let attempts = eventually(60, || async {
        let n = gw.metric("forward_failures_total").await;
        (n >= before + 12).then_some(n)
    })
    .await;
    assert!(attempts.is_some(), "the forwarder keeps trying");
    assert_eq!(gw.metric("forward_poisoned_total").await, 1);
    let (_, dl) = admin
        .get(&format!("/api/v1/fields/{fid}/dead-letters"))
        .await;
    assert_eq!(dl["items"].as_array().unwrap().len(), 1, "{dl}");
    cloud.received.fail_with.store(0, Ordering::Relaxed);
    let got = wait_for(&cloud, 12).await;
    let ns: Vec<i64> = got.iter().filter_map(|m| m["data"]["n"].as_i64()).collect();
    let expected: Vec<i64> = (0..9).chain(10..13).collect();
    assert_eq!(ns, expected, "nothing lost, in order");
}
