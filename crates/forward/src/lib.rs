//! The cloud connector (subsystem ①): one forwarder per field drains that field's outbox, in arrival
//! order, to the field's HTTPS destination. A batch leaves `pending` only when the cloud answers 2xx
//! (→ `forwarded`) or when it can never be delivered (→ `dead`, with a reason). Delivery is at least
//! once: the message id in every envelope is the idempotency key.
//!
//! Request: `POST <url>` with `Content-Type: application/json`, `Idempotency-Key: <first id>..<last id>`,
//! the field's `Authorization` if set, and the body
//! `{"messages": [{"id", "device_id", "field_id", "received_at", "data": <the device's JSON>}]}`.
//!
//! Architecture invariant: the forwarder reads only committed rows; it never sees a message the device
//! was not told `202` about, and a crash between the cloud's 2xx and the status update only resends.
//!
//! Owns: the outbox's `pending → forwarded | dead` moves and the `[cloud]` settings. Reads: the fields'
//! destinations from the registry. Must not touch: ingest, detection, response.

#![forbid(unsafe_code)]

mod policy;

use policy::{Next, Policy};

use sekisho_core::backoff::random_u64;
use sekisho_core::clock::SharedClock;
use sekisho_core::{CloudDestination, FieldId};
use sekisho_registry::Registry;
use sekisho_store::journal::Journal;
use sekisho_store::outbox::Pending;
use sekisho_store::prelude::*;
use sekisho_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// `[cloud]`: how the forwarders deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    /// Most messages in one request to a field's cloud.
    pub batch_max: usize,
    pub timeout_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Pending messages older than this are dead-lettered and reported.
    pub max_age_secs: u64,
    /// A batch that fails this many times in a row (5xx, timeout) is sent one message at a time.
    pub isolate_after: u32,
    /// A message sent alone that fails this many times in a row while the cloud accepts the message
    /// after it is dead-lettered, so that one message the cloud cannot take never stalls the field.
    pub poison_after: u32,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            batch_max: 100,
            timeout_secs: 10,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
            max_age_secs: 7 * 86_400,
            isolate_after: 3,
            poison_after: 5,
        }
    }
}

impl CloudConfig {
    /// What is wrong with these settings, each problem named by its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, v) in [
            ("cloud.batch_max", self.batch_max as u64),
            ("cloud.timeout_secs", self.timeout_secs),
            ("cloud.backoff_initial_ms", self.backoff_initial_ms),
            ("cloud.max_age_secs", self.max_age_secs),
            ("cloud.isolate_after", u64::from(self.isolate_after)),
            ("cloud.poison_after", u64::from(self.poison_after)),
        ] {
            if v == 0 {
                out.push(format!("{key} must be greater than 0"));
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            out.push("cloud.backoff_max_ms must be at least cloud.backoff_initial_ms".into());
        }
        out
    }
}

/// What the forwarders have done since start (for `/metrics`).
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Messages the cloud took.
    pub forwarded: AtomicU64,
    /// Delivery attempts that failed and will be retried.
    pub failures: AtomicU64,
    /// Messages dead-lettered (refused, or older than `max_age_secs`).
    pub dead_lettered: AtomicU64,
    /// Messages dead-lettered because the cloud kept failing them alone while accepting others.
    pub poisoned: AtomicU64,
}

/// The cloud connector: what every field's forwarder shares.
pub struct Forwarder {
    config: CloudConfig,
    store: Store,
    /// Where the bodies of indexed messages are (the outbox rows point into it).
    journal: Journal,
    registry: Arc<Registry>,
    clock: SharedClock,
    stats: ForwardStats,
    /// Wakes the forwarders when a field's destination changes.
    changed: Notify,
    new_fields: mpsc::UnboundedSender<FieldId>,
}

impl Forwarder {
    /// The connector and the receiving end of its new-field announcements, for [`Forwarder::spawn`].
    pub fn new(
        config: CloudConfig,
        store: Store,
        journal: Journal,
        registry: Arc<Registry>,
        clock: SharedClock,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<FieldId>) {
        let (new_fields, rx) = mpsc::unbounded_channel();
        let f = Self {
            config,
            store,
            journal,
            registry,
            clock,
            stats: ForwardStats::default(),
            changed: Notify::new(),
            new_fields,
        };
        (Arc::new(f), rx)
    }

