//! The built-in rules. Each takes the compiled template, the device's state and the facts of one event,
//! updates the state and returns findings.
//!
//! Offline-aware judgement (※1): rates are counted in **device time** when the message carries a
//! usable timestamp, so a backlog flushed after a dead spot — timestamps that continue the device's
//! history at its normal cadence — counts as the cadence it was recorded at, not as a burst. What a
//! takeover looks like is still caught: a reused `seq`, a timestamp older than the device's latest,
//! a cadence faster than normal in device time, messages from another address at once.

use crate::finding::{Finding, Rule, Severity, Threat};
use crate::state::{
    self, DeviceState, HAS_MIN_WINDOW, HAS_RATE_WINDOW, HAS_SEQ, HAS_TS, HAS_VOL_WINDOW, SEEN,
};
use crate::template::{Compiled, OffNetwork};
use sekisho_core::ErrorCode;
use sekisho_core::time::rfc3339;
use serde_json::json;
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

pub use sekisho_core::detection::SimVolumeFacts;

/// Compares one window of a SIM's accounting with the gateway's own count (V19, ※2, ※3).
pub fn sim_volume(c: &Compiled, v: &SimVolumeFacts) -> Vec<Finding> {
    let r = &c.template.sim;
    let mut out = Vec::new();
    let fixed = v.connections as f64 * r.connection_overhead_bytes as f64
        + r.allowance_bytes_per_hour as f64 * v.secs as f64 / 3600.0;
    let expect_up = v.gateway_rx as f64 * (1.0 + r.overhead_ratio) + fixed;
    let expect_down = v.gateway_tx as f64 * (1.0 + r.overhead_ratio) + fixed;
    let evidence = |expected: f64| {
        json!({"window_secs": v.secs, "sim_uplink": v.sim_uplink, "sim_downlink": v.sim_downlink,
               "gateway_rx": v.gateway_rx, "gateway_tx": v.gateway_tx, "connections": v.connections,
               "expected": expected.round() as u64, "overhead_ratio": r.overhead_ratio})
    };
    let limit_up = expect_up * r.uplink_tolerance + r.uplink_min_excess_bytes as f64;
    if r.check_uplink && v.sim_uplink as f64 > limit_up {
        out.push(f(
            Rule::SimUplinkExcess,
            Threat::Hijacking,
            Severity::High,
            format!(
                "the SIM sent {} bytes in {}s; {} reached the gateway over {} connections (about {} expected with overhead)",
                v.sim_uplink,
                v.secs,
                v.gateway_rx,
                v.connections,
                expect_up.round() as u64
            ),
            evidence(expect_up),
        ));
    }
    let limit_down = expect_down * r.downlink_tolerance + r.downlink_min_excess_bytes as f64;
    if r.check_downlink && v.sim_downlink as f64 > limit_down {
        out.push(f(
            Rule::SimDownlinkUnsolicited,
            Threat::UnauthorizedAccess,
            Severity::Low,
            format!(
                "the SIM received {} bytes in {}s; the gateway sent it {} (about {} expected): traffic from elsewhere reaches the device",
                v.sim_downlink,
                v.secs,
                v.gateway_tx,
                expect_down.round() as u64
            ),
            evidence(expect_down),
        ));
    }
    out
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
    let t = &c.template;
    if let Some(code) = m.rejected {
        match code {
            ErrorCode::MalformedJson | ErrorCode::JsonTooDeep => out.push(f(
                Rule::FormatMalformed,
                Threat::Hijacking,
                Severity::Medium,
                format!("the device sent data that is not valid JSON ({code})"),
                json!({"error": code, "size": m.size}),
            )),
            ErrorCode::OffNetwork => out.push(off_network(c, m.source_ip, "data (refused)")),
            ErrorCode::PayloadTooLarge | ErrorCode::BatchTooLarge => out.push(f(
                Rule::SizeMax,
                Threat::Hijacking,
                Severity::Medium,
                format!(
                    "the device sent {} bytes, over the field's hard limit",
                    m.size
                ),
                json!({"error": code, "size": m.size}),
            )),
            _ => {}
        }
        return out;
    }
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

    if t.size.max_bytes > 0 && m.size > t.size.max_bytes {
        out.push(f(
            Rule::SizeMax,
            Threat::Hijacking,
            Severity::Medium,
            format!("{} bytes; the template allows {}", m.size, t.size.max_bytes),
            json!({"size": m.size, "max_bytes": t.size.max_bytes}),
        ));
    }

    // Timestamps and sequence (V18, takeover signs).
    let ts_rules = &t.timestamps;
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

    // Rates in device time when the timestamp is usable (offline-aware), else in gateway time.
    let (t_now, basis) = match usable_ts {
        Some(ts) => (ts, "device_time"),
        None => (rx, "gateway_time"),
    };
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

    // Traffic volume per window, in gateway time (a backlog still costs what it costs).
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

    // Network (V20, V22).
    if c.off_network(m.source_ip) && t.network.off_network != OffNetwork::Allow {
        out.push(off_network(c, m.source_ip, "data"));
    }
    if let Some(sim_ip) = m
        .sim_ip
        .filter(|ip| t.network.check_sim_ip && *ip != m.source_ip)
    {
        out.push(f(
            Rule::NetworkSimIpMismatch,
            Threat::Spoofing,
            Severity::High,
            format!(
                "data came from {} while the device's SIM has {sim_ip}",
                m.source_ip
            ),
            json!({"source_ip": m.source_ip.to_string(), "sim_ip": sim_ip.to_string()}),
        ));
    }

    // Format (schema, file names).
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

    // The device is here: update what the next message is judged against.
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
    out
}

