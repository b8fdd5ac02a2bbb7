//! The detection engine: the one consumer of the `received` topic. It takes what ingest stored (messages,
//! token requests, closed SIM windows), looks up the field and device in the registry, and hands each
//! event to the [`Detector`]. One consumer keeps every device's events in the order they were stored.

use super::Detector;
use crate::rules::{AuthFacts, MessageFacts};
use sekisho_bus::{Received, Subscription};
use sekisho_registry::Registry;
use std::sync::Arc;

/// Events taken from the topic at a time.
const BATCH: usize = 64;

/// Judges every event of `received` until the topic ends.
pub async fn run(
    detector: Arc<Detector>,
    registry: Arc<Registry>,
    received: Subscription<Received>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while received.next_batch(BATCH, &mut batch).await.is_some() {
        for event in batch.drain(..) {
            judge(&detector, &registry, &event);
        }
    }
}

/// Hands one event to the detector. An event of a device deleted since it was stored is skipped.
pub fn judge(detector: &Detector, registry: &Registry, event: &Received) {
    match event {
        Received::Message(m) => {
            let (Some(field), Some(entry)) = (registry.field(&m.field), registry.device(&m.device))
            else {
                return;
            };
            let meta = m.meta.unwrap_or_default();
            let facts = MessageFacts {
                rx_ms: m.rx_ms,
                device_ts_ms: meta.device_ts,
                bad_ts: meta.bad_ts,
                seq: meta.seq,
                buffered: meta.buffered,
                size: m.size,
                rejected: m.rejected,
                source_ip: m.source_ip,
                body: m.body.as_deref(),
                sim_ip: None,
            };
            detector.on_message(&field, &entry.device, &facts);
        }
        Received::Auth(a) => {
            let facts = AuthFacts {
                at_ms: a.at_ms,
                success: a.success,
                unique_id: &a.unique_id,
                source_ip: a.source_ip,
                malformed: a.malformed,
            };
            detector.on_auth(&a.field, a.device.as_ref(), &facts);
        }
        Received::SimWindow(w) => detector.on_sim_window(&w.field, &w.device, &w.counts, w.at_ms),
    }
}
