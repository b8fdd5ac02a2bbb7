//! The browser console, black-box over HTTPS: form login and its cookie, logout, field scoping,
//! cross-origin refusal, security headers, embedded assets, languages, device registration and the
//! htmx row actions, history paging. (A real browser drives it in `tests/console/`.)

mod common;

use common::{ADMIN_PASSWORD, Device, Gateway, TempDir};
use reqwest::header::HeaderMap;
use serde_json::json;

const FORM: &str = "application/x-www-form-urlencoded";

/// A console client: no redirects followed (the tests look at them), cookies set by hand.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Console {
    fn new(gw: &Gateway) -> Self {
        let ca = std::fs::read(gw.dir.join("tls/ca.crt")).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            http,
            base: format!("https://{}", gw.admin),
            cookie: String::new(),
        }
    }

    async fn page(&self, r: reqwest::RequestBuilder) -> Page {
        let r = if self.cookie.is_empty() {
            r
        } else {
            r.header("cookie", &self.cookie)
        };
        let resp = r.send().await.unwrap();
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.page(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    fn post_req(&self, path: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", FORM)
            .body(encode(form))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.page(self.post_req(path, form)).await
    }

    /// Logs in through the form; keeps the session cookie.
    async fn login(&mut self, user: &str, password: &str) -> Page {
        let p = self
            .post(
                "/console/login",
                &[("username", user), ("password", password)],
            )
            .await;
        if let Some(c) = p.headers.get("set-cookie") {
            let c = c.to_str().unwrap();
            self.cookie = c.split(';').next().unwrap().to_owned();
        }
        p
    }

    async fn admin(gw: &Gateway) -> Self {
        let mut c = Self::new(gw);
        assert_eq!(c.login("admin", ADMIN_PASSWORD).await.status, 303);
        c
    }
}

#[tokio::test]
async fn form_login_sets_a_strict_session_cookie_and_logout_ends_it() {
    let dir = TempDir::new("console-login");
    let gw = Gateway::start_in(&dir.0);
    let mut c = Console::new(&gw);

    let p = c.get("/").await;
    assert_eq!((p.status, p.header("location")), (303, "/console"));
    let p = c.get("/console").await;
    assert_eq!((p.status, p.header("location")), (303, "/console/login"));

    let p = c.login("admin", "not-the-password").await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("Wrong user name or password"), "{}", p.body);
    assert!(p.headers.get("set-cookie").is_none());

    let p = c.login("admin", ADMIN_PASSWORD).await;
    assert_eq!((p.status, p.header("location")), (303, "/console"));
    let cookie = p.header("set-cookie");
    assert!(cookie.starts_with("sekisho_session="), "{cookie}");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} in {cookie}");
    }

    let p = c.get("/console").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("System status") && p.body.contains("admin"));
    assert_eq!(p.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        p.header("content-security-policy"),
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'"
    );
    assert_eq!(p.header("x-content-type-options"), "nosniff");
    assert_eq!(p.header("referrer-policy"), "no-referrer");
    assert_eq!(p.header("cache-control"), "no-store");
    assert!(
        !p.body.contains("<script>") && !p.body.contains(" style="),
        "no inline script or style (CSP)"
    );

    // The cookie is a console credential only: the API wants a bearer token.
    let p = c.get("/api/v1/fields").await;
    assert_eq!(p.status, 401);

    let p = c.post("/console/logout", &[]).await;
    assert_eq!((p.status, p.header("location")), (303, "/console/login"));
    assert!(p.header("set-cookie").contains("Max-Age=0"));
    // The session is gone from the store, not just from the browser.
    let p = c.get("/console").await;
    assert_eq!((p.status, p.header("location")), (303, "/console/login"));
    // The log is read from the process's output by a thread of its own: wait for the line.
    let logged = common::eventually(10, || async {
        gw.log_text().contains("\"logout\"").then_some(())
    })
    .await;
    assert!(logged.is_some(), "logout is in the admin log");
}

#[tokio::test]
async fn console_logins_share_the_api_throttle() {
    let dir = TempDir::new("console-throttle");
    let gw = Gateway::start_in(&dir.0);
    let mut c = Console::new(&gw);
    for _ in 0..5 {
        assert_eq!(c.login("admin", "wrong-password-x").await.status, 401);
    }
    let p = c.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(p.status, 429, "locked even with the right password");
    assert!(p.body.contains("Try again in"), "{}", p.body);
    let r = gw.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429, "the API sees the same lock");
}