fn off_network(c: &Compiled, ip: IpAddr, what: &str) -> Finding {
    let mode = c.template.network.off_network;
    let severity = match mode {
        OffNetwork::Notify => Severity::Notice,
        OffNetwork::Block => Severity::High,
        _ => Severity::Medium,
    };
    f(
        Rule::NetworkOffNetwork,
        Threat::Theft,
        severity,
        format!("{what} from {ip}, outside the field's networks"),
        json!({"source_ip": ip.to_string(), "allowed": c.template.network.allowed.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
               "mode": mode}),
    )
}

/// Counts events per key in fixed windows that open at the key's first event (auth bursts per unique
/// ID, distinct devices per source address). Bounded: stale keys are pruned as it grows.
#[derive(Default)]
pub struct Windows {
    map: HashMap<String, (u32, u32)>,
    /// Size at which stale keys are next pruned; grows after each pass so pruning stays amortised O(1).
    prune_at: usize,
}

impl Windows {
    /// Counts one event; returns the count in the key's current window.
    pub fn hit(&mut self, key: &str, now: u32, window: u32) -> u32 {
        if self.map.len() >= self.prune_at.max(100_000) {
            self.map
                .retain(|_, (start, _)| now < start.saturating_add(window));
            self.prune_at = self.map.len().saturating_mul(2);
        }
        let e = self.map.entry(key.to_owned()).or_insert((now, 0));
        if now >= e.0.saturating_add(window) {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1
    }
}

/// What the gateway knows of one token request.
#[derive(Clone, Copy, Debug)]
pub struct AuthFacts<'a> {
    pub at_ms: i64,
    pub success: bool,
    pub unique_id: &'a str,
    pub source_ip: IpAddr,
    /// The request's body was not JSON in UTF-8 (refused `malformed_json`).
    pub malformed: bool,
}

