//! A field's template (条件設定): its devices' normal behaviour per regime, the conditions that make a
//! detection, and the response playbook (threat → actions). Written as TOML (the shipped library) or
//! JSON (the admin API); both are this one type. [`Template::compile`] checks everything and lists every
//! problem; a field only ever runs a compiled template.

pub use crate::playbook::{Playbook, PlaybookRule};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use utoipa::ToSchema;

pub use sekisho_core::span::Span;

/// Normal behaviour in one regime (a car with its engine on, or off).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Regime {
    /// At most this many messages per `window`, counted in device time (V12, V13). 0 = no limit.
    pub max_messages: u32,
    pub window: Span,
    /// At least this many messages per `min_window` of device time, else a theft warning (V15). 0 = off.
    pub min_messages: u32,
    pub min_window: Span,
    /// Silence escalation since the last message: notice → warning → theft (V14, ※1). 0 = step off.
    pub silence_notice: Span,
    pub silence_warning: Span,
    pub silence_theft: Span,
    /// More than this many bytes of data per `volume_window` (gateway time) is a detection (通信量). 0 = off.
    pub max_volume_bytes: u32,
    pub volume_window: Span,
}

/// How the current regime is read from the device's data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RegimeKey {
    /// A top-level key of the telemetry object whose string value names the regime (e.g. `engine`).
    /// Absent: the device stays in its last regime (at first, `default`).
    pub key: Option<String>,
    pub default: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthRules {
    /// This many token requests for one unique ID within `burst_window` is a detection (V16). 0 = off.
    pub burst_max: u32,
    pub burst_window: Span,
    /// A successful authentication in these local hours (`"22:00"` to `"06:00"`, wrapping) is a detection (V17).
    pub quiet_hours: Option<QuietHours>,
}

