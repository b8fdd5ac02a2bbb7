//! The device's side of Sekisho's device protocol v1: the reference client [`DeviceClient`] (token,
//! telemetry, the state self-report, and the update cycle: verify, refuse rollback, download, check
//! size and hash, write atomically, report) and the `sekisho-device` CLI built on it. The update
//! contract it implements (keys, manifests, error codes) is `sekisho-update`'s, re-exported here so a
//! device program needs this one crate.
//!
//! - [`client`]: [`DeviceClient`] over HTTPS.
//! - [`state`]: what the device keeps on disk ([`LocalState`]) and reports ([`DeviceState`]).
//!
//! Architecture invariant: only `client` talks to the network and only `state` touches the disk; the
//! crate knows nothing of the gateway's internals (it links no storage: `sekisho-update` is built
//! without its `gateway` feature here).
#![forbid(unsafe_code)]

pub mod client;
pub mod state;

pub use client::{
    Applied, ClientConfig, Credentials, DeviceClient, TokenInfo, UpdateResult, wants_update,
};
pub use sekisho_update::{
    Artifact, Kind, Manifest, PublicKey, SignedManifest, SigningKey, UpdateError, check_artifact,
    manifest, sha256_hex, sign, sign_payload, verify,
};
pub use state::{DeviceState, LocalState, Process, Software};
