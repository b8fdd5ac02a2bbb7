//! Update management (subsystem ⑤): artifacts stored content-addressed, manifests signed with the
//! gateway's Ed25519 key (created at the first start, rotatable, its public key exported for devices),
//! and campaigns: approving a version for a field (its artifact's hash) rolls the update out to the
//! field's devices (V31), optionally staged to a share of them and halted when too many devices reject
//! it. Each device's progress is tracked until it reports the new version in its self-report.
//!
//! Devices see a campaign through `GET /v1/device/update` (the signed manifest, `204` when current), an
//! `update` command on their telemetry responses, `GET /v1/device/artifacts/{sha256}`, and report the
//! outcome on `POST /v1/device/update/result`; a rejection (bad signature, wrong hash, rollback) is
//! recorded and is a detection (`update.rejected`).

use sekisho_bus::Commands;
use sekisho_core::clock::SharedClock;
use sekisho_core::{DeviceId, FieldId};
use sekisho_detect::engine::{Findings, Found};
use sekisho_detect::{Finding, Severity, Threat};
use sekisho_registry::Registry;
use sekisho_store::Store;
use sekisho_store::prelude::*;
use sekisho_store::update::CampaignRow;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// Campaigns at run time, built from the handles they use.
pub struct Campaigns {
    pub store: Store,
    pub registry: Arc<Registry>,
    /// Where the `update` commands for devices' telemetry responses wait.
    pub commands: Arc<Commands>,
    pub clock: SharedClock,
    /// Where a rejected update's finding goes (the detection sink).
    pub findings: Arc<dyn Findings>,
    /// `[update] artifact_dir`: artifacts as files named by their SHA-256.
    pub artifact_dir: PathBuf,
}

/// Whether a device is in a campaign's stage: a stable hash of its id below `percent`.
pub fn in_stage(device: &str, percent: i64) -> bool {
    let h = Sha256::digest(device.as_bytes());
    (u16::from_be_bytes([h[0], h[1]]) % 100) < percent.clamp(0, 100) as u16
}

/// The command on telemetry responses that tells a device to check for its update.
pub fn command(c: &CampaignRow) -> serde_json::Value {
    serde_json::json!({"type": "update", "kind": c.kind, "version": c.version, "sequence": c.sequence})
}

fn is_campaign_command(v: &serde_json::Value, sequence: Option<i64>) -> bool {
    v["type"] == "update"
        && v.get("sequence").is_some()
        && sequence.is_none_or(|s| v["sequence"] == s)
}

/// Whether a self-report shows a campaign's update in place: the firmware version for firmware, the
/// configuration hash (`sha256:<artifact hash>`) for a configuration.
fn shows(c: &CampaignRow, r: &sekisho_detect::audit::SelfReport) -> bool {
    match c.kind.as_str() {
        "firmware" => r.firmware_version.as_deref() == Some(c.version.as_str()),
        _ => r.config_hash.as_deref().is_some_and(|h| {
            h.strip_prefix("sha256:")
                .unwrap_or(h)
                .eq_ignore_ascii_case(&c.sha256)
        }),
    }
}

