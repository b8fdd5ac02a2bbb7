//! `[detection]`: the engine's section of the gateway configuration, with its own validation.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Threat detection on or off (off only to measure what it costs).
    pub enabled: bool,
    /// The library template of a field created without one.
    pub default_template: String,
    /// Repeated findings of one rule on one device within this many seconds are one detection.
    pub group_window_secs: u64,
    /// Findings waiting to be stored at most (a full queue drops findings loudly, never messages).
    pub queue_capacity: usize,
    /// CPU time one script call may use (milliseconds).
    pub script_cpu_ms: u64,
    /// Memory one script's VM may use (MiB).
    pub script_memory_mib: usize,
}

impl DetectionConfig {
    pub fn script_limits(&self) -> sekisho_script::Limits {
        sekisho_script::Limits {
            cpu: std::time::Duration::from_millis(self.script_cpu_ms),
            memory: self.script_memory_mib * 1024 * 1024,
        }
    }

    /// Every problem of the section, each naming its key (`detection.…`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let counts = [
            ("group_window_secs", self.group_window_secs),
            ("queue_capacity", self.queue_capacity as u64),
            ("script_cpu_ms", self.script_cpu_ms),
            ("script_memory_mib", self.script_memory_mib as u64),
        ];
        for (key, v) in counts {
            if v == 0 {
                out.push(format!("detection.{key} must be greater than 0"));
            }
        }
        if crate::template::library(&self.default_template).is_none() {
            let names: Vec<&str> = crate::template::LIBRARY.iter().map(|(n, _)| *n).collect();
            out.push(format!(
                "detection.default_template: '{}' is not one of {}",
                self.default_template,
                names.join(", ")
            ));
        }
        out
    }
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            default_template: "generic".into(),
            group_window_secs: 600,
            queue_capacity: 65_536,
            script_cpu_ms: 50,
            script_memory_mib: 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_counts_and_unknown_templates_are_named() {
        let c = DetectionConfig {
            queue_capacity: 0,
            default_template: "nope".into(),
            ..Default::default()
        };
        let p = c.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0], "detection.queue_capacity must be greater than 0");
        assert!(
            p[1].contains("'nope' is not one of car-mobility, "),
            "{p:?}"
        );
        assert!(DetectionConfig::default().problems().is_empty());
    }
}
