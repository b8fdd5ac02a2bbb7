//! Ed25519 keys of the update publisher: the private [`SigningKey`] (PKCS#8 PEM or the raw 32-byte
//! seed in base64, in a file only its owner can read) and the [`PublicKey`] devices trust
//! (SPKI PEM or 32 bytes in base64), named by its [`key_id`](PublicKey::key_id).
//!
//! Architecture invariant: nothing here talks to the network or knows about manifests; the key
//! material never appears in `Debug` output or in errors.

use crate::error::UpdateError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The publisher's private key. Its `Debug` shows only the key id.
pub struct SigningKey(pub(crate) ed25519_dalek::SigningKey);

/// A public key devices trust for manifests.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(pub(crate) ed25519_dalek::VerifyingKey);

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, UpdateError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| UpdateError::Key(format!("random source: {e}")))?;
        let key = Self(ed25519_dalek::SigningKey::from_bytes(&seed));
        seed.fill(0);
        Ok(key)
    }

    /// The key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) or the raw 32-byte seed in base64.
    pub fn from_text(text: &str) -> Result<Self, UpdateError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map(Self)
                .map_err(|e| UpdateError::Key(format!("not an Ed25519 PKCS#8 PEM key: {e}")));
        }
        let seed: [u8; 32] = B64
            .decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| UpdateError::Key("neither PKCS#8 PEM nor 32 bytes in base64".into()))?;
        Ok(Self::from_seed(&seed))
    }

    /// Reads a key file written by [`SigningKey::save`] (or any PKCS#8 PEM Ed25519 key).
    pub fn load(path: &Path) -> Result<Self, UpdateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UpdateError::Key(format!("cannot read {}: {e}", path.display())))?;
        Self::from_text(&text)
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, UpdateError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| UpdateError::Key(format!("PKCS#8 encoding: {e}")))
    }

    /// The 32-byte seed in base64.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    /// Writes the key as PKCS#8 PEM to a new file readable only by its owner (mode 0600). Refuses
    /// to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<(), UpdateError> {
        let pem = self.to_pkcs8_pem()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(path)
            .map_err(|e| UpdateError::Key(format!("cannot create {}: {e}", path.display())))?;
        f.write_all(pem.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| UpdateError::Key(format!("cannot write {}: {e}", path.display())))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(msg).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public_key().key_id())
    }
}

impl PublicKey {
    /// Lowercase hex of the first 8 bytes of SHA-256 of the 32-byte public key.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..8])
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, UpdateError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| UpdateError::Key("not an Ed25519 public key".into()))
    }

    /// The 32 bytes in base64.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, UpdateError> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| UpdateError::Key(format!("SPKI encoding: {e}")))
    }

    /// Parses SPKI PEM or 32 bytes in base64.
    pub fn from_text(text: &str) -> Result<Self, UpdateError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return ed25519_dalek::VerifyingKey::from_public_key_pem(text)
                .map(Self)
                .map_err(|e| UpdateError::Key(format!("not an Ed25519 SPKI PEM key: {e}")));
        }
        let bytes: [u8; 32] = B64
            .decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| UpdateError::Key("neither SPKI PEM nor 32 bytes in base64".into()))?;
        Self::from_bytes(&bytes)
    }

    pub fn load(path: &Path) -> Result<Self, UpdateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UpdateError::Key(format!("cannot read {}: {e}", path.display())))?;
        Self::from_text(&text)
    }

    /// `verify_strict`: rejects non-canonical and small-order signatures and keys.
    pub(crate) fn verify_strict(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_first_8_bytes_of_sha256_in_hex() {
        let key = SigningKey::from_seed(&[7u8; 32]).public_key();
        let expected = hex::encode(&Sha256::digest(key.to_bytes())[..8]);
        assert_eq!(key.key_id(), expected);
        assert_eq!(key.key_id().len(), 16);
        assert!(
            key.key_id()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn keys_round_trip_through_pem_and_base64() {
        let key = SigningKey::generate().expect("key");
        let pem = key.to_pkcs8_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        for text in [pem, key.to_base64()] {
            let again = SigningKey::from_text(&text).expect("parse");
            assert_eq!(again.public_key(), key.public_key());
        }
        let public = key.public_key();
        let spki = public.to_pem().expect("spki");
        assert!(spki.starts_with("-----BEGIN PUBLIC KEY-----"), "{spki}");
        assert_eq!(PublicKey::from_text(&spki).expect("spki"), public);
        assert_eq!(
            PublicKey::from_text(&public.to_base64()).expect("b64"),
            public
        );
        assert_eq!(B64.decode(public.to_base64()).expect("b64").len(), 32);
        assert!(PublicKey::from_text("AAAA").is_err());
        assert!(SigningKey::from_text("not a key").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn saved_key_is_owner_only_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sekisho-update-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("signing.pem");
        let key = SigningKey::generate().expect("key");
        key.save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            SigningKey::load(&path).expect("load").public_key(),
            key.public_key()
        );
        let other = SigningKey::generate().expect("key");
        assert!(
            other.save(&path).is_err(),
            "an existing key file must not be overwritten"
        );
        assert_eq!(
            SigningKey::load(&path).expect("load").public_key(),
            key.public_key()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::from_seed(&[9u8; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_base64()));
        assert!(shown.contains(&key.public_key().key_id()));
    }
}
