//! The in-memory view of the registry that the hot path reads: fields by auth ID, devices by id,
//! unique ID, certificate and IMSI, live tokens by hash. Only [`crate::Registry`] changes it, after the
//! store has taken the change.
//!
//! Architecture invariant: no lock here is held across an `.await`.

use sekisho_core::{Device, DeviceId, DeviceStatus, Field, FieldId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A device with what authentication needs.
#[derive(Debug)]
pub struct DeviceEntry {
    pub device: Device,
    pub secret_hash: String,
}

#[derive(Clone, Copy, Debug)]
struct TokenEntry {
    device: u64,
    expires_at: i64,
}

#[derive(Default)]
struct Inner {
    fields: HashMap<FieldId, Arc<Field>>,
    fields_by_auth_id: HashMap<String, FieldId>,
    devices: HashMap<DeviceId, Arc<DeviceEntry>>,
    by_unique_id: HashMap<(FieldId, String), DeviceId>,
    by_cert: HashMap<[u8; 32], DeviceId>,
    /// Devices by their SIM's IMSI (the carrier's key).
    by_imsi: HashMap<String, DeviceId>,
    /// Token hash → (device key, expiry); device keys index `device_keys` to keep entries small.
    tokens: HashMap<[u8; 32], TokenEntry>,
    device_keys: HashMap<u64, DeviceId>,
    key_of: HashMap<DeviceId, u64>,
    next_key: u64,
}

/// The view itself; [`crate::Registry`] dereferences to it for reads.
#[derive(Default)]
pub struct Index {
    inner: RwLock<Inner>,
}

fn cert_key(hex_fp: &str) -> Option<[u8; 32]> {
    hex::decode(hex_fp).ok()?.try_into().ok()
}

impl Index {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn put_field(&self, f: Field) {
        let mut g = self.write();
        g.fields_by_auth_id.insert(f.auth_id.clone(), f.id.clone());
        g.fields.insert(f.id.clone(), Arc::new(f));
    }

    pub fn field(&self, id: &FieldId) -> Option<Arc<Field>> {
        self.read().fields.get(id).cloned()
    }

    pub fn field_by_auth_id(&self, auth_id: &str) -> Option<Arc<Field>> {
        let g = self.read();
        g.fields_by_auth_id
            .get(auth_id)
            .and_then(|id| g.fields.get(id))
            .cloned()
    }

    pub fn fields(&self) -> Vec<Arc<Field>> {
        let mut v: Vec<_> = self.read().fields.values().cloned().collect();
        v.sort_by_key(|f| f.created_at);
        v
    }

    /// Adds or replaces a device (a deleted device is removed instead).
    pub(crate) fn put_device(&self, d: Device, secret_hash: String) {
        let mut g = self.write();
        if let Some(old) = g.devices.get(&d.id).cloned() {
            g.by_unique_id
                .remove(&(old.device.field_id.clone(), old.device.unique_id.clone()));
            if let Some(k) = old.device.cert_sha256.as_deref().and_then(cert_key) {
                g.by_cert.remove(&k);
            }
            if let Some(sim) = &old.device.sim {
                g.by_imsi.remove(&sim.imsi);
            }
        }
        if d.status == DeviceStatus::Deleted {
            g.devices.remove(&d.id);
            return;
        }
        g.by_unique_id
            .insert((d.field_id.clone(), d.unique_id.clone()), d.id.clone());
        if let Some(k) = d.cert_sha256.as_deref().and_then(cert_key) {
            g.by_cert.insert(k, d.id.clone());
        }
        if let Some(sim) = &d.sim {
            g.by_imsi.insert(sim.imsi.clone(), d.id.clone());
        }
        g.devices.insert(
            d.id.clone(),
            Arc::new(DeviceEntry {
                device: d,
                secret_hash,
            }),
        );
    }

    pub fn device(&self, id: &DeviceId) -> Option<Arc<DeviceEntry>> {
        self.read().devices.get(id).cloned()
    }

    pub fn device_by_unique_id(
        &self,
        field: &FieldId,
        unique_id: &str,
    ) -> Option<Arc<DeviceEntry>> {
        let g = self.read();
        g.by_unique_id
            .get(&(field.clone(), unique_id.to_owned()))
            .and_then(|id| g.devices.get(id))
            .cloned()
    }

    pub fn device_by_cert(&self, fp: &[u8; 32]) -> Option<Arc<DeviceEntry>> {
        let g = self.read();
        g.by_cert.get(fp).and_then(|id| g.devices.get(id)).cloned()
    }

    /// The device whose SIM has this IMSI.
    pub fn device_by_imsi(&self, imsi: &str) -> Option<Arc<DeviceEntry>> {
        let g = self.read();
        g.by_imsi
            .get(imsi)
            .and_then(|id| g.devices.get(id))
            .cloned()
    }

    pub fn devices_of(&self, field: &FieldId) -> Vec<Arc<DeviceEntry>> {
        let mut v: Vec<_> = self
            .read()
            .devices
            .values()
            .filter(|d| &d.device.field_id == field)
            .cloned()
            .collect();
        // Oldest first; the id settles devices registered in the same millisecond (stable pages).
        v.sort_by(|a, b| {
            (a.device.created_at, &a.device.id.0).cmp(&(b.device.created_at, &b.device.id.0))
        });
        v
    }

    pub fn device_count(&self) -> usize {
        self.read().devices.len()
    }

    pub(crate) fn put_token(&self, hash: [u8; 32], device: &DeviceId, expires_at: i64) {
        let mut g = self.write();
        let key = match g.key_of.get(device) {
            Some(k) => *k,
            None => {
                g.next_key += 1;
                let k = g.next_key;
                g.key_of.insert(device.clone(), k);
                g.device_keys.insert(k, device.clone());
                k
            }
        };
        g.tokens.insert(
            hash,
            TokenEntry {
                device: key,
                expires_at,
            },
        );
    }

    /// The device a live token belongs to.
    pub fn token_device(&self, hash: &[u8; 32], now: i64) -> Option<DeviceId> {
        let g = self.read();
        let t = g.tokens.get(hash)?;
        if t.expires_at <= now {
            return None;
        }
        g.device_keys.get(&t.device).cloned()
    }

    /// Drops every token of a device, at once.
    pub(crate) fn revoke_tokens(&self, device: &DeviceId) {
        let mut g = self.write();
        if let Some(k) = g.key_of.remove(device) {
            g.device_keys.remove(&k);
            g.tokens.retain(|_, t| t.device != k);
        }
    }

    /// Forgets expired tokens; returns how many are left.
    pub(crate) fn purge_tokens(&self, now: i64) -> usize {
        let mut g = self.write();
        g.tokens.retain(|_, t| t.expires_at > now);
        g.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, status: DeviceStatus, cert: Option<&str>) -> Device {
        Device {
            id: DeviceId(id.into()),
            field_id: FieldId("f".into()),
            unique_id: format!("u-{id}"),
            name: None,
            sim: None,
            critical: false,
            status,
            cert_sha256: cert.map(str::to_owned),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn tokens_follow_their_device() {
        let r = Index::default();
        let fp = "11".repeat(32);
        r.put_device(device("d1", DeviceStatus::Active, Some(&fp)), "h".into());
        r.put_token([1; 32], &DeviceId("d1".into()), 100);
        assert_eq!(r.token_device(&[1; 32], 50), Some(DeviceId("d1".into())));
        assert_eq!(r.token_device(&[1; 32], 100), None, "expired");
        assert!(r.device_by_cert(&[0x11; 32]).is_some());
        assert!(
            r.device_by_unique_id(&FieldId("f".into()), "u-d1")
                .is_some()
        );

        r.revoke_tokens(&DeviceId("d1".into()));
        assert_eq!(r.token_device(&[1; 32], 50), None);

        r.put_device(device("d1", DeviceStatus::Deleted, Some(&fp)), "h".into());
        assert!(r.device(&DeviceId("d1".into())).is_none());
        assert!(r.device_by_cert(&[0x11; 32]).is_none());
        assert!(
            r.device_by_unique_id(&FieldId("f".into()), "u-d1")
                .is_none()
        );
    }
}
