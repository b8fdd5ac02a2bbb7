//! Rates and volume per regime: more messages than allowed in a window (V13), fewer than normal
//! (V15, a device taken away), more bytes than allowed.
//!
//! Message counts use device time when the timestamp is usable (offline-aware, ※1), else gateway
//! time; volume always uses gateway time (a backlog still costs what it costs).

use super::{MessageFacts, f};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state::{self, DeviceState, HAS_MIN_WINDOW, HAS_RATE_WINDOW, HAS_VOL_WINDOW};
use crate::template::Regime;
use serde_json::json;

/// Where the message falls in time: `t_now` on the `basis` clock for counts, `rx` (gateway time) for
/// volume, both in state seconds.
pub(super) struct When {
    pub t_now: u32,
    pub basis: &'static str,
    pub rx: u32,
}

/// Counts the message against the regime's windows.
pub(super) fn judge(
    regime_name: &str,
    regime: &Regime,
    s: &mut DeviceState,
    m: &MessageFacts,
    w: When,
    out: &mut Vec<Finding>,
) {
    let When { t_now, basis, rx } = w;
    if regime.max_messages > 0 {
        let w = regime.window.0;
        if !s.has(HAS_RATE_WINDOW) || t_now >= s.rate_start.saturating_add(w) {
            s.rate_start = t_now;
            s.rate_count = 1;
            s.set(HAS_RATE_WINDOW, true);
        } else {
            s.rate_count = s.rate_count.saturating_add(1);
            if s.rate_count as u32 == regime.max_messages + 1 {
                out.push(f(
                    Rule::RateMax,
                    Threat::Hijacking,
                    Severity::High,
                    format!(
                        "{} messages within {} ({basis}) in regime '{regime_name}'; the template allows {}",
                        s.rate_count, regime.window, regime.max_messages
                    ),
                    json!({"count": s.rate_count, "window_secs": w, "max_messages": regime.max_messages,
                           "regime": regime_name, "basis": basis, "window_start": state::unix_ms(s.rate_start), "buffered": m.buffered}),
                ));
            }
        }
    }
    if regime.min_messages > 0 {
        let w = regime.min_window.0;
        if !s.has(HAS_MIN_WINDOW) {
            s.min_start = t_now;
            s.min_count = 1;
            s.set(HAS_MIN_WINDOW, true);
        } else if t_now >= s.min_start.saturating_add(w) {
            // The window closed. A gap of two windows or more is silence (its own rule), not a low rate.
            let contiguous = t_now < s.min_start.saturating_add(w.saturating_mul(2));
            if contiguous && (s.min_count as u32) < regime.min_messages {
                out.push(f(
                    Rule::RateMin,
                    Threat::Theft,
                    Severity::Low,
                    format!(
                        "{} messages in {} ({basis}) in regime '{regime_name}'; normal is at least {}: possibly taken away",
                        s.min_count, regime.min_window, regime.min_messages
                    ),
                    json!({"count": s.min_count, "window_secs": w, "min_messages": regime.min_messages,
                           "regime": regime_name, "basis": basis, "window_start": state::unix_ms(s.min_start)}),
                ));
            }
            s.min_start = t_now;
            s.min_count = 1;
        } else if t_now >= s.min_start {
            s.min_count = s.min_count.saturating_add(1);
        }
    }

    if regime.max_volume_bytes > 0 {
        let w = regime.volume_window.0;
        if !s.has(HAS_VOL_WINDOW) || rx >= s.vol_start.saturating_add(w) {
            s.vol_start = rx;
            s.vol_bytes = 0;
            s.set(HAS_VOL_WINDOW, true);
        }
        let before = s.vol_bytes;
        s.vol_bytes = s.vol_bytes.saturating_add(m.size);
        if before <= regime.max_volume_bytes && s.vol_bytes > regime.max_volume_bytes {
            out.push(f(
                Rule::VolumeMax,
                Threat::Hijacking,
                Severity::Medium,
                format!(
                    "{} bytes within {} in regime '{regime_name}'; the template allows {}",
                    s.vol_bytes, regime.volume_window, regime.max_volume_bytes
                ),
                json!({"bytes": s.vol_bytes, "window_secs": w, "max_volume_bytes": regime.max_volume_bytes,
                       "regime": regime_name, "window_start": state::unix_ms(s.vol_start)}),
            ));
        }
    }
}
