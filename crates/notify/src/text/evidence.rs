//! Evidence as text: indented `key: value` lines, bounded in depth, lines and value length.

use super::one_line;
use serde_json::Value;

/// Most evidence lines shown.
const MAX_LINES: usize = 100;
/// Deepest nesting shown.
const MAX_DEPTH: usize = 6;

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => one_line(s),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => one_line(&other.to_string()),
    }
}

fn is_leaf(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    }
}

/// Evidence as indented `key: value` lines (two spaces a level); arrays of plain values on one
/// line, other arrays as `- ` items. Bounded in depth and lines.
pub(super) fn lines(v: &Value, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    if out.len() >= MAX_LINES {
        if out.len() == MAX_LINES {
            out.push(format!("{pad}…"));
        }
        return;
    }
    match v {
        Value::Null => {}
        Value::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                if out.len() >= MAX_LINES {
                    return lines(v, depth, out);
                }
                if is_leaf(v) || depth >= MAX_DEPTH {
                    let shown = if is_leaf(v) { scalar(v) } else { "…".into() };
                    out.push(format!("{pad}{}: {shown}", one_line(k)));
                } else if let Value::Array(a) = v
                    && a.iter().all(|x| {
                        matches!(
                            x,
                            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
                        )
                    })
                {
                    let items: Vec<String> = a.iter().map(scalar).collect();
                    out.push(format!(
                        "{pad}{}: {}",
                        one_line(k),
                        one_line(&items.join(", "))
                    ));
                } else {
                    out.push(format!("{pad}{}:", one_line(k)));
                    lines(v, depth + 1, out);
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                if out.len() >= MAX_LINES {
                    return lines(item, depth, out);
                }
                if is_leaf(item) || depth >= MAX_DEPTH {
                    let shown = if is_leaf(item) {
                        scalar(item)
                    } else {
                        "…".into()
                    };
                    out.push(format!("{pad}- {shown}"));
                } else {
                    out.push(format!("{pad}-"));
                    lines(item, depth + 1, out);
                }
            }
        }
        leaf => out.push(format!("{pad}{}", scalar(leaf))),
    }
}
