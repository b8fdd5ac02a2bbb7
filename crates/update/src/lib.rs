//! Sekisho updates and device audit (subsystem ⑤, spec §3 "Update", §5.5).
//!
//! The contract both sides share (always built, no gateway dependency):
//! - [`keys`]: the publisher's [`SigningKey`] and the [`PublicKey`]s devices trust, `key_id`.
//! - [`manifest`]: [`Manifest`], [`SignedManifest`], [`sign`], [`verify`], [`check_artifact`].
//! - [`error`]: [`UpdateError`] and its stable codes.
//!
//! The gateway's run time (feature `gateway`):
//! - `keyring`: the gateway's signing key, created at the first start, rotated with the old public
//!   keys still published.
//! - `campaigns`: [`campaigns::Campaigns`], approved versions rolled out to a field's devices, staged,
//!   halted on rejections, confirmed by self-reports.
//! - `audit`: [`audit::Auditor`], each self-report stored, diffed and judged against the device's
//!   baseline and the field's audit scripts; the periodic check for devices that stopped reporting.
//!
//! The device's side (the reference client and the `sekisho-device` CLI) is the crate
//! `sekisho-device`; it builds this crate without `gateway`, so a device links no storage.
//!
//! Architecture invariants: `keys` and `manifest` do no I/O. The run-time modules get their handles at
//! construction (store, registry, commands, clock, where findings go) and never call detection or
//! response directly: findings go to the detection sink through [`sekisho_detect::engine::Findings`].
//!
//! # The contract (device protocol v1, update part)
//!
//! **Keys.** Ed25519. A public key is exchanged as base64 of its 32 bytes or as SPKI PEM
//! (`-----BEGIN PUBLIC KEY-----`); the private key as PKCS#8 PEM (or base64 of the 32-byte seed) in a
//! file of mode 0600. `key_id` = lowercase hex of the first 8 bytes of SHA-256 of the 32-byte public
//! key (16 hex digits). Devices trust a list of public keys: during a rotation, old and new.
//! Verification uses `verify_strict`.
//!
//! **Manifest** (JSON, the signed payload):
//! ```json
//! {"kind": "firmware" | "config", "version": "1.4.3", "sequence": 42, "field_id": "...",
//!  "artifact": {"sha256": "<64 lowercase hex>", "size": 12345, "url": "/v1/device/artifacts/<sha256>"},
//!  "issued_at": "<RFC 3339>", "min_version": "1.2.0"}
//! ```
//! `sequence` is a u64, monotonic per field across both kinds: a device refuses any manifest whose
//! sequence is not above the last one it applied (anti-rollback). `min_version` is optional. Unknown
//! fields are ignored.
//!
//! **`GET /v1/device/update`** (headers `Authorization: Bearer <token>` and `Device-Id: <device_id>`,
//! as for telemetry) → `200 {"payload": "<the manifest JSON text>", "signature": "<base64 Ed25519
//! signature over the payload's UTF-8 bytes>", "key_id": "<hex>"}`, or `204` when the device is
//! current. The signature covers the exact payload bytes, so nothing is canonicalised: the gateway
//! stores and serves the payload text it signed, byte for byte.
//!
//! **`GET /v1/device/artifacts/{sha256}`** (same headers) → `200` with the artifact's bytes. The
//! client resolves `artifact.url` against the gateway's URL and refuses one on another origin.
//!
//! **`POST /v1/device/update/result`** (same headers)
//! `{"sequence": 42, "version": "1.4.3", "status": "applied" | "rejected", "reason": "bad_signature" |
//! "unknown_key" | "rollback" | "hash_mismatch" | "size_mismatch" | "download_failed" | "malformed" |
//! null}` → `202`. `reason` is `null` when applied. For a rejection, `sequence` and `version` are what
//! the (unverified) payload claims, `0` and `""` when it cannot be read. `malformed` (a validly signed
//! payload that is not a valid manifest) extends the list the gateway was first given.
//!
//! **`POST /v1/device/state`** (same headers)
//! `{"firmware_version": "1.4.2", "config_hash": "sha256:<hex>", "processes": [{"name": "sensord",
//! "path": "/usr/bin/sensord", "sha256": "<hex>"?, "publisher": "Acme"?}, …], "software": [{"name":
//! "openssl", "version": "3.0.11", "publisher": "…"?}, …], "facts": {…}}` → `202` (the gateway's
//! answer may carry `commands` as telemetry's does). `firmware_version` and `config_hash` are left
//! out when the device does not know them, never sent empty.
//!
//! **Auth and telemetry** as spec §3: `POST /v1/auth/token {"auth_id", "auth_secret",
//! "unique_id"}` → `200 {"access_token", "token_type", "expires_in", "device_id"}`; `POST
//! /v1/telemetry` → `202 {"id", "commands": [...]}`. A command `{"type": "update", …}` tells the
//! device to check `GET /v1/device/update`.
//!
//! **Device order of work** (`DeviceClient::apply_update` in `sekisho-device`): verify the signature with the key
//! `key_id` names (unknown → `unknown_key`, invalid → `bad_signature`, then parse → `malformed`) →
//! refuse `sequence <= last applied` (`rollback`) → download (at most `size` + 1 bytes;
//! `download_failed`) → size (`size_mismatch`) then SHA-256 in constant time (`hash_mismatch`) →
//! write the artifact to `<state_dir>/<kind>/<sha256>` → persist `state.json` (`last_sequence`,
//! `version` for firmware, `config_hash` = `sha256:<hex>` for config) → report. Any rejection
//! writes nothing and is reported.

#![forbid(unsafe_code)]

#[cfg(feature = "gateway")]
pub mod audit;
#[cfg(feature = "gateway")]
pub mod campaigns;
pub mod error;
#[cfg(feature = "gateway")]
pub mod keyring;
pub mod keys;
pub mod manifest;

pub use error::UpdateError;
pub use keys::{PublicKey, SigningKey};
pub use manifest::{
    Artifact, Kind, Manifest, SignedManifest, check_artifact, sha256_hex, sign, sign_payload,
    verify,
};
