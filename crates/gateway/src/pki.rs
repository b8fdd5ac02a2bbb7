//! The gateway's own certificates, made by `sekisho init`: a local server CA with certificates for the
//! device and admin listeners, and a device CA that issues device client certificates (mTLS).
//! Operators replace any of them with their own by pointing the configuration at other files.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("not a PEM certificate: {0}")]
    BadPem(String),
}

/// Writes `data` to `path`; private keys get mode 0600.
pub fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), PkiError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts
        .open(path)
        .map_err(|e| PkiError::Io(path.display().to_string(), e))?;
    f.write_all(data)
        .map_err(|e| PkiError::Io(path.display().to_string(), e))
}

fn ca_params(cn: &str) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Sekisho");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(p)
}

/// A CA: its certificate (PEM) and key (PEM).
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn generate(cn: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(cn)?.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| PkiError::Io(p.display().to_string(), e))
        };
        Ok(Self {
            cert_pem: read(cert_path)?,
            key_pem: read(key_path)?,
        })
    }

    /// Issues a leaf certificate: a server certificate for `names`, or a client certificate.
    /// Returns (certificate PEM, key PEM).
    pub fn issue(
        &self,
        cn: &str,
        names: &[String],
        client: bool,
    ) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let mut p = CertificateParams::new(names.to_vec())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "Sekisho");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Hex SHA-256 of the first certificate in `pem` (how devices' certificates are registered).
pub fn cert_sha256_hex(pem: &str) -> Result<String, PkiError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::BadPem(e.to_string()))?;
    Ok(hex::encode(crate::crypto::sha256(&der)))
}

/// Creates the TLS material of a new data directory under `tls/`. Names the server certificates carry:
/// localhost, 127.0.0.1, ::1 and `extra_names`.
pub fn init_tls(dir: &Path, extra_names: &[String]) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(|e| PkiError::Io(dir.display().to_string(), e))?;
    let server_ca = Ca::generate("Sekisho local server CA")?;
    let device_ca = Ca::generate("Sekisho device CA")?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    write_file(&dir.join("ca.crt"), server_ca.cert_pem.as_bytes(), false)?;
    write_file(&dir.join("ca.key"), server_ca.key_pem.as_bytes(), true)?;
    write_file(
        &dir.join("device-ca.crt"),
        device_ca.cert_pem.as_bytes(),
        false,
    )?;
    write_file(
        &dir.join("device-ca.key"),
        device_ca.key_pem.as_bytes(),
        true,
    )?;
    for listener in ["device", "admin"] {
        let (cert, key) =
            server_ca.issue(&format!("Sekisho {listener} listener"), &names, false)?;
        // The chain: leaf then CA, so clients that trust ca.crt verify it.
        let chain = format!("{cert}{}", server_ca.cert_pem);
        write_file(
            &dir.join(format!("{listener}.crt")),
            chain.as_bytes(),
            false,
        )?;
        write_file(&dir.join(format!("{listener}.key")), key.as_bytes(), true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_their_ca() {
        let ca = Ca::generate("test CA").unwrap();
        let (cert, key) = ca.issue("d_1", &["d_1".into()], true).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let fp = cert_sha256_hex(&cert).unwrap();
        assert_eq!(fp.len(), 64);
        assert_ne!(fp, cert_sha256_hex(&ca.cert_pem).unwrap());
        assert!(cert_sha256_hex("nope").is_err());
    }
}
