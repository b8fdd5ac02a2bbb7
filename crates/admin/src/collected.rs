//! The device information `collect_info` records (V29): its registration, the carrier's view of its
//! SIM, its latest messages, authentication attempts, detections and actions, in the admin API's own
//! views — the report is an answer of this API, so the admin side builds it for the responder.

use super::views::audit::StateView;
use super::views::carrier::SimSessionView;
use super::views::history::{AuthAttemptView, MessageView};
use super::views::response::{ActionView, DetectionView};
use sekisho_carrier::sims::Sims;
use sekisho_core::Device;
use sekisho_core::clock::SharedClock;
use sekisho_store::history::Filter;
use sekisho_store::prelude::*;
use sekisho_store::{Store, StoreError};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Builds the report from the store and the live SIM table.
pub struct Collected {
    pub store: Store,
    pub sims: Arc<Sims>,
    pub clock: SharedClock,
}

impl Collected {
    async fn report(&self, device: &Device) -> Result<Value, StoreError> {
        let filter = Filter {
            device: Some(device.id.0.clone()),
            limit: 20,
            ..Default::default()
        };
        let messages = self.store.search_messages(&filter).await?;
        let auth = self.store.search_auth_attempts(&filter).await?;
        let detections = self
            .store
            .search_detections(&sekisho_store::detections::DetectionFilter {
                field: Some(device.field_id.0.clone()),
                device: Some(device.id.0.clone()),
                limit: 20,
                ..Default::default()
            })
            .await?;
        let actions = self
            .store
            .actions(&sekisho_store::response::ActionFilter {
                device: Some(device.id.0.clone()),
                limit: 20,
                ..Default::default()
            })
            .await?;
        let self_report = self
            .store
            .states(&device.id.0, None, 1)
            .await?
            .into_iter()
            .next()
            .map(StateView::from);
        let sim = device.sim.as_ref().map(|s| {
            let session = self.sims.session(&s.imsi).map(SimSessionView::from);
            json!({"registered": s, "session": session})
        });
        Ok(json!({
            "collected_at": sekisho_core::time::rfc3339(self.clock.now_ms()),
            "device": {"id": device.id.0, "field_id": device.field_id.0, "unique_id": device.unique_id,
                "name": device.name, "status": device.status.as_str(), "critical": device.critical,
                "created_at": sekisho_core::time::rfc3339(device.created_at),
                "certificate_sha256": device.cert_sha256},
            "sim": sim,
            "self_report": self_report,
            "recent_messages": messages.into_iter().map(MessageView::from).collect::<Vec<_>>(),
            "recent_auth_attempts": auth.into_iter().map(AuthAttemptView::from).collect::<Vec<_>>(),
            "detections": detections.into_iter().map(DetectionView::from).collect::<Vec<_>>(),
            "actions": actions.into_iter().map(ActionView::from).collect::<Vec<_>>(),
        }))
    }
}

impl sekisho_respond::Collector for Collected {
    fn collect<'a>(
        &'a self,
        device: &'a Device,
    ) -> Pin<Box<dyn Future<Output = Result<Value, StoreError>> + Send + 'a>> {
        Box::pin(self.report(device))
    }
}
