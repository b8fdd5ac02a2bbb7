//! Device audit (subsystem ⑤): what a device says it runs (its self-report) against what is approved
//! for it (the baseline): configuration altered (V27), a process not used in normal operation (V28),
//! firmware older than the approved version (V30), software outside the allow-list. Also the
//! learning of a baseline from healthy devices (※5): the processes, software, firmware and
//! configuration they report, proposed to the administrator.
//!
//! Pure: no I/O and no clock.

use crate::finding::{Finding, Rule, Severity, Threat};
use crate::template::Span;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// A process the device runs: a name, or details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Process {
    Name(String),
    Detail {
        name: String,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        sha256: Option<String>,
        /// Who signed the binary, when the device knows.
        #[serde(default)]
        publisher: Option<String>,
    },
}

impl Process {
    pub fn name(&self) -> &str {
        match self {
            Self::Name(n) | Self::Detail { name: n, .. } => n,
        }
    }

    fn path(&self) -> Option<&str> {
        match self {
            Self::Detail { path, .. } => path.as_deref(),
            Self::Name(_) => None,
        }
    }

    fn publisher(&self) -> Option<&str> {
        match self {
            Self::Detail { publisher, .. } => publisher.as_deref(),
            Self::Name(_) => None,
        }
    }
}

/// A software package the device has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Software {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub publisher: Option<String>,
}

/// A device's self-report (`POST /v1/device/state`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfReport {
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// SHA-256 of the firmware image the device runs, when it can measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_sha256: Option<String>,
    /// e.g. `sha256:…`.
    #[serde(default)]
    pub config_hash: Option<String>,
    #[serde(default)]
    pub processes: Vec<Process>,
    #[serde(default)]
    pub software: Vec<Software>,
    /// Anything else the device wants on record.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub facts: serde_json::Value,
}

/// What is approved for a field's devices (or one device, whose entries override the field's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Baseline {
    /// The approved firmware: a lower version is a detection (V30).
    pub firmware_version: Option<String>,
    /// The approved firmware image's SHA-256: a device measuring another image is a detection.
    pub firmware_sha256: Option<String>,
    /// The approved configuration: another hash is a detection (V27).
    pub config_hash: Option<String>,
    /// Processes normal operation uses, by name or path (V28). Empty: processes are not checked.
    pub processes: Vec<String>,
    /// Publishers whose signed binaries are trusted: an unknown process of theirs is a lower-severity
    /// finding than an unknown binary (※5).
    pub publishers: Vec<String>,
    /// Software allowed, by name. Empty: software is not checked.
    pub software: Vec<String>,
    /// A device that has not reported for this long is a finding.
    pub report_every: Option<Span>,
}

impl Baseline {
    /// This baseline with `device`'s entries where it sets them.
    pub fn with(&self, device: &Baseline) -> Baseline {
        Baseline {
            firmware_version: device
                .firmware_version
                .clone()
                .or_else(|| self.firmware_version.clone()),
            firmware_sha256: device
                .firmware_sha256
                .clone()
                .or_else(|| self.firmware_sha256.clone()),
            config_hash: device
                .config_hash
                .clone()
                .or_else(|| self.config_hash.clone()),
            processes: if device.processes.is_empty() {
                self.processes.clone()
            } else {
                device.processes.clone()
            },
            publishers: if device.publishers.is_empty() {
                self.publishers.clone()
            } else {
                device.publishers.clone()
            },
            software: if device.software.is_empty() {
                self.software.clone()
            } else {
                device.software.clone()
            },
            report_every: device.report_every.or(self.report_every),
        }
    }
}

/// Compares dotted versions numerically where both parts are numbers (`1.10.0 > 1.9.3`), textually
/// otherwise; a missing part counts as 0.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<String> {
        v.trim_start_matches(['v', 'V'])
            .split(['.', '-', '+'])
            .map(str::to_owned)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map_or("0", String::as_str);
        let y = pb.get(i).map_or("0", String::as_str);
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn finding(
    rule: Rule,
    severity: Severity,
    summary: String,
    evidence: serde_json::Value,
) -> Finding {
    Finding::new(rule.into(), Threat::Hijacking, severity, summary, evidence)
}