/// Evaluates a token request of a field (the device may be unknown: bursts count per unique ID).
pub fn auth(c: &Compiled, bursts: &mut Windows, a: &AuthFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let t = &c.template;
    if a.malformed {
        out.push(f(
            Rule::FormatMalformed,
            Threat::Hijacking,
            Severity::Medium,
            format!(
                "a token request for '{}' was not JSON in UTF-8 (malformed_json)",
                a.unique_id
            ),
            json!({"error": "malformed_json", "unique_id": a.unique_id, "source_ip": a.source_ip.to_string()}),
        ));
    }
    if t.auth.burst_max > 0 {
        let n = bursts.hit(a.unique_id, state::secs(a.at_ms), t.auth.burst_window.0);
        if n == t.auth.burst_max {
            out.push(f(
                Rule::AuthBurst,
                Threat::UnauthorizedAccess,
                Severity::High,
                format!("{n} token requests for '{}' within {}; the template's limit is {}", a.unique_id, t.auth.burst_window, t.auth.burst_max),
                json!({"unique_id": a.unique_id, "count": n, "window_secs": t.auth.burst_window.0, "burst_max": t.auth.burst_max,
                       "source_ip": a.source_ip.to_string()}),
            ));
        }
    }
    if a.success && c.in_quiet_hours(a.at_ms.div_euclid(1000)) {
        let q = t.auth.quiet_hours.as_ref();
        out.push(f(
            Rule::AuthQuietHours,
            Threat::UnauthorizedAccess,
            Severity::Medium,
            format!(
                "successful authentication at an abnormal hour ({}-{} local, UTC{})",
                q.map_or("", |q| q.start.as_str()),
                q.map_or("", |q| q.end.as_str()),
                t.utc_offset
            ),
            json!({"attempted_at": rfc3339(a.at_ms), "utc_offset": t.utc_offset, "quiet_hours": q}),
        ));
    }
    if a.success && c.off_network(a.source_ip) && t.network.off_network != OffNetwork::Allow {
        out.push(off_network(c, a.source_ip, "authentication"));
    }
    out
}

/// Distinct devices per source address in a window, compactly: the address as a `u32` key, the window
/// start, and the first three distinct devices inline (24 bytes an address). Distinct counts are exact
/// up to four devices, which covers `max_devices_per_ip` up to 3; beyond, repeats of a fourth device may
/// be counted again (the rule then fires early, never late).
#[derive(Default)]
pub struct SharedIps {
    map: HashMap<u32, IpWindow>,
    prune_at: usize,
}

#[derive(Clone, Copy)]
struct IpWindow {
    start: u32,
    devices: [u32; 3],
    distinct: u32,
}

impl SharedIps {
    /// Records `device` from `ip` at `now`; returns the distinct devices seen in the address's window.
    pub fn record(&mut self, ip: IpAddr, device: u32, now: u32, window: u32) -> u32 {
        if self.map.len() >= self.prune_at.max(100_000) {
            self.map.retain(|_, w| now < w.start.saturating_add(window));
            self.prune_at = self.map.len().saturating_mul(2);
        }
        let fresh = IpWindow {
            start: now,
            devices: [device; 3],
            distinct: 1,
        };
        let w = self.map.entry(state::ip_key(ip)).or_insert(fresh);
        if now >= w.start.saturating_add(window) {
            *w = fresh;
        } else if !w.devices.contains(&device) {
            if (w.distinct as usize) < w.devices.len() {
                w.devices[w.distinct as usize] = device;
            }
            w.distinct += 1;
        }
        w.distinct
    }
}

