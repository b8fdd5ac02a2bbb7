//! Stand-ins for what surrounds the gateway, for tests, demos and the README's tour — **not for
//! production**. Each is clearly named a simulator or stand-in wherever it shows itself.
//!
//! - [`cloud`]: a field's cloud service: an HTTPS receiver of the gateway's forwarding envelopes that
//!   keeps and prints what it gets (binary `sekisho-cloud-sim`).
//!
//! - [`carrier`]: a **carrier simulator**, an in-memory HTTP(S) server speaking the IoT-MVNO API the
//!   `mvno` connector of `sekisho-carrier` talks to (binary `sekisho-carrier-sim`). It lives here, not
//!   in `sekisho-carrier`, so the gateway never links a fake carrier. This crate's tests run the
//!   carrier connectors against it.
#![forbid(unsafe_code)]

pub mod carrier;
pub mod cloud;
