//! The queues between subsystems, as typed topics: what a frontend received ([`Received`]: accepted
//! and refused messages, authentication attempts, closed SIM windows) and what detection found
//! ([`DetectionEvent`]). Ingest publishes on `received` and never calls detection; detection consumes
//! `received` and publishes on `detections`; response subscribes to `detections`.
//!
//! This crate owns the topic types and the in-process implementation ([`LocalBus`]). A distributed
//! engine (NATS JetStream) fills the same seam later: a [`Publisher`] and a [`Subscription`] are
//! handles whose kind says where the events go, so the hot path allocates nothing and pays no dynamic
//! dispatch per event.
//!
//! Delivery rules:
//! - `received` is a **work queue** with backpressure: [`Publisher::publish`] waits while the queue is
//!   full, so a slow consumer slows the producer instead of losing events. Subscribers of one group
//!   compete for its events; one subscriber sees a producer's events in the order they were sent.
//! - `detections` is a **broadcast**: every subscriber sees every event. Each event is already stored
//!   (a detection row), so a subscriber that falls behind is told how many it missed and re-reads them
//!   from the store.
//!
//! [`Commands`] holds what response and update management want each device to do, until done.
//!
//! Invariant: everything published is already durable (the message, the attempt, the accounting
//! record are committed first); a topic carries work, never the only copy of data.
#![forbid(unsafe_code)]

mod commands;
mod topics;

pub use commands::Commands;
pub use topics::{DetectionEvent, Received, ReceivedAuth, ReceivedMessage, SimWindow};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, broadcast, mpsc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("nobody subscribes to {0}")]
    NoSubscriber(&'static str),
    #[error("the {0} topic is closed")]
    Closed(&'static str),
}

/// Counters of one topic, for `/metrics`.
#[derive(Debug, Default)]
pub struct TopicStats {
    /// Events the topic took.
    pub published: AtomicU64,
    /// Publishes that waited because the queue was full (backpressure).
    pub waited: AtomicU64,
}

/// Where a publisher's events go.
enum PublisherKind<T> {
    Local(mpsc::Sender<T>),
}

/// A handle that publishes on one work-queue topic.
pub struct Publisher<T> {
    kind: PublisherKind<T>,
    topic: &'static str,
    stats: Arc<TopicStats>,
}

impl<T> Clone for Publisher<T> {
    fn clone(&self) -> Self {
        Self {
            kind: match &self.kind {
                PublisherKind::Local(s) => PublisherKind::Local(s.clone()),
            },
            topic: self.topic,
            stats: self.stats.clone(),
        }
    }
}

impl<T: Send> Publisher<T> {
    /// Publishes `item`, waiting while the queue is full.
    pub async fn publish(&self, item: T) -> Result<(), BusError> {
        let sent = match &self.kind {
            PublisherKind::Local(s) => match s.try_send(item) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(item)) => {
                    self.stats.waited.fetch_add(1, Ordering::Relaxed);
                    s.send(item).await.map_err(|_| BusError::Closed(self.topic))
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(BusError::Closed(self.topic)),
            },
        };
        if sent.is_ok() {
            self.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Events published and not yet taken by a subscriber.
    pub fn queued(&self) -> usize {
        match &self.kind {
            PublisherKind::Local(s) => s.max_capacity() - s.capacity(),
        }
    }

    pub fn stats(&self) -> &TopicStats {
        &self.stats
    }
}

enum SubscriptionKind<T> {
    Local(Arc<Mutex<mpsc::Receiver<T>>>),
}

/// One member of a consumer group of a work-queue topic: members of a group compete for its events.
pub struct Subscription<T> {
    kind: SubscriptionKind<T>,
}

impl<T> Clone for Subscription<T> {
    /// Another member of the same group.
    fn clone(&self) -> Self {
        Self {
            kind: match &self.kind {
                SubscriptionKind::Local(r) => SubscriptionKind::Local(r.clone()),
            },
        }
    }
}

impl<T> Subscription<T> {
    /// The next event; `None` once every publisher is gone and the queue is empty.
    pub async fn next(&self) -> Option<T> {
        match &self.kind {
            SubscriptionKind::Local(r) => r.lock().await.recv().await,
        }
    }

    /// Up to `max` events that are ready now, after waiting for the first (`None`: the topic ended).
    pub async fn next_batch(&self, max: usize, out: &mut Vec<T>) -> Option<usize> {
        match &self.kind {
            SubscriptionKind::Local(r) => {
                let n = r.lock().await.recv_many(out, max.max(1)).await;
                (n > 0).then_some(n)
            }
        }
    }
}

/// The topics of the gateway.
pub trait Bus: Send + Sync {
    /// A publisher on `received`.
    fn received(&self) -> Publisher<Received>;
    /// A member of `group` on `received`. In-process there is one group (detection); asking for
    /// another group is an error until a distributed engine provides them.
    fn subscribe_received(&self, group: &str) -> Result<Subscription<Received>, BusError>;
    /// Publishes a detection (topic `detections`).
    fn publish_detection(&self, event: DetectionEvent) -> Result<(), BusError>;
    /// A new subscription to `detections`.
    fn subscribe_detections(&self) -> broadcast::Receiver<DetectionEvent>;
}

/// The in-process bus: a bounded queue for `received`, a bounded broadcast for `detections`.
pub struct LocalBus {
    received: Publisher<Received>,
    received_rx: Arc<Mutex<mpsc::Receiver<Received>>>,
    detections: broadcast::Sender<DetectionEvent>,
}

/// The one consumer group of `received` in-process.
pub const DETECTION_GROUP: &str = "detection";

impl LocalBus {
    /// A bus whose queues hold `capacity` events each.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            received: Publisher {
                kind: PublisherKind::Local(tx),
                topic: "received",
                stats: Arc::default(),
            },
            received_rx: Arc::new(Mutex::new(rx)),
            detections: broadcast::channel(capacity.max(1)).0,
        }
    }
}

impl Bus for LocalBus {
    fn received(&self) -> Publisher<Received> {
        self.received.clone()
    }

    fn subscribe_received(&self, group: &str) -> Result<Subscription<Received>, BusError> {
        if group != DETECTION_GROUP {
            return Err(BusError::NoSubscriber(
                "received (in-process: the detection group only)",
            ));
        }
        Ok(Subscription {
            kind: SubscriptionKind::Local(self.received_rx.clone()),
        })
    }

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

#[cfg(test)]
mod tests;