/// Judges one self-report against the device's baseline.
pub fn audit(b: &Baseline, r: &SelfReport) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(approved), Some(hash)) = (&b.config_hash, &r.config_hash)
        && approved != hash
    {
        out.push(finding(
            Rule::AuditConfigMismatch,
            Severity::High,
            format!("the device's configuration is {hash}; the approved one is {approved}"),
            json!({"config_hash": hash, "approved": approved}),
        ));
    }
    if let (Some(approved), Some(v)) = (&b.firmware_version, &r.firmware_version)
        && compare_versions(v, approved) == Ordering::Less
    {
        out.push(finding(
            Rule::AuditFirmwareDowngrade,
            Severity::High,
            format!("the device runs firmware {v}, older than the approved {approved}"),
            json!({"firmware_version": v, "approved": approved}),
        ));
    }
    if let (Some(approved), Some(hash)) = (&b.firmware_sha256, &r.firmware_sha256)
        && !approved.eq_ignore_ascii_case(hash)
    {
        out.push(finding(
            Rule::AuditFirmwareMismatch,
            Severity::High,
            format!("the device runs a firmware image {hash}; the approved one is {approved}"),
            json!({"firmware_sha256": hash, "approved": approved}),
        ));
    }
    if !b.processes.is_empty() {
        let allowed = |p: &Process| {
            b.processes
                .iter()
                .any(|a| a == p.name() || Some(a.as_str()) == p.path())
        };
        let mut by_publisher = Vec::new();
        let mut unknown = Vec::new();
        for p in r.processes.iter().filter(|p| !allowed(p)) {
            match p.publisher() {
                Some(pubr) if b.publishers.iter().any(|x| x == pubr) => by_publisher.push(p),
                _ => unknown.push(p),
            }
        }
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|p| p.name()).collect();
            out.push(finding(
                Rule::AuditUnknownProcess,
                Severity::High,
                format!(
                    "processes not used in normal operation: {}",
                    names.join(", ")
                ),
                json!({"processes": unknown}),
            ));
        }
        if !by_publisher.is_empty() {
            let names: Vec<&str> = by_publisher.iter().map(|p| p.name()).collect();
            out.push(finding(
                Rule::AuditUnlistedSignedProcess,
                Severity::Low,
                format!(
                    "processes not on the list, signed by a trusted publisher: {}",
                    names.join(", ")
                ),
                json!({"processes": by_publisher}),
            ));
        }
    }
    if !b.software.is_empty() {
        let extra: Vec<&Software> = r
            .software
            .iter()
            .filter(|s| !b.software.iter().any(|a| a == &s.name))
            .collect();
        if !extra.is_empty() {
            let names: Vec<&str> = extra.iter().map(|s| s.name.as_str()).collect();
            out.push(finding(
                Rule::AuditUnknownSoftware,
                Severity::Low,
                format!("software outside the allow-list: {}", names.join(", ")),
                json!({"software": extra}),
            ));
        }
    }
    out
}

/// The finding for a device that stopped reporting.
pub fn silent(b: &Baseline, last_report_ms: Option<i64>, now_ms: i64) -> Option<Finding> {
    let every = b.report_every?.secs() as i64 * 1000;
    let since = last_report_ms?;
    (every > 0 && now_ms - since > every).then(|| {
        finding(
            Rule::AuditSilent,
            Severity::Low,
            format!(
                "no self-report for {} s; the baseline expects one every {}",
                (now_ms - since) / 1000,
                b.report_every.unwrap_or_default()
            ),
            json!({"last_report_at": sekisho_core::time::rfc3339(since), "report_every_secs": every / 1000}),
        )
    })
}

