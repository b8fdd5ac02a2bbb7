//! The gateway's own certificates, made by `sekisho init`: a local server CA with certificates for the
//! device and admin listeners, and a device CA that issues device client certificates (mTLS).
//! Operators replace any of them with their own by pointing the configuration at other files.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("not a PEM certificate: {0}")]
    BadPem(String),
    #[error("'{0}' is neither a DNS name nor an IP address")]
    BadName(String),
}

/// The names every server certificate of `init` carries.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The names a certificate for this machine carries by default besides [`LOCAL_NAMES`]: the host's
/// name and its addresses that are neither loopback nor link-local (which need a zone to be used).
pub fn host_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Some(h) = hostname::get().ok().and_then(|h| h.into_string().ok())
        && check_name(&h).is_ok()
    {
        names.push(h);
    }
    let addrs = if_addrs::get_if_addrs().unwrap_or_default();
    for ip in addrs.iter().map(|i| i.ip()) {
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if !ip.is_loopback() && !ip.is_unspecified() && !link_local {
            names.push(ip.to_string());
        }
    }
    names
}

/// Whether `name` can go into a certificate: an IP address, or a DNS name (letters, digits and
/// hyphens in dot-separated labels; a leading `*.` for a wildcard).
pub fn check_name(name: &str) -> Result<(), PkiError> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(PkiError::BadName(name.to_owned()))
    }
}

/// The DNS names and IP addresses of the first certificate in the PEM file `path`.
pub fn cert_names(path: &Path) -> Result<Vec<String>, PkiError> {
    use x509_parser::extensions::GeneralName;
    let der = CertificateDer::from_pem_file(path)
        .map_err(|e| PkiError::BadPem(format!("{}: {e}", path.display())))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| PkiError::BadPem(format!("{}: {e}", path.display())))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadPem(format!("{}: {e}", path.display())))?;
    let names = san
        .map(|s| s.value.general_names.clone())
        .unwrap_or_default();
    Ok(names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
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

/// The names of `init`'s server certificates: [`LOCAL_NAMES`], then `extra` without repeats; an error
/// for a name that cannot go into a certificate.
pub fn server_names(extra: &[String]) -> Result<Vec<String>, PkiError> {
    let mut names: Vec<String> = LOCAL_NAMES.iter().map(|n| (*n).to_owned()).collect();
    for n in extra {
        check_name(n)?;
        if !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
            names.push(n.clone());
        }
    }
    Ok(names)
}

/// Creates the TLS material of a new data directory under `tls/`. Names the server certificates carry:
/// localhost, 127.0.0.1, ::1 and `extra_names` ([`server_names`]).
pub fn init_tls(dir: &Path, extra_names: &[String]) -> Result<(), PkiError> {
    let names = server_names(extra_names)?;
    std::fs::create_dir_all(dir).map_err(|e| PkiError::Io(dir.display().to_string(), e))?;
    let server_ca = Ca::generate("Sekisho local server CA")?;
    let device_ca = Ca::generate("Sekisho device CA")?;
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

    #[test]
    fn server_names_take_dns_names_and_addresses_once_and_refuse_the_rest() {
        let names = server_names(&[
            "gw.example.jp".into(),
            "192.0.2.10".into(),
            "2001:db8::1".into(),
            "*.fleet.example".into(),
            "LOCALHOST".into(),
            "gw.example.jp".into(),
        ])
        .unwrap();
        assert_eq!(
            names,
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "gw.example.jp",
                "192.0.2.10",
                "2001:db8::1",
                "*.fleet.example"
            ]
        );
        for bad in [
            "",
            "gw example",
            "-gw.example",
            "gw..example",
            "ゲート.jp",
            "a/b",
        ] {
            assert!(server_names(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn certificates_are_issued_for_the_names_and_read_back() {
        let ca = Ca::generate("test CA").unwrap();
        let names = server_names(&["gw.example.jp".into(), "192.0.2.10".into()]).unwrap();
        let (cert, _) = ca.issue("srv", &names, false).unwrap();
        let path = std::env::temp_dir().join(format!("sekisho-names-{}.crt", std::process::id()));
        write_file(&path, cert.as_bytes(), false).unwrap();
        assert_eq!(cert_names(&path).unwrap(), names);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_hosts_names_leave_out_loopback_and_link_local() {
        for n in host_names() {
            check_name(&n).unwrap();
            if let Ok(ip) = n.parse::<IpAddr>() {
                assert!(!ip.is_loopback(), "{ip}");
                assert!(!ip.to_string().starts_with("fe80"), "{ip}");
            }
        }
    }
}
