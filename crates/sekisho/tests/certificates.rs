//! The listeners' certificates: `init --name` (and the host's names by default) in both server
//! certificates and the banner, and rotation on SIGHUP: new connections get a new pair, a broken pair
//! is refused with a log line and the previous one stays.

mod common;

use common::TempDir;
use std::path::Path;
use std::process::Command;

/// The DNS names and IP addresses of the first certificate in a PEM file.
fn san(path: &Path) -> Vec<String> {
    use rustls_pki_types::pem::PemObject;
    use x509_parser::extensions::GeneralName;
    let der = rustls_pki_types::CertificateDer::from_pem_file(path).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let names = cert.subject_alternative_name().unwrap().unwrap();
    names
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => (*d).to_owned(),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
            }
            GeneralName::IPAddress(b) => {
                std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn init_puts_the_given_names_or_the_hosts_into_both_certificates() {
    let dir = TempDir::new("names");
    let out = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(&dir.0)
        .args(["--name", "gw.example.jp", "--name", "192.0.2.10"])
        .env("SEKISHO_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = [
        "localhost",
        "127.0.0.1",
        "::1",
        "gw.example.jp",
        "192.0.2.10",
    ];
    for cert in ["tls/device.crt", "tls/admin.crt"] {
        assert_eq!(san(&dir.0.join(cert)), want, "{cert}");
    }
    let gw = common::Gateway::start_in(&dir.0);
    let banner = format!(
        "names      : {}  (device and admin certificates)",
        want.join(", ")
    );
    let shown = common::eventually(10, || async {
        gw.log_text().contains(&banner).then_some(())
    })
    .await;
    assert!(shown.is_some(), "{banner:?} not in:\n{}", gw.log_text());
    drop(gw);

    // Without --name: the host's name (and its addresses that are not loopback).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dir = TempDir::new("names-host");
    common::init(&dir.0);
    let names = san(&dir.0.join("tls/device.crt"));
    assert!(names.contains(&host.trim().to_owned()), "{names:?}");
    assert_eq!(names[..3], ["localhost", "127.0.0.1", "::1"]);
    assert_eq!(
        names.iter().filter(|n| n.starts_with("127.")).count(),
        1,
        "{names:?}"
    );

    // A name that cannot be in a certificate is refused before anything is written.
    let bad = TempDir::new("names-bad");
    let out = Command::new(common::bin())
        .args(["up", "--data-dir"])
        .arg(bad.0.join("d"))
        .args(["--name", "not a name"])
        .env("SEKISHO_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'not a name' is neither"));
    assert!(!bad.0.join("d").exists());
}

/// The end-entity certificate the device listener presents now.
async fn presented(gw: &common::Gateway) -> Vec<u8> {
    let tls = common::tls_connect(&gw.dir, &gw.device).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn sighup(gw: &common::Gateway) {
    let ok = Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn sighup_rotates_the_certificates_and_refuses_a_broken_pair() {
    use rcgen::{CertificateParams, Issuer, KeyPair};
    use rustls_pki_types::pem::PemObject;
    let dir = TempDir::new("rotate");
    common::init(&dir.0);
    let gw = common::Gateway::start_in(&dir.0);
    let before = presented(&gw).await;

    // A new pair from the same CA, written over the files the configuration names.
    let tls = dir.0.join("tls");
    let ca_pem = std::fs::read_to_string(tls.join("ca.crt")).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let issue = || {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "rotated.example".to_owned()])
                .unwrap();
        (params.signed_by(&key, &issuer).unwrap(), key)
    };
    let (cert, key) = issue();
    std::fs::write(tls.join("device.crt"), format!("{}{ca_pem}", cert.pem())).unwrap();
    std::fs::write(tls.join("device.key"), key.serialize_pem()).unwrap();
    sighup(&gw);
    let count = |needle: &str| gw.log_text().matches(needle).count();
    let reloaded = common::eventually(10, || async {
        (count("certificate reloaded") >= 2).then_some(())
    })
    .await;
    assert!(reloaded.is_some(), "{}", gw.log_text());
    let after = presented(&gw).await;
    assert_ne!(after, before);
    assert_eq!(
        after,
        cert.der().to_vec(),
        "new connections get the new certificate"
    );
    assert_eq!(
        rustls_pki_types::CertificateDer::from_pem_file(tls.join("device.crt"))
            .unwrap()
            .to_vec(),
        after
    );

    // A certificate whose key is not in the key file: refused with a log line, the last pair stays.
    let (other, _) = issue();
    std::fs::write(tls.join("device.crt"), other.pem()).unwrap();
    sighup(&gw);
    let refused = common::eventually(10, || async {
        (count("new certificate refused") >= 1).then_some(())
    })
    .await;
    let log = gw.log_text();
    assert!(refused.is_some(), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("new certificate refused"))
        .unwrap();
    assert!(
        line.contains("listener=\"device\"") && line.contains("device.key"),
        "{line}"
    );
    assert_eq!(
        presented(&gw).await,
        after,
        "the previous pair stays in use"
    );
}
