//! Device protocol v1 against the real gateway on loopback: the trial's checks V01-V05, V07-V09 and
//! V25, and every documented error code of the device API.

mod common;

use common::{Device, Gateway, TempDir, tls_connect, tls_connect_from};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup(tag: &str) -> (TempDir, Gateway, common::Admin, Value) {
    let dir = TempDir::new(tag);
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    (dir, gw, admin, field)
}

#[tokio::test]
async fn v01_to_v04_registered_devices_authenticate_and_send_others_do_not() {
    let (_dir, gw, admin, field) = setup("v01").await;
    let reg = admin.device(&field, "IMEI-356938035643809").await;
    let mut dev = Device::new(&gw, &reg, "IMEI-356938035643809");

    // V01: the three registered factors give a token bound to the device.
    dev.auth().await;
    assert_eq!(dev.device_id, reg["id"].as_str().unwrap());
    assert_eq!(dev.token.len(), 43, "256-bit base64url token");

    // V02: any wrong factor gives the same 401, which never says which factor was wrong.
    let wrong = [
        (
            dev.auth_id.clone(),
            "not-the-secret".to_owned(),
            dev.unique_id.clone(),
        ),
        (
            dev.auth_id.clone(),
            dev.secret.clone(),
            "IMEI-000000000000000".to_owned(),
        ),
        (
            "aid_unknown".to_owned(),
            dev.secret.clone(),
            dev.unique_id.clone(),
        ),
    ];
    let mut messages = Vec::new();
    for (a, s, u) in &wrong {
        let (status, body) = dev.request_token(a, s, u).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_credentials");
        messages.push(body["message"].clone());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");

    // V03: the authenticated device's data is accepted once stored.
    let (s, body) = dev.send(json!({"speed": 42, "seq": 1})).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["id"].as_str().unwrap().len(), 36);
    assert_eq!(body["commands"], json!([]));

    // V04: no token, an unknown token, another device's id: refused.
    let other = admin.device(&field, "IMEI-2").await;
    let mut dev2 = Device::new(&gw, &other, "IMEI-2");
    dev2.auth().await;
    let mut cases = vec![
        ("", dev.device_id.clone()),
        ("made-up-token", dev.device_id.clone()),
    ];
    cases.push((dev2.token.as_str(), dev.device_id.clone()));
    for (token, device_id) in cases {
        let r = gw
            .http
            .post(gw.durl("/v1/telemetry"))
            .bearer_auth(token)
            .header("device-id", device_id)
            .json(&json!({"x": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    }

    // Every attempt is recorded, good and bad, with the source address.
    let (_, auth) = admin.get("/api/v1/history/auth?limit=50").await;
    let items = auth["items"].as_array().unwrap();
    assert_eq!(
        items.iter().filter(|a| a["outcome"] == "success").count(),
        2
    );
    assert_eq!(
        items.iter().filter(|a| a["outcome"] == "failure").count(),
        3
    );
    assert!(items.iter().all(|a| a["source_ip"] == "127.0.0.1"));
    let (_, msgs) = admin.get("/api/v1/history/messages?outcome=rejected").await;
    assert_eq!(msgs["items"].as_array().unwrap().len(), 3);
    assert!(
        msgs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reason"] == "invalid_token")
    );
}

/// A TCP relay between client and gateway that keeps every byte it carries, as a capture on the
/// device side would.
async fn capture_relay(target: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mut server = tokio::net::TcpStream::connect(&target).await.unwrap();
            let seen = s2.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn v05_v08_what_travels_is_encrypted_and_over_tls() {
    let (_dir, gw, admin, field) = setup("v05").await;
    let reg = admin.device(&field, "SERIAL-V05").await;
    let (relay, seen) = capture_relay(gw.device.clone()).await;
    let mut dev = Device::new(&gw, &reg, "SERIAL-V05");
    dev.base = format!("https://{relay}");
    dev.auth().await;
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    let (s, _) = dev
        .send(json!({"note": marker, "lat": 35.6812, "lon": 139.7671}))
        .await;
    assert_eq!(s, 202);
    let bytes = seen.lock().unwrap().clone();
    assert!(bytes.len() > 500, "the relay carried the exchange");
    let hay = String::from_utf8_lossy(&bytes);
    for secret in [
        marker,
        "139.7671",
        dev.secret.as_str(),
        dev.token.as_str(),
        "SERIAL-V05",
        "/v1/telemetry",
    ] {
        assert!(!hay.contains(secret), "{secret} visible on the wire");
    }
    assert_eq!(
        bytes[0], 0x16,
        "a TLS handshake record opens the connection"
    );

    // V08: the data the gateway received came over TLS 1.2 or 1.3.
    let r = gw
        .http
        .get(gw.durl("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("a TLS connection");
    assert!(info.peer_certificate().is_some());
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN h2 over TLS");
}

async fn plain_http(addr: &str, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test]
async fn v09_plain_http_is_refused_on_both_ports_and_recorded() {
    let (_dir, gw, admin, _field) = setup("v09").await;
    for addr in [&gw.device, &gw.admin] {
        let resp = plain_http(
            addr,
            "POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert!(resp.contains("\"error\":\"tls_required\""), "{resp}");
    }
    // Connection events are queued without waiting for their commit: wait until both are stored.
    let ev = common::eventually(10, || async {
        let (s, ev) = admin.get("/api/v1/history/security").await;
        assert_eq!(s, 200);
        (ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "plaintext_http")
            .count()
            == 2)
            .then_some(ev)
    })
    .await
    .expect("both refusals recorded");
    let items = ev["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|e| e["listener"] == "device" && e["detail"] == "POST /v1/telemetry HTTP/1.1")
    );
}

#[tokio::test]
async fn v07_v25_deleted_and_disabled_devices_are_refused_and_can_return() {
    let (_dir, gw, admin, field) = setup("v25").await;
    let fid = field["id"].as_str().unwrap();
    let reg = admin.device(&field, "MAC-00:11:22:33:44:55").await;
    let did = reg["id"].as_str().unwrap();
    let mut dev = Device::new(&gw, &reg, "MAC-00:11:22:33:44:55");
    dev.auth().await;

    // V25: stopping authentication revokes the live token at once and refuses new ones with 403.
    let (s, v) = admin
        .post(
            &format!("/api/v1/fields/{fid}/devices/{did}/disable"),
            json!({}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("disabled")));
    let (s, v) = dev.send(json!({"x": 1})).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_token")),
        "revoked token"
    );
    let (s, v) = dev
        .request_token(&dev.auth_id, &dev.secret, &dev.unique_id)
        .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("device_disabled")));
    // Wrong credentials still say nothing about the device's state.
    let (s, _) = dev
        .request_token(&dev.auth_id, "wrong", &dev.unique_id)
        .await;
    assert_eq!(s, 401);

    // Undo: enable, and the device works again.
    let (s, _) = admin
        .post(
            &format!("/api/v1/fields/{fid}/devices/{did}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    dev.auth().await;
    assert_eq!(dev.send(json!({"x": 2})).await.0, 202);

    // V07: after deletion the device's information no longer authenticates, and its token is dead.
    let (s, _) = admin
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/fields/{fid}/devices/{did}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(dev.send(json!({"x": 3})).await.0, 401);
    let (s, v) = dev
        .request_token(&dev.auth_id, &dev.secret, &dev.unique_id)
        .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_credentials")));
    let (s, _) = admin
        .get(&format!("/api/v1/fields/{fid}/devices/{did}"))
        .await;
    assert_eq!(s, 404);

    // A restart rebuilds the same view from the store: still refused, re-registration possible.
    let gw = gw.restart_after_kill9();
    dev.http = gw.http.clone();
    let (s, _) = dev
        .request_token(&dev.auth_id, &dev.secret, &dev.unique_id)
        .await;
    assert_eq!(s, 401);
    let admin = gw.admin().await;
    let again = admin.device(&field, "MAC-00:11:22:33:44:55").await;
    assert_ne!(again["id"], reg["id"]);
}

#[tokio::test]
async fn every_documented_error_code_of_the_device_api() {
    let dir = TempDir::new("errors");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("device", "body_timeout_secs", 2.into()),
            ("auth", "max_failures_per_unique_id", 3.into()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("home").await;
    let fid = field["id"].as_str().unwrap();
    let (s, _) = admin
        .req(
            reqwest::Method::PATCH,
            &format!("/api/v1/fields/{fid}"),
            Some(
                json!({"limits": {"max_body_bytes": 256, "max_json_depth": 3, "max_batch_len": 2}}),
            ),
        )
        .await;
    assert_eq!(s, 200);
    let reg = admin.device(&field, "HOME-1").await;
    let mut dev = Device::new(&gw, &reg, "HOME-1");
    dev.auth().await;

    let check = |got: (u16, Value), status: u16, code: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["error"], code, "{}", got.1);
        assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    check(
        dev.send_raw("/v1/telemetry", "application/json", r#"{"temp": 21.5"#)
            .await,
        400,
        "malformed_json",
    );
    check(
        dev.send_raw("/v1/telemetry", "application/json", "[1,2]")
            .await,
        400,
        "malformed_json",
    );
    check(
        dev.send_raw(
            "/v1/telemetry",
            "application/json",
            r#"{"a":{"b":{"c":{}}}}"#,
        )
        .await,
        400,
        "json_too_deep",
    );
    check(
        dev.send_raw(
            "/v1/telemetry",
            "application/json",
            format!(r#"{{"pad":"{}"}}"#, "x".repeat(300)),
        )
        .await,
        413,
        "payload_too_large",
    );
    // Without Content-Length (chunked), the limit holds while reading.
    let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![
        Ok(b"{\"pad\":\""),
        Ok(&[b'y'; 200]),
        Ok(&[b'y'; 200]),
        Ok(b"\"}"),
    ];
    let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
    check(
        dev.send_raw("/v1/telemetry", "application/json", stream)
            .await,
        413,
        "payload_too_large",
    );
    check(
        dev.send_raw("/v1/telemetry/batch", "application/json", "[{},{},{}]")
            .await,
        413,
        "batch_too_large",
    );
    check(
        dev.send_raw(
            "/v1/telemetry/batch",
            "application/json",
            r#"[{"ok":1},{"broken":]"#,
        )
        .await,
        400,
        "malformed_json",
    );
    check(
        dev.send_raw("/v1/telemetry", "text/plain", "{}").await,
        415,
        "unsupported_media_type",
    );
    let r = gw.http.get(gw.durl("/v1/nothing")).send().await.unwrap();
    check(
        (r.status().as_u16(), r.json().await.unwrap()),
        404,
        "unknown_endpoint",
    );
    let r = gw.http.get(gw.durl("/v1/telemetry")).send().await.unwrap();
    check(
        (r.status().as_u16(), r.json().await.unwrap()),
        405,
        "method_not_allowed",
    );

    // A body that trickles in slower than body_timeout_secs: 408.
    let slow = async_stream_slow();
    check(
        dev.send_raw(
            "/v1/telemetry",
            "application/json",
            reqwest::Body::wrap_stream(slow),
        )
        .await,
        408,
        "request_timeout",
    );

    // V16's seam: a burst of failures for one unique ID is throttled with Retry-After.
    for _ in 0..3 {
        assert_eq!(
            dev.request_token(&dev.auth_id, "bad", &dev.unique_id)
                .await
                .0,
            401
        );
    }
    let r = gw
        .http
        .post(gw.durl("/v1/auth/token"))
        .json(
            &json!({"auth_id": dev.auth_id, "auth_secret": dev.secret, "unique_id": dev.unique_id}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "too_many_requests"
    );
    let r = gw
        .http
        .post(gw.durl("/v1/auth/token"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    check(
        (r.status().as_u16(), r.json().await.unwrap()),
        400,
        "malformed_json",
    );

    // Everything refused was recorded with its reason; only the accepted count as accepted.
    let (_, msgs) = admin.get("/api/v1/history/messages?limit=100").await;
    let reasons: Vec<&str> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["reason"].as_str())
        .collect();
    for code in [
        "malformed_json",
        "json_too_deep",
        "payload_too_large",
        "batch_too_large",
        "unsupported_media_type",
        "request_timeout",
    ] {
        assert!(reasons.contains(&code), "{code} not recorded: {reasons:?}");
    }
    let (_, auth) = admin.get("/api/v1/history/auth?outcome=throttled").await;
    assert_eq!(auth["items"].as_array().unwrap().len(), 1);
    // The device still works after all that.
    assert_eq!(dev.send(json!({"ok": true})).await.0, 202);
}

fn futures_stream(
    chunks: Vec<Result<&'static [u8], std::io::Error>>,
) -> impl futures_core_stream::Stream {
    futures_core_stream::iter(chunks)
}

fn async_stream_slow() -> impl futures_core_stream::Stream {
    futures_core_stream::slow(b"{\"a\":1", Duration::from_secs(5))
}

/// Minimal streams for request bodies (no extra dependency).
mod futures_core_stream {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    pub trait Stream:
        futures_core::Stream<Item = Result<&'static [u8], std::io::Error>> + Send + Sync + 'static
    {
    }
    impl<
        T: futures_core::Stream<Item = Result<&'static [u8], std::io::Error>> + Send + Sync + 'static,
    > Stream for T
    {
    }

    pub struct Iter(std::vec::IntoIter<Result<&'static [u8], std::io::Error>>);

    impl futures_core::Stream for Iter {
        type Item = Result<&'static [u8], std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.next())
        }
    }

    pub fn iter(v: Vec<Result<&'static [u8], std::io::Error>>) -> Iter {
        Iter(v.into_iter())
    }

    /// Sends `first`, then waits `pause` before ending the body.
    pub struct Slow {
        first: Option<&'static [u8]>,
        sleep: Pin<Box<tokio::time::Sleep>>,
        done: bool,
    }

    impl futures_core::Stream for Slow {
        type Item = Result<&'static [u8], std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if let Some(f) = self.first.take() {
                return Poll::Ready(Some(Ok(f)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Ok(b"}")))
                }
                Poll::Pending => Poll::Pending,
            }
        }
    }

    use std::future::Future;

    pub fn slow(first: &'static [u8], pause: Duration) -> Slow {
        Slow {
            first: Some(first),
            sleep: Box::pin(tokio::time::sleep(pause)),
            done: false,
        }
    }
}

/// Reads until the peer closes; `true` if it closed within `secs` (a bound, not a measurement).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, secs: u64) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn idle_and_slow_clients_are_timed_out_and_connections_are_capped() {
    let dir = TempDir::new("limits");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("device", "header_timeout_secs", 1.into()),
            ("device", "handshake_timeout_secs", 1.into()),
            ("device", "max_connections", 3.into()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;

    // A client that connects and never says anything is dropped (TCP and TLS alike).
    let mut tcp = tokio::net::TcpStream::connect(&gw.device).await.unwrap();
    assert!(
        closed_within(&mut tcp, 20).await,
        "a silent TCP client must be dropped"
    );
    let mut idle = tls_connect(&dir.0, &gw.device).await.unwrap();
    assert!(
        closed_within(&mut idle, 20).await,
        "an idle TLS client must be dropped"
    );
    // Headers that trickle in too slowly are cut off too.
    let mut slow = tls_connect(&dir.0, &gw.device).await.unwrap();
    slow.write_all(b"POST /v1/telemetry HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, 20).await,
        "a slowloris client must be dropped"
    );

    // At the cap, a further connection is closed at once and the refusal is recorded.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tls_connect(&dir.0, &gw.device).await.unwrap();
        c.write_all(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    // The fourth is told so in protocol: 503 too_many_connections with Retry-After, then closed.
    let mut over = tls_connect(&dir.0, &gw.device).await.unwrap();
    let answer = common::raw_exchange(
        &mut over,
        "GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 10"),
        "{answer}"
    );
    assert!(answer.contains("\"too_many_connections\""), "{answer}");
    let ev = common::eventually(10, || async {
        let (_, ev) = admin.get("/api/v1/history/security").await;
        ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "connection_limit")
            .then_some(ev)
    })
    .await;
    assert!(ev.is_some(), "the refusal is recorded");
    let (_, st) = admin.get("/api/v1/system/status").await;
    assert!(
        st["device_listener"]["over_limit"].as_i64().unwrap() >= 1,
        "{st}"
    );
    drop(held);
    // Once they are gone (closed by the idle timeout at the latest), devices connect again.
    let back =
        common::eventually(20, || async { tls_connect(&dir.0, &gw.device).await.ok() }).await;
    assert!(back.is_some());
}

/// Bodies that are not JSON in UTF-8: raw invalid bytes, an encoded surrogate, an escaped lone one.
const NOT_UTF8: [&[u8]; 4] = [
    b"{\"a\":\"\xff\xfe\"}",
    b"{\"a\":\"\xc3\x28\"}",
    b"{\"a\":\"\xed\xa0\x80\"}",
    br#"{"a":"\ud800"}"#,
];

#[tokio::test]
async fn json_that_is_not_utf8_is_refused_recorded_and_detected_on_every_endpoint() {
    let (_dir, gw, admin, field) = setup("utf8").await;
    let fid = field["id"].as_str().unwrap().to_owned();
    let reg = admin.device(&field, "CAR-UTF8").await;
    let mut dev = Device::new(&gw, &reg, "CAR-UTF8");
    dev.auth().await;
    for body in NOT_UTF8 {
        let shown = String::from_utf8_lossy(body).into_owned();
        for path in ["/v1/telemetry", "/v1/device/state"] {
            let (s, v) = dev.send_raw(path, "application/json", body.to_vec()).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (400, Some("malformed_json")),
                "{path} {shown}: {v}"
            );
        }
        let mut batch = b"[{\"ok\":1},".to_vec();
        batch.extend_from_slice(body);
        batch.push(b']');
        let (s, v) = dev
            .send_raw("/v1/telemetry/batch", "application/json", batch)
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("malformed_json")),
            "batch {shown}: {v}"
        );
        // The token request: the whole body, and one of its values.
        let mut token = format!(
            r#"{{"auth_id":"{}","auth_secret":"x","unique_id":"CAR-UTF8","note":"#,
            reg["auth_id"].as_str().unwrap()
        )
        .into_bytes();
        token.extend_from_slice(&body[5..body.len() - 1]);
        token.push(b'}');
        let r = gw
            .http
            .post(gw.durl("/v1/auth/token"))
            .header("content-type", "application/json")
            .body(token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("malformed_json")),
            "token {shown}: {v}"
        );
    }
    // Nothing of it was stored as accepted, every refusal is on record with its reason.
    let (_, h) = admin
        .get(&format!("/api/v1/history/messages?field={fid}&limit=100"))
        .await;
    let items = h["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|m| m["outcome"] == "rejected" && m["reason"] == "malformed_json"),
        "{h}"
    );
    assert_eq!(
        items.len(),
        NOT_UTF8.len() * 3,
        "telemetry, state and batch each time"
    );
    let (_, auth) = admin.get("/api/v1/history/auth?limit=100").await;
    let refused = auth["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reason"] == "malformed_json" && a["field_id"] == fid.as_str())
        .count();
    assert_eq!(refused, NOT_UTF8.len(), "{auth}");
    // And the field's format detection fired for the device.
    let found = common::eventually(30, || async {
        let (_, v) = admin
            .get(&format!(
                "/api/v1/fields/{fid}/detections?rule=format.malformed&device={}",
                dev.device_id
            ))
            .await;
        v["items"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert!(found.is_some(), "format.malformed detected");
}

/// `curl` (a real client) sends a body of `bytes` and reports the status it received (`000` when the
/// answer never arrived) and its exit code.
fn curl_post(
    gw: &Gateway,
    http2: bool,
    token: &str,
    device: &str,
    body: &std::path::Path,
) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .arg("--cacert")
        .arg(gw.dir.join("tls/ca.crt"))
        .args(["-H", &format!("authorization: Bearer {token}")])
        .args(["-H", &format!("device-id: {device}")])
        .args(["-H", "content-type: application/json"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!(
            "https://localhost:{}/v1/telemetry",
            gw.device.rsplit(':').next().unwrap()
        ))
        .output()
        .expect("curl runs");
    format!(
        "{}:{}",
        String::from_utf8_lossy(&out.stdout),
        out.status.code().unwrap_or(-1)
    )
}

#[tokio::test]
async fn refusals_reach_a_client_that_is_still_sending() {
    let (dir, gw, admin, field) = setup("drain").await;
    let reg = admin.device(&field, "CAR-BIG").await;
    let mut dev = Device::new(&gw, &reg, "CAR-BIG");
    dev.auth().await;
    // 10 MB: far over the field's limit and HTTP/2's flow-control window, so the refusal is decided
    // while the client still has most of its body to send.
    let big = dir.0.join("big.json");
    std::fs::write(&big, format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000_000))).unwrap();
    for http2 in [true, false] {
        for _ in 0..5 {
            assert_eq!(
                curl_post(&gw, http2, "revoked-or-bogus", &dev.device_id, &big),
                "401:0",
                "http2={http2}"
            );
            assert_eq!(
                curl_post(&gw, http2, &dev.token, &dev.device_id, &big),
                "413:0",
                "http2={http2}"
            );
        }
    }
    // The device, told so, is still served on its next request.
    assert_eq!(dev.send(json!({"n": 1})).await.0, 202);
}