    pub fn stats(&self) -> &ForwardStats {
        &self.stats
    }

    /// A field was created: start its forwarder.
    pub fn field_added(&self, field: &FieldId) {
        let _ = self.new_fields.send(field.clone());
    }

    /// A field's destination changed: the waiting forwarders look again now.
    pub fn destination_changed(&self) {
        self.changed.notify_waiters();
    }

    /// The oldest pending messages of a field with their bodies, which are read from the message log
    /// when the row points there. A message whose body the log no longer has (its recovery reported
    /// the damage) is dead-lettered with that reason, never sent without its data.
    async fn pending(&self, field: &FieldId, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut batch = self.store.pending(field.as_str(), limit as i64).await?;
        let mut wanted: Vec<u64> = batch
            .iter()
            .filter(|m| m.body.is_none())
            .filter_map(|m| m.log_offset.map(|o| o.max(0) as u64))
            .collect();
        if wanted.is_empty() {
            return Ok(batch);
        }
        wanted.sort_unstable();
        let found = self.journal.bodies(wanted).await?;
        let mut lost = Vec::new();
        for m in &mut batch {
            if m.body.is_some() {
                continue;
            }
            let at = m.log_offset.map(|o| o.max(0) as u64);
            match at.and_then(|at| found.binary_search_by_key(&at, |(o, _)| *o).ok()) {
                Some(i) => m.body = Some(found[i].1.clone()),
                None => lost.push(m.seq),
            }
        }
        if !lost.is_empty() {
            let why =
                "the message's body is no longer in the message log (damage reported at start)";
            self.store
                .dead_letter(field.as_str(), &lost, why, self.clock.now_ms())
                .await?;
            self.stats
                .dead_lettered
                .fetch_add(lost.len() as u64, Ordering::Relaxed);
            tracing::error!(field = %field, messages = lost.len(), "messages dead-lettered: {why}");
            batch.retain(|m| m.body.is_some());
        }
        Ok(batch)
    }
}

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Worth retrying (network error, timeout, 408, 429, 5xx).
    Retry(String),
    /// The cloud refused the content (other 4xx): retrying the same batch will not help.
    Refused(String),
}

struct Client {
    dest: CloudDestination,
    http: reqwest::Client,
}

fn build_client(dest: &CloudDestination, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent("sekisho");
    if let Some(ca) = &dest.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
            .map_err(|e| format!("ca_pem: {e}"))?;
        b = b.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&dest.client_cert_pem, &dest.client_key_pem) {
        let id = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
            .map_err(|e| format!("client certificate: {e}"))?;
        b = b.identity(id);
    }
    b.build().map_err(|e| e.to_string())
}

fn envelope(field: &FieldId, batch: &[Pending]) -> Vec<u8> {
    // Built by hand so each device body goes out byte for byte as it came in.
    let body = |m: &Pending| m.body.as_deref().unwrap_or_default().len();
    let mut out = Vec::with_capacity(batch.iter().map(|m| body(m) + 160).sum::<usize>() + 16);
    out.extend_from_slice(b"{\"messages\":[");
    for (i, m) in batch.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let head = serde_json::json!({
            "id": m.id,
            "device_id": m.device_id,
            "field_id": field.as_str(),
            "received_at": sekisho_core::time::rfc3339(m.at),
        })
        .to_string();
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(m.body.as_deref().unwrap_or_default());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

async fn deliver(client: &Client, field: &FieldId, batch: &[Pending]) -> Outcome {
    let key = match (batch.first(), batch.last()) {
        (Some(a), Some(b)) if batch.len() > 1 => format!("{}..{}", a.id, b.id),
        (Some(a), _) => a.id.clone(),
        _ => return Outcome::Delivered,
    };
    let mut req = client
        .http
        .post(&client.dest.url)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(envelope(field, batch));
    if let Some(auth) = &client.dest.authorization {
        req = req.header("authorization", auth);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) => {
            let s = r.status();
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            let why = format!("cloud answered {s}: {text}");
            if s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429 {
                Outcome::Retry(why)
            } else {
                Outcome::Refused(why)
            }
        }
        Err(e) => Outcome::Retry(format!("cloud unreachable: {e}")),
    }
}

