//! Device audit (subsystem ⑤): each self-report is stored with what changed since the previous one and
//! judged against the device's baseline (the field's, with the device's own entries on top); findings
//! go to the detection sink like any other (grouped, stored, published to the response). During a
//! field's learning period reports are recorded but not judged; the administrator then approves the
//! proposed baseline in one action (※5). A periodic pass finds devices that stopped reporting.
//! Every audit is recorded (`audit_runs`).

use crate::campaigns::Campaigns;
use sekisho_core::clock::SharedClock;
use sekisho_core::{Device, DeviceId, FieldId};
use sekisho_detect::TemplateSource;
/// The self-report a device sends (`POST /v1/device/state`), as audit reads it.
pub use sekisho_detect::audit::SelfReport;
use sekisho_detect::audit::{self, Baseline};
use sekisho_detect::engine::{Findings, Found};
use sekisho_detect::template::ScriptTrigger;
use sekisho_registry::Registry;
use sekisho_script::Limits;
use sekisho_script::host::ScriptHost;
use sekisho_store::Store;
use sekisho_store::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The audit at run time, built from the handles it uses.
pub struct Auditor {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub clock: SharedClock,
    /// The field's template in force (its `on = "audit"` scripts).
    pub templates: Arc<dyn TemplateSource>,
    pub scripts: Arc<ScriptHost>,
    pub script_limits: Limits,
    /// Where findings go (the detection sink).
    pub findings: Arc<dyn Findings>,
    /// A self-report may confirm a device's update.
    pub campaigns: Arc<Campaigns>,
}

impl Auditor {
    /// The baseline that applies to a device: the field's, with the device's own entries on top (none
    /// when neither is set).
    pub async fn baseline_of(
        &self,
        field: &str,
        device: &str,
    ) -> sekisho_store::Result<Option<Baseline>> {
        let parse = |b: Option<sekisho_store::audit::BaselineRow>| {
            b.and_then(|r| serde_json::from_str::<Baseline>(&r.body).ok())
        };
        let f = parse(self.store.baseline(field, "").await?);
        let d = parse(self.store.baseline(field, device).await?);
        Ok(match (f, d) {
            (None, None) => None,
            (f, d) => Some(f.unwrap_or_default().with(&d.unwrap_or_default())),
        })
    }

    /// Stores a self-report and audits it. Returns the report's id and what changed.
    pub async fn on_report(
        &self,
        device: &Device,
        report: &SelfReport,
        now: i64,
    ) -> sekisho_store::Result<(i64, Vec<String>)> {
        let (field, dev) = (device.field_id.0.as_str(), device.id.0.as_str());
        let prev = self
            .store
            .states(dev, None, 1)
            .await?
            .into_iter()
            .next()
            .and_then(|s| serde_json::from_str::<SelfReport>(&s.body).ok());
        let changed = changes(prev.as_ref(), report);
        let body = serde_json::to_string(report).unwrap_or_default();
        let changed_json = serde_json::to_string(&changed).unwrap_or_default();
        let id = self
            .store
            .insert_state(now, field, dev, &body, &changed_json)
            .await?;
        self.campaigns.on_report(field, dev, report).await?;
        self.judge(device, report, "report", now).await?;
        Ok((id, changed))
    }

    /// Audits one self-report: the built-in checks against the baseline, then the field's `on = "audit"`
    /// scripts; findings go to the detection sink; the run is recorded. Nothing is judged while the field
    /// is learning.
    async fn judge(
        &self,
        device: &Device,
        report: &SelfReport,
        trigger: &str,
        now: i64,
    ) -> sekisho_store::Result<()> {
        let (field, dev) = (device.field_id.0.as_str(), device.id.0.as_str());
        let learning = self
            .store
            .learning(field)
            .await?
            .is_some_and(|(_, until)| now < until);
        let (outcome, found) = if learning {
            ("learning", Vec::new())
        } else {
            let baseline = self.baseline_of(field, dev).await?;
            let mut findings = baseline
                .as_ref()
                .map(|b| audit::audit(b, report))
                .unwrap_or_default();
            let compiled = self.templates.compiled(&device.field_id);
            let args = vec![
                serde_json::to_value(report).unwrap_or_default(),
                serde_json::json!({"id": dev, "unique_id": device.unique_id, "name": device.name,
                "critical": device.critical, "status": device.status.as_str()}),
                serde_json::to_value(&baseline).unwrap_or_default(),
            ];
            let sources = compiled.template.script_sources(Some(ScriptTrigger::Audit));
            for ran in self
                .scripts
                .run_once(&device.field_id, sources, args, self.script_limits)
                .await
            {
                for e in ran.emitted {
                    findings.push(sekisho_detect::Finding::from_script(&ran.script, e).1);
                }
            }
            let recorded: Vec<serde_json::Value> = findings.iter().map(recorded).collect();
            for finding in findings {
                self.findings.emit(Found {
                    field: device.field_id.clone(),
                    device: Some(device.id.clone()),
                    finding,
                    at: now,
                });
            }
            let outcome = match (baseline.is_some(), recorded.is_empty()) {
                (_, false) => "findings",
                (true, true) => "clean",
                (false, true) => "no_baseline",
            };
            (outcome, recorded)
        };
        self.store
            .insert_audit_run(
                now,
                field,
                dev,
                trigger,
                outcome,
                &serde_json::Value::Array(found).to_string(),
            )
            .await?;
        Ok(())
    }

