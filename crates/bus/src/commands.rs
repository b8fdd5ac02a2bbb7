//! Commands waiting for devices: what response and update management want a device to do, given on
//! its telemetry and state responses (`202 {"commands": [...]}`) until done. In process a shared map;
//! the commands topic of a distributed deployment takes its place.

use sekisho_core::DeviceId;
use std::collections::HashMap;
use std::sync::RwLock;

/// Commands waiting for devices, given on their telemetry responses (`202 {"commands": [...]}`) until
/// done: today the updates asked by `push_update` (update management completes them).
#[derive(Default)]
pub struct Commands(RwLock<HashMap<DeviceId, Vec<serde_json::Value>>>);

impl Commands {
    pub fn push(&self, device: &DeviceId, command: serde_json::Value) {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        g.entry(device.clone()).or_default().push(command);
    }

    /// Keeps only the device's commands for which `keep` holds.
    pub fn retain(&self, device: &DeviceId, keep: impl Fn(&serde_json::Value) -> bool) {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = g.get_mut(device) {
            v.retain(|c| keep(c));
            if v.is_empty() {
                g.remove(device);
            }
        }
    }

    pub fn clear(&self, device: &DeviceId) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(device);
    }

    /// The device's pending commands (one read lock; nothing is allocated when there are none).
    pub fn for_device(&self, device: &DeviceId) -> Vec<serde_json::Value> {
        let g = self.0.read().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() {
            return Vec::new();
        }
        g.get(device).cloned().unwrap_or_default()
    }
}
