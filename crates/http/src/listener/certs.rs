//! A listener's certificate and key, replaceable while it runs: [`ServerCert::reload`] reads the files
//! again and, if they make a usable pair, new handshakes get it; connections already open keep theirs.
//! A pair that does not load (a missing file, bad PEM, a key that is not the certificate's) is refused
//! and the previous pair stays in use.
//!
//! It does not know when to reload: [`reload_on`] does it on each request, which the binary sends on
//! SIGHUP.

use super::TlsConfigError;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// The certificate chain and key a listener presents, read from two files.
#[derive(Debug)]
pub struct ServerCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// Reads the pair; an error when it is not a usable pair.
    pub fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsConfigError> {
        let current = certified(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again. On success new handshakes use the new pair; on error nothing changes.
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let new = Arc::new(certified(&self.cert, &self.key, &self.provider)?);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(())
    }

    /// The DER of the certificate presented now (its first, end-entity certificate).
    pub fn end_entity(&self) -> Option<CertificateDer<'static>> {
        self.now().cert.first().cloned()
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    fn now(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }
}

/// Reloads every listener's certificate on each change of `requests`, until `stopped`. Each outcome is a
/// log line: which file was taken, or why the new pair was refused and the old one kept.
pub async fn reload_on(
    mut requests: watch::Receiver<()>,
    certs: Vec<(&'static str, Arc<ServerCert>)>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = requests.changed() => if r.is_err() { return },
            _ = stopped.changed() => return,
        }
        for (listener, cert) in &certs {
            match cert.reload() {
                Ok(()) => tracing::info!(
                    listener,
                    cert = %cert.cert_path().display(),
                    "certificate reloaded: new connections use it"
                ),
                Err(e) => tracing::error!(
                    listener,
                    error = %e,
                    "new certificate refused: the listener keeps the one it had"
                ),
            }
        }
    }
}

/// A certificate chain and its private key, checked to belong together.
fn certified(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsConfigError> {
    let chain = load_certs(cert)?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsConfigError::Pem(key.display().to_string(), e.to_string()))?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        TlsConfigError::Pem(
            format!("{} and {}", cert.display(), key.display()),
            e.to_string(),
        )
    })
}

/// Every certificate of a PEM file; an error when there is none.
pub(super) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bad =
        |e: &dyn std::fmt::Display| TlsConfigError::Pem(path.display().to_string(), e.to_string());
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no certificate in file"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekisho_registry::pki::{Ca, write_file};

    fn pair(ca: &Ca, dir: &Path, tag: &str, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = ca.issue(name, &[name.to_owned()], false).unwrap();
        let (c, k) = (
            dir.join(format!("{tag}.crt")),
            dir.join(format!("{tag}.key")),
        );
        write_file(&c, cert.as_bytes(), false).unwrap();
        write_file(&k, key.as_bytes(), true).unwrap();
        (c, k)
    }

    #[test]
    fn a_reload_takes_a_good_new_pair_and_refuses_a_broken_one() {
        let dir = std::env::temp_dir().join(format!("sekisho-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::generate("test CA").unwrap();
        let (cert, key) = pair(&ca, &dir, "live", "one.example");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let sc = ServerCert::load(&cert, &key, provider).unwrap();
        let first = sc.end_entity().unwrap();

        // A new pair in the same files: taken.
        let (c2, k2) = pair(&ca, &dir, "next", "two.example");
        std::fs::copy(&c2, &cert).unwrap();
        std::fs::copy(&k2, &key).unwrap();
        sc.reload().unwrap();
        let second = sc.end_entity().unwrap();
        assert_ne!(first, second);

        // A key that is not the certificate's: refused, the second pair stays.
        let (_, k3) = pair(&ca, &dir, "other", "three.example");
        std::fs::copy(&k3, &key).unwrap();
        let e = sc.reload().unwrap_err().to_string();
        assert!(e.contains("live.key"), "{e}");
        assert_eq!(sc.end_entity().unwrap(), second);

        // Garbage where the certificate was: refused too.
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(sc.reload().is_err());
        assert_eq!(sc.end_entity().unwrap(), second);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
