//! Durations written for people — `"500ms"`, `"30s"`, `"5m"`, `"8h"`, `"7d"` or a bare number — and
//! [`Span`], the whole-seconds duration of templates. The one parser of that form: templates, the
//! admin API and the gateway's configuration file all read durations through [`parse_millis`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// The forms a duration may take, for error messages.
pub const FORMS: &str = "500ms, 30s, 5m, 8h, 7d";

/// A duration in milliseconds: digits and one unit (`ms`, `s`, `m`, `h`, `d`), white space around
/// ignored. A bare number is in `bare_unit_ms` (1000 for seconds). `None` when it is not that form or
/// does not fit.
pub fn parse_millis(s: &str, bare_unit_ms: u64) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let mul = match unit.trim() {
        "" => bare_unit_ms,
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// A duration written for people: `"30s"`, `"5m"`, `"6h"`, `"7d"`, or a number of seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, example = "5m")]
pub struct Span(pub u32);

impl Span {
    pub fn secs(self) -> u32 {
        self.0
    }

    /// `None` unless `s` is a duration of whole seconds that fits.
    pub fn parse(s: &str) -> Option<Self> {
        let ms = parse_millis(s, 1000)?;
        if !ms.is_multiple_of(1000) {
            return None;
        }
        u32::try_from(ms / 1000).ok().map(Span)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match s {
            0 => write!(f, "0s"),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Span(n)),
            Raw::S(s) => Span::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("'{s}' is not a duration (30s, 5m, 6h, 7d)"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_and_print() {
        for (s, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("6h", 21_600),
            ("7d", 604_800),
            ("45", 45),
            ("2000ms", 2),
        ] {
            assert_eq!(Span::parse(s), Some(Span(secs)), "{s}");
        }
        for bad in ["5 minutes", "1500ms", "", "m", "-5s", "99999999999d"] {
            assert_eq!(Span::parse(bad), None, "{bad}");
        }
        assert_eq!(Span(21_600).to_string(), "6h");
        assert_eq!(Span(90).to_string(), "90s");
    }

    #[test]
    fn millis_take_every_unit_and_the_bare_unit() {
        for (s, bare, ms) in [
            ("500ms", 1, 500),
            ("500", 1, 500),
            ("30s", 1, 30_000),
            ("30", 1000, 30_000),
            (" 8h ", 1000, 28_800_000),
            ("7d", 1, 604_800_000),
            ("24", 3_600_000, 86_400_000),
        ] {
            assert_eq!(parse_millis(s, bare), Some(ms), "{s}");
        }
        assert_eq!(parse_millis("8 hours", 1), None);
        assert_eq!(parse_millis("1.5s", 1), None);
        assert_eq!(parse_millis(&format!("{}d", u64::MAX), 1), None);
    }
}