impl Default for AuthRules {
    fn default() -> Self {
        Self {
            burst_max: 10,
            burst_window: Span(60),
            quiet_hours: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TimestampRules {
    /// A device timestamp further ahead of the gateway's clock than this is a detection (V18).
    pub max_future: Span,
    /// A device timestamp older than this is a detection, buffered or not (V18).
    pub max_age: Span,
    /// A timestamp older than the device's latest by more than this is out of order (takeover, clone).
    pub out_of_order_tolerance: Span,
    /// A `seq` not above the device's latest is a reuse (replay or clone).
    pub check_seq: bool,
}

impl Default for TimestampRules {
    fn default() -> Self {
        Self {
            max_future: Span(300),
            max_age: Span(7 * 86_400),
            out_of_order_tolerance: Span(0),
            check_seq: true,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SizeRules {
    /// A message larger than this is a detection (V23), even when the field's hard limit accepts it. 0 = off.
    pub max_bytes: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FormatRules {
    /// A JSON Schema every telemetry object must satisfy; violations are detections (malformed JSON
    /// always is, V24).
    #[schema(value_type = Object)]
    pub json_schema: Option<serde_json::Value>,
    /// A top-level key naming the device type in the data (e.g. `type`); a message whose type has an
    /// entry in `schemas` is checked against that schema instead of `json_schema`.
    pub schema_key: Option<String>,
    /// JSON Schemas per device type (the value of `schema_key`).
    #[schema(value_type = Object)]
    pub schemas: BTreeMap<String, serde_json::Value>,
    /// Top-level keys holding file names (e.g. `file`, `attachment`)…
    pub file_keys: Vec<String>,
    /// …whose extension must be one of these (lower case, without the dot).
    pub allowed_extensions: Vec<String>,
}

/// What off-network use means for a field (※4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffNetwork {
    /// Allowed: no detection.
    Allow,
    /// A notice-level detection only.
    Notify,
    /// A detection (V22).
    #[default]
    Detect,
    /// Refused (`403 off_network`), and a detection.
    Block,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkRules {
    /// The field's networks (CIDRs). Empty: any source is on-network.
    #[schema(value_type = Vec<String>)]
    pub allowed: Vec<IpNet>,
    pub off_network: OffNetwork,
    /// More distinct devices than this from one source address within `shared_ip_window` is a detection
    /// (V21). 0 = off.
    pub max_devices_per_ip: u32,
    pub shared_ip_window: Span,
    /// Declared NAT ranges, exempt from the shared-address rule.
    #[schema(value_type = Vec<String>)]
    pub nat_ranges: Vec<IpNet>,
    /// Compare the source address with the SIM's current address from the carrier (V20).
    pub check_sim_ip: bool,
}

impl Default for NetworkRules {
    fn default() -> Self {
        Self {
            allowed: Vec::new(),
            off_network: OffNetwork::Detect,
            max_devices_per_ip: 0,
            shared_ip_window: Span(600),
            nat_ranges: Vec::new(),
            check_sim_ip: true,
        }
    }
}

/// The carrier's view of each SIM against what reached the gateway (V19, ※2, ※3). Needs RADIUS
/// accounting from the packet gateway and the gateway placed where it sees the SIMs' own addresses.
///
/// Over each `window` of a SIM session the gateway compares the SIM's uplink (bytes the SIM sent, from
/// accounting) with what reached the gateway from the SIM's address: every byte read on every
/// connection, failed TLS handshakes and cut-off requests included (the retries of ※2), plus modelled
/// protocol overhead. Uplink is compared with uplink only; downlink the gateway never sent is its own
/// signal (※3: someone on the Internet reaching the device), not "the device sends too much".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimRules {
    /// SIM uplink well above what reached the gateway: hijacking (V19).
    pub check_uplink: bool,
    /// Downlink well above what the gateway sent: unsolicited traffic to the device (※3).
    pub check_downlink: bool,
    /// Compare once per window of session time (at the accounting update that closes it, and at Stop).
    pub window: Span,
    /// TCP/IP headers and retransmissions, as a share of the bytes the gateway read or wrote.
    pub overhead_ratio: f64,
    /// Bytes per TCP connection besides its payload (handshake, close, acknowledgements), both ways.
    pub connection_overhead_bytes: u32,
    /// Other traffic a healthy device makes (DNS, NTP), bytes per hour each way.
    pub allowance_bytes_per_hour: u32,
    /// The SIM's uplink may exceed the expectation by this factor ...
    pub uplink_tolerance: f64,
    /// ... and by at least this many bytes before it is a detection.
    pub uplink_min_excess_bytes: u32,
    pub downlink_tolerance: f64,
    pub downlink_min_excess_bytes: u32,
}

impl Default for SimRules {
    fn default() -> Self {
        Self {
            check_uplink: true,
            check_downlink: true,
            window: Span(900),
            overhead_ratio: 0.25,
            connection_overhead_bytes: 1500,
            allowance_bytes_per_hour: 16 * 1024,
            uplink_tolerance: 1.5,
            uplink_min_excess_bytes: 64 * 1024,
            downlink_tolerance: 2.0,
            downlink_min_excess_bytes: 256 * 1024,
        }
    }
}

/// When a field script runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScriptTrigger {
    /// For every received message (accepted or refused), after it is stored.
    Message,
    /// Every `every`, with the field's device states.
    Periodic,
    /// For every detection the response worker decides on: `on_detection(detection, device, field)`
    /// may add actions with `act("name")`.
    Response,
    /// For every audit of a device's self-report: `on_report(report, device, baseline)` may `emit`
    /// findings (the field's own audit logic).
    Audit,
}

/// A field's own detection logic in Luau (the trial's detection logic files).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptDef {
    /// `[a-z0-9_]+`; detections from it are named `script.<name>`.
    pub name: String,
    pub on: ScriptTrigger,
    /// For periodic scripts.
    #[serde(default)]
    pub every: Option<Span>,
    pub source: String,
}

impl ScriptDef {
    /// This script as the script host runs it.
    pub fn host_source(&self) -> sekisho_script::host::Source {
        use sekisho_script::host::Role;
        let role = match self.on {
            ScriptTrigger::Message => Role::Message,
            ScriptTrigger::Periodic => Role::Periodic(std::time::Duration::from_secs(
                self.every.map_or(60, |e| e.secs().max(1)) as u64,
            )),
            ScriptTrigger::Response => Role::OnCall("on_detection"),
            ScriptTrigger::Audit => Role::OnCall("on_report"),
        };
        sekisho_script::host::Source {
            name: self.name.clone(),
            source: self.source.clone(),
            role,
        }
    }
}

impl Template {
    /// The template's scripts as the host runs them: all of them, or those of one trigger.
    pub fn script_sources(&self, on: Option<ScriptTrigger>) -> Vec<sekisho_script::host::Source> {
        self.scripts
            .iter()
            .filter(|s| on.is_none_or(|on| s.on == on))
            .map(ScriptDef::host_source)
            .collect()
    }
}

/// How the response worker treats this field's detections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseRules {
    /// Another detection of the same threat on the same device within this window takes no new
    /// actions (one incident, one set of actions); a higher severity still does.
    pub suppress: Span,
}

impl Default for ResponseRules {
    fn default() -> Self {
        Self {
            suppress: Span(3600),
        }
    }
}

/// A field's template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The field's UTC offset for hour-of-day conditions, e.g. `+09:00`.
    #[serde(default = "default_offset")]
    pub utc_offset: String,
    #[serde(default)]
    pub regime: RegimeKey,
    /// Regimes by name; `regime.default` must be one of them.
    pub regimes: BTreeMap<String, Regime>,
    #[serde(default)]
    pub auth: AuthRules,
    #[serde(default)]
    pub timestamps: TimestampRules,
    #[serde(default)]
    pub size: SizeRules,
    #[serde(default)]
    pub format: FormatRules,
    #[serde(default)]
    pub network: NetworkRules,
    #[serde(default)]
    pub sim: SimRules,
    #[serde(default)]
    pub scripts: Vec<ScriptDef>,
    /// The response playbook's simple form: threat (`hijacking`, `theft`, …) → actions, in order.
    #[serde(default)]
    pub actions: BTreeMap<String, Vec<String>>,
    /// The response playbook's rules, tried in order before `actions`.
    #[serde(default)]
    pub playbook: Vec<PlaybookRule>,
    #[serde(default)]
    pub response: ResponseRules,
}

fn default_offset() -> String {
    "+00:00".into()
}

/// A template ready to run: everything parsed once.
pub struct Compiled {
    pub template: Template,
    /// The response playbook, typed.
    pub playbook: Playbook,
    pub utc_offset_secs: i32,
    /// Quiet hours as minutes of the local day, `[start, end)`, wrapping past midnight.
    pub quiet: Option<(u16, u16)>,
    /// Regimes in a fixed order; a device's state stores the index.
    pub regimes: Vec<(String, Regime)>,
    pub default_regime: u8,
    pub schema: Option<jsonschema::Validator>,
    /// Schemas per device type.
    pub type_schemas: BTreeMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.template.name)
            .finish_non_exhaustive()
    }
}

fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 3600 + m * 60))
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

impl Template {
    /// Parses the TOML form.
    pub fn from_toml(text: &str) -> Result<Self, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string().trim().replace('\n', " ")])
    }

    /// Checks everything and prepares the template to run; lists every problem.
    pub fn compile(self) -> Result<Compiled, Vec<String>> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 64 {
            p.push("name must be 1 to 64 characters".to_owned());
        }
        let offset = parse_offset(&self.utc_offset);
        if offset.is_none() {
            p.push(format!(
                "utc_offset: '{}' is not like +09:00",
                self.utc_offset
            ));
        }
        if self.regimes.is_empty() {
            p.push("regimes: at least one regime is needed".to_owned());
        } else if self.regimes.len() > 16 {
            p.push("regimes: at most 16".to_owned());
        }
        if !self.regimes.contains_key(&self.regime.default) {
            p.push(format!(
                "regime.default: '{}' is not one of the regimes",
                self.regime.default
            ));
        }
        for (name, r) in &self.regimes {
            if r.max_messages > 0 && r.window.0 == 0 {
                p.push(format!(
                    "regimes.{name}.window must be set when max_messages is"
                ));
            }
            if r.max_volume_bytes > 0 && r.volume_window.0 == 0 {
                p.push(format!(
                    "regimes.{name}.volume_window must be set when max_volume_bytes is"
                ));
            }
            if r.min_messages > 0 && r.min_window.0 == 0 {
                p.push(format!(
                    "regimes.{name}.min_window must be set when min_messages is"
                ));
            }
            let steps = [r.silence_notice.0, r.silence_warning.0, r.silence_theft.0];
            let set: Vec<u32> = steps.iter().copied().filter(|s| *s > 0).collect();
            if set.windows(2).any(|w| w[0] >= w[1]) {
                p.push(format!(
                    "regimes.{name}: silence steps must grow: notice < warning < theft"
                ));
            }
        }
        if self.auth.burst_max > 0 && self.auth.burst_window.0 == 0 {
            p.push("auth.burst_window must be set when burst_max is".to_owned());
        }
        let quiet = match &self.auth.quiet_hours {
            None => None,
            Some(q) => match (parse_hhmm(&q.start), parse_hhmm(&q.end)) {
                (Some(a), Some(b)) if a != b => Some((a, b)),
                _ => {
                    p.push(format!(
                        "auth.quiet_hours: '{}'-'{}' are not two different HH:MM times",
                        q.start, q.end
                    ));
                    None
                }
            },
        };
        if self.format.file_keys.is_empty() != self.format.allowed_extensions.is_empty() {
            p.push("format.file_keys and format.allowed_extensions go together".to_owned());
        }
        let schema = match &self.format.json_schema {
            None => None,
            Some(s) => match jsonschema::validator_for(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    p.push(format!("format.json_schema: {e}"));
                    None
                }
            },
        };
        let mut type_schemas = BTreeMap::new();
        for (ty, s) in &self.format.schemas {
            match jsonschema::validator_for(s) {
                Ok(v) => {
                    type_schemas.insert(ty.clone(), v);
                }
                Err(e) => p.push(format!("format.schemas.{ty}: {e}")),
            }
        }
        if !self.format.schemas.is_empty() && self.format.schema_key.is_none() {
            p.push(
                "format.schemas needs format.schema_key (the key naming the device type)"
                    .to_owned(),
            );
        }
        if self.network.max_devices_per_ip > 0 && self.network.shared_ip_window.0 == 0 {
            p.push("network.shared_ip_window must be set when max_devices_per_ip is".to_owned());
        }
        let sim = &self.sim;
        if sim.window.0 < 60 {
            p.push("sim.window must be at least 1m".to_owned());
        }
        if !(0.0..=10.0).contains(&sim.overhead_ratio) {
            p.push("sim.overhead_ratio must be between 0 and 10".to_owned());
        }
        for (name, v) in [
            ("uplink_tolerance", sim.uplink_tolerance),
            ("downlink_tolerance", sim.downlink_tolerance),
        ] {
            if !(1.0..=1000.0).contains(&v) {
                p.push(format!("sim.{name} must be between 1 and 1000"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.scripts {
            if s.name.is_empty()
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                p.push(format!("scripts: name '{}' must be [a-z0-9_]+", s.name));
            }
            if !names.insert(s.name.as_str()) {
                p.push(format!("scripts: '{}' appears twice", s.name));
            }
            if s.on == ScriptTrigger::Periodic && s.every.is_none_or(|e| e.0 == 0) {
                p.push(format!(
                    "scripts.{}: a periodic script needs `every`",
                    s.name
                ));
            }
            if s.source.len() > 64 * 1024 {
                p.push(format!("scripts.{}: source larger than 64 KiB", s.name));
            }
        }
        let playbook = Playbook::compile(&self.actions, &self.playbook, &mut p);
        if !p.is_empty() {
            return Err(p);
        }
        let regimes: Vec<(String, Regime)> = self
            .regimes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let default_regime = regimes
            .iter()
            .position(|(k, _)| *k == self.regime.default)
            .unwrap_or(0) as u8;
        Ok(Compiled {
            playbook,
            utc_offset_secs: offset.unwrap_or(0),
            quiet,
            regimes,
            default_regime,
            schema,
            type_schemas,
            template: self,
        })
    }
}

impl Compiled {
    /// The regime index named by a payload value; unknown names keep `current`.
    pub fn regime_index(&self, name: &str, current: u8) -> u8 {
        self.regimes
            .iter()
            .position(|(k, _)| k == name)
            .map_or(current, |i| i as u8)
    }

    pub fn regime(&self, idx: u8) -> &(String, Regime) {
        self.regimes
            .get(idx as usize)
            .unwrap_or(&self.regimes[self.default_regime as usize])
    }

    /// `true` when `ip` is outside the field's networks (never when no networks are set).
    pub fn off_network(&self, ip: IpAddr) -> bool {
        let n = &self.template.network;
        !n.allowed.is_empty() && !n.allowed.iter().any(|net| net.contains(&ip))
    }

    /// `true` when the field refuses requests from `ip`.
    pub fn blocks(&self, ip: IpAddr) -> bool {
        self.template.network.off_network == OffNetwork::Block && self.off_network(ip)
    }

    /// `true` when `unix_secs` falls in the field's quiet hours (local time).
    pub fn in_quiet_hours(&self, unix_secs: i64) -> bool {
        let Some((start, end)) = self.quiet else {
            return false;
        };
        let local_min = ((unix_secs + self.utc_offset_secs as i64).rem_euclid(86_400) / 60) as u16;
        if start < end {
            (start..end).contains(&local_min)
        } else {
            local_min >= start || local_min < end
        }
    }
}

/// The shipped template library: name → TOML text.
pub const LIBRARY: &[(&str, &str)] = &[
    ("car-mobility", include_str!("library/car-mobility.toml")),
    ("smart-home", include_str!("library/smart-home.toml")),
    ("education", include_str!("library/education.toml")),
    ("generic", include_str!("library/generic.toml")),
];

/// A template of the library by name.
pub fn library(name: &str) -> Option<Template> {
    LIBRARY
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, t)| Template::from_toml(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_compiles() {
        for (name, text) in LIBRARY {
            let t = Template::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(&t.name, name);
            t.compile().unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }

    #[test]
    fn every_problem_is_listed() {
        let mut t = library("car-mobility").unwrap();
        t.utc_offset = "JST".into();
        t.regime.default = "flying".into();
        t.auth.quiet_hours = Some(QuietHours {
            start: "25:00".into(),
            end: "06:00".into(),
        });
        t.actions
            .insert("hijacking".into(), vec!["cancel_update".into()]);
        t.format.json_schema = Some(serde_json::json!({"type": 12}));
        t.regimes.get_mut("on").unwrap().silence_warning = Span(1);
        let p = t.compile().unwrap_err();
        for needle in [
            "utc_offset",
            "regime.default",
            "quiet_hours",
            "actions.hijacking: 'cancel_update'",
            "json_schema",
            "silence steps",
        ] {
            assert!(
                p.iter().any(|x| x.contains(needle)),
                "{needle} missing: {p:#?}"
            );
        }
    }

    #[test]
    fn quiet_hours_wrap_midnight_in_local_time() {
        let c = library("car-mobility").unwrap().compile().unwrap();
        // 2026-11-25 13:30 UTC is 22:30 in Japan (+09:00): quiet. 21:00 UTC is 06:00 JST: not quiet.
        assert!(c.in_quiet_hours(1_795_613_400));
        assert!(!c.in_quiet_hours(1_795_640_400));
        assert!(c.in_quiet_hours(1_795_640_400 - 60));
    }
}
