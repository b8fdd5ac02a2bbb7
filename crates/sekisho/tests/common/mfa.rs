//! An authenticator app for the tests: RFC 6238 TOTP computed here, independently of the gateway,
//! over the secret the gateway returned at enrolment.

use super::Admin;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn base32_decode(s: &str) -> Vec<u8> {
    let (mut out, mut buf, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        buf = (buf << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

/// RFC 4226 HOTP, 6 digits.
pub fn code(key: &[u8], step: u64) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[19] & 0x0f) as usize;
    let v = u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]) & 0x7fff_ffff;
    format!("{:06}", v % 1_000_000)
}

pub fn step_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// Six digits that are no code of `key` within two steps of `step` (so none of a gateway's window
/// around it, even when its clock ticks over).
pub fn wrong_at(key: &[u8], step: u64) -> String {
    let valid: Vec<String> = (step - 2..=step + 2).map(|s| code(key, s)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", 123_456 + n))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// An authenticator app: the key, and the last step whose code the gateway accepted.
pub struct App {
    pub key: Vec<u8>,
    pub last: Option<u64>,
}

impl App {
    pub fn new(enrolment: &Value) -> Self {
        Self {
            key: base32_decode(enrolment["secret"].as_str().unwrap()),
            last: None,
        }
    }

    /// A code for a step the gateway has not seen: the current step or the next (both stay inside the
    /// gateway's ±1 window when the clock ticks over). Waits for the clock when both are used.
    pub async fn fresh(&mut self) -> (u64, String) {
        loop {
            let now = step_now();
            let step = self.last.map_or(now, |l| (l + 1).max(now));
            if step <= now + 1 {
                return (step, code(&self.key, step));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A fresh code the caller expects the gateway to accept.
    pub async fn accepted(&mut self) -> String {
        let (step, c) = self.fresh().await;
        self.last = Some(step);
        c
    }

    /// Six digits that are no code of the gateway's window.
    pub fn wrong(&self) -> String {
        wrong_at(&self.key, step_now())
    }
}

/// Sends with an optional `X-Sekisho-TOTP` header.
pub async fn send(a: &Admin, method: Method, path: &str, totp: Option<&str>) -> (u16, Value) {
    let mut r = a
        .http
        .request(method, format!("{}{path}", a.base))
        .bearer_auth(&a.token);
    if let Some(c) = totp {
        r = r.header("x-sekisho-totp", c);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Enrols and confirms; returns the app that now holds the second factor.
pub async fn enrol(a: &Admin) -> App {
    let (s, e) = a.post("/api/v1/me/mfa", json!({})).await;
    assert_eq!(s, 200, "{e}");
    let mut app = App::new(&e);
    let c = app.accepted().await;
    let (s, v) = a.post("/api/v1/me/mfa/confirm", json!({"code": c})).await;
    assert_eq!((s, &v), (200, &json!({"mfa_enabled": true})));
    app
}
