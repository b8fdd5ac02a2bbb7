//! Silence (V14): the three steps a device reaches when it stops sending, and when the next falls due.

use super::f;
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state::{self, DeviceState};
use crate::template::Compiled;
use sekisho_core::time::rfc3339;
use serde_json::json;

/// The silence step a device has reached, if a new one: (rule, severity, step 1-3).
pub fn silence(c: &Compiled, s: &mut DeviceState, now_ms: i64) -> Option<Finding> {
    let (name, r) = c.regime(s.regime);
    let quiet_for = state::secs(now_ms).saturating_sub(s.last_rx);
    let steps = [
        (r.silence_notice.0, Rule::SilenceNotice, Severity::Notice),
        (r.silence_warning.0, Rule::SilenceWarning, Severity::Medium),
        (r.silence_theft.0, Rule::SilenceTheft, Severity::High),
    ];
    let reached = steps
        .iter()
        .enumerate()
        .filter(|(_, (limit, _, _))| *limit > 0 && quiet_for >= *limit)
        .map(|(i, st)| (i as u8 + 1, st))
        .next_back();
    let (level, (limit, rule, severity)) = reached?;
    if level <= s.silence_level {
        return None;
    }
    s.silence_level = level;
    Some(f(
        *rule,
        Threat::Theft,
        *severity,
        format!(
            "no data for {} s in regime '{name}' (step {level} of 3 after {} s)",
            quiet_for, limit
        ),
        json!({"silent_secs": quiet_for, "last_message_at": rfc3339(state::unix_ms(s.last_rx)), "regime": name, "step": level, "threshold_secs": limit}),
    ))
}

/// When the device's next silence step falls due (state seconds), if any step is left.
pub fn next_silence_check(c: &Compiled, s: &DeviceState) -> Option<u32> {
    let (_, r) = c.regime(s.regime);
    [r.silence_notice.0, r.silence_warning.0, r.silence_theft.0]
        .iter()
        .enumerate()
        .filter(|(i, limit)| **limit > 0 && (*i as u8) >= s.silence_level)
        .map(|(_, limit)| s.last_rx.saturating_add(*limit))
        .next()
}
