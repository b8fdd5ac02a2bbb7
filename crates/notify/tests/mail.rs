//! Mail against a real SMTP server (Python aiosmtpd, `smtp_server.py`) on loopback: STARTTLS with
//! AUTH, implicit TLS, clear text to a loopback relay; and each way a delivery fails, with the
//! error's code and whether it is worth retrying.

mod common;

use common::{Pki, Scratch, SmtpServer, pki};
use sekisho_core::{Action, ActionState, Rule, Severity, Threat};
use sekisho_notify::text::{Incident, Lang, incident_mail};
use sekisho_notify::{Mail, Mailer, NotifyError, SmtpConfig};
use serde_json::json;
use std::path::PathBuf;

const USER: &str = "sekisho";
const PASSWORD: &str = "correct horse 電池 staple";

fn config(port: u16, security: &str, pki: &Pki) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: security.into(),
        from: "Sekisho 関所 <sekisho@example.jp>".into(),
        ca_file: Some(pki.ca.clone()),
        timeout_ms: 20_000,
        hello_name: Some("gateway.test".into()),
        ..SmtpConfig::default()
    }
}

fn with_auth(mut c: SmtpConfig, dir: &Scratch, password: &str) -> SmtpConfig {
    c.username = USER.into();
    c.password_file = dir.write("smtp.password", &format!("{password}\n"));
    c
}

fn incident() -> Incident {
    Incident {
        field_name: "第一工場".into(),
        field_id: "f-1".into(),
        device_id: "d-7".into(),
        device_name: Some("ポンプ7".into()),
        unique_id: "pump-0007".into(),
        critical: true,
        threat: Threat::Hijacking,
        severity: Severity::High,
        rule: Rule::NetworkSimIpMismatch.into(),
        summary: "Source address differs from the SIM's address.".into(),
        evidence: json!({"source_ip": "203.0.113.9", "sim": {"ip": "10.0.0.7"}}),
        first_at_ms: 1_777_600_000_000,
        last_at_ms: 1_777_600_060_000,
        count: 3,
        actions: vec![
            (Action::StopAuth, ActionState::Done),
            (Action::SuspendSim, ActionState::AwaitingApproval),
        ],
        console_url: Some("https://gw.example.jp/console/detections?field=f-1".into()),
    }
}

fn mail(to: &[&str]) -> Mail {
    let (subject, text) = incident_mail(Lang::Both, &incident());
    Mail {
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        subject,
        text,
        reply_to: Some("soc@example.jp".into()),
    }
}

async fn send(cfg: &SmtpConfig, m: &Mail) -> Result<(), NotifyError> {
    Mailer::new(cfg).expect("valid configuration").send(m).await
}

#[tokio::test]
async fn starttls_with_auth_delivers_japanese_mail() {
    let dir = Scratch::new("starttls");
    let pki = pki(&dir, "server");
    let server = SmtpServer::start(&dir, &pki, "starttls", Some((USER, PASSWORD)));
    let cfg = with_auth(config(server.port, "starttls", &pki), &dir, PASSWORD);
    let mailer = Mailer::new(&cfg).expect("valid configuration");
    assert!(!format!("{mailer:?}").contains("horse"), "{mailer:?}");
    let m = mail(&["管理者 <admin@example.jp>", "pic@example.jp"]);
    mailer.send(&m).await.expect("delivered");

    let got = server.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!(r["from"], "sekisho@example.jp");
    assert_eq!(r["to"], json!(["admin@example.jp", "pic@example.jp"]));
    assert_eq!(r["subject"], m.subject.as_str());
    assert!(
        r["subject"].as_str().unwrap_or("").contains("乗っ取り"),
        "{r}"
    );
    // On the wire lines end in CRLF; the text is otherwise exactly what was sent.
    let text = r["text"].as_str().unwrap_or("").replace("\r\n", "\n");
    assert_eq!(text.trim_end(), m.text.trim_end());
    assert!(
        text.contains("承認待ち") && text.contains("awaiting approval"),
        "{text}"
    );
    assert_eq!(r["content_type"], "text/plain");
    assert_eq!(r["tls"], true, "STARTTLS was used");
    assert_eq!(r["auth"], USER, "AUTH was used");
    assert_eq!(r["reply_to"], "soc@example.jp");
    let id = r["message_id"].as_str().unwrap_or("");
    assert!(id.starts_with('<') && id.ends_with("@example.jp>"), "{id}");
    assert!(!r["date"].as_str().unwrap_or("").is_empty(), "{r}");

    // A second mail gets its own connection and its own Message-ID.
    mailer
        .send(&mail(&["pic@example.jp"]))
        .await
        .expect("delivered");
    let got = server.messages();
    assert_eq!(got.len(), 2);
    assert_ne!(got[0]["message_id"], got[1]["message_id"]);
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let dir = Scratch::new("implicit");
    let pki = pki(&dir, "server");
    let server = SmtpServer::start(&dir, &pki, "tls", Some((USER, PASSWORD)));
    let cfg = with_auth(config(server.port, "tls", &pki), &dir, PASSWORD);
    send(&cfg, &mail(&["admin@example.jp"]))
        .await
        .expect("delivered");
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["auth"], USER);
}

