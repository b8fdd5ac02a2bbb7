//! The script host's ties to the rest of the gateway: faults go to the store's script fault table, and
//! what a worker script emits becomes a finding (`script.<name>`) in detection's sink.

use super::{Detector, Found};
use crate::Finding;
use sekisho_core::{DeviceId, FieldId};
use sekisho_script::Emitted;
use sekisho_script::host::{FaultLog, Outlet, Pending, ScriptFault};
use sekisho_store::Store;
use sekisho_store::prelude::*;
use std::sync::Arc;

/// Records script faults in the store.
pub struct StoreFaults(pub Store);

impl FaultLog for StoreFaults {
    fn record(&self, f: ScriptFault) -> Pending {
        let store = self.0.clone();
        Box::pin(async move {
            if let Err(e) = store
                .insert_script_fault(f.at, &f.field.0, &f.script, f.kind, &f.message)
                .await
            {
                tracing::error!(error = %e, "script fault not recorded");
            }
        })
    }
}

/// The detector as the script worker's outlet.
pub struct DetectorOutlet(pub Arc<Detector>);

impl Outlet for DetectorOutlet {
    fn emitted(
        &self,
        field: &FieldId,
        device: Option<DeviceId>,
        script: &str,
        e: Emitted,
        at: i64,
    ) {
        let (_, finding) = Finding::from_script(script, e);
        self.0.emit_found(Found {
            field: field.clone(),
            device,
            finding,
            at,
        });
    }

    fn devices(&self, field: &FieldId) -> serde_json::Value {
        self.0.device_views(field, 10_000)
    }
}
