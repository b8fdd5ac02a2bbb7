//! The detection sink: findings become detections. Repeated findings of one rule on one device within
//! the grouping window are one incident (count, latest time, highest severity), not many. A new incident
//! or a raised severity is stored at once and published on the response queue; repeats only update the
//! incident in memory, and dirty incidents are written once a second — so a flood of findings (a replay
//! attack, say) costs one row update per incident per second, not one per message, and never competes
//! with the message writer.

use super::{DetectStats, Found};
use sekisho_bus::{Bus, DetectionEvent};
use sekisho_core::{RuleId, Severity, Threat};
use sekisho_store::Store;
use sekisho_store::detections::NewDetection;
use sekisho_store::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

type Key = (String, Option<String>, RuleId);

struct Open {
    id: i64,
    last_at: i64,
    severity: Severity,
    count: i64,
    summary: String,
    evidence: String,
    dirty: bool,
}

/// Runs until the queue closes (then writes what is dirty).
pub async fn run_sink(
    mut rx: mpsc::Receiver<Found>,
    store: Store,
    bus: Arc<dyn Bus>,
    stats: Arc<DetectStats>,
    group_window_ms: i64,
) {
    let mut open: HashMap<Key, Open> = HashMap::new();
    // Stale incidents are pruned when the map doubles, so pruning costs amortised O(1) per finding.
    let mut prune_at = 100_000usize;
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    loop {
        let f = tokio::select! {
            f = rx.recv() => match f {
                Some(f) => f,
                None => {
                    write_dirty(&store, &mut open).await;
                    return;
                }
            },
            _ = flush.tick() => {
                write_dirty(&store, &mut open).await;
                continue;
            }
        };
        let key: Key = (
            f.field.0.clone(),
            f.device.as_ref().map(|d| d.0.clone()),
            f.finding.rule.clone(),
        );
        let sev = f.finding.severity;
        if open.len() >= prune_at {
            write_dirty(&store, &mut open).await;
            open.retain(|_, o| f.at - o.last_at <= group_window_ms);
            prune_at = (open.len() * 2).max(100_000);
        }
        if let Some(o) = open
            .get_mut(&key)
            .filter(|o| f.at - o.last_at <= group_window_ms)
        {
            stats.grouped.fetch_add(1, Ordering::Relaxed);
            let raised = sev > o.severity;
            o.severity = o.severity.max(sev);
            o.last_at = f.at;
            o.count += 1;
            o.summary = f.finding.summary;
            o.evidence = f.finding.evidence.to_string();
            o.dirty = true;
            if raised {
                let (id, severity) = (o.id, o.severity);
                write_dirty(&store, &mut open).await;
                publish(&*bus, id, &key, f.finding.threat, severity);
            }
            continue;
        }
        let evidence = f.finding.evidence.to_string();
        let new = NewDetection {
            field_id: &key.0,
            device_id: key.1.as_deref(),
            rule: &key.2,
            threat: f.finding.threat,
            severity: sev,
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
                publish(&*bus, id, &key, f.finding.threat, sev);
                let o = Open {
                    id,
                    last_at: f.at,
                    severity: sev,
                    count: 1,
                    summary: f.finding.summary,
                    evidence,
                    dirty: false,
                };
                open.insert(key, o);
            }
            Err(e) => tracing::error!(error = %e, rule = %key.2, "detection could not be stored"),
        }
    }
}

fn publish(bus: &dyn Bus, id: i64, key: &Key, threat: Threat, severity: Severity) {
    let _ = bus.publish_detection(DetectionEvent {
        id,
        field_id: key.0.clone(),
        device_id: key.1.clone(),
        rule: key.2.clone(),
        threat,
        severity,
    });
}

async fn write_dirty(store: &Store, open: &mut HashMap<Key, Open>) {
    for o in open.values_mut().filter(|o| o.dirty) {
        match store
            .update_detection(
                o.id,
                o.count,
                o.severity,
                &o.summary,
                &o.evidence,
                o.last_at,
            )
            .await
        {
            Ok(()) => o.dirty = false,
            Err(e) => {
                tracing::error!(error = %e, detection = o.id, "detection update failed; retried next second")
            }
        }
    }
}