/// One source address carrying several devices (V21), unless it is a declared NAT range.
pub fn shared_ip(
    c: &Compiled,
    ips: &mut SharedIps,
    ip: IpAddr,
    device_key: u32,
    now_ms: i64,
) -> Option<Finding> {
    let n = &c.template.network;
    if n.max_devices_per_ip == 0 || n.nat_ranges.iter().any(|r| r.contains(&ip)) {
        return None;
    }
    let count = ips.record(ip, device_key, state::secs(now_ms), n.shared_ip_window.0);
    (count == n.max_devices_per_ip + 1).then(|| {
        f(
            Rule::NetworkSharedIp,
            Threat::Spoofing,
            Severity::High,
            format!("{count} devices sent from {ip} within {}; the template allows {}", n.shared_ip_window, n.max_devices_per_ip),
            json!({"source_ip": ip.to_string(), "devices": count, "window_secs": n.shared_ip_window.0, "max_devices_per_ip": n.max_devices_per_ip}),
        )
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::RuleId;
    use crate::template::library;

    const T0: i64 = 1_795_611_600_000; // 2026-11-25T13:00:00Z (22:00 in Japan)
    const MIN: i64 = 60_000;

    fn car() -> Compiled {
        library("car-mobility").unwrap().compile().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Facts of an accepted message at `rx` from 10.0.0.1, with nothing else known.
    fn at(rx: i64) -> MessageFacts<'static> {
        MessageFacts {
            rx_ms: rx,
            device_ts_ms: None,
            bad_ts: false,
            seq: None,
            buffered: false,
            size: 0,
            rejected: None,
            source_ip: ip("10.0.0.1"),
            body: None,
            sim_ip: None,
        }
    }

    /// A message from the car: received at `rx`, recorded at `ts`, with `seq` and the engine state.
    fn msg(
        rx: i64,
        ts: i64,
        seq: i64,
        engine: &'static str,
        buffered: bool,
    ) -> (i64, i64, i64, String, bool) {
        (
            rx,
            ts,
            seq,
            format!(r#"{{"engine":"{engine}","seq":{seq},"ts":{ts}}}"#),
            buffered,
        )
    }

    fn run(
        c: &Compiled,
        s: &mut DeviceState,
        seq: &[(i64, i64, i64, String, bool)],
    ) -> Vec<RuleId> {
        let mut rules = Vec::new();
        for (rx, ts, n, body, buffered) in seq {
            let facts = MessageFacts {
                device_ts_ms: Some(*ts),
                seq: Some(*n),
                buffered: *buffered,
                size: body.len() as u32,
                source_ip: ip("10.1.2.3"),
                body: Some(body.as_bytes()),
                ..at(*rx)
            };
            rules.extend(message(c, s, &facts).into_iter().map(|f| f.rule));
        }
        rules
    }

    /// Engine on, one message every 5 minutes for `n` messages from `start`.
    fn cadence(start: i64, first_seq: i64, n: i64) -> Vec<(i64, i64, i64, String, bool)> {
        (0..n)
            .map(|i| {
                msg(
                    start + i * 5 * MIN,
                    start + i * 5 * MIN,
                    first_seq + i,
                    "on",
                    false,
                )
            })
            .collect()
    }

    #[test]
    fn normal_cadence_raises_nothing() {
        let c = car();
        let mut s = DeviceState::default();
        assert_eq!(run(&c, &mut s, &cadence(T0, 1, 30)), Vec::<RuleId>::new());
    }

    #[test]
    fn v12_v13_more_frequent_than_the_regime_allows() {
        let c = car();
        // Engine on: a message every 30 s.
        let mut s = DeviceState::default();
        let fast: Vec<_> = (0..6)
            .map(|i| msg(T0 + i * 30_000, T0 + i * 30_000, i, "on", false))
            .collect();
        assert_eq!(run(&c, &mut s, &fast), vec!["rate.max"]);
        // Engine off (normal: 1 per 6 h): a message every 30 minutes.
        let mut s = DeviceState::default();
        let parked: Vec<_> = (0..4)
            .map(|i| msg(T0 + i * 30 * MIN, T0 + i * 30 * MIN, i, "off", false))
            .collect();
        assert_eq!(run(&c, &mut s, &parked), vec!["rate.max"]);
    }

    #[test]
    fn underground_car_park_is_neither_theft_nor_hijacking() {
        // ※1: 40 minutes without radio, then the stored messages arrive within seconds.
        let c = car();
        let mut s = DeviceState::default();
        let before = cadence(T0, 1, 6); // 13:00 .. 13:25
        assert!(run(&c, &mut s, &before).is_empty());
        let last = T0 + 25 * MIN;
        // Silence: a notice after 15 minutes, nothing worse within 40 minutes.
        let mut steps = Vec::new();
        for m in (26..=65).map(|m| T0 + m * MIN) {
            if let Some(f) = silence(&c, &mut s, m) {
                steps.push(f.rule);
            }
        }
        assert_eq!(steps, vec!["silence.notice"]);
        // Back on the surface at 13:66: the 8 stored messages (13:30 .. 14:05) flush within 2 seconds,
        // then the car carries on at its cadence.
        let back = last + 41 * MIN;
        let flush: Vec<_> = (0..8)
            .map(|i| msg(back + i * 250, last + (i + 1) * 5 * MIN, 7 + i, "on", true))
            .collect();
        assert_eq!(
            run(&c, &mut s, &flush),
            Vec::<RuleId>::new(),
            "a backlog flush is not a takeover"
        );
        let after = cadence(last + 45 * MIN, 15, 6);
        assert_eq!(run(&c, &mut s, &after), Vec::<RuleId>::new());
        assert_eq!(s.silence_level, 0, "the device is back");
    }

    #[test]
    fn a_real_takeover_in_the_same_sequence_is_detected() {
        let c = car();
        let mut s = DeviceState::default();
        assert!(run(&c, &mut s, &cadence(T0, 1, 6)).is_empty());
        let last = T0 + 25 * MIN;
        // A clone replays old sequence numbers with old timestamps, while the real device is silent...
        let replay = vec![msg(last + 10 * MIN, last - 20 * MIN, 2, "on", true)];
        let got = run(&c, &mut s, &replay);
        assert!(
            got.contains(&Rule::SeqReused.into()) && got.contains(&Rule::TsOutOfOrder.into()),
            "{got:?}"
        );
        // ... or sends "buffered" data faster than any car records it, in device time.
        let mut s = DeviceState::default();
        run(&c, &mut s, &cadence(T0, 1, 6));
        let burst: Vec<_> = (0..5)
            .map(|i| {
                msg(
                    last + 40 * MIN + i * 100,
                    last + 5 * MIN + i * 10_000,
                    7 + i,
                    "on",
                    true,
                )
            })
            .collect();
        assert_eq!(run(&c, &mut s, &burst), vec!["rate.max"]);
    }

    #[test]
    fn v14_v15_silence_escalates_and_low_rates_warn() {
        let c = car();
        let mut s = DeviceState::default();
        run(&c, &mut s, &[msg(T0, T0, 1, "off", false)]);
        assert_eq!(next_silence_check(&c, &s), Some(state::secs(T0) + 390 * 60));
        let rules: Vec<RuleId> = [6 * 60, 391, 12 * 60 + 1, 24 * 60 + 1, 48 * 60]
            .iter()
            .filter_map(|m| silence(&c, &mut s, T0 + m * MIN))
            .map(|f| f.rule)
            .collect();
        assert_eq!(
            rules,
            vec!["silence.notice", "silence.warning", "silence.theft"]
        );
        assert_eq!(next_silence_check(&c, &s), None);
        // Engine on: a message every 20 minutes instead of 5 (data falling below the normal rate): each
        // closed 30-minute window holds 2 messages where at least 3 are expected.
        let mut s = DeviceState::default();
        let slow: Vec<_> = (0..6)
            .map(|i| msg(T0 + i * 20 * MIN, T0 + i * 20 * MIN, i, "on", false))
            .collect();
        assert_eq!(run(&c, &mut s, &slow), vec!["rate.min", "rate.min"]);
        // Every 12 minutes still gives 3 per window: not below the template's minimum.
        let mut s = DeviceState::default();
        let ok: Vec<_> = (0..6)
            .map(|i| msg(T0 + i * 12 * MIN, T0 + i * 12 * MIN, i, "on", false))
            .collect();
        assert!(run(&c, &mut s, &ok).is_empty());
    }

    #[test]
    fn v18_v23_v24_timestamps_size_and_format() {
        let c = car();
        let check = |ts: Option<i64>,
                     size: u32,
                     rejected: Option<ErrorCode>,
                     bad_ts: bool,
                     expected: &[&str]| {
            let mut s = DeviceState::default();
            let facts = MessageFacts {
                rx_ms: T0,
                device_ts_ms: ts,
                bad_ts,
                seq: None,
                buffered: false,
                size,
                rejected,
                source_ip: ip("10.0.0.1"),
                body: None,
                sim_ip: None,
            };
            let got: Vec<RuleId> = message(&c, &mut s, &facts)
                .into_iter()
                .map(|f| f.rule)
                .collect();
            assert_eq!(got, expected, "ts={ts:?} size={size} rejected={rejected:?}");
        };
        check(Some(T0), 100, None, false, &[]);
        check(Some(T0 + 10 * MIN), 100, None, false, &["ts.future"]);
        check(
            Some(T0 - 8 * 24 * 60 * MIN),
            100,
            None,
            false,
            &["ts.too_old"],
        );
        check(None, 100, None, true, &["ts.unreadable"]);
        check(Some(T0), 5000, None, false, &["size.max"]);
        check(
            None,
            70_000,
            Some(ErrorCode::PayloadTooLarge),
            false,
            &["size.max"],
        );
        check(
            None,
            12,
            Some(ErrorCode::MalformedJson),
            false,
            &["format.malformed"],
        );
        check(None, 12, Some(ErrorCode::InvalidToken), false, &[]);
    }

    #[test]
    fn v16_v17_v22_authentication() {
        let mut t = library("car-mobility").unwrap();
        t.network.allowed = vec!["10.0.0.0/8".parse().unwrap()];
        let c = t.compile().unwrap();
        let mut w = Windows::default();
        let a = |at, success, src: &str| AuthFacts {
            at_ms: at,
            success,
            unique_id: "IMEI-1",
            source_ip: ip(src),
            malformed: false,
        };
        // 13:00 UTC is 22:00 in Japan: a success is at an abnormal hour.
        assert_eq!(
            auth(&c, &mut w, &a(T0, true, "10.0.0.1"))
                .iter()
                .map(|f| f.rule.to_string())
                .collect::<Vec<_>>(),
            vec!["auth.quiet_hours"]
        );
        let noon = T0 - 10 * 60 * MIN; // 03:00 UTC = 12:00 JST
        let mut w = Windows::default();
        let mut fired = Vec::new();
        for i in 0..12 {
            fired.extend(
                auth(&c, &mut w, &a(noon + i * 1000, false, "10.0.0.1"))
                    .into_iter()
                    .map(|f| f.rule),
            );
        }
        assert_eq!(
            fired,
            vec!["auth.burst"],
            "once per window, at the 10th attempt"
        );
        let got: Vec<RuleId> = auth(&c, &mut w, &a(noon + 5 * MIN, true, "203.0.113.9"))
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(got, vec!["network.off_network"]);
        let broken = AuthFacts {
            malformed: true,
            ..a(noon + 6 * MIN, false, "10.0.0.1")
        };
        let got: Vec<RuleId> = auth(&c, &mut w, &broken)
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(got, vec!["format.malformed"], "a broken token request");
    }

    #[test]
    fn windows_stay_linear_with_many_live_keys() {
        // 300,000 distinct keys inside one window: each call must not rescan the map.
        let mut w = Windows::default();
        for i in 0..300_000u32 {
            assert_eq!(w.hit(&i.to_string(), 100, 600), 1);
        }
        assert!(w.prune_at >= 200_000, "pruning backed off: {}", w.prune_at);
        for i in 0..300_000u32 {
            w.hit(&format!("n{i}"), 10_000, 600);
        }
        assert!(w.map.len() <= 300_001, "stale keys pruned: {}", w.map.len());
        // The same for addresses.
        let mut ips = SharedIps::default();
        for i in 0..300_000u32 {
            assert_eq!(ips.record(IpAddr::from(i.to_be_bytes()), i, 100, 600), 1);
        }
        assert_eq!(ips.record(IpAddr::from(7u32.to_be_bytes()), 1, 101, 600), 2);
        assert_eq!(
            ips.record(IpAddr::from(7u32.to_be_bytes()), 7, 102, 600),
            2,
            "a device already counted"
        );
        assert_eq!(
            ips.record(IpAddr::from(7u32.to_be_bytes()), 1, 800, 600),
            1,
            "a new window"
        );
    }

    #[test]
    fn v20_v21_addresses() {
        let mut t = library("car-mobility").unwrap();
        t.network.nat_ranges = vec!["100.64.0.0/10".parse().unwrap()];
        let c = t.compile().unwrap();
        let mut w = SharedIps::default();
        assert!(shared_ip(&c, &mut w, ip("198.51.100.7"), 1, T0).is_none());
        assert!(
            shared_ip(&c, &mut w, ip("198.51.100.7"), 1, T0 + 1000).is_none(),
            "the same device again"
        );
        assert_eq!(
            shared_ip(&c, &mut w, ip("198.51.100.7"), 2, T0 + 2000)
                .unwrap()
                .rule,
            "network.shared_ip"
        );
        assert!(shared_ip(&c, &mut w, ip("100.64.1.1"), 1, T0).is_none());
        assert!(
            shared_ip(&c, &mut w, ip("100.64.1.1"), 2, T0).is_none(),
            "declared NAT"
        );

        let mut s = DeviceState::default();
        let facts = MessageFacts {
            size: 2,
            source_ip: ip("198.51.100.7"),
            sim_ip: Some(ip("10.20.30.40")),
            ..at(T0)
        };
        let got: Vec<RuleId> = message(&c, &mut s, &facts)
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(got, vec!["network.sim_ip_mismatch"]);
    }

    #[test]
    fn traffic_volume_over_a_window() {
        let mut t = library("smart-home").unwrap();
        let r = t.regimes.get_mut("normal").unwrap();
        r.max_volume_bytes = 1000;
        r.volume_window = crate::template::Span(3600);
        let c = t.compile().unwrap();
        let mut s = DeviceState::default();
        let send = |s: &mut DeviceState, rx: i64, size: u32| {
            let facts = MessageFacts {
                rx_ms: rx,
                device_ts_ms: None,
                bad_ts: false,
                seq: None,
                buffered: false,
                size,
                rejected: None,
                source_ip: ip("10.0.0.1"),
                body: None,
                sim_ip: None,
            };
            message(&c, s, &facts)
                .into_iter()
                .map(|f| f.rule)
                .filter(|r| *r == "volume.max")
                .count()
        };
        assert_eq!(send(&mut s, T0, 600), 0);
        assert_eq!(send(&mut s, T0 + MIN, 600), 1, "1200 bytes in the hour");
        assert_eq!(
            send(&mut s, T0 + 2 * MIN, 600),
            0,
            "reported once per window"
        );
        assert_eq!(send(&mut s, T0 + 61 * MIN, 600), 0, "a new window");
    }

    #[test]
    fn schema_and_file_extensions() {
        let mut t = library("education").unwrap();
        t.format.json_schema = Some(
            serde_json::json!({"type": "object", "required": ["student"], "properties": {"student": {"type": "string"}}}),
        );
        t.format.schema_key = Some("type".into());
        t.format.schemas.insert(
            "thermometer".into(),
            serde_json::json!({"type": "object", "required": ["celsius"], "properties": {"celsius": {"type": "number"}}}),
        );
        let c = t.compile().unwrap();
        let check = |body: &str, expected: &[&str]| {
            let mut s = DeviceState::default();
            let facts = MessageFacts {
                size: body.len() as u32,
                body: Some(body.as_bytes()),
                ..at(T0)
            };
            let got: Vec<RuleId> = message(&c, &mut s, &facts)
                .into_iter()
                .map(|f| f.rule)
                .collect();
            assert_eq!(got, expected, "{body}");
        };
        check(r#"{"student":"s1","file":"essay.PDF"}"#, &[]);
        check(r#"{"student":"s1","type":"camera","frame":"x"}"#, &[]);
        check(
            r#"{"student":"s1","file":"setup.exe"}"#,
            &["format.file_extension"],
        );
        check(r#"{"student":7}"#, &["format.schema"]);
        // A thermometer is checked against its own schema, not the field's.
        check(r#"{"type":"thermometer","celsius":21.5}"#, &[]);
        check(
            r#"{"type":"thermometer","celsius":"warm"}"#,
            &["format.schema"],
        );
        // A type without a schema of its own falls back to the field's.
        check(r#"{"type":"camera","student":"s2"}"#, &[]);
    }

    /// ※2 and ※3: retries and protocol overhead are within the model; an uplink far above what
    /// reached the gateway is hijacking; downlink the gateway never sent is its own, lower signal.
    #[test]
    fn sim_volume_reconciles_retries_and_keeps_uplink_and_downlink_apart() {
        let c = car();
        let rules = |v: SimVolumeFacts| -> Vec<RuleId> {
            sim_volume(&c, &v).into_iter().map(|f| f.rule).collect()
        };
        // 40 connections (most of them failed handshakes the device retried), 60 KB read, 20 KB
        // written; the SIM counted payload plus headers: no detection.
        let retries = SimVolumeFacts {
            secs: 900,
            sim_uplink: 60_000 + 40 * 900 + 9_000,
            sim_downlink: 20_000 + 40 * 600,
            gateway_rx: 60_000,
            gateway_tx: 20_000,
            connections: 40,
        };
        assert!(rules(retries).is_empty(), "{:?}", rules(retries));
        // The same window with 5 MB more uplink than reached the gateway.
        let hijack = SimVolumeFacts {
            sim_uplink: retries.sim_uplink + 5_000_000,
            ..retries
        };
        assert_eq!(rules(hijack), vec!["sim.uplink_excess"]);
        // 5 MB of downlink the gateway never sent: not "the device sends too much".
        let scanned = SimVolumeFacts {
            sim_downlink: retries.sim_downlink + 5_000_000,
            ..retries
        };
        assert_eq!(rules(scanned), vec!["sim.downlink_unsolicited"]);
        let f = sim_volume(&c, &hijack).remove(0);
        assert_eq!((f.threat, f.severity), (Threat::Hijacking, Severity::High));
        assert_eq!(f.evidence["connections"], 40);
        // A quiet device: small absolute differences stay below the minimum excess.
        let quiet = SimVolumeFacts {
            secs: 900,
            sim_uplink: 30_000,
            sim_downlink: 30_000,
            ..SimVolumeFacts::default()
        };
        assert!(rules(quiet).is_empty());
        let mut t = library("car-mobility").unwrap();
        t.sim.check_uplink = false;
        assert!(sim_volume(&t.compile().unwrap(), &hijack).is_empty());
    }

    #[test]
    fn the_playbook_takes_the_first_matching_rule_then_the_threat() {
        let t = library("car-mobility").unwrap();
        let c = t.clone().compile().unwrap();
        let by =
            |threat, rule: Rule, sev| c.playbook.actions_for(threat, &rule.into(), sev, false).0;
        assert_eq!(
            by(Threat::Hijacking, Rule::SimUplinkExcess, Severity::High),
            "playbook.sim-hijack"
        );
        assert_eq!(
            by(Threat::Hijacking, Rule::RateMax, Severity::High),
            "playbook.taken-over"
        );
        assert_eq!(
            by(Threat::Hijacking, Rule::RateMax, Severity::Medium),
            "actions.hijacking"
        );
        assert_eq!(
            by(Threat::Eavesdropping, Rule::SizeMax, Severity::High),
            "none"
        );
        let mut only_critical = t.clone();
        only_critical.playbook[0].critical = Some(true);
        assert_eq!(
            only_critical
                .compile()
                .unwrap()
                .playbook
                .actions_for(
                    Threat::Hijacking,
                    &Rule::SimUplinkExcess.into(),
                    Severity::High,
                    false
                )
                .0,
            "playbook.taken-over"
        );
        let mut bad = t.clone();
        bad.playbook.push(crate::template::PlaybookRule {
            name: "Bad Name".into(),
            threats: vec!["nope".into()],
            rules: vec!["nope".into(), "sim.*".into(), "script.mine".into()],
            min_severity: None,
            critical: None,
            actions: vec!["enable_auth".into(), "explode".into()],
        });
        let p = bad.compile().unwrap_err();
        for needle in [
            "playbook[4].name",
            "playbook[4].threats: 'nope'",
            "playbook[4].rules: 'nope'",
            "playbook[4].actions: 'enable_auth'",
            "playbook[4].actions: 'explode'",
        ] {
            assert!(p.iter().any(|x| x.contains(needle)), "{needle}: {p:?}");
        }
        assert_eq!(p.len(), 5, "sim.* and script.mine are fine: {p:?}");
    }
}