/// A baseline proposed from what healthy devices reported while learning (※5): every process and
/// software they ran, the publishers of their signed processes, the configuration and firmware most
/// of them report (the lowest version among those of the majority's configuration is not needed: the
/// most common firmware version is proposed).
pub fn propose(reports: &[SelfReport]) -> Baseline {
    fn most_common<'a>(it: impl Iterator<Item = &'a String>) -> Option<String> {
        let mut n: BTreeMap<&String, usize> = BTreeMap::new();
        for v in it {
            *n.entry(v).or_default() += 1;
        }
        n.into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(v, _)| v.clone())
    }
    let mut processes = BTreeSet::new();
    let mut publishers = BTreeSet::new();
    let mut software = BTreeSet::new();
    for r in reports {
        for p in &r.processes {
            processes.insert(p.name().to_owned());
            if let Some(x) = p.publisher() {
                publishers.insert(x.to_owned());
            }
        }
        for s in &r.software {
            software.insert(s.name.clone());
        }
    }
    Baseline {
        firmware_version: most_common(reports.iter().filter_map(|r| r.firmware_version.as_ref())),
        firmware_sha256: most_common(reports.iter().filter_map(|r| r.firmware_sha256.as_ref())),
        config_hash: most_common(reports.iter().filter_map(|r| r.config_hash.as_ref())),
        processes: processes.into_iter().collect(),
        publishers: publishers.into_iter().collect(),
        software: software.into_iter().collect(),
        report_every: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::RuleId;

    fn report(fw: &str, cfg: &str, procs: &[&str]) -> SelfReport {
        SelfReport {
            firmware_version: Some(fw.into()),
            config_hash: Some(cfg.into()),
            processes: procs.iter().map(|p| Process::Name((*p).into())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(compare_versions("1.10.0", "1.9.3"), Ordering::Greater);
        assert_eq!(compare_versions("v2.0", "2.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.4.2", "1.4.10"), Ordering::Less);
    }

    /// V27, V28, V30 and ※5: learned from healthy devices, a tampered one is caught; an unknown
    /// process from a trusted publisher is a lower finding than an unknown binary.
    #[test]
    fn a_learned_baseline_catches_tampering_downgrades_and_unknown_processes() {
        let healthy = [
            report("1.4.2", "sha256:aa", &["sensord", "uplinkd"]),
            report("1.4.2", "sha256:aa", &["sensord", "uplinkd", "ntpd"]),
            report("1.4.1", "sha256:aa", &["sensord"]),
        ];
        let b = propose(&healthy);
        assert_eq!(b.firmware_version.as_deref(), Some("1.4.2"));
        assert_eq!(b.config_hash.as_deref(), Some("sha256:aa"));
        assert_eq!(b.processes, ["ntpd", "sensord", "uplinkd"]);
        // The healthy devices pass (the one on 1.4.1 is older than the proposed approval).
        assert!(audit(&b, &healthy[0]).is_empty());
        let rules =
            |r: &SelfReport| -> Vec<RuleId> { audit(&b, r).into_iter().map(|f| f.rule).collect() };
        assert_eq!(rules(&healthy[2]), ["audit.firmware_downgrade"]);
        assert_eq!(
            rules(&report("1.4.2", "sha256:bb", &["sensord"])),
            ["audit.config_mismatch"]
        );
        let mut tampered = report("1.4.2", "sha256:aa", &["sensord", "xmrig"]);
        tampered.processes.push(Process::Detail {
            name: "vendor-helper".into(),
            path: Some("/opt/acme/helper".into()),
            sha256: None,
            publisher: Some("Acme".into()),
        });
        let mut trusting = b.clone();
        trusting.publishers = vec!["Acme".into()];
        let f = audit(&trusting, &tampered);
        let got: Vec<(RuleId, Severity)> = f.iter().map(|f| (f.rule.clone(), f.severity)).collect();
        assert_eq!(
            got,
            [
                (Rule::AuditUnknownProcess.into(), Severity::High),
                (Rule::AuditUnlistedSignedProcess.into(), Severity::Low)
            ]
        );
        // A device's own entries override the field's.
        let dev = Baseline {
            config_hash: Some("sha256:bb".into()),
            ..Default::default()
        };
        assert!(audit(&b.with(&dev), &report("1.4.2", "sha256:bb", &["sensord"])).is_empty());
        let pinned = Baseline {
            firmware_sha256: Some("ab".repeat(32)),
            ..Default::default()
        };
        let mut other_image = report("1.4.2", "sha256:aa", &["sensord"]);
        other_image.firmware_sha256 = Some("cd".repeat(32));
        let f = audit(&pinned, &other_image);
        assert_eq!(
            f.iter().map(|f| f.rule.clone()).collect::<Vec<_>>(),
            ["audit.firmware_mismatch"]
        );
        other_image.firmware_sha256 = Some("AB".repeat(32));
        assert!(
            audit(&pinned, &other_image).is_empty(),
            "hex case does not matter"
        );
        let quiet = Baseline {
            report_every: Some(Span(3600)),
            ..Default::default()
        };
        assert!(silent(&quiet, Some(0), 3_600_000).is_none());
        assert_eq!(
            silent(&quiet, Some(0), 3_600_001).unwrap().rule,
            "audit.silent"
        );
    }
}
