//! Reading a device's telemetry body without copying it: check that it is one JSON object (or an array
//! of them for a batch), bounded in depth, in UTF-8 all the way down ([`crate::json`]), and pick out the
//! fields the gateway understands (`ts`, `seq`, `buffered`). Everything else stays opaque and is
//! forwarded byte for byte.

use crate::json::Checked;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
    #[error("JSON nests {found} levels deep; this field allows {limit}")]
    TooDeep { found: usize, limit: usize },
    #[error("batch holds {found} objects; this field allows {limit}")]
    BatchTooLarge { found: usize, limit: usize },
}

/// What the gateway understands of one telemetry object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TelemetryMeta {
    /// Device timestamp in Unix ms (`ts`, RFC 3339 or a number of ms). `None` when absent.
    pub device_ts: Option<i64>,
    /// `true` when `ts` was present but unreadable (kept for detection, not refused).
    pub bad_ts: bool,
    /// Per-device counter (`seq`).
    pub seq: Option<i64>,
    /// `buffered`: the device held this message while offline.
    pub buffered: bool,
}

/// Deepest nesting of arrays/objects in `body`, stopping as soon as `limit` is exceeded.
/// Strings (with escapes) are skipped so brackets inside them do not count.
pub fn json_depth_exceeds(body: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Some(depth);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Parses one telemetry object.
pub fn parse_object(body: &[u8], depth_limit: usize) -> Result<TelemetryMeta, BodyError> {
    if let Some(found) = json_depth_exceeds(body, depth_limit) {
        return Err(BodyError::TooDeep {
            found,
            limit: depth_limit,
        });
    }
    meta_of(body)
}

fn meta_of(body: &[u8]) -> Result<TelemetryMeta, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let meta = de
        .deserialize_map(MetaVisitor)
        .map_err(|e| BodyError::Malformed(e.to_string()))?;
    de.end().map_err(|e| BodyError::Malformed(e.to_string()))?;
    Ok(meta)
}

/// Parses a batch: a JSON array of telemetry objects. Returns each object's raw bytes with its meta.
pub fn parse_batch(
    body: &[u8],
    depth_limit: usize,
    max_len: usize,
) -> Result<Vec<(&[u8], TelemetryMeta)>, BodyError> {
    // The array itself is one level.
    if let Some(found) = json_depth_exceeds(body, depth_limit + 1) {
        return Err(BodyError::TooDeep {
            found: found - 1,
            limit: depth_limit,
        });
    }
    let items: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| BodyError::Malformed(e.to_string()))?;
    if items.len() > max_len {
        return Err(BodyError::BatchTooLarge {
            found: items.len(),
            limit: max_len,
        });
    }
    if items.is_empty() {
        return Err(BodyError::Malformed(
            "a batch must hold at least one object".into(),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let bytes = raw.get().as_bytes();
            meta_of(bytes)
                .map(|m| (bytes, m))
                .map_err(|e| BodyError::Malformed(format!("item {i}: {e}")))
        })
        .collect()
}

struct MetaVisitor;

impl<'de> Visitor<'de> for MetaVisitor {
    type Value = TelemetryMeta;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TelemetryMeta, A::Error> {
        let mut meta = TelemetryMeta::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "ts" => match map.next_value::<TsValue>()? {
                    TsValue::Millis(ms) => meta.device_ts = Some(ms),
                    TsValue::Text(s) => match crate::time::parse_rfc3339(&s) {
                        Some(ms) => meta.device_ts = Some(ms),
                        None => meta.bad_ts = true,
                    },
                    TsValue::Other => meta.bad_ts = true,
                },
                "seq" => meta.seq = map.next_value::<SeqValue>()?.0,
                "buffered" => meta.buffered = map.next_value::<Option<bool>>()?.unwrap_or(false),
                _ => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(meta)
    }
}

/// `seq` when it is an integer; any other (checked) value reads as no sequence number.
struct SeqValue(Option<i64>);

impl<'de> de::Deserialize<'de> for SeqValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => SeqValue(n.as_i64()),
            _ => SeqValue(None),
        })
    }
}

enum TsValue {
    Millis(i64),
    Text(String),
    Other,
}

impl<'de> de::Deserialize<'de> for TsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(ms) => TsValue::Millis(ms),
                None => n
                    .as_f64()
                    .map_or(TsValue::Other, |f| TsValue::Millis(f as i64)),
            },
            serde_json::Value::String(s) => TsValue::Text(s),
            _ => TsValue::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<TelemetryMeta, &str>) {
        let got = parse_object(body.as_bytes(), 4);
        match expected {
            Ok(m) => assert_eq!(got, Ok(m), "{body}"),
            Err(prefix) => {
                let e = got.expect_err(body).to_string();
                assert!(e.starts_with(prefix), "{body}: {e}");
            }
        }
    }

    #[test]
    fn objects_are_read_and_checked() {
        let m = |ts, seq, buffered| TelemetryMeta {
            device_ts: ts,
            bad_ts: false,
            seq,
            buffered,
        };
        check(r#"{"speed": 3}"#, Ok(m(None, None, false)));
        check(
            r#"{"ts": 1795611600000, "seq": 7}"#,
            Ok(m(Some(1_795_611_600_000), Some(7), false)),
        );
        check(
            r#"{"ts": "2026-11-25T13:00:00Z", "buffered": true}"#,
            Ok(m(Some(1_795_611_600_000), None, true)),
        );
        check(
            r#"{"ts": "noon"}"#,
            Ok(TelemetryMeta {
                device_ts: None,
                bad_ts: true,
                seq: None,
                buffered: false,
            }),
        );
        check(r#"{"a": "}]]]]]]"}"#, Ok(m(None, None, false)));
        check(r#"{"speed": 3"#, Err("body is not valid JSON"));
        check(r#"[1, 2]"#, Err("body is not valid JSON"));
        check(r#"{"a": 1} {"b": 2}"#, Err("body is not valid JSON"));
        check(
            r#"{"a":{"b":{"c":{"d":{}}}}}"#,
            Err("JSON nests 5 levels deep"),
        );
        check("", Err("body is not valid JSON"));
        check(r#"{"seq": "seven"}"#, Ok(m(None, None, false)));
        // UTF-8 all the way down, in values, keys and nested strings (the opaque part too).
        check("{\"a\":\"\u{3042}\"}", Ok(m(None, None, false)));
        for bad in [
            &b"{\"a\":\"\xff\xfe\"}"[..],
            b"{\"a\":\"\xc3\x28\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":[{\"b\":\"\xff\"}]}",
            b"{\"\xff\":1}",
            br#"{"a":"\ud800"}"#,
        ] {
            let e = parse_object(bad, 4).expect_err("invalid UTF-8 must be refused");
            assert!(matches!(e, BodyError::Malformed(_)), "{e}");
        }
    }

    #[test]
    fn batches_keep_each_object_verbatim() {
        let body = br#"[{"seq":1,"x":"a"}, {"seq":2, "x" : "b"}]"#;
        let items = parse_batch(body, 4, 10).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].0, br#"{"seq":2, "x" : "b"}"#);
        assert_eq!(items[1].1.seq, Some(2));
        assert!(matches!(
            parse_batch(body, 4, 1),
            Err(BodyError::BatchTooLarge { found: 2, limit: 1 })
        ));
        assert!(matches!(
            parse_batch(b"[]", 4, 1),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"[1]", 4, 1),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"{}", 4, 1),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"[{\"a\":1},{\"b\":\"\xff\"}]", 4, 10),
            Err(BodyError::Malformed(_))
        ));
    }
}