impl Campaigns {
    /// Where an artifact lives on disk.
    pub fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.artifact_dir.join(sha256)
    }

    /// Offers a new campaign to the field's devices in its stage (their next telemetry response says so).
    pub fn announce(&self, c: &CampaignRow) {
        for d in self.registry.devices_of(&FieldId(c.field_id.clone())) {
            let id = &d.device.id;
            self.commands.retain(id, |v| {
                !(is_campaign_command(v, None) && v["kind"] == c.kind)
            });
            if in_stage(id.as_str(), c.percent) {
                self.commands.push(id, command(c));
            }
        }
    }

    /// The campaign a device should apply now, if any: active, the device in its stage, not yet applied
    /// or confirmed by it, and (firmware) not what the device already reports.
    pub async fn offer(
        &self,
        field: &str,
        device: &str,
    ) -> sekisho_store::Result<Option<CampaignRow>> {
        let running = self
            .store
            .states(device, None, 1)
            .await?
            .into_iter()
            .next()
            .and_then(|s| serde_json::from_str::<sekisho_detect::audit::SelfReport>(&s.body).ok());
        for c in self.store.campaigns(field).await? {
            if c.status != "active" || !in_stage(device, c.percent) {
                continue;
            }
            if running.as_ref().is_some_and(|r| shows(&c, r)) {
                continue;
            }
            let p = self.store.device_progress(c.id, device).await?;
            if p.is_some_and(|p| matches!(p.state.as_str(), "applied" | "confirmed" | "rejected")) {
                continue;
            }
            return Ok(Some(c));
        }
        Ok(None)
    }

    /// Records what a device did with an update; a rejection is a detection and may halt the campaign.
    pub async fn on_result(
        &self,
        field: &FieldId,
        device: &DeviceId,
        sequence: i64,
        applied: bool,
        reason: Option<&str>,
    ) -> sekisho_store::Result<Option<CampaignRow>> {
        let Some(c) = self.store.campaign_by_sequence(&field.0, sequence).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let state = if applied { "applied" } else { "rejected" };
        self.store
            .set_progress(c.id, device.as_str(), state, reason, now)
            .await?;
        self.commands
            .retain(device, |v| !is_campaign_command(v, Some(sequence)));
        if !applied {
            let reason = reason.unwrap_or("unspecified");
            self.findings.emit(Found {
            field: field.clone(),
            device: Some(device.clone()),
            finding: Finding::new(
                sekisho_core::Rule::UpdateRejected.into(),
                Threat::Hijacking,
                Severity::Medium,
                format!(
                    "the device refused update {} (sequence {}): {reason}",
                    c.version, c.sequence
                ),
                serde_json::json!({"campaign": c.id, "version": c.version, "sequence": c.sequence, "reason": reason}),
            ),
            at: now,
        });
            let failures = self.store.rejections(c.id).await?;
            if c.max_failures > 0 && failures >= c.max_failures && c.status == "active" {
                let note = format!("halted: {failures} devices rejected the update");
                tracing::warn!(campaign = c.id, field = %field, failures, "update campaign halted");
                self.store
                    .set_campaign_status(c.id, "halted", Some(&note))
                    .await?;
                for d in self.registry.devices_of(field) {
                    self.commands
                        .retain(&d.device.id, |v| !is_campaign_command(v, Some(sequence)));
                }
            }
        }
        Ok(Some(c))
    }

    /// A self-report that shows a campaign's update in place confirms the device's update.
    pub async fn on_report(
        &self,
        field: &str,
        device: &str,
        report: &sekisho_detect::audit::SelfReport,
    ) -> sekisho_store::Result<()> {
        for c in self.store.campaigns(field).await? {
            if shows(&c, report) {
                self.store
                    .set_progress(c.id, device, "confirmed", None, self.clock.now_ms())
                    .await?;
                // The campaign's command, and any update the response asked of the device, are done.
                self.store.close_update_requests(device, "done").await?;
                self.commands.retain(&DeviceId(device.to_owned()), |x| {
                    !is_campaign_command(x, Some(c.sequence)) && x.get("request").is_none()
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::in_stage;

    /// A staged rollout offers the update to about `percent` of the devices, always the same ones, and
    /// a larger stage keeps the devices of a smaller one.
    #[test]
    fn stages_are_stable_shares_of_the_fleet() {
        let ids: Vec<String> = (0..2000).map(|i| format!("d_{i:020}")).collect();
        let share = |p| ids.iter().filter(|d| in_stage(d, p)).count();
        let (ten, fifty) = (share(10), share(50));
        assert!((150..=250).contains(&ten), "{ten}");
        assert!((900..=1100).contains(&fifty), "{fifty}");
        assert_eq!(share(100), ids.len());
        assert_eq!(share(0), 0);
        assert!(
            ids.iter()
                .filter(|d| in_stage(d, 10))
                .all(|d| in_stage(d, 50))
        );
    }
}
