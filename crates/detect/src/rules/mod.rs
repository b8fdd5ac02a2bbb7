//! The built-in rules. Each takes the compiled template, the device's state and the facts of one event,
//! updates the state and returns findings.
//!
//! Offline-aware judgement (※1): rates are counted in **device time** when the message carries a
//! usable timestamp, so a backlog flushed after a dead spot — timestamps that continue the device's
//! history at its normal cadence — counts as the cadence it was recorded at, not as a burst. What a
//! takeover looks like is still caught: a reused `seq`, a timestamp older than the device's latest,
//! a cadence faster than normal in device time, messages from another address at once.
//!
//! One module per family: `refused` (what the gateway refused), `time` (timestamps and `seq`, V18),
//! `rate` (rates and volume, V13, V15), `network` (V20-V22), `format` (size, schema, file names),
//! `auth` (V16, V17), `silence` (V14), `sim` (V19). [`message`] runs the message families in order
//! over one device state.

mod auth;
mod format;
mod network;
mod rate;
mod refused;
mod silence;
mod sim;
mod time;

pub use auth::{AuthFacts, Windows, auth};
pub use network::{SharedIps, shared_ip};
pub use sekisho_core::detection::SimVolumeFacts;
pub use silence::{next_silence_check, silence};
pub use sim::sim_volume;

use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state::{self, DeviceState, HAS_SEQ, HAS_TS, SEEN};
use crate::template::Compiled;
use sekisho_core::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;

/// What the gateway knows of one received message.
#[derive(Clone, Copy, Debug)]
pub struct MessageFacts<'a> {
    /// Gateway receive time (Unix ms).
    pub rx_ms: i64,
    pub device_ts_ms: Option<i64>,
    /// `ts` present but unreadable.
    pub bad_ts: bool,
    pub seq: Option<i64>,
    pub buffered: bool,
    pub size: u32,
    /// Why the gateway refused the message, when it did.
    pub rejected: Option<ErrorCode>,
    pub source_ip: IpAddr,
    /// The accepted object's bytes (for regime, schema and file-name checks).
    pub body: Option<&'a [u8]>,
    /// The SIM's current address according to the carrier, when known (V20).
    pub sim_ip: Option<IpAddr>,
}

fn f(
    rule: Rule,
    threat: Threat,
    severity: Severity,
    summary: String,
    evidence: serde_json::Value,
) -> Finding {
    Finding::new(rule.into(), threat, severity, summary, evidence)
}

/// The string value of a top-level key of a JSON object, without building the whole object.
pub fn top_level_str(body: &[u8], key: &str) -> Option<String> {
    let v: HashMap<&str, &serde_json::value::RawValue> = serde_json::from_slice(body).ok()?;
    serde_json::from_str::<String>(v.get(key)?.get()).ok()
}

/// Evaluates one message of a device against its field's template.
pub fn message(c: &Compiled, s: &mut DeviceState, m: &MessageFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(code) = m.rejected {
        out.extend(refused::judge(c, code, m));
        return out;
    }
    let t = &c.template;
    let rx = state::secs(m.rx_ms);
    if !s.has(SEEN) {
        s.regime = c.default_regime;
    }
    if let (Some(key), Some(body)) = (&t.regime.key, m.body)
        && let Some(v) = top_level_str(body, key)
    {
        s.regime = c.regime_index(&v, s.regime);
    }
    let (regime_name, regime) = c.regime(s.regime);

    format::size(c, m, &mut out);
    let usable_ts = time::judge(c, s, m, &mut out);
    let (t_now, basis) = match usable_ts {
        Some(ts) => (ts, "device_time"),
        None => (rx, "gateway_time"),
    };
    rate::judge(
        regime_name,
        regime,
        s,
        m,
        rate::When { t_now, basis, rx },
        &mut out,
    );
    network::judge(c, m, &mut out);
    format::content(c, m, &mut out);
    remember(s, m, rx, usable_ts);
    out
}

/// The device is here: updates what its next message is judged against.
fn remember(s: &mut DeviceState, m: &MessageFacts, rx: u32, usable_ts: Option<u32>) {
    s.last_rx = s.last_rx.max(rx);
    if let Some(ts) = usable_ts {
        s.last_ts = s.last_ts.max(ts);
        s.set(HAS_TS, true);
    }
    if let Some(seq) = m.seq {
        s.last_seq = if s.has(HAS_SEQ) {
            s.last_seq.max(seq)
        } else {
            seq
        };
        s.set(HAS_SEQ, true);
    }
    s.last_ip = state::ip_key(m.source_ip);
    s.silence_level = 0;
    s.set(SEEN, true);
}

#[cfg(test)]
mod tests;
