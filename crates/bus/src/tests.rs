use super::*;
use sekisho_core::{DeviceId, FieldId};
use std::net::{IpAddr, Ipv4Addr};

fn auth(n: i64) -> Received {
    Received::Auth(ReceivedAuth {
        field: FieldId("f".into()),
        device: Some(DeviceId("d".into())),
        at_ms: n,
        success: true,
        unique_id: "u".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        malformed: false,
    })
}

fn at(r: &Received) -> i64 {
    match r {
        Received::Auth(a) => a.at_ms,
        _ => -1,
    }
}

#[tokio::test]
async fn received_keeps_order_and_waits_when_full() {
    let bus = LocalBus::new(2);
    let p = bus.received();
    let sub = bus.subscribe_received(DETECTION_GROUP).unwrap();
    p.publish(auth(1)).await.unwrap();
    p.publish(auth(2)).await.unwrap();
    assert_eq!(p.queued(), 2);
    // The third waits until the subscriber takes one: backpressure, not loss.
    let third = tokio::spawn({
        let p = p.clone();
        async move { p.publish(auth(3)).await }
    });
    tokio::task::yield_now().await;
    assert!(
        !third.is_finished(),
        "a full queue makes the publisher wait"
    );
    assert_eq!(sub.next().await.as_ref().map(at), Some(1));
    third.await.unwrap().unwrap();
    assert_eq!(p.stats().waited.load(Ordering::Relaxed), 1);
    let mut batch = Vec::new();
    assert_eq!(sub.next_batch(10, &mut batch).await, Some(2));
    assert_eq!(batch.iter().map(at).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(p.stats().published.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn the_topic_ends_when_every_publisher_is_gone() {
    let bus = LocalBus::new(4);
    let sub = bus.subscribe_received(DETECTION_GROUP).unwrap();
    bus.received().publish(auth(7)).await.unwrap();
    drop(bus);
    assert_eq!(sub.next().await.as_ref().map(at), Some(7));
    assert_eq!(sub.next().await, None);
    assert!(
        LocalBus::new(1).subscribe_received("audit").is_err(),
        "one group in-process"
    );
}

#[tokio::test]
async fn detections_reach_every_subscriber() {
    let bus = LocalBus::new(4);
    let event = DetectionEvent {
        id: 1,
        field_id: "f".into(),
        device_id: None,
        rule: sekisho_core::Rule::RateMax.into(),
        threat: sekisho_core::Threat::Hijacking,
        severity: sekisho_core::Severity::High,
    };
    assert_eq!(
        bus.publish_detection(event.clone()),
        Err(BusError::NoSubscriber("detections"))
    );
    let (mut a, mut b) = (bus.subscribe_detections(), bus.subscribe_detections());
    bus.publish_detection(event.clone()).unwrap();
    assert_eq!(a.recv().await.unwrap(), event);
    assert_eq!(b.recv().await.unwrap(), event);
}
