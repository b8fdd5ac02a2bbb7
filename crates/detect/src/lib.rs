//! Threat detection (subsystem ③) as pure logic: a field's **template** (its normal behaviour and what
//! to do about deviations), the **compact per-device state** the built-in rules keep, the **rules** that
//! turn a message or an authentication attempt into findings, and the **silence wheel** that finds
//! devices that went quiet.
//!
//! Architecture invariant: no I/O and no clock. Every function takes the time it should use, so tests
//! drive time by hand; the gateway owns threads, storage and the bus.
#![forbid(unsafe_code)]

pub mod audit;
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
