//! The admin API's answer style (docs/api.md), checked on every JSON answer the tests read through
//! [`super::Admin`]: a list is an object `{items, next_before}`, never a bare array; every time is an
//! RFC 3339 string under a name ending `_at`; no string holds JSON text (an object or an array).

use serde_json::Value;

/// Every way `answer` breaks the style, as readable lines (empty when it follows it).
pub fn problems(answer: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if answer.is_array() {
        out.push("$: a bare array (a list is {\"items\": [...], \"next_before\": ...})".into());
    }
    walk("$", None, answer, &mut out);
    out
}

fn walk(path: &str, key: Option<&str>, v: &Value, out: &mut Vec<String>) {
    if let Some(k) = key {
        if k == "at" || k == "until" {
            out.push(format!("{path}: a time is named *_at"));
        }
        let is_time = v
            .as_str()
            .is_some_and(|s| sekisho_core::time::parse_rfc3339(s).is_some());
        if k.ends_with("_at") && !v.is_null() && !is_time {
            out.push(format!("{path}: {v} is not an RFC 3339 time"));
        }
    }
    match v {
        Value::String(s)
            if serde_json::from_str::<Value>(s).is_ok_and(|j| j.is_object() || j.is_array()) =>
        {
            out.push(format!("{path}: JSON text inside a string: {s}"));
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                walk(&format!("{path}[{i}]"), None, x, out);
            }
        }
        Value::Object(o) => {
            if o.contains_key("items") && !o.contains_key("next_before") {
                out.push(format!("{path}: a list without next_before"));
            }
            for (k, x) in o {
                walk(&format!("{path}.{k}"), Some(k), x, out);
            }
        }
        _ => {}
    }
}

/// Whether the answer of `path` is the gateway's own JSON (not a device's message body, not the
/// OpenAPI document, whose property names end in `_at` too).
pub fn applies_to(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    !(path.ends_with("/body") || path.ends_with("/openapi.json") || path == "/metrics")
}