    /// After the field's baseline changed: audits every device's latest report against it.
    pub async fn reaudit_field(&self, field: &FieldId) -> sekisho_store::Result<usize> {
        let now = self.clock.now_ms();
        let mut n = 0;
        for s in self.store.latest_states_since(&field.0, 0).await? {
            let Some(entry) = self.registry.device(&DeviceId(s.device_id.clone())) else {
                continue;
            };
            let Ok(report) = serde_json::from_str::<SelfReport>(&s.body) else {
                continue;
            };
            self.judge(&entry.device, &report, "baseline", now).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn check_silence(
        &self,
        reported: &mut HashMap<DeviceId, i64>,
    ) -> sekisho_store::Result<()> {
        // Every current baseline in one read; without one that expects reports, nothing else is read.
        let mut field_b: HashMap<String, Baseline> = HashMap::new();
        let mut device_b: HashMap<(String, String), Baseline> = HashMap::new();
        for r in self.store.current_baselines().await? {
            let Ok(b) = serde_json::from_str::<Baseline>(&r.body) else {
                continue;
            };
            if r.device_id.is_empty() {
                field_b.insert(r.field_id, b);
            } else {
                device_b.insert((r.field_id, r.device_id), b);
            }
        }
        if field_b
            .values()
            .chain(device_b.values())
            .all(|b| b.report_every.is_none())
        {
            return Ok(());
        }
        let now = self.clock.now_ms();
        for (field, device, last) in self.store.last_reports().await? {
            let id = DeviceId(device.clone());
            if reported.get(&id) == Some(&last) || self.registry.device(&id).is_none() {
                continue;
            }
            let own = device_b.get(&(field.clone(), device.clone()));
            let b = match (field_b.get(&field), own) {
                (None, None) => continue,
                (f, d) => f
                    .cloned()
                    .unwrap_or_default()
                    .with(&d.cloned().unwrap_or_default()),
            };
            if let Some(finding) = audit::silent(&b, Some(last), now) {
                reported.insert(id.clone(), last);
                let run = serde_json::json!([recorded(&finding)]).to_string();
                self.findings.emit(Found {
                    field: FieldId(field.clone()),
                    device: Some(id),
                    finding,
                    at: now,
                });
                self.store
                    .insert_audit_run(now, &field, &device, "periodic", "findings", &run)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Once a minute: devices whose baseline expects reports and that stopped sending them. Each silence
/// is reported once (until the device reports again).
pub async fn silence_worker(auditor: Arc<Auditor>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut reported: HashMap<DeviceId, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        if let Err(e) = auditor.check_silence(&mut reported).await {
            tracing::warn!(error = %e, "the audit's silence check failed");
        }
    }
}

/// What differs between two reports.
fn changes(prev: Option<&SelfReport>, now: &SelfReport) -> Vec<String> {
    let Some(p) = prev else {
        return vec!["first_report".into()];
    };
    let mut out = Vec::new();
    if p.firmware_version != now.firmware_version {
        out.push("firmware_version".into());
    }
    if p.config_hash != now.config_hash {
        out.push("config_hash".into());
    }
    if p.processes != now.processes {
        out.push("processes".into());
    }
    if p.software != now.software {
        out.push("software".into());
    }
    if p.facts != now.facts {
        out.push("facts".into());
    }
    out
}

/// A finding as its audit run records it.
fn recorded(f: &sekisho_detect::Finding) -> serde_json::Value {
    serde_json::json!({"rule": f.rule, "threat": f.threat.as_str(), "severity": f.severity.as_str(),
        "summary": f.summary, "evidence": f.evidence})
}
