//! Threat detection (subsystem ③). Its pure part: a field's **template** (its normal behaviour and what
//! to do about deviations), the **compact per-device state** the built-in rules keep, the **rules** that
//! turn a message or an authentication attempt into findings, and the **silence wheel** that finds
//! devices that went quiet. Its run-time part, [`engine`]: the one consumer of the bus's `received`
//! topic, the silence worker and the sink that stores detections and publishes them for response.
//!
//! Architecture invariants: the pure modules do no I/O and read no clock (every function takes the time
//! it should use, so tests drive time by hand); only `engine` touches the store and the bus. Detection
//! never calls ingest or response: it consumes `received` and publishes `detections`.
#![forbid(unsafe_code)]

pub mod audit;
pub mod engine;
pub mod finding;
pub mod playbook;
pub mod rules;
pub mod silence;
pub mod state;
pub mod template;

pub use finding::{Finding, Severity, Threat};
pub use state::DeviceState;
pub use template::{Compiled, Template};

/// Where the template in force for a field is read (the detection engine holds them): response and
/// audit read a field's playbook and scripts through this, not through the engine's internals.
pub trait TemplateSource: Send + Sync {
    fn compiled(&self, field: &sekisho_core::FieldId) -> std::sync::Arc<Compiled>;
}
