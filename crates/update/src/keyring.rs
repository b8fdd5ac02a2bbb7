//! The gateway's keyring for update manifests: the Ed25519 signing key (created at the first start,
//! 0600), and the public keys of earlier ones, still published while devices move to the new key.

use crate::{PublicKey, SigningKey, UpdateError};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Why the keyring could not be read or rotated.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("update.key_file: {0}")]
    KeyFile(UpdateError),
    #[error(transparent)]
    Key(#[from] UpdateError),
    #[error("update key files: {0}")]
    Io(#[from] std::io::Error),
}

/// The signing key and the public keys of earlier ones still published during a rotation.
pub struct Keys {
    current: RwLock<SigningKey>,
    previous: RwLock<Vec<PublicKey>>,
    key_file: PathBuf,
    previous_file: PathBuf,
}

impl Keys {
    /// Loads the signing key, creating it (0600) on the first start.
    pub fn load(key_file: &Path, previous_file: &Path) -> Result<Self, KeyringError> {
        let current = if key_file.exists() {
            SigningKey::load(key_file).map_err(KeyringError::KeyFile)?
        } else {
            let k = SigningKey::generate()?;
            k.save(key_file).map_err(KeyringError::KeyFile)?;
            tracing::info!(key_id = %k.public_key().key_id(), "update signing key created");
            k
        };
        let previous = std::fs::read_to_string(previous_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| PublicKey::from_text(l).ok())
            .collect();
        Ok(Self {
            current: RwLock::new(current),
            previous: RwLock::new(previous),
            key_file: key_file.to_owned(),
            previous_file: previous_file.to_owned(),
        })
    }

    pub fn public(&self) -> PublicKey {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .public_key()
    }

    pub fn previous(&self) -> Vec<PublicKey> {
        self.previous
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn sign(&self, m: &crate::Manifest) -> crate::SignedManifest {
        crate::sign(m, &self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new signing key; the old public key stays published (devices trust both during the
    /// rotation). Manifests signed from now on use the new key.
    pub fn rotate(&self) -> Result<PublicKey, KeyringError> {
        let new = SigningKey::generate()?;
        let tmp = self.key_file.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        new.save(&tmp)?;
        let old = self.public();
        let mut prev = self.previous();
        prev.push(old);
        let text: String = prev
            .iter()
            .map(|k| format!("{}\n", k.to_base64()))
            .collect();
        std::fs::write(&self.previous_file, text)?;
        std::fs::rename(&tmp, &self.key_file)?;
        let public = new.public_key();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
        *self.previous.write().unwrap_or_else(|e| e.into_inner()) = prev;
        Ok(public)
    }
}