/// How often each forwarder dead-letters what is older than `cloud.max_age_secs`.
const EXPIRY_EVERY_MS: i64 = 2_000;

/// Starts one forwarder per field now and every field created later (`fields` announces new ones).
pub fn spawn(
    fwd: Arc<Forwarder>,
    mut new_fields: mpsc::UnboundedReceiver<FieldId>,
    shutdown: watch::Receiver<bool>,
) {
    for f in fwd.registry.fields() {
        tokio::spawn(forward_field(fwd.clone(), f.id.clone(), shutdown.clone()));
    }
    tokio::spawn(async move {
        while let Some(id) = new_fields.recv().await {
            tokio::spawn(forward_field(fwd.clone(), id, shutdown.clone()));
        }
    });
}

async fn forward_field(
    fwd: Arc<Forwarder>,
    field_id: FieldId,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = fwd.config.clone();
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let max_age_ms = (cfg.max_age_secs as i64) * 1000;
    let mut client: Option<Client> = None;
    let mut policy = Policy::new(&cfg);
    let mut next_expiry = 0i64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(field) = fwd.registry.field(&field_id) else {
            return;
        };
        let now = fwd.clock.now_ms();
        // Expiry is a scan of the oldest pending rows: once every few seconds is enough.
        if now >= next_expiry {
            next_expiry = now + EXPIRY_EVERY_MS;
            match fwd
                .store
                .expire_pending(
                    field_id.as_str(),
                    now - max_age_ms,
                    "not delivered within cloud.max_age_secs",
                    now,
                )
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    fwd.stats
                        .dead_lettered
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tracing::error!(field = %field_id, messages = n, "messages dead-lettered: older than cloud.max_age_secs");
                }
                Err(e) if *shutdown.borrow() => {
                    let _ = e;
                    return;
                }
                Err(e) => tracing::error!(field = %field_id, error = %e, "outbox expiry failed"),
            }
        }
        // Without a destination there is nothing to read: messages wait (and expire) in the store.
        let batch = match &field.cloud {
            None => Vec::new(),
            Some(_) => match fwd.pending(&field_id, policy.batch_limit()).await {
                Ok(b) => b,
                Err(_) if *shutdown.borrow() => return,
                Err(e) => {
                    tracing::error!(field = %field_id, error = %e, "outbox read failed");
                    Vec::new()
                }
            },
        };
        let Some(dest) = field.cloud.clone().filter(|_| !batch.is_empty()) else {
            // Nothing to send (or nowhere to send it yet): wait for new commits, or look again later
            // (a destination may be set, and old messages must expire).
            let committed = fwd.store.writer.committed.clone();
            let wait = if field.cloud.is_some() {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(5)
            };
            tokio::select! {
                _ = committed.notified(), if field.cloud.is_some() => {}
                _ = fwd.changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        };
        if client.as_ref().is_none_or(|c| c.dest != dest) {
            match build_client(&dest, timeout) {
                Ok(http) => client = Some(Client { dest, http }),
                Err(e) => {
                    tracing::error!(field = %field_id, error = %e, "cloud destination unusable");
                    client = None;
                    sleep_or_shutdown(Duration::from_secs(5), &mut shutdown).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_ref() else { continue };
        let next = match deliver(c, &field_id, &batch).await {
            Outcome::Delivered => {
                delivered(&fwd, &field_id, &batch).await;
                policy.delivered();
                Next::Again
            }
            Outcome::Refused(why) => match policy.refused(batch.len()) {
                Next::DeadLetter => {
                    tracing::error!(field = %field_id, message = %batch[0].id, reason = %why, "cloud refused a message; dead-lettered");
                    dead_letter(&fwd, &field_id, &batch[0], &why).await;
                    Next::Again
                }
                next => {
                    tracing::warn!(field = %field_id, reason = %why, "cloud refused a batch; retrying one message at a time");
                    next
                }
            },
            Outcome::Retry(why) => {
                let seqs: Vec<i64> = batch.iter().map(|m| m.seq).collect();
                let _ = fwd.store.note_attempt(&seqs).await;
                fwd.stats.failures.fetch_add(1, Ordering::Relaxed);
                let next = match policy.failed(batch.len(), random_u64()) {
                    Next::Probe => {
                        let moved = probe_past(&fwd, c, &field_id, &batch[0], &why).await;
                        policy.probed(moved, random_u64())
                    }
                    Next::Again => {
                        tracing::warn!(field = %field_id, reason = %why,
                            "a batch keeps failing; sending one message at a time");
                        Next::Again
                    }
                    next => next,
                };
                if let Next::Wait(wait) = next {
                    tracing::warn!(field = %field_id, reason = %why, retry_in_ms = wait.as_millis() as u64, "cloud delivery failed");
                }
                next
            }
        };
        if let Next::Wait(wait) = next {
            sleep_or_shutdown(wait, &mut shutdown).await;
        }
    }
}

async fn delivered(fwd: &Forwarder, field: &FieldId, batch: &[Pending]) {
    let seqs: Vec<i64> = batch.iter().map(|m| m.seq).collect();
    if let Err(e) = fwd.store.mark_forwarded(&seqs, fwd.clock.now_ms()).await {
        tracing::error!(field = %field, error = %e, "could not mark messages forwarded; they will be resent");
    }
    fwd.stats
        .forwarded
        .fetch_add(seqs.len() as u64, Ordering::Relaxed);
}

async fn dead_letter(fwd: &Forwarder, field: &FieldId, m: &Pending, why: &str) {
    if let Err(e) = fwd
        .store
        .dead_letter(field.as_str(), &[m.seq], why, fwd.clock.now_ms())
        .await
    {
        tracing::error!(field = %field, message = %m.id, error = %e, "could not dead-letter a message; it stays pending");
        return;
    }
    fwd.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
}

/// `suspect` has failed `poison_after` times alone. Sends the message after it: if the cloud fails that
/// one too, the cloud is down and nothing changes (`false`). If it takes it, `suspect` is tried once
/// more — a cloud that just came back takes it now — and, failing again, is what the cloud cannot take:
/// it is dead-lettered with the cloud's answer (`true`: the head of the outbox moved).
async fn probe_past(
    fwd: &Forwarder,
    c: &Client,
    field: &FieldId,
    suspect: &Pending,
    why: &str,
) -> bool {
    let next = match fwd.pending(field, 2).await {
        Ok(mut p) if p.len() == 2 && p[0].seq == suspect.seq => p.remove(1),
        _ => return false,
    };
    let next = [next];
    if deliver(c, field, &next).await != Outcome::Delivered {
        return false;
    }
    delivered(fwd, field, &next).await;
    let suspect = std::slice::from_ref(suspect);
    let last = match deliver(c, field, suspect).await {
        Outcome::Delivered => {
            delivered(fwd, field, suspect).await;
            return true;
        }
        Outcome::Retry(w) | Outcome::Refused(w) => w,
    };
    let reason = format!(
        "the cloud kept failing this message ({} attempts alone) while accepting the next one; answers: {why}; {last}",
        fwd.config.poison_after + 1
    );
    tracing::error!(field = %field, message = %suspect[0].id, reason = %reason, "cloud cannot take a message; dead-lettered");
    dead_letter(fwd, field, &suspect[0], &reason).await;
    fwd.stats.poisoned.fetch_add(1, Ordering::Relaxed);
    true
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_bodies_verbatim() {
        let batch = vec![Pending {
            seq: 1,
            id: "m1".into(),
            at: 0,
            device_id: Some("d_1".into()),
            body: Some(br#"{"x" : 1.50}"#.to_vec()),
            log_offset: None,
            forward_attempts: 0,
        }];
        let out = envelope(&FieldId("f_1".into()), &batch);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["messages"][0]["id"], "m1");
        assert_eq!(v["messages"][0]["field_id"], "f_1");
        assert_eq!(v["messages"][0]["received_at"], "1970-01-01T00:00:00Z");
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains(r#""data":{"x" : 1.50}"#)
        );
    }
}
