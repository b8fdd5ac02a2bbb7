//! What the data is: its size against the template's limit, its shape against the field's (or the
//! device type's) JSON schema, file names against the allowed extensions.

use super::{MessageFacts, f};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::template::Compiled;
use serde_json::json;

/// The message's size against the template's `size.max_bytes`.
pub(super) fn size(c: &Compiled, m: &MessageFacts, out: &mut Vec<Finding>) {
    let t = &c.template;
    if t.size.max_bytes > 0 && m.size > t.size.max_bytes {
        out.push(f(
            Rule::SizeMax,
            Threat::Hijacking,
            Severity::Medium,
            format!("{} bytes; the template allows {}", m.size, t.size.max_bytes),
            json!({"size": m.size, "max_bytes": t.size.max_bytes}),
        ));
    }
}

/// The message's content against the schema and the file-name allow-list (parsed only when the
/// template checks either).
pub(super) fn content(c: &Compiled, m: &MessageFacts, out: &mut Vec<Finding>) {
    let t = &c.template;
    if let Some(body) = m.body.filter(|_| {
        c.schema.is_some() || !c.type_schemas.is_empty() || !t.format.file_keys.is_empty()
    }) && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
    {
        // The device type's schema when the data names a type that has one, else the field's.
        let typed = t
            .format
            .schema_key
            .as_ref()
            .and_then(|k| v.get(k))
            .and_then(|x| x.as_str());
        let (schema, whose) = match typed.and_then(|ty| c.type_schemas.get(ty).map(|s| (s, ty))) {
            Some((s, ty)) => (Some(s), format!("device type '{ty}'")),
            None => (c.schema.as_ref(), "field".to_owned()),
        };
        if let Some(schema) = schema {
            let errors: Vec<String> = schema
                .iter_errors(&v)
                .take(5)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            if !errors.is_empty() {
                out.push(f(
                    Rule::FormatSchema,
                    Threat::Hijacking,
                    Severity::Medium,
                    format!("the data does not match the {whose} schema: {}", errors[0]),
                    json!({"errors": errors, "schema": whose}),
                ));
            }
        }
        for key in &t.format.file_keys {
            let Some(name) = v.get(key).and_then(|x| x.as_str()) else {
                continue;
            };
            let ext = name
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            if !t.format.allowed_extensions.contains(&ext) {
                out.push(f(
                        Rule::FormatFileExtension,
                        Threat::Hijacking,
                        Severity::Medium,
                        format!("file '{name}' has an extension outside the allow-list"),
                        json!({"key": key, "file": name, "extension": ext, "allowed": t.format.allowed_extensions}),
                    ));
            }
        }
    }
}
