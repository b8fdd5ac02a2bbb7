//! The detection feed: reads the message log by offset and publishes each message of a known device
//! on the `received` topic, in log order. The request handler only waits for its message to be
//! durable; what detection sees comes from the log, so a client that hangs up, or a crash after the
//! `202`, cannot keep a stored message from being judged.
//!
//! Its place is `log_cursors.detection`, stored before each batch is published (a commit that is not
//! fsynced by itself, like the indexer's). So a message is never judged twice across a crash, which
//! would decide its incident and run its response a second time; what was published but still queued
//! on the topic when the process was killed is not judged, as before the feed existed. (A power cut may
//! undo the last stored places, and those batches are then judged again.) A first start (no place stored) begins at the end of the log: messages
//! written by a version without the feed were judged by that version.

use bytes::Bytes;
use sekisho_bus::{Publisher, Received, ReceivedMessage};
use sekisho_core::telemetry::TelemetryMeta;
use sekisho_core::{DeviceId, ErrorCode, FieldId};
use sekisho_store::Store;
use sekisho_store::journal::{self, DETECTION, Journal};
use sekisho_store::records::{MessageRecord, Record};
use std::time::Duration;
use tokio::sync::watch;

/// Records read from the log at a time.
const BATCH: usize = 1024;

/// The topic event of a logged message, `None` for a message of no known device (refused before
/// authentication: detection has nothing to judge it against).
pub fn event(m: MessageRecord) -> Option<Received> {
    let (Some(field), Some(device)) = (m.field_id, m.device_id) else {
        return None;
    };
    let rejected = match m.rejected {
        Some(code) => Some(code.parse::<ErrorCode>().ok()?),
        None => None,
    };
    let meta = rejected.is_none().then_some(TelemetryMeta {
        device_ts: m.device_ts,
        bad_ts: m.bad_ts,
        seq: m.device_seq,
        buffered: m.buffered,
    });
    Some(Received::Message(ReceivedMessage {
        field: FieldId(field),
        device: DeviceId(device),
        rx_ms: m.at,
        source_ip: m.source_ip.parse().ok()?,
        size: m.size.clamp(0, u32::MAX as i64) as u32,
        rejected,
        meta,
        body: m.body.map(Bytes::from),
    }))
}

/// Where the feed starts: its stored place, or the end of the log on a first start (no place stored).
/// Read it before anything can append (before the listeners open), so that no message falls between
/// the end of the log read here and the feed's first read. It also holds the log's segments from
/// there on for the feed.
pub async fn start(journal: &Journal, store: &Store) -> sekisho_store::Result<u64> {
    let log = journal.log();
    let at = match journal::stored_cursor(store, DETECTION).await? {
        Some(at) => at.max(log.start()),
        None => log.durable(),
    };
    journal.set_judged(at);
    Ok(at)
}

/// Publishes the log's messages on `received` from `from` (see [`start`]) until `stopped` is set and
/// the feed has reached the end of the log.
pub async fn run(
    journal: Journal,
    store: Store,
    received: Publisher<Received>,
    from: u64,
    mut stopped: watch::Receiver<bool>,
) {
    let log = journal.log().clone();
    let mut at = from;
    let mut saved = u64::MAX;
    let mut durable = log.subscribe();
    loop {
        let reader = log.clone();
        let entries = match tokio::task::spawn_blocking(move || reader.read(at, BATCH)).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::error!(error = %e, offset = at, "the detection feed cannot read the log; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
            Err(_) => break,
        };
        if let Some(last) = entries.last().map(|e| e.offset) {
            // The place first: a crash from here on skips this batch rather than judging it twice.
            if save(&store, last + 1).await {
                saved = last + 1;
            }
            for e in entries {
                // A record of no known device has nothing to judge; the indexer reports records it
                // cannot read, one by one.
                let Some(Some(ev)) = journal::decode(&e.bytes).map(event) else {
                    continue;
                };
                if received.publish(ev).await.is_err() {
                    tracing::error!("the received topic is closed: detection is not running");
                    return;
                }
            }
            at = last + 1;
            journal.set_judged(at);
        } else if *stopped.borrow() {
            break;
        }
        if at >= log.durable() {
            tokio::select! {
                r = durable.wait_for(|d| *d > at) => if r.is_err() { break },
                _ = stopped.wait_for(|s| *s) => {}
            }
        }
    }
    if at != saved {
        save(&store, at).await;
    }
}

