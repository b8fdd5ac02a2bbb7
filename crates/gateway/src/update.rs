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

use crate::app::App;
use crate::detection::Found;
use sekisho_core::{DeviceId, FieldId};
use sekisho_detect::{Finding, Severity, Threat};
use sekisho_store::prelude::*;
use sekisho_store::update::CampaignRow;
use sekisho_update::{PublicKey, SigningKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The signing key and the public keys of earlier ones still published during a rotation.
pub struct Keys {
    current: RwLock<SigningKey>,
    previous: RwLock<Vec<PublicKey>>,
    key_file: PathBuf,
    previous_file: PathBuf,
}

impl Keys {
    /// Loads the signing key, creating it (0600) on the first start.
    pub fn load(key_file: &Path, previous_file: &Path) -> anyhow::Result<Self> {
        let current = if key_file.exists() {
            SigningKey::load(key_file).map_err(|e| anyhow::anyhow!("update.key_file: {e}"))?
        } else {
            let k = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
            k.save(key_file)
                .map_err(|e| anyhow::anyhow!("update.key_file: {e}"))?;
            tracing::info!(key_id = %k.public_key().key_id(), "update signing key created");
            k
        };
        let previous = std::fs::read_to_string(previous_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| PublicKey::from_text(l).ok())
            .collect();
        Ok(Self {
            current: RwLock::new(current),
            previous: RwLock::new(previous),
            key_file: key_file.to_owned(),
            previous_file: previous_file.to_owned(),
        })
    }

    pub fn public(&self) -> PublicKey {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .public_key()
    }

    pub fn previous(&self) -> Vec<PublicKey> {
        self.previous
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn sign(&self, m: &sekisho_update::Manifest) -> sekisho_update::SignedManifest {
        sekisho_update::sign(m, &self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new signing key; the old public key stays published (devices trust both during the
    /// rotation). Manifests signed from now on use the new key.
    pub fn rotate(&self) -> anyhow::Result<PublicKey> {
        let new = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let tmp = self.key_file.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        new.save(&tmp).map_err(|e| anyhow::anyhow!("{e}"))?;
        let old = self.public();
        let mut prev = self.previous();
        prev.push(old);
        let text: String = prev
            .iter()
            .map(|k| format!("{}\n", k.to_base64()))
            .collect();
        std::fs::write(&self.previous_file, text)?;
        std::fs::rename(&tmp, &self.key_file)?;
        let public = new.public_key();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
        *self.previous.write().unwrap_or_else(|e| e.into_inner()) = prev;
        Ok(public)
    }
}

/// Whether a device is in a campaign's stage: a stable hash of its id below `percent`.
pub fn in_stage(device: &str, percent: i64) -> bool {
    let h = Sha256::digest(device.as_bytes());
    (u16::from_be_bytes([h[0], h[1]]) % 100) < percent.clamp(0, 100) as u16
}

/// Where an artifact lives on disk.
pub fn artifact_path(app: &App, sha256: &str) -> PathBuf {
    app.config.update.artifact_dir.join(sha256)
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

/// Offers a new campaign to the field's devices in its stage (their next telemetry response says so).
pub fn announce(app: &App, c: &CampaignRow) {
    for d in app.registry.devices_of(&FieldId(c.field_id.clone())) {
        let id = &d.device.id;
        app.commands.retain(id, |v| {
            !(is_campaign_command(v, None) && v["kind"] == c.kind)
        });
        if in_stage(id.as_str(), c.percent) {
            app.commands.push(id, command(c));
        }
    }
}

/// The campaign a device should apply now, if any: active, the device in its stage, not yet applied
/// or confirmed by it, and (firmware) not what the device already reports.
pub async fn offer(
    app: &App,
    field: &str,
    device: &str,
) -> sekisho_store::Result<Option<CampaignRow>> {
    let running = app
        .store
        .states(device, None, 1)
        .await?
        .into_iter()
        .next()
        .and_then(|s| serde_json::from_str::<sekisho_detect::audit::SelfReport>(&s.body).ok());
    for c in app.store.campaigns(field).await? {
        if c.status != "active" || !in_stage(device, c.percent) {
            continue;
        }
        if running.as_ref().is_some_and(|r| shows(&c, r)) {
            continue;
        }
        let p = app.store.device_progress(c.id, device).await?;
        if p.is_some_and(|p| matches!(p.state.as_str(), "applied" | "confirmed" | "rejected")) {
            continue;
        }
        return Ok(Some(c));
    }
    Ok(None)
}

/// Records what a device did with an update; a rejection is a detection and may halt the campaign.
pub async fn on_result(
    app: &App,
    field: &FieldId,
    device: &DeviceId,
    sequence: i64,
    applied: bool,
    reason: Option<&str>,
) -> sekisho_store::Result<Option<CampaignRow>> {
    let Some(c) = app.store.campaign_by_sequence(&field.0, sequence).await? else {
        return Ok(None);
    };
    let now = app.clock.now_ms();
    let state = if applied { "applied" } else { "rejected" };
    app.store
        .set_progress(c.id, device.as_str(), state, reason, now)
        .await?;
    app.commands
        .retain(device, |v| !is_campaign_command(v, Some(sequence)));
    if !applied {
        let reason = reason.unwrap_or("unspecified");
        app.detector.emit_found(Found {
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
        let failures = app.store.rejections(c.id).await?;
        if c.max_failures > 0 && failures >= c.max_failures && c.status == "active" {
            let note = format!("halted: {failures} devices rejected the update");
            tracing::warn!(campaign = c.id, field = %field, failures, "update campaign halted");
            app.store
                .set_campaign_status(c.id, "halted", Some(&note))
                .await?;
            for d in app.registry.devices_of(field) {
                app.commands
                    .retain(&d.device.id, |v| !is_campaign_command(v, Some(sequence)));
            }
        }
    }
    Ok(Some(c))
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

/// A self-report that shows a campaign's update in place confirms the device's update.
pub async fn on_report(
    app: &App,
    field: &str,
    device: &str,
    report: &sekisho_detect::audit::SelfReport,
) -> sekisho_store::Result<()> {
    for c in app.store.campaigns(field).await? {
        if shows(&c, report) {
            app.store
                .set_progress(c.id, device, "confirmed", None, app.clock.now_ms())
                .await?;
            // The campaign's command, and any update the response asked of the device, are done.
            app.store.close_update_requests(device, "done").await?;
            app.commands.retain(&DeviceId(device.to_owned()), |x| {
                !is_campaign_command(x, Some(c.sequence)) && x.get("request").is_none()
            });
        }
    }
    Ok(())
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
