//! Time as the gateway stores it: Unix milliseconds (`i64`), and RFC 3339 for people.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Unix milliseconds of an `OffsetDateTime`.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 text for Unix milliseconds (UTC). Out-of-range values print as the number itself.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Parses RFC 3339 text into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(to_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let ms = parse_rfc3339("2026-11-25T13:00:00.250Z").unwrap();
        assert_eq!(ms, 1_795_611_600_250);
        assert_eq!(rfc3339(ms), "2026-11-25T13:00:00.25Z");
        assert_eq!(
            parse_rfc3339("2026-11-25T22:00:00+09:00"),
            Some(1_795_611_600_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
