//! The notification texts: the right words in each language, both languages in `Both`, times in
//! JST and UTC, the critical-device line, the webhook JSON's shape, and no panic on odd input.

use sekisho_core::{Action, ActionState, Rule, Severity, Threat};
use sekisho_notify::text::{Incident, Lang, incident_mail, webhook_body};
use serde_json::json;

fn incident() -> Incident {
    Incident {
        field_name: "第一工場".into(),
        field_id: "f-1".into(),
        device_id: "d-7".into(),
        device_name: Some("ポンプ7".into()),
        unique_id: "pump-0007".into(),
        critical: false,
        threat: Threat::Hijacking,
        severity: Severity::High,
        rule: Rule::NetworkSimIpMismatch.into(),
        summary: "Source address differs from the SIM's address.".into(),
        evidence: json!({"source_ip": "203.0.113.9", "sim": {"ip": "10.0.0.7", "imsi": "440101234567890"}}),
        // 2026-05-01T01:46:40Z = 2026-05-01T10:46:40+09:00
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

/// One case: the mail about `i` in `lang` contains every one of `want` and none of `not`.
fn check(lang: Lang, i: &Incident, want: &[&str], not: &[&str]) {
    let (subject, text) = incident_mail(lang, i);
    let all = format!("{subject}\n{text}");
    for w in want {
        assert!(all.contains(w), "{lang:?}: {w:?} missing in\n{all}");
    }
    for n in not {
        assert!(!all.contains(n), "{lang:?}: {n:?} unexpected in\n{all}");
    }
}

#[test]
fn subjects_name_threat_severity_field_and_device() {
    let i = incident();
    let (ja, _) = incident_mail(Lang::Ja, &i);
    assert_eq!(ja, "[Sekisho] 乗っ取りの疑い (high) — 第一工場 / ポンプ7");
    let (en, _) = incident_mail(Lang::En, &i);
    assert_eq!(
        en,
        "[Sekisho] Suspected hijacking (high) — 第一工場 / ポンプ7"
    );
    let (both, _) = incident_mail(Lang::Both, &i);
    assert!(
        both.contains("乗っ取りの疑い") && both.contains("Suspected hijacking"),
        "{both}"
    );
    let unnamed = Incident {
        device_name: None,
        ..incident()
    };
    assert!(
        incident_mail(Lang::En, &unnamed)
            .0
            .ends_with("第一工場 / pump-0007")
    );
}

#[test]
fn each_threat_and_severity_in_each_language() {
    let cases = [
        (
            Threat::UnauthorizedAccess,
            "不正アクセス",
            "unauthorized access",
        ),
        (Threat::Spoofing, "なりすまし", "spoofing"),
        (Threat::Hijacking, "乗っ取り", "hijacking"),
        (Threat::Eavesdropping, "盗聴", "eavesdropping"),
        (Threat::Theft, "盗難", "theft"),
    ];
    for (threat, ja, en) in cases {
        let i = Incident {
            threat,
            ..incident()
        };
        check(Lang::Ja, &i, &[ja, &format!("{ja}の疑い")], &["Suspected"]);
        check(Lang::En, &i, &[&format!("Suspected {en}")], &[ja]);
    }
    let severities = [
        (Severity::Notice, "注意", "Notice"),
        (Severity::Low, "低", "Low"),
        (Severity::Medium, "中", "Medium"),
        (Severity::High, "高", "High"),
        (Severity::Critical, "緊急", "Critical"),
    ];
    for (severity, ja, en) in severities {
        let code = severity.as_str();
        let i = Incident {
            severity,
            ..incident()
        };
        check(Lang::Ja, &i, &[&format!("重大度: {ja} ({code})")], &[]);
        check(Lang::En, &i, &[&format!("Severity: {en}\n")], &[]);
    }
}

#[test]
fn japanese_body() {
    check(
        Lang::Ja,
        &incident(),
        &[
            "脅威: 乗っ取り (hijacking)",
            "フィールド: 第一工場 (f-1)",
            "デバイス: ポンプ7 (固有ID pump-0007, ID d-7)",
            "初回検知: 2026-05-01T10:46:40+09:00",
            "最終検知: 2026-05-01T10:47:40+09:00 (3 回)",
            "ルール: network.sim_ip_mismatch",
            "概要: Source address differs",
            "証拠:\n  sim:\n    imsi: 440101234567890\n    ip: 10.0.0.7\n  source_ip: 203.0.113.9\n",
            "  - 認証停止 (stop_auth): 完了",
            "  - SIM停止 (suspend_sim): 承認待ち",
            "コンソール: https://gw.example.jp/console/detections?field=f-1",
        ],
        &["Threat", "awaiting approval", "Z\n", "重要デバイス"],
    );
}

#[test]
fn english_body() {
    check(
        Lang::En,
        &incident(),
        &[
            "Threat: Hijacking\n",
            "Severity: High\n",
            "Field: 第一工場 (f-1)",
            "Device: ポンプ7 (unique ID pump-0007, ID d-7)",
            "First seen: 2026-05-01T01:46:40Z",
            "Last seen: 2026-05-01T01:47:40Z (3 times)",
            "Rule: network.sim_ip_mismatch",
            "Summary: Source address differs from the SIM's address.",
            "Evidence:\n  sim:\n    imsi: 440101234567890",
            "  - Stop authentication (stop_auth): done",
            "  - Suspend the SIM (suspend_sim): awaiting approval",
            "Console: https://gw.example.jp/console/detections?field=f-1",
        ],
        &["脅威", "承認待ち", "+09:00", "critical device"],
    );
}

#[test]
fn both_is_japanese_then_english() {
    let (_, text) = incident_mail(Lang::Both, &incident());
    let ja = text.find("脅威: 乗っ取り").expect("Japanese");
    let sep = text.find("\n------").expect("separator");
    let en = text.find("Threat: Hijacking").expect("English");
    assert!(ja < sep && sep < en, "{text}");
    assert_eq!(Lang::default(), Lang::Both);
    assert_eq!(serde_json::to_value(Lang::Ja).expect("json"), "ja");
    assert_eq!(
        serde_json::from_value::<Lang>(json!("both")).expect("json"),
        Lang::Both
    );
}

#[test]
fn critical_device_is_never_cut_off_automatically() {
    let i = Incident {
        critical: true,
        ..incident()
    };
    check(
        Lang::Ja,
        &i,
        &["重要デバイス", "自動で遮断されることはありません"],
        &[],
    );
    check(
        Lang::En,
        &i,
        &["critical device", "never cut off automatically"],
        &[],
    );
}

#[test]
fn single_finding_has_one_time_and_whole_field_has_no_device() {
    let i = Incident {
        count: 1,
        last_at_ms: 1_777_600_000_000,
        device_id: String::new(),
        unique_id: String::new(),
        device_name: None,
        actions: vec![],
        console_url: None,
        evidence: serde_json::Value::Null,
        ..incident()
    };
    check(
        Lang::Ja,
        &i,
        &[
            "検知日時: 2026-05-01T10:46:40+09:00",
            "(フィールド全体)",
            "(なし)",
            "(自動の対処はありません)",
        ],
        &["初回検知", "コンソール"],
    );
    check(
        Lang::En,
        &i,
        &[
            "Detected at: 2026-05-01T01:46:40Z",
            "(the whole field)",
            "(none)",
        ],
        &["Console"],
    );
    assert!(incident_mail(Lang::En, &i).0.ends_with("— 第一工場"));
}

#[test]
fn odd_evidence_and_values_neither_panic_nor_forge_lines() {
    let mut deep = json!("bottom");
    for _ in 0..50 {
        deep = json!({"d": deep});
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..500).map(|n| (format!("k{n:03}"), json!(n))).collect();
    let odd = [
        json!(null),
        json!("a plain string"),
        json!(42),
        json!([]),
        json!({}),
        json!([1, "two", null, {"three": [3, [4]]}]),
        json!({"empty": {}, "list": [], "mixed": [1, {"x": 2}], "nul": null, "b": true}),
        json!({"line": "one\nSubject: forged\r\nTo: x@evil"}),
        json!({"long": "あ".repeat(10_000)}),
        deep,
        serde_json::Value::Object(many),
    ];
    for evidence in odd {
        let i = Incident {
            evidence,
            summary: "two\nlines".into(),
            field_name: "f\r\nBcc: x@evil".into(),
            first_at_ms: i64::MAX,
            last_at_ms: i64::MIN,
            count: 0,
            actions: vec![(Action::Quarantine, ActionState::Skipped)],
            ..incident()
        };
        for lang in [Lang::Ja, Lang::En, Lang::Both] {
            let (subject, text) = incident_mail(lang, &i);
            assert!(
                !subject.contains('\n') && !subject.contains('\r'),
                "{subject:?}"
            );
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("Subject:") || l.starts_with("Bcc:")),
                "{text}"
            );
            assert!(
                text.lines().count() < 400,
                "bounded: {} lines",
                text.lines().count()
            );
            assert!(text.to_lowercase().contains("quarantine"), "{text}");
        }
    }
}