#[tokio::test]
async fn a_field_admin_sees_only_its_fields() {
    let dir = TempDir::new("console-scope");
    let gw = Gateway::start_in(&dir.0);
    let api = gw.admin().await;
    let mine = api.field("osaka").await;
    let other = api.field("nagoya").await;
    let (mine, other) = (mine["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    let (s, v) = api
        .post(
            "/api/v1/users",
            json!({"username": "fa", "password": "field-admin-password", "role": "field_admin", "fields": [mine]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    let mut c = Console::new(&gw);
    assert_eq!(c.login("fa", "field-admin-password").await.status, 303);
    let p = c.get("/console").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("osaka") && !p.body.contains("nagoya"));
    assert!(
        !p.body.contains("System status"),
        "system status is not for field admins"
    );
    assert_eq!(c.get(&format!("/console/fields/{mine}")).await.status, 200);
    let p = c.get(&format!("/console/fields/{other}")).await;
    assert_eq!(p.status, 404);
    assert!(!p.body.contains("nagoya"));
    let p = c.get(&format!("/console/history?field={other}")).await;
    assert_eq!(p.status, 404);
    let p = c
        .post(
            &format!("/console/fields/{other}/devices"),
            &[("unique_id", "x-1")],
        )
        .await;
    assert_eq!(p.status, 404);
    // Only maintainers create fields.
    let p = c.post("/console/fields", &[("name", "kobe")]).await;
    assert_eq!(p.status, 403);
    let p = c.get("/console/fields").await;
    assert!(
        !p.body.contains("new-field-form"),
        "no create form for them"
    );
}

#[tokio::test]
async fn cross_origin_posts_are_refused() {
    let dir = TempDir::new("console-origin");
    let gw = Gateway::start_in(&dir.0);
    let c = Console::admin(&gw).await;
    let evil = c
        .post_req("/console/fields", &[("name", "evil")])
        .header("origin", "https://evil.example");
    let p = c.page(evil).await;
    assert_eq!(p.status, 403);
    assert!(
        p.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    let sneaky = c
        .post_req("/console/fields", &[("name", "sneaky")])
        .header("sec-fetch-site", "cross-site");
    assert_eq!(c.page(sneaky).await.status, 403);
    // `Origin: null` (what browsers send under no-referrer, or from a sandboxed frame) needs the fetch
    // metadata to say same-origin.
    let opaque = c
        .post_req("/console/fields", &[("name", "opaque")])
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site");
    assert_eq!(c.page(opaque).await.status, 403);
    let p = c.get("/console/fields").await;
    assert!(!p.body.contains("evil") && !p.body.contains("sneaky") && !p.body.contains("opaque"));

    let own = c
        .post_req("/console/fields", &[("name", "own")])
        .header("origin", format!("https://{}", gw.admin));
    let p = c.page(own).await;
    assert_eq!(p.status, 303);
    assert!(p.header("location").starts_with("/console/fields/f_"));
    // Logging in is a state change too.
    let r = c
        .http
        .post(format!("{}/console/login", c.base))
        .header("content-type", FORM)
        .header("origin", "https://evil.example")
        .body(encode(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ]));
    assert_eq!(c.page(r).await.status, 403);
}

#[tokio::test]
async fn assets_are_embedded_with_long_cache_headers() {
    let dir = TempDir::new("console-assets");
    let gw = Gateway::start_in(&dir.0);
    let c = Console::new(&gw);
    let js = c.get("/console/assets/htmx.min.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), "text/javascript; charset=utf-8");
    assert!(js.header("cache-control").contains("max-age=31536000"));
    assert_eq!(js.header("x-content-type-options"), "nosniff");
    assert!(js.body.starts_with("var htmx="), "the vendored htmx");
    let css = c.get("/console/assets/console.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert!(css.header("cache-control").contains("immutable"));
    // Pages link them by content hash, from this origin only.
    let login = c.get("/console/login").await;
    assert!(login.body.contains("src=\"/console/assets/htmx.min.js?v="));
    assert!(
        login
            .body
            .contains(r#"<meta name="htmx-config" content='{"allowEval":false"#)
    );
    assert!(!login.body.contains("http://") && !login.body.contains("https://"));
    let p = c.get("/console/no-such-page").await;
    assert_eq!(p.status, 404);
    assert!(p.header("content-type").starts_with("text/html"));
}

#[tokio::test]
async fn japanese_labels_with_the_lang_cookie_or_accept_language() {
    let dir = TempDir::new("console-ja");
    let gw = Gateway::start_in(&dir.0);
    let mut c = Console::new(&gw);
    c.cookie = "lang=ja".into();
    let p = c.get("/console/login").await;
    assert!(p.body.contains("<html lang=\"ja\">"));
    assert!(p.body.contains("ログイン") && p.body.contains("パスワード"));
    let p = c.login("admin", "wrong-password-x").await;
    assert!(p.body.contains("ユーザー名またはパスワードが違います"));

    let plain = Console::new(&gw);
    let r = plain
        .http
        .get(format!("{}/console/login", plain.base))
        .header("accept-language", "ja-JP,ja;q=0.9,en;q=0.5");
    assert!(plain.page(r).await.body.contains("ログイン"));
    let r = plain
        .http
        .get(format!("{}/console/login", plain.base))
        .header("accept-language", "en-GB,ja;q=0.5");
    assert!(plain.page(r).await.body.contains("Log in to Sekisho"));

    // The switch sets the cookie and goes back, only ever to a console page.
    let p = plain
        .post(
            "/console/lang",
            &[("lang", "ja"), ("back", "/console/fields")],
        )
        .await;
    assert_eq!((p.status, p.header("location")), (303, "/console/fields"));
    assert!(p.header("set-cookie").starts_with("lang=ja;"));
    let p = plain
        .post(
            "/console/lang",
            &[("lang", "en"), ("back", "https://evil.example/")],
        )
        .await;
    assert_eq!(p.header("location"), "/console");

    let mut c = Console::admin(&gw).await;
    c.cookie = format!("{}; lang=ja", c.cookie);
    let p = c.get("/console").await;
    for label in [
        "システム状態",
        "フィールド",
        "デバイス",
        "履歴",
        "ログアウト",
    ] {
        assert!(p.body.contains(label), "{label}");
    }
}

#[tokio::test]
async fn devices_are_registered_and_switched_off_from_the_console() {
    let dir = TempDir::new("console-devices");
    let gw = Gateway::start_in(&dir.0);
    let c = Console::admin(&gw).await;
    let p = c.post("/console/fields", &[("name", "clinic")]).await;
    let field_page = p.header("location").to_owned();
    let fid = field_page.rsplit('/').next().unwrap().to_owned();

    let p = c
        .post(
            &format!("/console/fields/{fid}/devices"),
            &[
                ("unique_id", "pump-7"),
                ("name", "<script>alert(1)</script>"),
                ("imsi", "440101234567890"),
                ("critical", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, 200);
    let between = |s: &str, a: &str, b: &str| -> String {
        let i = s.find(a).unwrap_or_else(|| panic!("{a} in page")) + a.len();
        s[i..i + s[i..].find(b).unwrap()].to_owned()
    };
    let secret = between(&p.body, "id=\"new-secret\" class=\"secret-value\">", "<");
    let auth_id = between(&p.body, "id=\"new-auth-id\">", "<");
    let device_id = between(&p.body, "id=\"new-device-id\">", "<");
    assert!(secret.len() >= 43, "{secret}");
    assert!(
        p.body.contains("alert(1)") && !p.body.contains("<script>alert"),
        "escaped"
    );
    assert!(p.body.contains("440101234567890"));

    // The secret shown is the device's, and it is never shown again.
    let reg = json!({"auth_id": auth_id, "auth_secret": secret});
    let mut dev = Device::new(&gw, &reg, "pump-7");
    dev.auth().await;
    assert_eq!(dev.send(json!({"flow": 3})).await.0, 202);
    let p = c.get(&field_page).await;
    assert!(!p.body.contains(&secret));
    assert!(p.body.contains("data-status=\"active\""));

    // A refused form keeps what was typed and says why.
    let p = c
        .post(
            &format!("/console/fields/{fid}/devices"),
            &[("unique_id", "pump-7"), ("name", "again")],
        )
        .await;
    assert_eq!(p.status, 409);
    assert!(p.body.contains("already exists") && p.body.contains("value=\"again\""));

    // htmx: the disable button gets the new row back.
    let r = c
        .post_req(
            &format!("/console/fields/{fid}/devices/{device_id}/disable"),
            &[],
        )
        .header("hx-request", "true")
        .header("origin", format!("https://{}", gw.admin));
    let p = c.page(r).await;
    assert_eq!(p.status, 200);
    assert!(p.body.trim_start().starts_with("<tr id=\"device-"));
    assert!(
        p.body.contains("data-status=\"disabled\"") && p.body.contains("data-action=\"enable\"")
    );
    let (s, v) = dev.request_token(&auth_id, &secret, "pump-7").await;
    assert_eq!((s, v["error"].as_str()), (403, Some("device_disabled")));
    // Without htmx, the same buttons are plain forms that come back to the page.
    let p = c
        .post(
            &format!("/console/fields/{fid}/devices/{device_id}/enable"),
            &[],
        )
        .await;
    assert_eq!((p.status, p.header("location")), (303, field_page.as_str()));
    assert_eq!(dev.request_token(&auth_id, &secret, "pump-7").await.0, 200);
    assert!(
        gw.log_text().contains("\"device_disable\"") && gw.log_text().contains("\"device_enable\""),
        "console changes are in the admin log"
    );

    // History: the message and the authentication attempts.
    let p = c.get(&format!("/console/history?field={fid}")).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("pump-7") && p.body.contains("badge accepted"));
    let p = c
        .get(&format!(
            "/console/history?kind=auth&field={fid}&outcome=failure"
        ))
        .await;
    assert!(p.body.contains("badge failure") && !p.body.contains("badge success"));
}

#[tokio::test]
async fn history_pages_with_the_before_cursor() {
    let dir = TempDir::new("console-history");
    let gw = Gateway::start_in(&dir.0);
    let api = gw.admin().await;
    let field = api.field("rail").await;
    let reg = api.device(&field, "sensor-1").await;
    let mut dev = Device::new(&gw, &reg, "sensor-1");
    dev.auth().await;
    for i in 0..51 {
        assert_eq!(dev.send(json!({"i": i})).await.0, 202);
    }
    let c = Console::admin(&gw).await;
    let p = c.get("/console/history").await;
    assert_eq!(p.body.matches("badge accepted").count(), 50);
    let i = p.body.find("id=\"older\"").expect("an older page");
    let href = &p.body[..i];
    let href = &href[href.rfind("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()].replace("&#38;", "&");
    assert!(href.contains("before="), "{href}");
    let p = c.get(&href).await;
    assert_eq!(p.body.matches("badge accepted").count(), 1, "{href}");
    assert!(!p.body.contains("id=\"older\""));
    let p = c
        .get("/console/history?before=not-a-number&outcome=bogus")
        .await;
    assert_eq!(p.status, 200, "bad filters are ignored, not errors");
}

#[tokio::test]
async fn detections_are_listed_with_their_threat_in_both_languages() {
    let dir = TempDir::new("console-detections");
    let gw = Gateway::start_in(&dir.0);
    let api = gw.admin().await;
    let field = api.field("cars").await;
    let reg = api.device(&field, "CAR-DETECT").await;
    let mut dev = common::Device::new(&gw, &reg, "CAR-DETECT");
    dev.auth().await;
    // Truncated JSON (V24): refused and detected.
    assert_eq!(
        dev.send_raw("/v1/telemetry", "application/json", "{\"speed\": 4")
            .await
            .0,
        400
    );
    let fid = field["id"].as_str().unwrap().to_owned();
    let found = common::eventually(20, || async {
        let (_, v) = api.get(&format!("/api/v1/fields/{fid}/detections")).await;
        (!v["items"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    assert!(found.is_some());

    let mut c = Console::admin(&gw).await;
    let p = c.get("/console/detections").await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("format.malformed") && p.body.contains("Hijacking"),
        "{}",
        p.body
    );
    assert!(p.body.contains("CAR-DETECT") || p.body.contains(reg["id"].as_str().unwrap()));
    c.cookie.push_str("; lang=ja");
    let p = c.get("/console/detections?threat=hijacking").await;
    assert!(
        p.body.contains("乗っ取り") && p.body.contains("検知"),
        "{}",
        p.body
    );
    let p = c.get("/console/detections?threat=theft").await;
    assert!(
        !p.body.contains("format.malformed"),
        "the threat filter applies"
    );
    // A field the user cannot see is not found.
    let p = c
        .get("/console/detections?field=f_00000000000000000000")
        .await;
    assert_eq!(p.status, 404);
}

#[tokio::test]
async fn approvals_are_decided_and_actions_undone_from_the_console() {
    let dir = TempDir::new("console-response");
    let gw = Gateway::start_in(&dir.0);
    let api = gw.admin().await;
    let field = api.field("pumps").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let (_, mut t) = api.get("/api/v1/templates/generic").await;
    t["actions"] = serde_json::json!({"hijacking": ["stop_auth"]});
    let (s, v) = api
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/fields/{fid}/template"),
            Some(t),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, reg) = api
        .post(
            &format!("/api/v1/fields/{fid}/devices"),
            serde_json::json!({"unique_id": "PUMP-1", "critical": true}),
        )
        .await;
    assert_eq!(s, 201, "{reg}");
    let mut dev = common::Device::new(&gw, &reg, "PUMP-1");
    dev.auth().await;
    assert_eq!(
        dev.send_raw("/v1/telemetry", "application/json", "{broken")
            .await
            .0,
        400
    );
    let waiting = common::eventually(20, || async {
        let (_, v) = api.get("/api/v1/response/approvals").await;
        v["items"].as_array()?.first().cloned()
    })
    .await
    .expect("the critical device's stop waits for approval");
    let id = waiting["id"].as_i64().unwrap();

    let mut c = Console::admin(&gw).await;
    c.cookie.push_str("; lang=ja");
    let p = c.get("/console/response").await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains(&format!("id=\"action-{id}\"")),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("承認待ち") && p.body.contains("認証停止"),
        "{}",
        p.body
    );
    let p = c
        .post(&format!("/console/response/{id}/approve"), &[])
        .await;
    assert_eq!((p.status, p.header("location")), (303, "/console/response"));
    let done = common::eventually(20, || async {
        let (_, a) = api
            .get(&format!(
                "/api/v1/response/actions?device={}",
                reg["id"].as_str().unwrap()
            ))
            .await;
        a["items"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == id && a["state"] == "done")
            .cloned()
    })
    .await;
    assert!(done.is_some(), "approved from the console: it ran");
    assert_eq!(dev.send(serde_json::json!({"seq": 1})).await.0, 401);
    let p = c.get("/console/response").await;
    assert!(p.body.contains("no-approvals"), "{}", p.body);
    assert!(
        p.body.contains(&format!("/console/response/{id}/undo")),
        "{}",
        p.body
    );
    let p = c.post(&format!("/console/response/{id}/undo"), &[]).await;
    assert_eq!(p.status, 303);
    dev.auth().await;
    assert_eq!(
        dev.send(serde_json::json!({"seq": 2})).await.0,
        202,
        "undone"
    );
}

#[tokio::test]
async fn a_field_without_notification_targets_says_so_and_shows_why_they_were_skipped() {
    let dir = TempDir::new("console-unset");
    let gw = Gateway::start_in(&dir.0);
    let api = gw.admin().await;
    let field = api.field("wells").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let (_, mut t) = api.get("/api/v1/templates/generic").await;
    t["actions"] = serde_json::json!({"hijacking": ["notify_admin"]});
    let (s, v) = api
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/fields/{fid}/template"),
            Some(t),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let reg = api.device(&field, "WELL-1").await;
    let mut dev = common::Device::new(&gw, &reg, "WELL-1");
    dev.auth().await;
    let (s, _) = dev
        .send_raw("/v1/telemetry", "application/json", "{broken")
        .await;
    assert_eq!(s, 400);
    let skipped = common::eventually(20, || async {
        let (_, v) = api.get("/api/v1/response/actions?state=skipped").await;
        v["items"].as_array()?.first()?["id"].as_i64()
    })
    .await
    .expect("the mail with no address is skipped");

    let c = Console::admin(&gw).await;
    let p = c.get(&format!("/console/fields/{fid}")).await;
    assert_eq!(p.status, 200);
    let facts = p.body.split("id=\"field-notifications\"").nth(1).unwrap();
    let facts = facts.split("</dd>").next().unwrap();
    assert!(
        facts.contains("No target: skipped")
            && facts.contains("Mail the administrator")
            && facts.contains("Call the webhook"),
        "{facts}"
    );
    let p = c.get("/console/response").await;
    let row = p
        .body
        .split(&format!("id=\"recent-{skipped}\""))
        .nth(1)
        .unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(
        row.contains("data-state=\"skipped\"") && row.contains("admin_emails"),
        "{row}"
    );

    // With every target set, the field page says so.
    let (s, v) = api
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/fields/{fid}/notify"),
            Some(serde_json::json!({
                "admin_emails": ["ops@example.jp"], "person_in_charge_emails": ["site@example.jp"],
                "webhook_url": "https://siem.example/hook", "webhook_secret": "0123456789abcdef"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let p = c.get(&format!("/console/fields/{fid}")).await;
    assert!(p.body.contains("Every target is set"), "{}", p.body);
}
