//! Timestamps and sequence numbers (V18 and the signs of a takeover): unreadable, in the future, too
//! old, going back behind the device's latest; a `seq` not above the latest.

use super::{MessageFacts, f};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state::{self, DeviceState, HAS_SEQ, HAS_TS};
use crate::template::Compiled;
use sekisho_core::time::rfc3339;
use serde_json::json;

/// Judges the message's `ts` and `seq`; returns its device time (state seconds) when the timestamp
/// is usable for counting rates.
pub(super) fn judge(
    c: &Compiled,
    s: &DeviceState,
    m: &MessageFacts,
    out: &mut Vec<Finding>,
) -> Option<u32> {
    let ts_rules = &c.template.timestamps;
    let mut usable_ts = None;
    if m.bad_ts {
        out.push(f(
            Rule::TsUnreadable,
            Threat::Hijacking,
            Severity::Low,
            "the device timestamp cannot be read".into(),
            json!({}),
        ));
    }
    if let Some(ts_ms) = m.device_ts_ms {
        let ahead = (ts_ms - m.rx_ms) / 1000;
        let behind = (m.rx_ms - ts_ms) / 1000;
        if ahead > ts_rules.max_future.0 as i64 {
            out.push(f(
                Rule::TsFuture,
                Threat::Hijacking,
                Severity::Medium,
                format!("the device timestamp is {ahead} s ahead of the gateway; the template allows {}", ts_rules.max_future),
                json!({"device_time_at": rfc3339(ts_ms), "received_at": rfc3339(m.rx_ms), "ahead_secs": ahead, "max_future_secs": ts_rules.max_future.0}),
            ));
        } else if behind > ts_rules.max_age.0 as i64 {
            out.push(f(
                Rule::TsTooOld,
                Threat::Hijacking,
                Severity::Medium,
                format!("the device timestamp is {behind} s old; the template allows {}", ts_rules.max_age),
                json!({"device_time_at": rfc3339(ts_ms), "received_at": rfc3339(m.rx_ms), "age_secs": behind, "max_age_secs": ts_rules.max_age.0, "buffered": m.buffered}),
            ));
        } else {
            let ts = state::secs(ts_ms);
            if s.has(HAS_TS) && ts.saturating_add(ts_rules.out_of_order_tolerance.0) < s.last_ts {
                out.push(f(
                    Rule::TsOutOfOrder,
                    Threat::Hijacking,
                    Severity::High,
                    format!("the device timestamp goes back {} s behind the device's latest", s.last_ts - ts),
                    json!({"device_time_at": rfc3339(ts_ms), "latest_device_time_at": rfc3339(state::unix_ms(s.last_ts)), "tolerance_secs": ts_rules.out_of_order_tolerance.0}),
                ));
            }
            usable_ts = Some(ts);
        }
    }
    if let Some(seq) = m.seq
        && ts_rules.check_seq
        && s.has(HAS_SEQ)
        && seq <= s.last_seq
    {
        out.push(f(
                Rule::SeqReused,
                Threat::Hijacking,
                Severity::High,
                format!("seq {seq} is not above the device's latest {}: a replay or a second device with the same credentials", s.last_seq),
                json!({"seq": seq, "latest_seq": s.last_seq}),
            ));
    }
    usable_ts
}
