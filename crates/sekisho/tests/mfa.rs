//! The administrators' second factor, black-box: enrolment and confirmation with codes computed here
//! (an independent RFC 6238 implementation over the returned secret), disruptive actions refused
//! without a code, with a wrong one and with a used one, the throttle on wrong codes, a maintainer's
//! reset, turning it off, users without a second factor, the admin log, and the console's forms.

mod common;

use common::mfa::{App, base32_decode, code, enrol, send, step_now, wrong_at};
use common::{ADMIN_PASSWORD, Admin, Device, Gateway, TempDir, now_ms};
use reqwest::Method;
use sekisho_core::ManualClock;
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "second-factor-test-pw";

async fn user(gw: &Gateway, admin: &Admin, name: &str, role: &str, fields: &[&str]) -> Admin {
    let (s, v) = admin
        .post(
            "/api/v1/users",
            json!({"username": name, "password": PASSWORD, "role": role, "fields": fields}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let r = gw.login(name, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    Admin {
        token,
        ..admin.clone()
    }
}

fn refused(r: &(u16, Value), wording: &str) {
    assert_eq!(r.0, 403, "{}", r.1);
    assert_eq!(r.1["error"], "second_factor_required", "{}", r.1);
    let msg = r.1["message"].as_str().unwrap();
    assert!(msg.contains(wording), "{msg:?} should say {wording:?}");
}

#[tokio::test]
async fn disruptive_actions_need_a_fresh_code_once_a_user_has_a_second_factor() {
    let dir = TempDir::new("mfa-api");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("plant").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let mut regs = Vec::new();
    for u in ["pump-1", "pump-2", "pump-3", "pump-4"] {
        let (s, d) = admin
            .post(
                &format!("/api/v1/fields/{fid}/devices"),
                json!({"unique_id": u, "sim": {"imsi": "440101234567890"}}),
            )
            .await;
        assert_eq!(s, 201, "{d}");
        regs.push(d);
    }
    let dev = |i: usize| {
        format!(
            "/api/v1/fields/{fid}/devices/{}",
            regs[i]["id"].as_str().unwrap()
        )
    };
    let ops = user(&gw, &admin, "ops", "field_admin", &[&fid]).await;

    // A user without a second factor acts as before.
    assert_eq!(ops.get("/api/v1/me").await.1["mfa_enabled"], false);
    let r = send(&admin, Method::POST, &format!("{}/disable", dev(3)), None).await;
    assert_eq!(r.0, 200, "{}", r.1);

    // Enrolment: each call replaces the pending secret; only the latest can be confirmed.
    let (s, first) = ops.post("/api/v1/me/mfa", json!({})).await;
    assert_eq!(s, 200, "{first}");
    let (s, e) = ops.post("/api/v1/me/mfa", json!({})).await;
    assert_eq!(s, 200, "{e}");
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert_ne!(first["secret"], e["secret"]);
    assert_eq!(secret.len(), 32, "20 bytes in base32 without padding");
    assert_eq!(
        e["otpauth_uri"],
        format!(
            "otpauth://totp/Sekisho:ops?secret={secret}&issuer=Sekisho&algorithm=SHA1&digits=6&period=30"
        )
    );
    let mut app = App::new(&e);
    let stale = code(&App::new(&first).key, step_now());
    let (s, v) = ops
        .post("/api/v1/me/mfa/confirm", json!({"code": stale}))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (s, v) = ops
        .post("/api/v1/me/mfa/confirm", json!({"code": app.wrong()}))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    assert_eq!(ops.get("/api/v1/me").await.1["mfa_enabled"], false);
    let c = app.accepted().await;
    let (s, v) = ops.post("/api/v1/me/mfa/confirm", json!({"code": c})).await;
    assert_eq!((s, &v), (200, &json!({"mfa_enabled": true})));
    assert_eq!(ops.get("/api/v1/me").await.1["mfa_enabled"], true);
    let (s, v) = ops.post("/api/v1/me/mfa", json!({})).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    let (_, users) = admin.get("/api/v1/users").await;
    let listed = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "ops");
    assert_eq!(listed.unwrap()["mfa_enabled"], true);

    // Disable: without a code, with a wrong one — the device stays active and can still log in.
    let disable = format!("{}/disable", dev(0));
    refused(
        &send(&ops, Method::POST, &disable, None).await,
        "X-Sekisho-TOTP",
    );
    refused(
        &send(&ops, Method::POST, &disable, Some(&app.wrong())).await,
        "wrong",
    );
    assert_eq!(ops.get(&dev(0)).await.1["device"]["status"], "active");
    let device = Device::new(&gw, &regs[0], "pump-1");
    let (s, v) = device
        .request_token(&device.auth_id, &device.secret, "pump-1")
        .await;
    assert_eq!(s, 200, "{v}");
    // Delete and SIM suspend are guarded the same way; resume (an undo) is not.
    refused(
        &send(&ops, Method::DELETE, &dev(1), None).await,
        "X-Sekisho-TOTP",
    );
    assert_eq!(ops.get(&dev(1)).await.0, 200);
    let suspend = format!("{}/sim/suspend", dev(1));
    refused(
        &send(&ops, Method::POST, &suspend, None).await,
        "X-Sekisho-TOTP",
    );
    let r = send(&ops, Method::POST, &format!("{}/sim/resume", dev(1)), None).await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (409, Some("conflict")),
        "no carrier API: {}",
        r.1
    );

    // The right code: done. The same code again (after re-enabling): refused as used.
    let c = app.accepted().await;
    let r = send(&ops, Method::POST, &disable, Some(&c)).await;
    assert_eq!(
        (r.0, r.1["status"].as_str()),
        (200, Some("disabled")),
        "{}",
        r.1
    );
    let (s, v) = device
        .request_token(&device.auth_id, &device.secret, "pump-1")
        .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("device_disabled")));
    let r = send(&ops, Method::POST, &format!("{}/enable", dev(0)), None).await;
    assert_eq!(r.0, 200, "enable is an undo and needs no code: {}", r.1);
    refused(
        &send(&ops, Method::POST, &disable, Some(&c)).await,
        "already used",
    );
    assert_eq!(ops.get(&dev(0)).await.1["device"]["status"], "active");

    // Refused codes are throttled per user (an accepted code restarts the count: one used so far).
    // After login_max_failures (5), no code is even looked at until the window ends.
    refused(
        &send(&ops, Method::DELETE, "/api/v1/me/mfa", Some(&app.wrong())).await,
        "wrong",
    );
    refused(
        &send(&ops, Method::DELETE, &dev(1), Some(&app.wrong())).await,
        "wrong",
    );
    refused(
        &send(&ops, Method::POST, &disable, Some(&app.wrong())).await,
        "wrong",
    );
    refused(
        &send(&ops, Method::POST, &suspend, Some(&app.wrong())).await,
        "wrong",
    );
    let r = send(&ops, Method::POST, &disable, Some(&c)).await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (429, Some("too_many_requests")),
        "{}",
        r.1
    );
    assert_eq!(ops.get(&dev(0)).await.1["device"]["status"], "active");
    // The password login is a separate count: ops can still log in.
    assert_eq!(gw.login("ops", PASSWORD).await.status(), 200);

    // A maintainer with a second factor needs a code to reset someone else's; one without does not.
    let boss = user(&gw, &admin, "boss", "maintainer", &[]).await;
    let mut boss_app = enrol(&boss).await;
    refused(
        &send(&boss, Method::DELETE, "/api/v1/users/ops/mfa", None).await,
        "X-Sekisho-TOTP",
    );
    let r = send(&ops, Method::DELETE, "/api/v1/users/boss/mfa", None).await;
    assert_eq!((r.0, r.1["error"].as_str()), (403, Some("forbidden")));
    let r = send(&boss, Method::DELETE, "/api/v1/users/nobody/mfa", None).await;
    assert_eq!(r.0, 404);
    let c = boss_app.accepted().await;
    let r = send(&boss, Method::DELETE, "/api/v1/users/ops/mfa", Some(&c)).await;
    assert_eq!(r.0, 204, "{}", r.1);
    assert_eq!(ops.get("/api/v1/me").await.1["mfa_enabled"], false);
    // Without a second factor (and with the throttle still counting), ops acts without a code.
    let r = send(&ops, Method::DELETE, &dev(2), None).await;
    assert_eq!(r.0, 204, "{}", r.1);

    // Everything is in the admin log; the secret is nowhere in the gateway's output.
    let log = gw.log_text();
    for action in [
        "mfa_enrol",
        "mfa_enable",
        "second_factor_failed",
        "device_disable",
        "mfa_reset",
        "device_delete",
    ] {
        assert!(
            log.contains(&format!("\"{action}\"")),
            "{action} in the admin log"
        );
    }
    assert!(!log.contains(&secret), "the secret is never logged");
}

