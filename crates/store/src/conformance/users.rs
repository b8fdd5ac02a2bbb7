//! What every backend must do for the users repository.

use super::*;
use crate::users::*;

/// Users sessions and fields.
pub async fn users_sessions_and_fields<R: Repos>(store: &R) {
    store.insert_field(&field_named("f_1")).await.unwrap();
    let u = UserRow {
        id: UserId("u_1".into()),
        username: "alice".into(),
        password_hash: "h".into(),
        role: Role::FieldAdmin,
        fields: vec![FieldId("f_1".into())],
        created_at: 1,
        mfa_enabled: false,
    };
    store.insert_user(&u).await.unwrap();
    assert!(matches!(
        store.insert_user(&u).await,
        Err(StoreError::Conflict(_))
    ));
    let got = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(got.fields, vec![FieldId("f_1".into())]);
    assert_eq!(got.role, Role::FieldAdmin);

    store.insert_session(&[9; 32], &u.id, 100).await.unwrap();
    assert_eq!(
        store.session_user(&[9; 32], 50).await.unwrap(),
        Some(u.id.clone())
    );
    assert_eq!(store.session_user(&[9; 32], 100).await.unwrap(), None);
    store.delete_session(&[9; 32]).await.unwrap();
    assert_eq!(store.session_user(&[9; 32], 50).await.unwrap(), None);
}
/// Totp enrolment use and reset.
pub async fn totp_enrolment_use_and_reset<R: Repos>(store: &R) {
    let u = UserRow {
        id: UserId("u_1".into()),
        username: "bob".into(),
        password_hash: "h".into(),
        role: Role::Maintainer,
        fields: vec![],
        created_at: 1,
        mfa_enabled: false,
    };
    store.insert_user(&u).await.unwrap();
    let st = store.totp_state(&u.id).await.unwrap().unwrap();
    assert!(st.secret.is_none() && !st.enabled && st.last_step.is_none());
    assert!(!store.clear_totp(&u.id).await.unwrap(), "nothing to clear");
    assert!(!store.use_totp_step(&u.id, 5).await.unwrap(), "not enabled");

    // Enrolment: a newer pending secret replaces the first; only the pending one can be enabled.
    assert!(store.set_pending_totp(&u.id, b"first").await.unwrap());
    assert!(store.set_pending_totp(&u.id, b"second").await.unwrap());
    assert!(!store.enable_totp(&u.id, b"first", 10).await.unwrap());
    assert!(store.enable_totp(&u.id, b"second", 10).await.unwrap());
    assert!(store.user(&u.id).await.unwrap().unwrap().mfa_enabled);
    assert!(!store.set_pending_totp(&u.id, b"third").await.unwrap());
    let st = store.totp_state(&u.id).await.unwrap().unwrap();
    assert_eq!(
        (st.secret.as_deref(), st.enabled),
        (Some(&b"second"[..]), true)
    );
    assert!(
        !format!("{st:?}").contains("second"),
        "Debug hides the secret"
    );

    // Each step once, never an earlier one.
    assert!(!store.use_totp_step(&u.id, 10).await.unwrap());
    assert!(store.use_totp_step(&u.id, 11).await.unwrap());
    assert!(!store.use_totp_step(&u.id, 11).await.unwrap());
    assert!(!store.use_totp_step(&u.id, 9).await.unwrap());

    assert!(store.clear_totp(&u.id).await.unwrap());
    let st = store.totp_state(&u.id).await.unwrap().unwrap();
    assert!(st.secret.is_none() && !st.enabled && st.last_step.is_none());
    assert!(!store.user(&u.id).await.unwrap().unwrap().mfa_enabled);
}
