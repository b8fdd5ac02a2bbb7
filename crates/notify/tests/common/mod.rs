//! Test helpers: scratch directories, a throw-away CA (rcgen), and the real SMTP server
//! (`smtp_server.py`, Python aiosmtpd) started on a free loopback port.

#![allow(dead_code)] // each test binary uses its own part

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sekisho-notify-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki(dir: &Scratch, tag: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, format!("sekisho-notify test CA {tag}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf certificate");
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    Pki {
        ca: dir.write(&format!("{tag}-ca.pem"), &ca_cert.pem()),
        cert: dir.write(&format!("{tag}-cert.pem"), &cert_pem),
        key: dir.write(&format!("{tag}-key.pem"), &key_pem),
        cert_pem,
        key_pem,
    }
}

/// A Python that can import aiosmtpd: `SEKISHO_TEST_PYTHON`, else `python3` on the PATH, else
/// Debian's `/usr/bin/python3` (where `python3-aiosmtpd` installs). Panics, saying how to install
/// it, when there is none: the mail tests never skip silently.
pub fn python() -> String {
    let candidates: Vec<String> = std::env::var("SEKISHO_TEST_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_owned(), "/usr/bin/python3".to_owned()])
        .collect();
    for py in &candidates {
        let ok = Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.clone();
        }
    }
    panic!(
        "the mail tests need a real SMTP server, Python's aiosmtpd, and none of {candidates:?} can \
         import it. Install it: `apt-get install python3-aiosmtpd` (Debian; scripts/test.sh does \
         this) or `python3 -m pip install aiosmtpd`; or point SEKISHO_TEST_PYTHON at a Python that \
         has it."
    );
}

/// The SMTP server, killed when dropped (by the process id this test started).
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub inbox: PathBuf,
}

impl SmtpServer {
    /// Starts `smtp_server.py` in `mode` (`starttls`, `tls`, `plain`), with AUTH for `user` when
    /// given, storing messages under `dir/inbox`.
    pub fn start(dir: &Scratch, pki: &Pki, mode: &str, user: Option<(&str, &str)>) -> Self {
        let inbox = dir.0.join(format!("inbox-{mode}"));
        std::fs::create_dir_all(&inbox).expect("inbox");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(script)
            .arg("--dir")
            .arg(&inbox)
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key)
            .args(["--mode", mode]);
        if let Some((u, p)) = user {
            cmd.args(["--user", u, "--password", p]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server (python3)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the SMTP server did not start: {line:?}")
            });
        Self { child, port, inbox }
    }

    /// The stored messages (JSON records), oldest name first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.inbox)
            .expect("inbox")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read message"))
                    .expect("message JSON")
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
