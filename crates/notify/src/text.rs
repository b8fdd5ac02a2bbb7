//! The notification texts: the incident mail in Japanese, English or both
//! ([`incident_mail`]), and the webhook's JSON ([`webhook_body`]).
//!
//! Pure functions of an [`Incident`]: no I/O, no clock. Times are shown in JST (`+09:00`) in
//! Japanese and in UTC (`Z`) in English, ISO 8601. Values that come from devices or detectors
//! (evidence, summary, names) are put on one line each (control characters become spaces) and
//! cut when very long, so they cannot forge lines or headers of the mail.

mod evidence;
mod json;
mod words;

pub use json::webhook_body;

use sekisho_core::{Action, ActionState, RuleId, Severity, Threat};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use time::macros::{format_description, offset};
use time::{OffsetDateTime, UtcOffset};

/// The language of a field's notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Ja,
    En,
    /// Japanese first, then English.
    #[default]
    Both,
}

/// One incident as the texts describe it: a detection, its device and field, and what the
/// response did about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub field_name: String,
    pub field_id: String,
    /// Empty for a detection about the whole field.
    pub device_id: String,
    pub device_name: Option<String>,
    pub unique_id: String,
    /// A critical device (e.g. medical) is never cut off automatically.
    pub critical: bool,
    pub threat: Threat,
    pub severity: Severity,
    pub rule: RuleId,
    /// The detector's sentence (English).
    pub summary: String,
    pub evidence: Value,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    /// Findings grouped into this detection.
    pub count: u64,
    /// What the response did, e.g. `(SuspendSim, AwaitingApproval)`.
    pub actions: Vec<(Action, ActionState)>,
    /// The detection or device in the console.
    pub console_url: Option<String>,
}

/// Longest value shown (characters); longer ones end with `…`.
const MAX_VALUE_CHARS: usize = 300;

const SEPARATOR: &str = "------------------------------------------------------------";

/// The subject and text of the mail about `i`.
pub fn incident_mail(lang: Lang, i: &Incident) -> (String, String) {
    let target = target(i);
    let sev = i.severity;
    let subject = match lang {
        Lang::Ja => format!(
            "[Sekisho] {}の疑い ({sev}) — {target}",
            words::threat(i.threat, true)
        ),
        Lang::En => format!(
            "[Sekisho] Suspected {} ({sev}) — {target}",
            words::threat(i.threat, false)
        ),
        Lang::Both => format!(
            "[Sekisho] {}の疑い / Suspected {} ({sev}) — {target}",
            words::threat(i.threat, true),
            words::threat(i.threat, false)
        ),
    };
    // One signature block ("-- "), at the very end: mail programs hide or grey what follows it.
    let text = match lang {
        Lang::Ja => format!("{}\n-- \n{}\n", body(i, true), JA.footer),
        Lang::En => format!("{}\n-- \n{}\n", body(i, false), EN.footer),
        Lang::Both => format!(
            "{}\n{SEPARATOR}\n\n{}\n-- \n{}\n{}\n",
            body(i, true),
            body(i, false),
            JA.footer,
            EN.footer
        ),
    };
    (subject, text)
}

/// `field / device` for the subject.
fn target(i: &Incident) -> String {
    let field = if i.field_name.is_empty() {
        &i.field_id
    } else {
        &i.field_name
    };
    let device = i
        .device_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&i.unique_id);
    let device = if device.is_empty() {
        &i.device_id
    } else {
        device
    };
    if device.is_empty() {
        one_line(field)
    } else {
        format!("{} / {}", one_line(field), one_line(device))
    }
}

/// Labels of the body, Japanese or English.
struct Labels {
    intro: &'static str,
    threat: &'static str,
    severity: &'static str,
    field: &'static str,
    device: &'static str,
    whole_field: &'static str,
    unique_id: &'static str,
    first: &'static str,
    last: &'static str,
    at: &'static str,
    times: &'static str,
    rule: &'static str,
    summary: &'static str,
    evidence: &'static str,
    none: &'static str,
    actions: &'static str,
    no_action: &'static str,
    console: &'static str,
    critical: &'static str,
    footer: &'static str,
}

const JA: Labels = Labels {
    intro: "Sekisho が脅威の疑いを検知しました。",
    threat: "脅威",
    severity: "重大度",
    field: "フィールド",
    device: "デバイス",
    whole_field: "(フィールド全体)",
    unique_id: "固有ID",
    first: "初回検知",
    last: "最終検知",
    at: "検知日時",
    times: "回",
    rule: "ルール",
    summary: "概要",
    evidence: "証拠",
    none: "(なし)",
    actions: "対処",
    no_action: "(自動の対処はありません)",
    console: "コンソール",
    critical: "このデバイスは重要デバイスです。自動で遮断されることはありません。遮断を伴う対処は管理者の承認を待ちます。",
    footer: "このメールは Sekisho セキュアゲートウェイが自動で送信しました。",
};