/// TOTP steps and the wrong-code lockout on a gateway whose clock the test moves (no waiting for the
/// real 30 s step or the 5 min window): a code is valid only within one step of the gateway's time, a
/// code for two steps ahead becomes valid when the gateway's time reaches it, and after
/// `login_max_failures` wrong codes even the right one is refused until the window ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_the_lockout_follow_the_gateway_clock() {
    let dir = TempDir::new("mfa-clock");
    // One second into a 30 s step, so every advance below lands at a known place in its step.
    let clock = ManualClock::new(now_ms() / 30_000 * 30_000 + 1_000);
    let step = |c: &ManualClock| (sekisho_core::clock::Clock::now_ms(c) / 30_000) as u64;
    let gw = Gateway::in_process(&dir.0, clock.clone()).await;
    let admin = gw.admin().await;
    let field = admin.field("plant").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let (s, d) = admin
        .post(
            &format!("/api/v1/fields/{fid}/devices"),
            json!({"unique_id": "pump-1"}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let dev = format!("/api/v1/fields/{fid}/devices/{}", d["id"].as_str().unwrap());
    let disable = format!("{dev}/disable");
    let enable = format!("{dev}/enable");

    let (s, e) = admin.post("/api/v1/me/mfa", json!({})).await;
    assert_eq!(s, 200, "{e}");
    let key = base32_decode(e["secret"].as_str().unwrap());
    let s0 = step(&clock);
    let (s, v) = admin
        .post("/api/v1/me/mfa/confirm", json!({"code": code(&key, s0)}))
        .await;
    assert_eq!((s, &v), (200, &json!({"mfa_enabled": true})));

    // Two steps ahead of the gateway: outside its ±1 window, wrong. Once the gateway's time reaches
    // that step, the same code is accepted.
    let ahead = code(&key, s0 + 2);
    refused(
        &send(&admin, Method::POST, &disable, Some(&ahead)).await,
        "wrong",
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(step(&clock), s0 + 2);
    let r = send(&admin, Method::POST, &disable, Some(&ahead)).await;
    assert_eq!(
        (r.0, r.1["status"].as_str()),
        (200, Some("disabled")),
        "{}",
        r.1
    );
    assert_eq!(send(&admin, Method::POST, &enable, None).await.0, 200);
    // The confirmation's code is now two steps old: wrong, not merely used.
    refused(
        &send(&admin, Method::POST, &disable, Some(&code(&key, s0))).await,
        "wrong",
    );

    // Four more wrong codes make login_max_failures (5): the next, right, code is throttled.
    let wrong = wrong_at(&key, step(&clock));
    for _ in 0..4 {
        refused(
            &send(&admin, Method::POST, &disable, Some(&wrong)).await,
            "wrong",
        );
    }
    let next = code(&key, s0 + 3);
    let r = send(&admin, Method::POST, &disable, Some(&next)).await;
    assert_eq!(
        (r.0, r.1["error"].as_str()),
        (429, Some("too_many_requests")),
        "{}",
        r.1
    );
    assert_eq!(admin.get(&dev).await.1["device"]["status"], "active");
    // The window (login_lockout_secs, 5 min) ends on the gateway's clock: a fresh code works again.
    clock.advance(Duration::from_secs(300));
    let fresh = code(&key, step(&clock));
    let r = send(&admin, Method::POST, &disable, Some(&fresh)).await;
    assert_eq!(
        (r.0, r.1["status"].as_str()),
        (200, Some("disabled")),
        "{}",
        r.1
    );
}

#[tokio::test]
async fn a_user_turns_the_second_factor_off_with_a_code() {
    let dir = TempDir::new("mfa-off");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let mut app = enrol(&admin).await;
    let r = send(&admin, Method::DELETE, "/api/v1/me/mfa", None).await;
    refused(&r, "X-Sekisho-TOTP");
    // The code may come in the body too.
    let c = app.accepted().await;
    let (s, v) = admin
        .req(Method::DELETE, "/api/v1/me/mfa", Some(json!({"code": c})))
        .await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(admin.get("/api/v1/me").await.1["mfa_enabled"], false);
    // Nothing left: a no-op. A started enrolment is cancelled without a code.
    assert_eq!(
        send(&admin, Method::DELETE, "/api/v1/me/mfa", None).await.0,
        204
    );
    let (s, _) = admin.post("/api/v1/me/mfa", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        send(&admin, Method::DELETE, "/api/v1/me/mfa", None).await.0,
        204
    );
    let (s, v) = admin
        .post("/api/v1/me/mfa/confirm", json!({"code": "123456"}))
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    let log = gw.log_text();
    assert!(log.contains("\"mfa_disable\"") && log.contains("\"mfa_enrol_cancel\""));
}

/// A console client (cookie session, same-origin header, no redirects followed).
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Console {
    async fn login(gw: &Gateway, user: &str, password: &str) -> Self {
        let ca = std::fs::read(gw.dir.join("tls/ca.crt")).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut c = Self {
            http,
            base: format!("https://{}", gw.admin),
            cookie: String::new(),
        };
        let (s, h, _) = c
            .post(
                "/console/login",
                &[("username", user), ("password", password)],
                false,
            )
            .await;
        assert_eq!(s, 303);
        let set = h.get("set-cookie").unwrap().to_str().unwrap();
        c.cookie = set.split(';').next().unwrap().to_owned();
        c
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        htmx: bool,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &self.base)
            .header("cookie", &self.cookie)
            .body(body.join("&"));
        if htmx {
            r = r.header("hx-request", "true");
        }
        let resp = r.send().await.unwrap();
        let (s, h) = (resp.status().as_u16(), resp.headers().clone());
        (s, h, resp.text().await.unwrap())
    }
}

/// The text between `<code id="{id}" …>` and `</code>`.
fn code_text(page: &str, id: &str) -> String {
    let start = page.find(&format!("id=\"{id}\"")).unwrap();
    let rest = &page[start..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..rest.find("</code>").unwrap()].replace("&amp;", "&")
}

#[tokio::test]
async fn the_console_enrols_and_sends_the_code_with_stop_and_delete() {
    let dir = TempDir::new("mfa-console");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("shop").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let reg = admin.device(&field, "till-1").await;
    let did = reg["id"].as_str().unwrap().to_owned();
    let c = Console::login(&gw, "admin", ADMIN_PASSWORD).await;

    // The security page, in both languages.
    let (s, page) = c.get("/console/security").await;
    assert_eq!(s, 200);
    assert!(page.contains("data-mfa=\"off\"") && page.contains("id=\"mfa-enrol-form\""));
    assert!(page.contains("href=\"/console/security\" aria-current=\"page\""));
    let (_, h, _) = c
        .post(
            "/console/lang",
            &[("lang", "ja"), ("back", "/console/security")],
            false,
        )
        .await;
    let ja = h
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = c
        .http
        .get(format!("{}/console/security", c.base))
        .header("cookie", format!("{}; {ja}", c.cookie))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("二要素認証"));

    // Enrol: the key and the URI as text; a wrong code shows them again; the right one turns it on.
    let (s, _, page) = c.post("/console/security/enrol", &[], false).await;
    assert_eq!(s, 200);
    let secret = code_text(&page, "mfa-secret");
    let uri = code_text(&page, "mfa-uri");
    assert!(
        uri.starts_with("otpauth://totp/Sekisho:admin?secret=") && uri.contains(&secret),
        "{uri}"
    );
    let mut app = App::new(&json!({"secret": secret}));
    let (s, _, page) = c
        .post(
            "/console/security/confirm",
            &[("code", &app.wrong())],
            false,
        )
        .await;
    assert_eq!(s, 400);
    assert!(page.contains("role=\"alert\"") && code_text(&page, "mfa-secret") == secret);
    let code1 = app.accepted().await;
    let (s, _, page) = c
        .post("/console/security/confirm", &[("code", &code1)], false)
        .await;
    assert_eq!(s, 200);
    assert!(page.contains("data-mfa=\"on\"") && page.contains("id=\"mfa-disable-form\""));

    // The field page's disable and delete forms now carry a code field.
    let (_, page) = c.get(&format!("/console/fields/{fid}")).await;
    assert_eq!(
        page.matches("name=\"totp\"").count(),
        2,
        "disable and delete"
    );
    let action = format!("/console/fields/{fid}/devices/{did}/disable");
    // htmx without a code: the row comes back, still active, with the reason.
    let (s, _, row) = c.post(&action, &[], true).await;
    assert_eq!(s, 200);
    assert!(
        row.contains("data-status=\"active\"") && row.contains("role=\"alert\""),
        "{row}"
    );
    // A plain form with a wrong code: an error page.
    let (s, _, _) = c.post(&action, &[("totp", &app.wrong())], false).await;
    assert_eq!(s, 403);
    let (_, v) = admin
        .get(&format!("/api/v1/fields/{fid}/devices/{did}"))
        .await;
    assert_eq!(v["device"]["status"], "active");
    // The right code: the row comes back disabled.
    let code2 = app.accepted().await;
    let (s, _, row) = c.post(&action, &[("totp", &code2)], true).await;
    assert_eq!(s, 200);
    assert!(row.contains("data-status=\"disabled\""), "{row}");
    // Enable needs no code.
    let enable = format!("/console/fields/{fid}/devices/{did}/enable");
    let (s, _, row) = c.post(&enable, &[], true).await;
    assert_eq!(s, 200);
    assert!(row.contains("data-status=\"active\""), "{row}");
}
