//! Request templates and response pointers, pure text and JSON work shared by the connectors.
//!
//! - A template is text with `{imsi}`, `{iccid}` or `{id}` (whichever identifier the call was given).
//!   In a path each value is percent-encoded; in a JSON body it is escaped as a JSON string's content.
//! - A pointer is an RFC 6901 JSON pointer where a `*` segment matches every element of an array or
//!   member of an object. [`sum`] adds up every number a pointer selects, which turns a carrier's
//!   per-day, per-plan traffic statistics into one cumulative figure.

use crate::CarrierError;
use serde_json::Value;

/// The placeholder names a template may use.
pub(crate) const PLACEHOLDERS: [&str; 3] = ["imsi", "iccid", "id"];

/// A `{name}` token found at `start..end` of a text.
struct Token<'t> {
    name: &'t str,
    start: usize,
    end: usize,
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > i + 1 && j < bytes.len() && bytes[j] == b'}' {
                out.push(Token {
                    name: &text[i + 1..j],
                    start: i,
                    end: j + 1,
                });
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The placeholder names `text` uses.
pub(crate) fn used(text: &str) -> impl Iterator<Item = &str> {
    tokens(text).into_iter().map(|t| t.name)
}

/// Problems with a template: unknown placeholders and, in a path, braces that are not a placeholder.
pub(crate) fn problems(text: &str, is_path: bool) -> Vec<String> {
    let toks = tokens(text);
    let mut out: Vec<String> = toks
        .iter()
        .filter(|t| !PLACEHOLDERS.contains(&t.name))
        .map(|t| {
            format!(
                "unknown placeholder {{{}}} (use {{imsi}}, {{iccid}} or {{id}})",
                t.name
            )
        })
        .collect();
    if is_path {
        let mut rest = String::with_capacity(text.len());
        let mut at = 0;
        for t in &toks {
            rest.push_str(&text[at..t.start]);
            at = t.end;
        }
        rest.push_str(&text[at..]);
        if rest.contains(['{', '}']) {
            out.push("has a '{' or '}' that is not a placeholder".into());
        }
    }
    out
}

/// The identifiers a call can put into a template.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Values<'a> {
    pub imsi: Option<&'a str>,
    pub iccid: Option<&'a str>,
    /// The identifier the call was given.
    pub id: &'a str,
}

/// How a value is written into the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escape {
    /// Percent-encoding of everything but RFC 3986 unreserved characters.
    Path,
    /// The content of a JSON string.
    Json,
}

/// Fills the placeholders; a placeholder without a value (`{iccid}` for a call given only the IMSI)
/// is `Invalid`.
pub(crate) fn fill(text: &str, v: Values<'_>, escape: Escape) -> Result<String, CarrierError> {
    let mut out = String::with_capacity(text.len() + 32);
    let mut at = 0;
    for t in tokens(text) {
        let value = match t.name {
            "imsi" => v.imsi,
            "iccid" => v.iccid,
            "id" => Some(v.id),
            _ => None,
        }
        .ok_or_else(|| {
            CarrierError::Invalid(format!(
                "the template needs {{{}}}, which this call does not have",
                t.name
            ))
        })?;
        out.push_str(&text[at..t.start]);
        match escape {
            Escape::Path => percent_encode(value, &mut out),
            Escape::Json => {
                let quoted = Value::String(value.to_owned()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
        }
        at = t.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Why `p` is not a pointer, if it is not.
pub(crate) fn pointer_problem(p: &str) -> Option<String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Some(format!(
            "'{p}' is not a JSON pointer (it must start with '/')"
        ));
    }
    let bad_escape = p.split('/').any(|seg| {
        let mut chars = seg.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return true;
            }
        }
        false
    });
    bad_escape.then(|| format!("'{p}': '~' must be followed by 0 or 1"))
}

