//! Sekisho's domain core: the plain types every subsystem speaks (fields, devices, messages, the device
//! protocol's error codes) and the pure functions on them (telemetry parsing, time).
//!
//! Architecture invariant: this crate does no I/O and knows nothing of HTTP servers, databases or TLS.
//! It may be used by any other crate; it uses none of them.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod clock;
pub mod detection;
pub mod ids;
pub mod json;
pub mod model;
pub mod protocol;
pub mod ratelog;
pub mod response;
pub mod span;
pub mod telemetry;
pub mod throttle;
pub mod time;
pub mod traffic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use detection::{Rule, RuleId, Severity, Threat, UnknownName};
pub use ids::{DeviceId, FieldId, MessageId, UserId};
pub use model::{AuthMode, CloudDestination, Device, DeviceStatus, Field, FieldLimits, Role, Sim};
pub use protocol::{ErrorBody, ErrorCode};
pub use response::{Action, ActionState};
pub use span::Span;
