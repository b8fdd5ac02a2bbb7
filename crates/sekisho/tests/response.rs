//! Threat response end to end, with real parts: a real SMTP server (Python aiosmtpd) receives the
//! mails, a webhook receiver checks their signatures, and the carrier simulator (a stand-in for the
//! carrier's SIM API, `sekisho-carrier`) shows the SIM suspended.

mod common;

use common::mfa::{enrol, send};
use common::smtp::{PASSWORD, SmtpServer, SmtpTls, USER};
use common::{Admin, Device, Gateway, TempDir, eventually};
use reqwest::Method;
use sekisho_sim::carrier::{NewSim, Running, Simulator};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

/// A webhook receiver: records every post and whether its signature verified.
struct Hooks {
    url: String,
    got: Arc<Mutex<Vec<(bool, Value)>>>,
}

async fn webhook_receiver() -> Hooks {
    let got: Arc<Mutex<Vec<(bool, Value)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
                let ts: i64 = h("x-sekisho-timestamp").parse().unwrap_or(0);
                let ok = sekisho_notify::webhook::verify(
                    WEBHOOK_SECRET.as_bytes(),
                    ts,
                    &body,
                    h("x-sekisho-signature"),
                );
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().unwrap().push((ok, v));
                if ok {
                    http::StatusCode::OK
                } else {
                    http::StatusCode::UNAUTHORIZED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hooks { url, got }
}

struct Env {
    dir: TempDir,
    gw: Gateway,
    admin: Admin,
    carrier: Simulator,
    _running: Running,
    hooks: Hooks,
    field: Value,
}

/// A gateway whose field answers hijacking with the trial's actions, mail going to `smtp_port`.
async fn env(tag: &str, smtp_port: u16, smtp_tls: &SmtpTls) -> Env {
    let carrier = Simulator::new(Some("carrier-t0ken".into()));
    let running = carrier.start(None).await.unwrap();
    let hooks = webhook_receiver().await;
    let dir = TempDir::new(tag);
    common::init(&dir.0);
    std::fs::write(dir.0.join("carrier.token"), "carrier-t0ken").unwrap();
    std::fs::write(dir.0.join("smtp.password"), PASSWORD).unwrap();
    let cfg: toml::Table = toml::from_str(&format!(
        r#"
        [api]
        kind = "mvno"
        base_url = "{}"
        retries = 1
        backoff_initial_ms = 20
        backoff_max_ms = 50
        [response]
        backoff_initial_ms = 200
        backoff_max_ms = 1000
        [response.smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        security = "starttls"
        username = "{USER}"
        ca_file = "{}"
        from = "Sekisho <sekisho@gateway.test>"
        timeout_ms = 3000
        "#,
        running.url,
        smtp_tls.ca.display()
    ))
    .unwrap();
    common::configure(
        &dir.0,
        &[
            ("carrier", "api", cfg["api"].clone()),
            (
                "response",
                "backoff_initial_ms",
                cfg["response"]["backoff_initial_ms"].clone(),
            ),
            (
                "response",
                "backoff_max_ms",
                cfg["response"]["backoff_max_ms"].clone(),
            ),
            ("response", "smtp", cfg["response"]["smtp"].clone()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field(tag).await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let (s, mut t) = admin.get("/api/v1/templates/generic").await;
    assert_eq!(s, 200, "{t}");
    t["size"]["max_bytes"] = 300.into();
    t["playbook"] = json!([{
        "name": "hijack",
        "threats": ["hijacking"],
        "actions": ["notify_admin", "notify_webhook", "stop_auth", "suspend_sim", "collect_info"]
    }]);
    admin
        .put_ok(&format!("/api/v1/fields/{fid}/template"), t)
        .await;
    let (s, v) = admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{fid}/notify"),
            Some(
                json!({"admin_emails": ["ops@example.jp"], "language": "both",
                "webhook_url": hooks.url, "webhook_secret": WEBHOOK_SECRET}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["webhook_secret_set"], true);
    assert!(
        v.get("webhook_secret").is_none(),
        "the secret is never shown: {v}"
    );
    Env {
        dir,
        gw,
        admin,
        carrier,
        _running: running,
        hooks,
        field,
    }
}

impl Env {
    /// A registered device with a SIM known to the carrier, authenticated.
    async fn device(&self, unique_id: &str, imsi: &str, critical: bool) -> (Value, Device) {
        self.carrier
            .add_sim(NewSim {
                imsi: imsi.into(),
                iccid: format!("89811{imsi}"),
                msisdn: None,
                status: "active".into(),
            })
            .unwrap();
        let (s, reg) = self
            .admin
            .post(
                &format!("/api/v1/fields/{}/devices", self.fid()),
                json!({"unique_id": unique_id, "sim": {"imsi": imsi}, "critical": critical}),
            )
            .await;
        assert_eq!(s, 201, "{reg}");
        let mut d = Device::new(&self.gw, &reg, unique_id);
        d.auth().await;
        (reg, d)
    }

    fn fid(&self) -> &str {
        self.field["id"].as_str().unwrap()
    }

    /// The field's decisions with their actions, oldest first.
    async fn decisions(&self) -> Vec<Value> {
        let (s, v) = self
            .admin
            .get(&format!("/api/v1/fields/{}/response/decisions", self.fid()))
            .await;
        assert_eq!(s, 200, "{v}");
        let mut items = v["items"].as_array().unwrap().clone();
        items.reverse();
        items
    }

    /// Waits until every action of the field's decisions has left `pending`/`running`.
    async fn settled(&self, n: usize) -> Vec<Value> {
        eventually(30, || async {
            let d = self.decisions().await;
            let busy = d
                .iter()
                .flat_map(|x| x["actions"].as_array().unwrap().iter())
                .any(|a| matches!(a["state"].as_str(), Some("pending" | "running")));
            (d.len() >= n && !busy).then_some(d)
        })
        .await
        .expect("the response settles")
    }
}

/// A message larger than the template's `size.max_bytes`: a hijacking finding.
fn oversized() -> Value {
    json!({"seq": 1, "blob": "x".repeat(600)})
}

fn states(decision: &Value) -> Vec<(String, String)> {
    decision["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn a_hijack_mails_the_administrator_stops_the_device_and_suspends_its_sim() {
    let tls = SmtpTls::new();
    let smtp = SmtpServer::start(&tls, None);
    let e = env("resp-normal", smtp.port, &tls).await;
    let (reg, dev) = e.device("car-1", "440100000000041", false).await;
    let id = reg["id"].as_str().unwrap();
    assert_eq!(dev.send(oversized()).await.0, 202);

    let d = e.settled(1).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["decided_by"], "playbook.hijack");
    assert_eq!(
        states(&d[0]),
        pairs(&[
            ("notify_admin", "done"),
            ("notify_webhook", "done"),
            ("stop_auth", "done"),
            ("suspend_sim", "done"),
            ("collect_info", "done")
        ]),
        "{d:?}"
    );
    // The mail reached the SMTP server, in Japanese and English, with the evidence.
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["to"], json!(["ops@example.jp"]));
    assert_eq!(
        (mails[0]["tls"].as_bool(), mails[0]["auth"].as_str()),
        (Some(true), Some(USER)),
        "STARTTLS and AUTH"
    );
    let subject = mails[0]["subject"].as_str().unwrap();
    assert!(subject.contains("乗っ取り"), "{subject}");
    let text = mails[0]["text"].as_str().unwrap();
    assert!(
        text.contains("car-1") && text.contains("size.max"),
        "{text}"
    );
    // It was sent once the decision's other actions had ended, and says how they ended.
    for line in [
        "Stop authentication (stop_auth): done",
        "Suspend the SIM (suspend_sim): done",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // The device's token dies and a new one is refused (V25); the SIM is suspended at the carrier (V26).
    assert_eq!(dev.send(json!({"seq": 2})).await.0, 401);
    let (s, v) = dev
        .request_token(&dev.auth_id, &dev.secret, &dev.unique_id)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("device_disabled")),
        "{v}"
    );
    assert_eq!(e.carrier.sim("440100000000041").unwrap().status, "inactive");
    // The webhook arrived signed.
    let hooks = e.hooks.got.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].0, "the signature verifies");
    assert_eq!(hooks[0].1["device"]["id"], id);
    // The device's information was collected for the administrator (V29).
    let path = format!("/api/v1/fields/{}/devices/{id}/reports", e.fid());
    let (_, reports) = e.admin.get(&path).await;
    let rid = reports["items"][0]["id"].as_i64().unwrap();
    assert_eq!(reports["items"][0]["body"]["device"]["unique_id"], "car-1");
    let (s, report) = e.admin.get(&format!("{path}/{rid}")).await;
    assert_eq!(s, 200);
    assert_eq!(report["device"]["unique_id"], "car-1");
    assert_eq!(report["sim"]["registered"]["imsi"], "440100000000041");
    assert!(!report["recent_messages"].as_array().unwrap().is_empty());

    // Every disruptive action has its undo.
    let action = |name: &str| {
        d[0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    for name in ["stop_auth", "suspend_sim"] {
        let (s, v) = e
            .admin
            .post(
                &format!("/api/v1/response/actions/{}/undo", action(name)),
                json!({}),
            )
            .await;
        assert_eq!((s, v["state"].as_str()), (200, Some("done")), "{v}");
        assert_eq!(v["trigger"], "user:admin");
    }
    assert_eq!(e.carrier.sim("440100000000041").unwrap().status, "active");
    let (s, _) = e
        .admin
        .post(
            &format!("/api/v1/response/actions/{}/undo", action("stop_auth")),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "an action is undone once");
    let mut dev = dev;
    dev.auth().await;

    // Another hijacking detection of the same device within the suppression window is the same
    // incident: recorded, no new actions, no second mail.
    let (s, _) = dev
        .send_raw("/v1/telemetry", "application/json", "{broken")
        .await;
    assert_eq!(s, 400);
    let d = e.settled(2).await;
    assert_eq!(d[1]["rule"], "format.malformed");
    assert_eq!(d[1]["suppressed_by"], d[0]["id"]);
    assert!(d[1]["actions"].as_array().unwrap().is_empty());
    assert_eq!(smtp.mails().len(), 1);
    let metrics = e.gw.metrics().await;
    for line in [
        "sekisho_response_decisions_total 2",
        "sekisho_response_suppressed_total 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

#[tokio::test]
async fn a_critical_device_is_never_cut_off_without_approval() {
    let tls = SmtpTls::new();
    let smtp = SmtpServer::start(&tls, None);
    let e = env("resp-critical", smtp.port, &tls).await;
    let (reg, dev) = e.device("pump-1", "440100000000042", true).await;
    assert_eq!(dev.send(oversized()).await.0, 202);
    let d = e.settled(1).await;
    assert_eq!(
        states(&d[0]),
        pairs(&[
            ("notify_admin", "done"),
            ("notify_webhook", "done"),
            ("stop_auth", "awaiting_approval"),
            ("suspend_sim", "awaiting_approval"),
            ("collect_info", "done")
        ]),
        "{d:?}"
    );
    let text = smtp.mails()[0]["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("承認待ち") || text.contains("awaiting approval"),
        "{text}"
    );
    // Nothing is cut off: the device still delivers, its SIM is active.
    assert_eq!(dev.send(json!({"seq": 2})).await.0, 202);
    assert_eq!(e.carrier.sim("440100000000042").unwrap().status, "active");

    let (_, queue) = e.admin.get("/api/v1/response/approvals").await;
    let queue = queue["items"].as_array().unwrap().clone();
    assert_eq!(queue.len(), 2, "{queue:?}");
    let id_of = |name: &str| {
        queue.iter().find(|a| a["action"] == name).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (s, v) = e
        .admin
        .post(
            &format!("/api/v1/response/actions/{}/reject", id_of("suspend_sim")),
            json!({}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("rejected")), "{v}");
    // Approving cuts the device off: a person's disruptive action, so it needs the second factor
    // once the approver has one.
    let mut authenticator = enrol(&e.admin).await;
    let approve = format!("/api/v1/response/actions/{}/approve", id_of("stop_auth"));
    let (s, v) = send(&e.admin, Method::POST, &approve, None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("second_factor_required")),
        "{v}"
    );
    assert_eq!(dev.send(json!({"seq": 3})).await.0, 202, "not approved yet");
    let code = authenticator.accepted().await;
    let (s, v) = send(&e.admin, Method::POST, &approve, Some(&code)).await;
    assert_eq!(
        (s, v["approved_by"].as_str()),
        (200, Some("user:admin")),
        "{v}"
    );
    let d = e.settled(1).await;
    let st = states(&d[0]);
    assert!(st.contains(&("stop_auth".into(), "done".into())), "{st:?}");
    assert!(
        st.contains(&("suspend_sim".into(), "rejected".into())),
        "{st:?}"
    );
    assert_eq!(
        dev.send(json!({"seq": 4})).await.0,
        401,
        "approved: the device is stopped"
    );
    assert_eq!(
        e.carrier.sim("440100000000042").unwrap().status,
        "active",
        "rejected: never ran"
    );
    let (s, _) = e
        .admin
        .post(
            &format!("/api/v1/response/actions/{}/approve", id_of("stop_auth")),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "approved once");
    let _ = reg;
}

#[tokio::test]
async fn a_dead_mail_server_delays_only_mail_and_nothing_runs_twice_across_a_restart() {
    // A port with nothing listening yet: the mail server is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tls = SmtpTls::new();
    let e = env("resp-dead-mail", port, &tls).await;
    let (_, dev) = e.device("car-9", "440100000000043", false).await;
    assert_eq!(dev.send(oversized()).await.0, 202);
    // The disruptive actions are done while the mail keeps failing and waits for another attempt.
    let mail = eventually(30, || async {
        let d = e.decisions().await;
        let acts = d.first()?["actions"].as_array()?.clone();
        let state = |n: &str| {
            acts.iter()
                .find(|a| a["action"] == n)
                .map(|a| a["state"].clone())
        };
        let mail = acts.iter().find(|a| a["action"] == "notify_admin")?.clone();
        // Killed between two attempts (not while one runs: a mail caught running is never resent).
        let next_at = sekisho_core::time::parse_rfc3339(mail["next_at"].as_str()?)?;
        let next_in = next_at - common::now_ms();
        (state("stop_auth")? == "done"
            && state("suspend_sim")? == "done"
            && mail["attempts"].as_i64()? >= 2
            && mail["state"] == "pending"
            && next_in > 300)
            .then_some(mail)
    })
    .await
    .expect("mail retried while the other actions completed");
    assert!(mail["error"].as_str().unwrap().contains("mail"), "{mail}");
    assert_eq!(e.carrier.sim("440100000000043").unwrap().status, "inactive");

    // SIGKILL, the mail server comes back, the gateway restarts: the mail goes out once, nothing else
    // runs again and the detection is not decided a second time.
    let Env {
        dir,
        gw,
        admin,
        carrier,
        _running,
        hooks,
        field,
    } = e;
    let gw = gw.restart_after_kill9();
    let smtp = SmtpServer::start(&tls, Some(port));
    let e = Env {
        dir,
        admin: gw.admin().await,
        gw,
        carrier,
        _running,
        hooks,
        field,
    };
    let _ = admin;
    let d = e.settled(1).await;
    assert_eq!(d.len(), 1, "decided once: {d:?}");
    assert!(states(&d[0]).iter().all(|(_, s)| s == "done"), "{d:?}");
    let mails = eventually(10, || async {
        Some(smtp.mails()).filter(|m| !m.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(mails.len(), 1);
    let deactivations = e
        .carrier
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/deactivate"))
        .count();
    assert_eq!(deactivations, 1, "the SIM was suspended once");
    assert_eq!(e.hooks.got.lock().unwrap().len(), 1, "one webhook");
}

/// A field's response script adds what the playbook cannot express; an unknown action is noted, a
/// failing script is a recorded fault, and neither stops the response.
#[tokio::test]
async fn response_scripts_add_actions_and_their_faults_are_recorded() {
    let tls = SmtpTls::new();
    let smtp = SmtpServer::start(&tls, None);
    let e = env("resp-script", smtp.port, &tls).await;
    let (s, mut t) = e.admin.get("/api/v1/templates/generic").await;
    assert_eq!(s, 200, "{t}");
    t["size"]["max_bytes"] = 300.into();
    t["playbook"] = json!([]);
    t["actions"] = json!({"hijacking": ["notify_admin"]});
    t["scripts"] = json!([
        {"name": "big_means_look", "on": "response", "source":
            "function on_detection(d, device, field)\n  if d.rule == 'size.max' and device and not device.critical then act('collect_info') act('explode') end\nend"},
        {"name": "broken", "on": "response", "source":
            "function on_detection(d, device, field)\n  error('boom')\nend"}
    ]);
    let (s, v) = e
        .admin
        .req(
            Method::PUT,
            &format!("/api/v1/fields/{}/template", e.fid()),
            Some(t),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, dev) = e.device("hub-1", "440100000000044", false).await;
    assert_eq!(dev.send(oversized()).await.0, 202);
    let d = e.settled(1).await;
    assert_eq!(d[0]["decided_by"], "actions.hijacking");
    assert_eq!(
        states(&d[0]),
        pairs(&[("notify_admin", "done"), ("collect_info", "done")]),
        "{d:?}"
    );
    assert!(d[0]["note"].as_str().unwrap().contains("explode"), "{d:?}");
    let (_, faults) = e
        .admin
        .get(&format!("/api/v1/fields/{}/script-faults", e.fid()))
        .await;
    let faults = faults["items"].as_array().unwrap().clone();
    assert!(
        faults
            .iter()
            .any(|f| f["script"] == "broken" && f["message"].as_str().unwrap().contains("boom")),
        "{faults:?}"
    );
    assert_eq!(smtp.mails().len(), 1);
}

/// A field without notification settings: its notifications are recorded `skipped` with the reason
/// (neither failed nor retried), the field's status lists what is unset, and the log says so once
/// per field per hour, not once per incident.
#[tokio::test]
async fn notifications_without_a_target_are_skipped_and_said_once() {
    let dir = TempDir::new("resp-unset");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("nowhere").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let all = json!(["notify_admin", "notify_person_in_charge", "notify_webhook"]);
    assert_eq!(field["notifications"]["unset"], all, "{field}");
    let (_, mut t) = admin.get("/api/v1/templates/generic").await;
    t["size"]["max_bytes"] = 300.into();
    t["playbook"] = json!([]);
    t["actions"] = json!({"hijacking": ["notify_admin", "notify_webhook", "collect_info"]});
    admin
        .put_ok(&format!("/api/v1/fields/{fid}/template"), t)
        .await;
    // Two devices: two incidents (repeats are suppressed per device).
    for uid in ["car-1", "car-2"] {
        let reg = admin.device(&field, uid).await;
        let mut dev = Device::new(&gw, &reg, uid);
        dev.auth().await;
        assert_eq!(dev.send(oversized()).await.0, 202);
    }
    let path = format!("/api/v1/fields/{fid}/response/decisions");
    let decided = eventually(30, || async {
        let (_, v) = admin.get(&path).await;
        let items = v["items"].as_array()?.clone();
        let busy = items
            .iter()
            .flat_map(|d| d["actions"].as_array().unwrap().iter())
            .any(|a| matches!(a["state"].as_str(), Some("pending" | "running")));
        (items.len() == 2 && !busy).then_some(items)
    })
    .await
    .expect("both incidents are decided and their actions end");
    for d in &decided {
        assert_eq!(
            states(d),
            pairs(&[
                ("notify_admin", "skipped"),
                ("notify_webhook", "skipped"),
                ("collect_info", "done")
            ]),
            "{d}"
        );
        for (action, setting) in [
            ("notify_admin", "admin_emails"),
            ("notify_webhook", "webhook_url"),
        ] {
            let a = d["actions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["action"] == action)
                .unwrap();
            let reason = a["output"]["reason"].as_str().unwrap_or_default();
            assert!(reason.contains(setting), "{a}");
            assert_eq!(
                (&a["error"], &a["attempts"]),
                (&Value::Null, &json!(1)),
                "{a}"
            );
        }
    }
    // A change made after both incidents marks the end of what they logged.
    admin
        .put_ok(
            &format!("/api/v1/fields/{fid}/notify"),
            json!({"admin_emails": ["ops@example.jp"]}),
        )
        .await;
    let log = eventually(10, || async {
        Some(gw.log_text()).filter(|l| l.contains("field_notify"))
    })
    .await
    .expect("the change is logged");
    assert_eq!(
        log.matches("notifications have nowhere to go").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("action failed"), "{log}");
    // The field's status follows its settings.
    let (_, f) = admin.get(&format!("/api/v1/fields/{fid}")).await;
    assert_eq!(f["notifications"]["admin_emails"], 1, "{f}");
    assert_eq!(
        f["notifications"]["unset"],
        json!(["notify_person_in_charge", "notify_webhook"]),
        "{f}"
    );
}

/// Retries on the gateway's clock, with the shipped backoff (1 s, doubling, with jitter): a webhook
/// that answers `503` three times is tried again only once the gateway's time reaches the recorded
/// next attempt — never before — each wait within its step's bounds, and the fourth attempt lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_for_the_gateway_clock_and_back_off_exponentially() {
    use sekisho_core::time::parse_rfc3339;
    // The receiver refuses the first three posts.
    let posts: Arc<Mutex<u32>> = Arc::default();
    let count = posts.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                let mut n = count.lock().unwrap();
                *n += 1;
                if *n <= 3 {
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = TempDir::new("response-retries");
    let clock = sekisho_core::ManualClock::new(common::now_ms());
    let gw = Gateway::in_process(&dir.0, clock.clone()).await;
    let admin = gw.admin().await;
    let field = admin.field("retries").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let (_, mut t) = admin.get("/api/v1/templates/generic").await;
    t["size"]["max_bytes"] = 300.into();
    t["playbook"] =
        json!([{"name": "hook", "threats": ["hijacking"], "actions": ["notify_webhook"]}]);
    admin
        .put_ok(&format!("/api/v1/fields/{fid}/template"), t)
        .await;
    admin
        .put_ok(
            &format!("/api/v1/fields/{fid}/notify"),
            json!({"webhook_url": url, "webhook_secret": WEBHOOK_SECRET}),
        )
        .await;
    let reg = admin.device(&field, "HUB-RETRY").await;
    let mut d = Device::new(&gw, &reg, "HUB-RETRY");
    d.auth().await;
    assert_eq!(d.send(oversized()).await.0, 202);

    // The webhook action once it has been tried `n` times and is not running.
    let action_after = |n: i64| {
        let admin = &admin;
        async move {
            eventually(30, || async {
                let (_, v) = admin.get("/api/v1/response/actions").await;
                v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| {
                        a["action"] == "notify_webhook"
                            && a["attempts"].as_i64() >= Some(n)
                            && a["state"] != "running"
                    })
                    .cloned()
            })
            .await
            .unwrap_or_else(|| panic!("no webhook action tried {n} times"))
        }
    };
    let at = |a: &Value, k: &str| parse_rfc3339(a[k].as_str().unwrap()).unwrap();
    let mut a = action_after(1).await;
    for step in 0..3u32 {
        assert_eq!(
            (a["state"].as_str(), a["attempts"].as_i64()),
            (Some("pending"), Some(step as i64 + 1)),
            "{a}"
        );
        assert!(a["error"].as_str().unwrap().contains("503"), "{a}");
        let (tried, next) = (at(&a, "updated_at"), at(&a, "next_at"));
        // Step k waits between half and all of 1 s × 2^k.
        let full = 1000i64 << step;
        assert!(
            (full / 2..=full).contains(&(next - tried)),
            "wait {} ms after attempt {}",
            next - tried,
            step + 1
        );
        // Only the test moves the gateway's time: to the very moment of the next attempt.
        clock.set(next);
        a = action_after(step as i64 + 2).await;
        assert!(
            at(&a, "updated_at") >= next,
            "attempt {} ran before its time: {a}",
            step + 2
        );
    }
    assert_eq!(a["state"], "done", "{a}");
    assert_eq!(*posts.lock().unwrap(), 4);
}