#[tokio::test]
async fn one_address_cannot_lock_out_the_others() {
    let dir = TempDir::new("per-address");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("device", "max_connections_per_address", 2.into()),
            ("device", "max_connections_per_nat_address", 6.into()),
            ("device", "header_timeout_secs", 30.into()),
        ],
    );
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    // One address opens idle TLS connections: it gets its two, no more ...
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tls_connect_from(&dir.0, &gw.device, Some("127.0.0.1"))
                .await
                .unwrap(),
        );
    }
    let request = "GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..3 {
        let mut c = tls_connect_from(&dir.0, &gw.device, Some("127.0.0.1"))
            .await
            .unwrap();
        let answer = common::raw_exchange(&mut c, request).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("\"too_many_connections\""), "{answer}");
    }
    // ... while every other address is served as before.
    for src in ["127.0.0.2", "127.0.0.3"] {
        let mut c = tls_connect_from(&dir.0, &gw.device, Some(src))
            .await
            .unwrap();
        let answer = common::raw_exchange(
            &mut c,
            &request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{src}: {answer}");
    }
    // Refusals are counted and recorded as security events.
    let (_, st) = admin.get("/api/v1/system/status").await;
    assert_eq!(st["device_listener"]["address_over_limit"], 3, "{st}");
    assert_eq!(st["device_listener"]["refusals_answered"], 3, "{st}");
    let recorded = common::eventually(10, || async {
        let (_, ev) = admin.get("/api/v1/history/security").await;
        let n = ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "address_connection_limit" && e["source_ip"] == "127.0.0.1")
            .count();
        (n == 3).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "each refusal is a security event");

    // An address inside a NAT range a field declares (many devices behind it) may hold more.
    let field = admin.field("home").await;
    let fid = field["id"].as_str().unwrap();
    let (_, t) = admin.get(&format!("/api/v1/fields/{fid}/template")).await;
    let mut t = t["template"].clone();
    t["network"]["nat_ranges"] = json!(["127.0.0.4/32"]);
    let (s, v) = admin
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/fields/{fid}/template"),
            Some(t),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut behind_nat = Vec::new();
    for _ in 0..6 {
        behind_nat.push(
            tls_connect_from(&dir.0, &gw.device, Some("127.0.0.4"))
                .await
                .unwrap(),
        );
    }
    let mut seventh = tls_connect_from(&dir.0, &gw.device, Some("127.0.0.4"))
        .await
        .unwrap();
    let answer = common::raw_exchange(&mut seventh, request).await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "the NAT cap holds too: {answer}"
    );
}

#[tokio::test]
async fn clients_sending_a_bad_server_name_cannot_grow_the_log() {
    let (_dir, gw, _admin, _field) = setup("sni").await;
    // OpenSSL's client (a real one) sends what it is given as SNI: an IP address, an invalid name.
    for name in ["127.0.0.1", "bad_name!", "127.0.0.1", "bad_name!"] {
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &gw.device, "-servername", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl runs");
        drop(child.stdin.take());
        let ok = child.wait().unwrap().success();
        // An IP address is ignored as a name; an invalid name fails the handshake.
        assert_eq!(ok, name == "127.0.0.1", "{name}");
    }
    // Nothing of it reached the log (rustls warns once per handshake about either).
    let (s, _) = Device::new(&gw, &json!({"auth_id": "", "auth_secret": ""}), "x")
        .send_raw("/v1/telemetry", "application/json", "{}")
        .await;
    assert_eq!(s, 401, "the gateway serves on");
    let log = gw.log_text();
    assert!(!log.contains("SNI"), "{log}");
}