#[tokio::test]
async fn clear_text_to_a_loopback_relay() {
    let dir = Scratch::new("plain");
    let pki = pki(&dir, "server");
    let server = SmtpServer::start(&dir, &pki, "plain", None);
    let cfg = SmtpConfig {
        ca_file: None,
        ..config(server.port, "none", &pki)
    };
    send(&cfg, &mail(&["admin@example.jp"]))
        .await
        .expect("delivered");
    assert_eq!(server.messages()[0]["tls"], false);

    // "starttls" never falls back to clear text when the server does not offer it.
    let e = send(
        &config(server.port, "starttls", &pki),
        &mail(&["admin@example.jp"]),
    )
    .await
    .expect_err("no STARTTLS offered");
    assert_eq!(e.code(), "tls_failed", "{e}");
    assert!(!e.retryable());
    assert_eq!(server.messages().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn wrong_password_is_auth_failed_and_final() {
    let dir = Scratch::new("auth");
    let pki = pki(&dir, "server");
    let server = SmtpServer::start(&dir, &pki, "starttls", Some((USER, PASSWORD)));
    let cfg = with_auth(
        config(server.port, "starttls", &pki),
        &dir,
        "not the password",
    );
    let e = send(&cfg, &mail(&["admin@example.jp"]))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), "auth_failed", "{e}");
    assert!(!e.retryable());
    assert!(e.to_string().contains("535"), "{e}");
    assert!(!e.to_string().contains("not the password"), "{e}");
    assert!(server.messages().is_empty());

    // No AUTH at all where the server requires it: refused at MAIL FROM, final as well.
    let cfg = config(server.port, "starttls", &pki);
    let e = send(&cfg, &mail(&["admin@example.jp"]))
        .await
        .expect_err("refused");
    assert!(!e.retryable(), "{e}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn refused_recipient_is_final_and_busy_mailbox_retryable() {
    let dir = Scratch::new("rcpt");
    let pki = pki(&dir, "server");
    let server = SmtpServer::start(&dir, &pki, "starttls", Some((USER, PASSWORD)));
    let cfg = with_auth(config(server.port, "starttls", &pki), &dir, PASSWORD);

    let e = send(&cfg, &mail(&["admin@example.jp", "reject@example.jp"]))
        .await
        .expect_err("550");
    assert_eq!(
        e,
        NotifyError::SmtpRejected {
            code: 550,
            message: "5.1.1 <reject@example.jp>: no such user here".into()
        }
    );
    assert_eq!(e.code(), "smtp_rejected");
    assert!(!e.retryable());

    let e = send(&cfg, &mail(&["tempfail@example.jp"]))
        .await
        .expect_err("451");
    assert_eq!(e.code(), "smtp_temporary", "{e}");
    assert!(e.retryable());
    assert!(
        matches!(e, NotifyError::SmtpTemporary { code: 451, .. }),
        "{e:?}"
    );
    assert!(server.messages().is_empty(), "no partial delivery");
}

#[tokio::test]
async fn untrusted_certificate_is_tls_failed() {
    let dir = Scratch::new("untrusted");
    let pki = pki(&dir, "server");
    let other = common::pki(&dir, "other");
    for mode in ["starttls", "tls"] {
        let server = SmtpServer::start(&dir, &pki, mode, Some((USER, PASSWORD)));
        // ca_file pins another CA: the server's certificate is not trusted.
        let cfg = with_auth(config(server.port, mode, &other), &dir, PASSWORD);
        let e = send(&cfg, &mail(&["admin@example.jp"]))
            .await
            .expect_err("untrusted");
        assert_eq!(e.code(), "tls_failed", "{mode}: {e}");
        assert!(!e.retryable());
        assert!(server.messages().is_empty());
    }
}

#[tokio::test]
async fn server_down_is_retryable() {
    let dir = Scratch::new("down");
    let pki = pki(&dir, "server");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }; // closed again: nothing listens there now
    let e = send(
        &config(port, "starttls", &pki),
        &mail(&["admin@example.jp"]),
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(e.code(), "connection_failed", "{e}");
    assert!(e.retryable());
}

#[tokio::test]
async fn silent_server_times_out_and_is_retryable() {
    let dir = Scratch::new("silent");
    let pki = pki(&dir, "server");
    // Accepts connections and never says a word (no SMTP greeting).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let cfg = SmtpConfig {
        timeout_ms: 300,
        ..config(port, "starttls", &pki)
    };
    let e = send(&cfg, &mail(&["admin@example.jp"]))
        .await
        .expect_err("silent");
    assert_eq!(e.code(), "timeout", "{e}");
    assert!(e.retryable());
    held.abort();
}

#[tokio::test]
async fn bad_addresses_are_final_and_configuration_problems_listed() {
    let dir = Scratch::new("addr");
    let pki = pki(&dir, "server");
    let cfg = config(1, "starttls", &pki);
    let e = send(&cfg, &mail(&["not-an-address"]))
        .await
        .expect_err("invalid");
    assert_eq!(e.code(), "invalid_address");
    assert!(!e.retryable());

    let bad = SmtpConfig {
        host: "smtp.example.jp".into(),
        security: "none".into(),
        username: "u".into(),
        password_file: PathBuf::from("/nonexistent/smtp.password"),
        from: String::new(),
        ..SmtpConfig::default()
    };
    let problems = Mailer::new(&bad).expect_err("invalid");
    for key in ["security:", "from:", "password_file:"] {
        assert!(
            problems.iter().any(|p| p.starts_with(key)),
            "{key} in {problems:?}"
        );
    }
}
