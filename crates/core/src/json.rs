//! Checking that a body is JSON in UTF-8 all the way down, without building it (I-JSON, RFC 7493 §2.1):
//! every string and key decodes to Unicode scalar values — no raw invalid UTF-8 byte (`\xff`, an
//! overlong or truncated sequence, an encoded surrogate `\xed\xa0\x80`) and no escaped lone surrogate
//! (`"\ud800"`). A cloud that decodes such a body into strings fails on it, so the gateway refuses it
//! (`400 malformed_json`) instead of storing and forwarding it.
//!
//! [`Checked`] is `serde::de::IgnoredAny` that looks: it visits every value, asks serde_json for each
//! string as `str` (which validates it, borrowing when there is no escape) and keeps nothing.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Any JSON value, checked and discarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_none<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Checks a whole body: one JSON value of any shape, in UTF-8 throughout, with nothing after it.
pub fn check(body: &[u8]) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    Checked::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_utf8_passes_and_anything_else_is_named() {
        for ok in [
            &br#"{"a":"\u00e9t\u00e9","b":[1,-2.5,true,null,{"c":"\ud83d\ude00"}]}"#[..],
            "{\"名前\":\"関所\"}".as_bytes(),
            b"[]",
            b"\"text\"",
        ] {
            assert_eq!(check(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"{\"a\":\"\xff\xfe\"}"[..],
            b"{\"a\":\"\xc3\x28\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"\xff\":1}",
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00x"}"#,
            br#"{"a":1"#,
            br#"{"a":1} 2"#,
        ] {
            assert!(check(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