#[test]
fn webhook_body_shape() {
    let b = webhook_body(&incident(), 42);
    assert_eq!(b["type"], "sekisho.detection");
    assert_eq!(b["version"], 1);
    assert_eq!(b["decision_id"], 42);
    assert_eq!(b["field"], json!({"id": "f-1", "name": "第一工場"}));
    assert_eq!(
        b["device"],
        json!({"id": "d-7", "name": "ポンプ7", "unique_id": "pump-0007", "critical": false})
    );
    let d = &b["detection"];
    assert_eq!(d["threat"], "hijacking");
    assert_eq!(d["severity"], "high");
    assert_eq!(d["rule"], "network.sim_ip_mismatch");
    assert_eq!(d["evidence"]["sim"]["ip"], "10.0.0.7");
    assert_eq!(d["first_at"], "2026-05-01T01:46:40.000Z");
    assert_eq!(d["last_at"], "2026-05-01T01:47:40.000Z");
    assert_eq!(d["first_at_ms"], 1_777_600_000_000_i64);
    assert_eq!(d["count"], 3);
    assert_eq!(
        b["actions"],
        json!([{"action": "stop_auth", "state": "done"}, {"action": "suspend_sim", "state": "awaiting_approval"}])
    );
    assert_eq!(
        b["console_url"],
        "https://gw.example.jp/console/detections?field=f-1"
    );

    let field_wide = Incident {
        device_id: String::new(),
        unique_id: String::new(),
        console_url: None,
        first_at_ms: i64::MAX,
        ..incident()
    };
    let b = webhook_body(&field_wide, 1);
    assert!(b["device"].is_null() && b["console_url"].is_null());
    assert!(
        b["detection"]["first_at"].is_null(),
        "an impossible time is null, not a panic"
    );
}

#[test]
fn one_signature_block_at_the_end() {
    for lang in [Lang::Ja, Lang::En, Lang::Both] {
        let (_, text) = incident_mail(lang, &incident());
        assert_eq!(text.matches("\n-- \n").count(), 1, "{lang:?}");
        let sig = text.rfind("\n-- \n").expect("signature");
        assert!(
            text[sig..].lines().count() <= 4,
            "{lang:?}: {}",
            &text[sig..]
        );
        assert!(text.contains("Sekisho"), "{lang:?}");
    }
}
