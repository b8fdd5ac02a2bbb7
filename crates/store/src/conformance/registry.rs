//! What every backend must do for the registry repository.

use super::*;
use sekisho_core::FieldLimits;

fn field() -> Field {
    Field {
        id: FieldId("f_1".into()),
        name: "cars".into(),
        auth_id: "auth-cars".into(),
        auth_mode: AuthMode::Either,
        limits: FieldLimits {
            max_body_bytes: 1000,
            ..Default::default()
        },
        cloud: None,
        created_at: 5,
    }
}

fn device(id: &str, unique: &str) -> Device {
    Device {
        id: DeviceId(id.into()),
        field_id: FieldId("f_1".into()),
        unique_id: unique.into(),
        name: None,
        sim: Some(Sim {
            imsi: "440101234567890".into(),
            iccid: None,
            msisdn: None,
        }),
        critical: true,
        status: DeviceStatus::Active,
        cert_sha256: None,
        created_at: 1,
        updated_at: 1,
    }
}
/// Fields and devices round trip.
pub async fn fields_and_devices_round_trip<R: Repos>(store: &R) {
    store.insert_field(&field()).await.unwrap();
    assert!(matches!(
        store.insert_field(&field()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.fields().await.unwrap(), vec![field()]);

    store
        .insert_device(&device("d_1", "IMEI1"), "hash")
        .await
        .unwrap();
    assert!(matches!(
        store.insert_device(&device("d_2", "IMEI1"), "h").await,
        Err(StoreError::Conflict(_))
    ));
    let row = store
        .device(&DeviceId("d_1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.device, device("d_1", "IMEI1"));

    // A deleted device frees its unique id for a new registration.
    assert!(
        store
            .set_device_status(&DeviceId("d_1".into()), DeviceStatus::Deleted, 2)
            .await
            .unwrap()
    );
    store
        .insert_device(&device("d_2", "IMEI1"), "h")
        .await
        .unwrap();
    assert_eq!(store.live_devices().await.unwrap().len(), 1);
}
/// Tokens are revoked per device.
pub async fn tokens_are_revoked_per_device<R: Repos>(store: &R) {
    let d = DeviceId("d_1".into());
    store.insert_token(&[1; 32], &d, 0, 100).await.unwrap();
    store.insert_token(&[2; 32], &d, 0, 100).await.unwrap();
    assert_eq!(store.live_tokens(50).await.unwrap().len(), 2);
    assert_eq!(store.live_tokens(100).await.unwrap().len(), 0);
    assert_eq!(store.revoke_tokens(&d).await.unwrap(), 2);
    assert_eq!(store.live_tokens(50).await.unwrap().len(), 0);
}