const EN: Labels = Labels {
    intro: "Sekisho detected a suspected threat.",
    threat: "Threat",
    severity: "Severity",
    field: "Field",
    device: "Device",
    whole_field: "(the whole field)",
    unique_id: "unique ID",
    first: "First seen",
    last: "Last seen",
    at: "Detected at",
    times: "times",
    rule: "Rule",
    summary: "Summary",
    evidence: "Evidence",
    none: "(none)",
    actions: "Actions",
    no_action: "(no automatic action)",
    console: "Console",
    critical: "This is a critical device: it is never cut off automatically. Disruptive actions wait for an administrator's approval.",
    footer: "This mail was sent automatically by the Sekisho secure gateway.",
};

fn body(i: &Incident, ja: bool) -> String {
    let l = if ja { &JA } else { &EN };
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", l.intro);
    let _ = writeln!(
        s,
        "{}: {}",
        l.threat,
        named(words::threat(i.threat, ja), i.threat.as_str())
    );
    let _ = writeln!(
        s,
        "{}: {}",
        l.severity,
        named(words::severity(i.severity, ja), i.severity.as_str())
    );
    let field = if i.field_name.is_empty() || i.field_name == i.field_id {
        one_line(&i.field_id)
    } else {
        format!("{} ({})", one_line(&i.field_name), one_line(&i.field_id))
    };
    let _ = writeln!(s, "{}: {field}", l.field);
    let _ = writeln!(s, "{}: {}", l.device, device(i, l));
    if i.count > 1 && i.last_at_ms != i.first_at_ms {
        let _ = writeln!(s, "{}: {}", l.first, when(i.first_at_ms, ja));
        let _ = writeln!(
            s,
            "{}: {} ({} {})",
            l.last,
            when(i.last_at_ms, ja),
            i.count,
            l.times
        );
    } else {
        let _ = writeln!(s, "{}: {}", l.at, when(i.first_at_ms, ja));
    }
    let _ = writeln!(s, "{}: {}", l.rule, one_line(&i.rule.to_string()));
    let _ = writeln!(s, "{}: {}", l.summary, one_line(&i.summary));
    let _ = writeln!(s, "\n{}:", l.evidence);
    let mut lines = Vec::new();
    evidence::lines(&i.evidence, 1, &mut lines);
    if lines.is_empty() {
        lines.push(format!("  {}", l.none));
    }
    for line in lines {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "\n{}:", l.actions);
    if i.actions.is_empty() {
        let _ = writeln!(s, "  {}", l.no_action);
    }
    for (action, state) in &i.actions {
        let _ = writeln!(
            s,
            "  - {}: {}",
            named(words::action(*action, ja), action.as_str()),
            words::state(*state, ja)
        );
    }
    if i.critical {
        let _ = writeln!(s, "\n{}", l.critical);
    }
    if let Some(url) = i.console_url.as_deref().filter(|u| !u.is_empty()) {
        let _ = writeln!(s, "\n{}: {}", l.console, one_line(url));
    }
    s
}

fn device(i: &Incident, l: &Labels) -> String {
    if i.device_id.is_empty() && i.unique_id.is_empty() {
        return l.whole_field.to_owned();
    }
    let mut parts = Vec::new();
    if !i.unique_id.is_empty() {
        parts.push(format!("{} {}", l.unique_id, one_line(&i.unique_id)));
    }
    if !i.device_id.is_empty() {
        parts.push(format!("ID {}", one_line(&i.device_id)));
    }
    match i.device_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{} ({})", one_line(name), parts.join(", ")),
        None => parts.join(", "),
    }
}

/// `ms` as ISO 8601 to the second: JST in Japanese, UTC in English.
fn when(ms: i64, ja: bool) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return format!("{ms} ms");
    };
    let (t, fmt) = if ja {
        (
            t.to_offset(offset!(+9)),
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+09:00"),
        )
    } else {
        (
            t.to_offset(UtcOffset::UTC),
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
        )
    };
    t.format(fmt).unwrap_or_else(|_| format!("{ms} ms"))
}

/// The word for `code`, capitalised, with the code in parentheses when it differs
/// (`High`, `Stop authentication (stop_auth)`, `乗っ取り (hijacking)`).
fn named(word: &str, code: &str) -> String {
    let mut c = word.chars();
    let word: String = c
        .next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default();
    if word.eq_ignore_ascii_case(code) {
        one_line(&word)
    } else {
        format!("{} ({})", one_line(&word), one_line(code))
    }
}

/// `s` on one line (control characters become spaces), at most [`MAX_VALUE_CHARS`] characters.
pub(crate) fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_VALUE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_VALUE_CHARS).is_some() {
        out.push('…');
    }
    out
}
