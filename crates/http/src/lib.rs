//! Sekisho's HTTPS serving, shared by the device listener (ingest) and the admin listener (admin API and
//! console).
//!
//! - [`listener`]: the TLS accept loop — connection caps, plaintext refusal, handshake timeout, the
//!   peer's certificate, certificate reload, then HTTP/1.1 or HTTP/2 into an axum router.
//! - [`error`]: the one error body of both APIs (`{"error", "message"}`, `Retry-After`) and the JSON
//!   and query extractors whose refusals are that body ([`extract`]).
//! - [`body`]: content type, declared length and the bounded, timed body read.
//!
//! Architecture invariant: nothing here knows a route, a field or a device; the listener records the
//! connections it refuses as security events and nothing else.

#![forbid(unsafe_code)]

pub mod body;
pub mod error;
pub mod extract;
pub mod listener;

pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, ApiQuery};
pub use listener::{ConnInfo, ListenerSpec, ListenerStats};
