//! Stand-ins for what surrounds the gateway, for tests, demos and the README's tour — **not for
//! production**. Each is clearly named a simulator or stand-in wherever it shows itself.
//!
//! - [`cloud`]: a field's cloud service: an HTTPS receiver of the gateway's forwarding envelopes that
//!   keeps and prints what it gets (binary `sekisho-cloud-sim`).
//!
//! The carrier simulator (`sekisho-carrier-sim`) lives in `sekisho-carrier` for now.
#![forbid(unsafe_code)]

pub mod cloud;
