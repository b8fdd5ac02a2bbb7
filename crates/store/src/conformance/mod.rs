//! The conformance suite: what every storage backend must do, written once against the repository
//! traits. The SQLite backend runs it in this crate's tests; another backend (PostgreSQL) runs the
//! same cases with the `conformance` feature: each case takes a fresh, empty, migrated store.

pub mod audit;
pub mod detections;
pub mod registry;
pub mod response;
pub mod users;

pub use crate::Repos;
pub use crate::StoreError;
pub use crate::prelude::*;
pub use sekisho_core::{
    Action, ActionState, AuthMode, Device, DeviceId, DeviceStatus, Field, FieldId, FieldLimits,
    Role, RuleId, Severity, Sim, Threat, UserId,
};

/// A field to hang rows on.
pub fn field_named(id: &str) -> Field {
    Field {
        id: FieldId(id.into()),
        name: "n".into(),
        auth_id: format!("auth-{id}"),
        auth_mode: AuthMode::Secret,
        limits: FieldLimits::default(),
        cloud: None,
        created_at: 0,
    }
}

/// Defines one `#[tokio::test]` per conformance case, each on a fresh store made by `$open(name)`
/// (an async function returning a tuple whose first element implements [`Repos`]; the rest is kept
/// alive for the case, e.g. a temporary directory).
#[macro_export]
macro_rules! conformance_suite {
    ($open:path) => {
        $crate::conformance_suite!(@case $open, registry, fields_and_devices_round_trip);
        $crate::conformance_suite!(@case $open, registry, tokens_are_revoked_per_device);
        $crate::conformance_suite!(@case $open, users, users_sessions_and_fields);
        $crate::conformance_suite!(@case $open, users, totp_enrolment_use_and_reset);
        $crate::conformance_suite!(@case $open, detections, templates_are_versioned_and_detections_grouped);
        $crate::conformance_suite!(@case $open, response, a_detection_is_decided_once_and_actions_run_once);
        $crate::conformance_suite!(@case $open, audit, baselines_are_versioned_and_the_current_ones_listed);
    };
    (@case $open:path, $module:ident, $case:ident) => {
        #[tokio::test]
        async fn $case() {
            let backend = $open(stringify!($case)).await;
            $crate::conformance::$module::$case(&backend.0).await;
        }
    };
}
