//! The detection sink: findings become detections. Repeated findings of one rule on one device within
//! the grouping window are one incident (count, latest time, highest severity), not many; a new incident
//! or a raised severity is published on the response queue after it is stored.

use super::{DetectStats, Found};
use crate::bus::{Bus, DetectionEvent};
use sekisho_detect::Severity;
use sekisho_store::Store;
use sekisho_store::detections::NewDetection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

struct Open {
    id: i64,
    last_at: i64,
    severity: Severity,
}

/// Runs until the queue closes.
pub async fn run_sink(
    mut rx: mpsc::Receiver<Found>,
    store: Store,
    bus: Arc<dyn Bus>,
    stats: Arc<DetectStats>,
    group_window_ms: i64,
) {
    let mut open: HashMap<(String, Option<String>, String), Open> = HashMap::new();
    // Stale incidents are pruned when the map doubles, so pruning costs amortised O(1) per finding.
    let mut prune_at = 100_000usize;
    while let Some(f) = rx.recv().await {
        let key = (
            f.field.0.clone(),
            f.device.as_ref().map(|d| d.0.clone()),
            f.finding.rule.clone(),
        );
        let evidence = f.finding.evidence.to_string();
        let sev = f.finding.severity;
        if open.len() >= prune_at {
            open.retain(|_, o| f.at - o.last_at <= group_window_ms);
            prune_at = (open.len() * 2).max(100_000);
        }
        let publish = match open.get_mut(&key) {
            Some(o) if f.at - o.last_at <= group_window_ms => {
                let raised = sev > o.severity;
                o.severity = o.severity.max(sev);
                o.last_at = f.at;
                if let Err(e) = store
                    .regroup_detection(
                        o.id,
                        o.severity.as_str(),
                        &f.finding.summary,
                        &evidence,
                        f.at,
                    )
                    .await
                {
                    tracing::error!(error = %e, "detection update failed");
                }
                stats.grouped.fetch_add(1, Ordering::Relaxed);
                raised.then_some(o.id)
            }
            _ => {
                let new = NewDetection {
                    field_id: &key.0,
                    device_id: key.1.as_deref(),
                    rule: &key.2,
                    threat: f.finding.threat.as_str(),
                    severity: sev.as_str(),
                    summary: &f.finding.summary,
                    evidence: &evidence,
                    at: f.at,
                };
                match store.insert_detection(&new).await {
                    Ok(id) => {
                        stats.detections.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            detection = id, field = %key.0, device = key.1.as_deref(), rule = %key.2,
                            threat = f.finding.threat.as_str(), severity = sev.as_str(), summary = %f.finding.summary,
                            "threat detected"
                        );
                        open.insert(
                            key.clone(),
                            Open {
                                id,
                                last_at: f.at,
                                severity: sev,
                            },
                        );
                        Some(id)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, rule = %key.2, "detection could not be stored");
                        None
                    }
                }
            }
        };
        if let Some(id) = publish {
            let o = &open[&key];
            let _ = bus.publish_detection(DetectionEvent {
                id,
                field_id: key.0.clone(),
                device_id: key.1.clone(),
                rule: key.2.clone(),
                threat: f.finding.threat.as_str().to_owned(),
                severity: o.severity.as_str().to_owned(),
            });
        }
    }
}
