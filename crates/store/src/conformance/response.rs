//! What every backend must do for the response repository.

use super::*;
use crate::response::*;

fn decision(detection: i64, severity: Severity) -> NewDecision {
    NewDecision {
        at: 10,
        detection_id: detection,
        severity,
        field_id: "f".into(),
        device_id: Some("d".into()),
        threat: Threat::Hijacking,
        rule: sekisho_core::Rule::RateMax.into(),
        decided_by: "actions.hijacking".into(),
        suppressed_by: None,
        note: None,
    }
}

fn action(name: Action, state: ActionState) -> NewAction {
    NewAction {
        field_id: "f".into(),
        device_id: Some("d".into()),
        action: name,
        state,
        trigger: "response:1".into(),
        input: None,
        undo_of: None,
    }
}
/// A detection is decided once and actions run once.
pub async fn a_detection_is_decided_once_and_actions_run_once<R: Repos>(store: &R) {
    let acts = [
        action(Action::StopAuth, ActionState::Pending),
        action(Action::NotifyAdmin, ActionState::Pending),
    ];
    let id = store
        .decide(&decision(1, Severity::High), &acts)
        .await
        .unwrap();
    assert!(id.is_some());
    assert_eq!(
        store
            .decide(&decision(1, Severity::High), &acts)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .decide(&decision(1, Severity::Critical), &[])
            .await
            .unwrap()
            .is_some()
    );

    // The mail waits for the decision's other actions, at most the hold time.
    let held = store.due_actions(10, 30_000, 10).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].action, Action::StopAuth);
    let due = store.due_actions(10, 0, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    // Claiming is exclusive.
    assert!(
        store
            .move_action(
                due[0].id,
                ActionState::Pending,
                ActionState::Running,
                None,
                11
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .move_action(
                due[0].id,
                ActionState::Pending,
                ActionState::Running,
                None,
                11
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .move_action(
                due[1].id,
                ActionState::Pending,
                ActionState::Running,
                None,
                11
            )
            .await
            .unwrap()
    );
    // A restart while both run: the idempotent one runs again, the mail is never sent twice.
    let (requeued, interrupted) = store.recover_running(12).await.unwrap();
    assert_eq!((requeued, interrupted), (1, 1));
    let a = store.action(due[1].id).await.unwrap().unwrap();
    assert_eq!((a.state, a.attempts), (ActionState::Interrupted, 1));
    assert_eq!(store.due_actions(12, 0, 10).await.unwrap().len(), 1);
    assert!(store.undecided_detections(0, 10).await.unwrap().is_empty());
}
