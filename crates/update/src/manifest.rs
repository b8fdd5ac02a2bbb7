//! Signed update manifests: [`Manifest`] (what to install), [`SignedManifest`] (the exact payload
//! text, its Ed25519 signature and the signer's key id), [`sign`], [`verify`] against a list of
//! trusted keys (old and new during a rotation), and [`check_artifact`].
//!
//! Architecture invariant: pure functions, no I/O. The signature covers the payload's UTF-8 bytes
//! as sent, so nothing is ever re-serialised before verification; the payload is parsed only after
//! its signature has verified.

use crate::error::UpdateError;
use crate::keys::{PublicKey, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What an update installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Firmware,
    Config,
}

/// The artifact a manifest points to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// SHA-256 of the artifact's bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where the gateway serves it: `/v1/device/artifacts/<sha256>` (relative to the gateway).
    pub url: String,
}

/// An update manifest, the signed payload. Unknown fields are ignored (the protocol is extended,
/// never broken).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub kind: Kind,
    /// The version the device runs (firmware) or the configuration's version once applied.
    pub version: String,
    /// Monotonic per field, across both kinds: a device refuses any sequence not above the last
    /// one it applied (anti-rollback).
    pub sequence: u64,
    pub field_id: String,
    pub artifact: Artifact,
    /// RFC 3339.
    pub issued_at: String,
    /// The lowest version the update may be applied over; informational for the reference client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
}

/// `GET /v1/device/update`'s `200` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The manifest's JSON text, exactly the bytes that were signed.
    pub payload: String,
    /// Base64 (standard, padded) of the 64-byte Ed25519 signature over `payload`'s UTF-8 bytes.
    pub signature: String,
    /// The signer's key id ([`PublicKey::key_id`]).
    pub key_id: String,
}

const MAX_VERSION_LEN: usize = 64;

impl Manifest {
    /// Checks what serde cannot: the hash's form, a version, an RFC 3339 time.
    pub fn validate(&self) -> Result<(), UpdateError> {
        let bad = |m: &str| Err(UpdateError::Malformed(m.to_owned()));
        let hash = &self.artifact.sha256;
        if hash.len() != 64
            || !hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return bad("artifact.sha256 is not 64 lowercase hex digits");
        }
        if self.version.is_empty() || self.version.len() > MAX_VERSION_LEN {
            return bad("version is empty or longer than 64 characters");
        }
        if self.version.chars().any(char::is_control) {
            return bad("version holds control characters");
        }
        let rfc3339 = time::format_description::well_known::Rfc3339;
        if time::OffsetDateTime::parse(&self.issued_at, &rfc3339).is_err() {
            return bad("issued_at is not RFC 3339");
        }
        if self.artifact.url.is_empty() {
            return bad("artifact.url is empty");
        }
        Ok(())
    }
}

/// Signs `manifest`'s JSON text with `key`.
pub fn sign(manifest: &Manifest, key: &SigningKey) -> SignedManifest {
    // A struct of strings and integers always serialises.
    let payload = serde_json::to_string(manifest).unwrap_or_default();
    sign_payload(&payload, key)
}

/// Signs an already serialised payload as is (for publishers that keep their own JSON text).
pub fn sign_payload(payload: &str, key: &SigningKey) -> SignedManifest {
    SignedManifest {
        payload: payload.to_owned(),
        signature: B64.encode(key.sign(payload.as_bytes())),
        key_id: key.public_key().key_id(),
    }
}

