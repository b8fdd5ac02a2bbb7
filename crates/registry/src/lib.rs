//! ⑥ Device management: fields, devices and their credentials, as one service that owns the rule
//! "store first, then the in-memory view". Every change is written to the store; only when the store has
//! taken it does the view change, so a restart rebuilds the same view and no reader sees a device the
//! store does not have.
//!
//! Also here: the secrets every credential is made of ([`crypto`]) and the gateway's own certificates
//! ([`pki`]).
//!
//! Owns: the `fields`, `devices` and `tokens` the hot path reads. Must not touch: detection, response,
//! HTTP. Reads go through [`Index`] (`Registry` dereferences to it); writes only through `Registry`.

#![forbid(unsafe_code)]

pub mod crypto;
mod index;
pub mod pki;

pub use index::{DeviceEntry, Index};

use sekisho_core::{Device, DeviceId, DeviceStatus, Field};
use sekisho_store::Store;
use sekisho_store::prelude::*;

/// The registry: the store's fields, devices and tokens, and their in-memory view.
pub struct Registry {
    store: Store,
    index: Index,
}

impl std::ops::Deref for Registry {
    type Target = Index;

    fn deref(&self) -> &Index {
        &self.index
    }
}

impl Registry {
    /// Loads fields, live devices and live tokens from the store.
    pub async fn load(store: Store, now: i64) -> sekisho_store::Result<Self> {
        let index = Index::default();
        for f in store.fields().await? {
            index.put_field(f);
        }
        for d in store.live_devices().await? {
            index.put_device(d.device, d.secret_hash);
        }
        for (hash, device, expires_at) in store.live_tokens(now).await? {
            if let Ok(h) = <[u8; 32]>::try_from(hash.as_slice()) {
                index.put_token(h, &DeviceId(device), expires_at);
            }
        }
        Ok(Self { store, index })
    }

    /// Adds a new field.
    pub async fn create_field(&self, f: &Field) -> sekisho_store::Result<()> {
        self.store.insert_field(f).await?;
        self.index.put_field(f.clone());
        Ok(())
    }

    /// Replaces a field's name, authentication mode, limits or cloud destination.
    pub async fn update_field(&self, f: &Field) -> sekisho_store::Result<()> {
        self.store.update_field(f).await?;
        self.index.put_field(f.clone());
        Ok(())
    }

    /// Registers a new device with the Argon2id hash of its secret.
    pub async fn add_device(&self, d: &Device, secret_hash: String) -> sekisho_store::Result<()> {
        self.store.insert_device(d, &secret_hash).await?;
        self.index.put_device(d.clone(), secret_hash);
        Ok(())
    }

    /// Sets a device's status. Stopped or deleted, its tokens die at once; quarantined, it keeps them
    /// for the endpoints that stay open to it (state reports, updates) while its data is refused.
    pub async fn set_status(
        &self,
        entry: &DeviceEntry,
        status: DeviceStatus,
        now: i64,
    ) -> sekisho_store::Result<Device> {
        if entry.device.status != status {
            self.store
                .set_device_status(&entry.device.id, status, now)
                .await?;
        }
        if matches!(status, DeviceStatus::Disabled | DeviceStatus::Deleted) {
            self.store.revoke_tokens(&entry.device.id).await?;
            self.index.revoke_tokens(&entry.device.id);
        }
        let mut d = entry.device.clone();
        d.status = status;
        d.updated_at = now;
        self.index.put_device(d.clone(), entry.secret_hash.clone());
        Ok(d)
    }

    /// Registers (or with `None` removes) the SHA-256 fingerprint of a device's client certificate.
    pub async fn set_cert(
        &self,
        entry: &DeviceEntry,
        fingerprint: Option<&str>,
        now: i64,
    ) -> sekisho_store::Result<Device> {
        self.store
            .set_device_cert(&entry.device.id, fingerprint, now)
            .await?;
        let mut d = entry.device.clone();
        d.cert_sha256 = fingerprint.map(str::to_owned);
        d.updated_at = now;
        self.index.put_device(d.clone(), entry.secret_hash.clone());
        Ok(d)
    }

    /// Keeps a new access token (by its SHA-256) for a device until `expires_at`.
    pub async fn issue_token(
        &self,
        hash: [u8; 32],
        device: &DeviceId,
        now: i64,
        expires_at: i64,
    ) -> sekisho_store::Result<()> {
        self.store
            .insert_token(&hash, device, now, expires_at)
            .await?;
        self.index.put_token(hash, device, expires_at);
        Ok(())
    }

    /// Forgets expired tokens in the view and the store; returns how many live tokens are left.
    pub async fn purge_tokens(&self, now: i64) -> sekisho_store::Result<usize> {
        let left = self.index.purge_tokens(now);
        self.store.purge_tokens(now).await?;
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekisho_core::{FieldId, FieldLimits};

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn open(dir: &Dir) -> Store {
        sekisho_store::open(
            &dir.0.join("r.db"),
            &sekisho_store::DbKey::from_bytes([3; 32]),
            sekisho_store::StoreOptions::default(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_reload_rebuilds_the_same_view_and_a_stop_kills_the_tokens() {
        let dir =
            Dir(std::env::temp_dir().join(format!("sekisho-registry-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let field = Field {
            id: FieldId("fld_1".into()),
            name: "plant".into(),
            auth_id: "aid_1".into(),
            auth_mode: Default::default(),
            limits: FieldLimits::default(),
            cloud: None,
            created_at: 1,
        };
        let device = Device {
            id: DeviceId("dev_1".into()),
            field_id: field.id.clone(),
            unique_id: "u1".into(),
            name: None,
            sim: None,
            critical: false,
            status: DeviceStatus::Active,
            cert_sha256: None,
            created_at: 2,
            updated_at: 2,
        };
        let fp = "ab".repeat(32);
        {
            let reg = Registry::load(open(&dir).await, 0).await.unwrap();
            reg.create_field(&field).await.unwrap();
            reg.add_device(&device, "hash".into()).await.unwrap();
            reg.issue_token([9; 32], &device.id, 3, 1_000)
                .await
                .unwrap();
            let entry = reg.device(&device.id).unwrap();
            reg.set_cert(&entry, Some(&fp), 4).await.unwrap();
            assert_eq!(reg.token_device(&[9; 32], 10), Some(device.id.clone()));
        }
        let reg = Registry::load(open(&dir).await, 10).await.unwrap();
        assert_eq!(reg.field_by_auth_id("aid_1").unwrap().id, field.id);
        let entry = reg
            .device_by_cert(&[0xab; 32])
            .expect("the certificate survives a reload");
        assert_eq!(entry.secret_hash, "hash");
        assert_eq!(reg.token_device(&[9; 32], 10), Some(device.id.clone()));

        let stopped = reg
            .set_status(&entry, DeviceStatus::Disabled, 20)
            .await
            .unwrap();
        assert_eq!(stopped.status, DeviceStatus::Disabled);
        assert_eq!(
            reg.token_device(&[9; 32], 21),
            None,
            "a stopped device's tokens die at once"
        );
        let reg = Registry::load(open(&dir).await, 21).await.unwrap();
        assert_eq!(
            reg.token_device(&[9; 32], 21),
            None,
            "and stay dead after a reload"
        );
        assert_eq!(
            reg.device(&device.id).unwrap().device.status,
            DeviceStatus::Disabled
        );
    }
}