/// Every value `pointer` selects in `v` (`*` segments fan out).
pub(crate) fn select<'v>(v: &'v Value, pointer: &str) -> Vec<&'v Value> {
    let mut current = vec![v];
    if pointer.is_empty() {
        return current;
    }
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        let mut next = Vec::new();
        for node in current {
            match (node, seg.as_str()) {
                (Value::Array(a), "*") => next.extend(a.iter()),
                (Value::Object(o), "*") => next.extend(o.values()),
                (Value::Array(a), s) => next.extend(s.parse::<usize>().ok().and_then(|i| a.get(i))),
                (Value::Object(o), s) => next.extend(o.get(s)),
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// The one value a pointer without `*` selects, unless it is missing or `null`.
pub(crate) fn one<'v>(v: &'v Value, pointer: &str) -> Option<&'v Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

/// A byte count: a non-negative integer, a non-negative number (truncated) or a decimal string.
fn count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The sum of every count `pointer` selects. A pointer without `*` must select a count; with `*`,
/// selecting nothing is 0 (no statistics yet). Anything selected that is not a count is an error.
pub(crate) fn sum(v: &Value, pointer: &str) -> Result<u64, CarrierError> {
    let found = select(v, pointer);
    if found.is_empty() && !pointer.split('/').any(|s| s == "*") {
        return Err(CarrierError::BadResponse(format!("no value at {pointer}")));
    }
    found.iter().try_fold(0u64, |acc, x| {
        count(x)
            .map(|n| acc.saturating_add(n))
            .ok_or_else(|| CarrierError::BadResponse(format!("{pointer} holds {x}, not a count")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V: Values<'static> = Values {
        imsi: Some("440101234567890"),
        iccid: None,
        id: "440101234567890",
    };

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let cases = [
            (
                "/v1/subscribers/{imsi}/deactivate",
                Escape::Path,
                "/v1/subscribers/440101234567890/deactivate",
            ),
            ("/sims/{id}?x=1", Escape::Path, "/sims/440101234567890?x=1"),
            (
                r#"{"imsi":"{imsi}","on":false}"#,
                Escape::Json,
                r#"{"imsi":"440101234567890","on":false}"#,
            ),
        ];
        for (text, esc, want) in cases {
            assert_eq!(fill(text, V, esc).unwrap(), want, "{text}");
        }
        let odd = Values {
            imsi: Some("a/b c\"d"),
            iccid: None,
            id: "x",
        };
        assert_eq!(
            fill("/{imsi}", odd, Escape::Path).unwrap(),
            "/a%2Fb%20c%22d"
        );
        assert_eq!(
            fill("\"{imsi}\"", odd, Escape::Json).unwrap(),
            r#""a/b c\"d""#
        );
        assert_eq!(
            fill("/{iccid}", V, Escape::Path).unwrap_err().code(),
            "invalid"
        );
    }

    #[test]
    fn template_problems_are_named() {
        assert!(problems("/v1/subscribers/{imsi}", true).is_empty());
        assert!(problems(r#"{"a":{"b":"{iccid}"}}"#, false).is_empty());
        let p = problems("/v1/{imis}/x", true);
        assert!(p[0].contains("{imis}"), "{p:?}");
        assert_eq!(problems("/v1/{imsi/x", true).len(), 1);
        assert_eq!(problems(r#"{"a":"{sim}"}"#, false).len(), 1);
        assert_eq!(used("/{imsi}/{id}").collect::<Vec<_>>(), ["imsi", "id"]);
    }

    #[test]
    fn pointers_fan_out_and_sum() {
        let stats = json!([
            {"unixtime": 1, "dataTrafficStatsMap": {"s1.standard": {"uploadByteSizeTotal": 100, "downloadByteSizeTotal": 5},
                                                    "s1.fast": {"uploadByteSizeTotal": 20, "downloadByteSizeTotal": "7"}}},
            {"unixtime": 2, "dataTrafficStatsMap": {"s1.standard": {"uploadByteSizeTotal": 3.0, "downloadByteSizeTotal": 0}}}
        ]);
        assert_eq!(
            sum(&stats, "/*/dataTrafficStatsMap/*/uploadByteSizeTotal").unwrap(),
            123
        );
        assert_eq!(
            sum(&stats, "/*/dataTrafficStatsMap/*/downloadByteSizeTotal").unwrap(),
            12
        );
        assert_eq!(sum(&json!([]), "/*/x").unwrap(), 0);
        assert_eq!(sum(&json!({"up": 9}), "/up").unwrap(), 9);
        assert_eq!(
            sum(&json!({"up": 9}), "/down").unwrap_err().code(),
            "bad_response"
        );
        assert_eq!(
            sum(&json!({"up": "many"}), "/up").unwrap_err().code(),
            "bad_response"
        );
        assert_eq!(select(&json!({"a/b": {"~": 1}}), "/a~1b/~0").len(), 1);
        assert_eq!(select(&json!([1, 2]), "/1"), [&json!(2)]);
    }

    #[test]
    fn pointer_syntax_is_checked() {
        assert!(pointer_problem("").is_none());
        assert!(pointer_problem("/a/*/b~1c").is_none());
        assert!(pointer_problem("status").is_some());
        assert!(pointer_problem("/a~2").is_some());
    }
}
