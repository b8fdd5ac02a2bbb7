//! The vocabulary of detection: the trial's threat categories, severities, and the id of every rule that
//! can fire. They travel typed through the gateway; the store and the APIs spell them as their
//! snake_case / dotted names (serde), and [`std::str::FromStr`] reads those names back — an unknown name
//! is an error, never a silent default.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// A name that is not one of an enum's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{name}' is not a {what}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownName;

            fn try_from(s: String) -> Result<Self, UnknownName> {
                s.parse()
            }
        }
    };
}
pub(crate) use named_enum;

named_enum! {
    /// The trial's threat categories (想定リスク, MIC report p.3).
    Threat, "threat" {
        /// 不正アクセス
        UnauthorizedAccess = "unauthorized_access",
        /// なりすまし
        Spoofing = "spoofing",
        /// 乗っ取り
        Hijacking = "hijacking",
        /// 盗聴
        Eavesdropping = "eavesdropping",
        /// 盗難
        Theft = "theft",
    }
}

named_enum! {
    /// Severity, in increasing order.
    Severity, "severity" {
        /// Worth knowing (a first silence step).
        Notice = "notice",
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

/// The rule that fired: one of the built-in rules, or a field script (`script.<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    Builtin(Rule),
    /// `script.<name>`: a field's Luau script emitted it.
    Script(String),
}

named_enum! {
    /// The built-in rules, by their stable dotted names.
    Rule, "rule" {
        RateMax = "rate.max",
        RateMin = "rate.min",
        VolumeMax = "volume.max",
        SilenceNotice = "silence.notice",
        SilenceWarning = "silence.warning",
        SilenceTheft = "silence.theft",
        TsFuture = "ts.future",
        TsTooOld = "ts.too_old",
        TsOutOfOrder = "ts.out_of_order",
        TsUnreadable = "ts.unreadable",
        SeqReused = "seq.reused",
        SizeMax = "size.max",
        FormatMalformed = "format.malformed",
        FormatSchema = "format.schema",
        FormatFileExtension = "format.file_extension",
        NetworkOffNetwork = "network.off_network",
        NetworkSharedIp = "network.shared_ip",
        NetworkSimIpMismatch = "network.sim_ip_mismatch",
        AuthBurst = "auth.burst",
        AuthQuietHours = "auth.quiet_hours",
        SimUplinkExcess = "sim.uplink_excess",
        SimDownlinkUnsolicited = "sim.downlink_unsolicited",
        AuditConfigMismatch = "audit.config_mismatch",
        AuditUnknownProcess = "audit.unknown_process",
        AuditUnlistedSignedProcess = "audit.unlisted_signed_process",
        AuditFirmwareDowngrade = "audit.firmware_downgrade",
        AuditFirmwareMismatch = "audit.firmware_mismatch",
        AuditUnknownSoftware = "audit.unknown_software",
        AuditSilent = "audit.silent",
        UpdateRejected = "update.rejected",
    }
}

impl RuleId {
    /// `script.<name>`.
    pub fn script(name: &str) -> Self {
        Self::Script(name.to_owned())
    }

    /// The family before the first dot (`rate`, `script`, `audit`…), for `family.*` patterns.
    pub fn family(&self) -> &str {
        match self {
            Self::Builtin(r) => r.as_str().split('.').next().unwrap_or(""),
            Self::Script(_) => "script",
        }
    }

    /// `true` for an exact id or a `family.*` pattern that covers this rule.
    pub fn matches(&self, pattern: &str) -> bool {
        match pattern.strip_suffix(".*") {
            Some(family) => self.family() == family,
            None => *self == pattern,
        }
    }
}

impl From<Rule> for RuleId {
    fn from(r: Rule) -> Self {
        Self::Builtin(r)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(r) => f.write_str(r.as_str()),
            Self::Script(name) => write!(f, "script.{name}"),
        }
    }
}

impl FromStr for RuleId {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        if let Some(name) = s.strip_prefix("script.").filter(|n| !n.is_empty()) {
            return Ok(Self::Script(name.to_owned()));
        }
        s.parse::<Rule>()
            .map(Self::Builtin)
            .map_err(|_| UnknownName {
                what: "rule",
                name: s.to_owned(),
            })
    }
}

/// Compares with a rule's name (`rate.max`, `script.x`), as tests and patterns spell it.
impl PartialEq<&str> for RuleId {
    fn eq(&self, other: &&str) -> bool {
        match self {
            Self::Builtin(r) => r.as_str() == *other,
            Self::Script(name) => other.strip_prefix("script.") == Some(name.as_str()),
        }
    }
}

impl TryFrom<String> for RuleId {
    type Error = UnknownName;

    fn try_from(s: String) -> Result<Self, UnknownName> {
        s.parse()
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for RuleId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "a built-in rule (`rate.max`, `silence.theft`, `audit.unknown_process`, …) or `script.<name>`",
            ))
            .examples(["rate.max"])
            .into()
    }
}

impl ToSchema for RuleId {}

/// One window of a SIM session: what the carrier counted for the SIM and what the gateway exchanged
/// with the SIM's address in the same time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimVolumeFacts {
    /// Length of the window (seconds of session time).
    pub secs: u32,
    /// Bytes the SIM sent (accounting input octets).
    pub sim_uplink: u64,
    /// Bytes the SIM received (accounting output octets).
    pub sim_downlink: u64,
    /// Bytes the gateway read from the SIM's address (every connection, failed ones included).
    pub gateway_rx: u64,
    /// Bytes the gateway wrote to it.
    pub gateway_tx: u64,
    /// TCP connections from the SIM's address the gateway accepted (or refused at its cap).
    pub connections: u64,
}

/// The SIM's current address according to the carrier (V20), from RADIUS accounting (the carrier's
/// live SIM table). A SIM without a live session has none, and the rule stays silent.
pub trait SimIps: Send + Sync {
    fn current_ip(&self, imsi: &str) -> Option<std::net::IpAddr>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for t in Threat::ALL {
            assert_eq!(t.as_str().parse::<Threat>(), Ok(*t));
            assert_eq!(serde_json::to_string(t).unwrap(), format!("\"{t}\""));
        }
        for r in Rule::ALL {
            let id = RuleId::from(*r);
            assert_eq!(id.to_string().parse::<RuleId>(), Ok(id.clone()));
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        }
        assert!("hijack".parse::<Threat>().is_err());
        assert!("mediumish".parse::<Severity>().is_err());
        assert!("rate.maxx".parse::<RuleId>().is_err());
        assert!("script.".parse::<RuleId>().is_err());
        assert!(Severity::High > Severity::Medium && Severity::Notice < Severity::Low);
        let s = RuleId::script("night_moves");
        assert_eq!(s.to_string(), "script.night_moves");
        assert!(s.matches("script.*") && s.matches("script.night_moves") && !s.matches("sim.*"));
        assert!(RuleId::from(Rule::SimUplinkExcess).matches("sim.*"));
        assert_eq!(
            serde_json::from_str::<RuleId>("\"ts.future\"").unwrap(),
            RuleId::from(Rule::TsFuture)
        );
    }
}