/// Verifies `signed` with the trusted key its `key_id` names (`verify_strict`), then parses and
/// validates the payload. `UnknownKey` when no trusted key has that id, `BadSignature` when the
/// signature is not valid base64 of 64 bytes or does not verify, `Malformed` when the signed payload
/// is not a valid manifest.
pub fn verify(signed: &SignedManifest, trusted: &[PublicKey]) -> Result<Manifest, UpdateError> {
    let candidates: Vec<&PublicKey> = trusted
        .iter()
        .filter(|k| k.key_id() == signed.key_id)
        .collect();
    if candidates.is_empty() {
        return Err(UpdateError::UnknownKey {
            key_id: signed.key_id.chars().take(64).collect(),
        });
    }
    let sig: [u8; 64] = B64
        .decode(signed.signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(UpdateError::BadSignature)?;
    if !candidates
        .iter()
        .any(|k| k.verify_strict(signed.payload.as_bytes(), &sig))
    {
        return Err(UpdateError::BadSignature);
    }
    let manifest: Manifest = serde_json::from_str(&signed.payload)
        .map_err(|e| UpdateError::Malformed(format!("payload: {e}")))?;
    manifest.validate()?;
    Ok(manifest)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The artifact's size, then its SHA-256 (compared in constant time), against the manifest.
pub fn check_artifact(bytes: &[u8], manifest: &Manifest) -> Result<(), UpdateError> {
    let actual = bytes.len() as u64;
    if actual != manifest.artifact.size {
        return Err(UpdateError::SizeMismatch {
            expected: manifest.artifact.size,
            actual,
        });
    }
    let expected = hex::decode(&manifest.artifact.sha256).map_err(|_| UpdateError::HashMismatch)?;
    let digest = Sha256::digest(bytes);
    if bool::from(digest.as_slice().ct_eq(&expected)) {
        Ok(())
    } else {
        Err(UpdateError::HashMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(bytes: &[u8], sequence: u64) -> Manifest {
        let sha256 = sha256_hex(bytes);
        Manifest {
            kind: Kind::Firmware,
            version: "1.4.3".into(),
            sequence,
            field_id: "f-1".into(),
            artifact: Artifact {
                url: format!("/v1/device/artifacts/{sha256}"),
                sha256,
                size: bytes.len() as u64,
            },
            issued_at: "2026-05-01T09:00:00Z".into(),
            min_version: None,
        }
    }

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32])
    }

    #[test]
    fn signed_manifest_verifies_and_round_trips() {
        let m = manifest(b"firmware", 42);
        let signed = sign(&m, &key(1));
        assert_eq!(signed.key_id, key(1).public_key().key_id());
        assert_eq!(verify(&signed, &[key(1).public_key()]), Ok(m));
        let wire: SignedManifest =
            serde_json::from_str(&serde_json::to_string(&signed).expect("json")).expect("json");
        assert_eq!(wire, signed);
    }

    #[test]
    fn every_tampered_payload_byte_is_a_bad_signature() {
        let signed = sign(&manifest(b"firmware", 42), &key(1));
        let trusted = [key(1).public_key()];
        let bytes = signed.payload.as_bytes();
        for i in 0..bytes.len() {
            let mut tampered = bytes.to_vec();
            tampered[i] ^= 0x01;
            let Ok(payload) = String::from_utf8(tampered) else {
                continue;
            };
            let t = SignedManifest {
                payload,
                ..signed.clone()
            };
            assert_eq!(
                verify(&t, &trusted),
                Err(UpdateError::BadSignature),
                "byte {i}"
            );
        }
        let reordered = SignedManifest {
            payload: format!(" {}", signed.payload),
            ..signed.clone()
        };
        assert_eq!(verify(&reordered, &trusted), Err(UpdateError::BadSignature));
    }

    #[test]
    fn tampered_or_garbled_signature_is_a_bad_signature() {
        let signed = sign(&manifest(b"firmware", 42), &key(1));
        let trusted = [key(1).public_key()];
        let mut sig = B64.decode(&signed.signature).expect("b64");
        sig[10] ^= 0x80;
        for signature in [
            B64.encode(&sig),
            "not base64!".into(),
            B64.encode([0u8; 63]),
            String::new(),
        ] {
            let t = SignedManifest {
                signature,
                ..signed.clone()
            };
            assert_eq!(verify(&t, &trusted), Err(UpdateError::BadSignature));
        }
    }

    #[test]
    fn another_key_is_unknown() {
        let signed = sign(&manifest(b"firmware", 42), &key(2));
        let e = verify(&signed, &[key(1).public_key()]).expect_err("unknown key");
        assert_eq!(e.code(), "unknown_key");
        assert_eq!(
            verify(&signed, &[]).map_err(|e| e.code()),
            Err("unknown_key")
        );
    }

    #[test]
    fn a_key_id_lie_is_a_bad_signature() {
        // Signed by key 2 but claiming key 1's id: key 1 is tried and the signature fails.
        let mut signed = sign(&manifest(b"firmware", 42), &key(2));
        signed.key_id = key(1).public_key().key_id();
        assert_eq!(
            verify(&signed, &[key(1).public_key(), key(2).public_key()]),
            Err(UpdateError::BadSignature)
        );
    }

    #[test]
    fn rotation_trusts_old_and_new_keys_until_the_old_one_is_dropped() {
        let (old, new) = (key(1), key(2));
        let during = [old.public_key(), new.public_key()];
        let m = manifest(b"firmware", 7);
        assert_eq!(verify(&sign(&m, &old), &during), Ok(m.clone()));
        assert_eq!(verify(&sign(&m, &new), &during), Ok(m.clone()));
        let after = [new.public_key()];
        assert_eq!(verify(&sign(&m, &new), &after), Ok(m.clone()));
        assert_eq!(
            verify(&sign(&m, &old), &after).map_err(|e| e.code()),
            Err("unknown_key")
        );
    }

    #[test]
    fn a_validly_signed_non_manifest_is_malformed() {
        let trusted = [key(1).public_key()];
        let mut bad_hash = manifest(b"x", 1);
        bad_hash.artifact.sha256 = "ABC".into();
        let mut bad_time = manifest(b"x", 1);
        bad_time.issued_at = "yesterday".into();
        let payloads = [
            "not json".to_owned(),
            r#"{"kind":"firmware"}"#.to_owned(),
            r#"{"kind":"kernel","version":"1","sequence":1,"field_id":"f","artifact":{"sha256":"","size":0,"url":""},"issued_at":""}"#.to_owned(),
            serde_json::to_string(&bad_hash).expect("json"),
            serde_json::to_string(&bad_time).expect("json"),
        ];
        for p in payloads {
            let e = verify(&sign_payload(&p, &key(1)), &trusted).expect_err(&p);
            assert_eq!(e.code(), "malformed", "{p}: {e}");
        }
    }

    #[test]
    fn artifact_size_is_checked_before_its_hash() {
        let m = manifest(b"firmware v1.4.3", 1);
        assert_eq!(check_artifact(b"firmware v1.4.3", &m), Ok(()));
        assert_eq!(
            check_artifact(b"firmware v1.4.3!", &m),
            Err(UpdateError::SizeMismatch {
                expected: 15,
                actual: 16
            })
        );
        assert_eq!(
            check_artifact(b"firmware v1.4.4", &m),
            Err(UpdateError::HashMismatch)
        );
        assert_eq!(
            check_artifact(b"", &m).map_err(|e| e.code()),
            Err("size_mismatch")
        );
    }

    #[test]
    fn manifest_wire_form_is_the_documented_one() {
        let mut m = manifest(b"abc", 42);
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(v["kind"], "firmware");
        assert_eq!(v["sequence"], 42);
        assert_eq!(v["artifact"]["size"], 3);
        assert!(v.get("min_version").is_none());
        m.min_version = Some("1.2.0".into());
        m.kind = Kind::Config;
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(
            (v["kind"].as_str(), v["min_version"].as_str()),
            (Some("config"), Some("1.2.0"))
        );
    }
}
