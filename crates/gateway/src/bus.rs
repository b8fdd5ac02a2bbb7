//! The queues between subsystems, behind a trait: in-process now, a distributed engine (NATS JetStream)
//! later. Detection publishes; response (and anyone else) subscribes. Detection never calls response.
//!
//! Every event published here is already stored (a detection row), so a subscriber that falls behind
//! loses no work: it is told how many events it missed and re-reads them from the store.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// A new or escalated detection (an incident), by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionEvent {
    pub id: i64,
    pub field_id: String,
    pub device_id: Option<String>,
    pub rule: sekisho_core::RuleId,
    pub threat: sekisho_core::Threat,
    pub severity: sekisho_core::Severity,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("nobody subscribes to {0}")]
    NoSubscriber(&'static str),
}

/// The response queue and its kin.
pub trait Bus: Send + Sync {
    /// Publishes a detection on the response queue (topic `detections`).
    fn publish_detection(&self, event: DetectionEvent) -> Result<(), BusError>;
    /// A new subscription to the response queue.
    fn subscribe_detections(&self) -> broadcast::Receiver<DetectionEvent>;
}

/// The in-process bus: a bounded broadcast channel per topic.
pub struct LocalBus {
    detections: broadcast::Sender<DetectionEvent>,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            detections: broadcast::channel(capacity.max(1)).0,
        }
    }
}

impl Bus for LocalBus {
    fn publish_detection(&self, event: DetectionEvent) -> Result<(), BusError> {
        self.detections
            .send(event)
            .map(|_| ())
            .map_err(|_| BusError::NoSubscriber("detections"))
    }

    fn subscribe_detections(&self) -> broadcast::Receiver<DetectionEvent> {
        self.detections.subscribe()
    }
}