async fn save(store: &Store, at: u64) -> bool {
    let place = Record::Cursor {
        name: DETECTION,
        offset: at as i64,
    };
    match store.writer.write_rebuildable(vec![place]).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "the detection feed could not store its place");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekisho_bus::{Bus, DETECTION_GROUP, LocalBus};
    use sekisho_store::{DbKey, StoreOptions};

    fn message(i: i64, device: Option<&str>, rejected: Option<&'static str>) -> MessageRecord {
        MessageRecord {
            id: format!("m{i}"),
            at: 1_000 + i,
            field_id: device.map(|_| "f1".to_owned()),
            device_id: device.map(str::to_owned),
            source_ip: "192.0.2.7".into(),
            size: 9,
            rejected,
            device_ts: Some(i),
            device_seq: Some(i),
            buffered: false,
            bad_ts: i == 11,
            body: rejected
                .is_none()
                .then(|| format!("{{\"i\":{i}}}").into_bytes()),
            log_offset: None,
        }
    }

    fn rx(e: &Received) -> (i64, Option<ErrorCode>, Option<bool>) {
        match e {
            Received::Message(m) => (m.rx_ms, m.rejected, m.meta.map(|t| t.bad_ts)),
            other => panic!("not a message: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_feed_publishes_known_devices_messages_in_log_order_and_resumes_from_its_place() {
        let dir = std::env::temp_dir().join(format!("sekisho-feed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = DbKey::from_bytes([9; 32]);
        let store = sekisho_store::open(&dir.join("t.db"), &key, StoreOptions::default())
            .await
            .unwrap();
        let bus = LocalBus::new(64);
        let sub = bus.subscribe_received(DETECTION_GROUP).unwrap();
        let mut seen = Vec::new();
        for round in 0..2 {
            let (log, _) =
                sekisho_log::Log::open(&dir.join("log"), [4; 32], Default::default()).unwrap();
            let journal = Journal::new(log, 0);
            if round == 0 {
                // Written before the feed ever ran: a first start begins at the end of the log.
                journal
                    .append(&[message(0, Some("d1"), None)])
                    .unwrap()
                    .await
                    .unwrap();
            }
            let (stop, stopped) = watch::channel(false);
            let from = start(&journal, &store).await.unwrap();
            let task = tokio::spawn(run(
                journal.clone(),
                store.clone(),
                bus.received(),
                from,
                stopped,
            ));
            let base = 1 + round * 10;
            let recs = [
                message(base, Some("d1"), None),
                // Refused before authentication: nothing to judge it against.
                message(base + 1, None, Some("invalid_token")),
                message(base + 2, Some("d1"), Some("malformed_json")),
            ];
            journal.append(&recs).unwrap().await.unwrap();
            for _ in 0..2 {
                seen.push(rx(&sub.next().await.unwrap()));
            }
            if round == 0 {
                // Appended while the feed is stopped: the next start picks it up from the stored place.
                stop.send(true).unwrap();
                task.await.unwrap();
                journal
                    .append(&[message(5, Some("d1"), None)])
                    .unwrap()
                    .await
                    .unwrap();
                assert_eq!(journal::cursor(&store, DETECTION).await.unwrap(), 4);
            } else {
                seen.push(rx(&sub.next().await.unwrap()));
                stop.send(true).unwrap();
                task.await.unwrap();
                assert_eq!(journal::cursor(&store, DETECTION).await.unwrap(), 8);
            }
            journal.log().close();
        }
        let malformed = Some(ErrorCode::MalformedJson);
        assert_eq!(
            seen,
            vec![
                (1001, None, Some(false)),
                (1003, malformed, None),
                (1005, None, Some(false)),
                (1011, None, Some(true)),
                (1013, malformed, None),
            ]
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
