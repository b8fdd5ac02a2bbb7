//! What every backend must do for the detections repository.

use super::*;
use crate::detections::*;

/// Templates are versioned and detections grouped.
pub async fn templates_are_versioned_and_detections_grouped<R: Repos>(store: &R) {
    store.insert_field(&field_named("f")).await.unwrap();
    assert_eq!(
        store
            .insert_template("f", "admin", "{\"v\":1}", 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .insert_template("f", "alice", "{\"v\":2}", 2)
            .await
            .unwrap(),
        2
    );
    let cur = store.current_templates().await.unwrap();
    assert_eq!(
        (cur.len(), cur[0].version, cur[0].created_by.as_str()),
        (1, 2, "alice")
    );
    assert_eq!(store.template_versions("f").await.unwrap().len(), 2);

    let d = NewDetection {
        field_id: "f",
        device_id: Some("d1"),
        rule: &RuleId::from(sekisho_core::Rule::RateMax),
        threat: Threat::Hijacking,
        severity: Severity::Medium,
        summary: "s",
        evidence: "{}",
        at: 10,
    };
    let id = store.insert_detection(&d).await.unwrap();
    store
        .update_detection(id, 2, Severity::High, "s2", "{\"n\":2}", 20)
        .await
        .unwrap();
    store
        .insert_detection(&NewDetection {
            device_id: Some("d2"),
            rule: &RuleId::from(sekisho_core::Rule::SeqReused),
            ..d
        })
        .await
        .unwrap();
    let all = store
        .search_detections(&DetectionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let one = store
        .search_detections(&DetectionFilter {
            device: Some("d1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (one[0].count, one[0].last_at, one[0].severity),
        (2, 20, Severity::High)
    );
    let none = store
        .search_detections(&DetectionFilter {
            visible_fields: Some(vec!["other".into()]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}
