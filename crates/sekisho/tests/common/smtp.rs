//! A real SMTP server on loopback for the tests: Python aiosmtpd run by sekisho-notify's test script
//! (`crates/notify/tests/smtp_server.py`), STARTTLS required and AUTH checked, every accepted message
//! written as decoded JSON for the test to read.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub const USER: &str = "sekisho";
pub const PASSWORD: &str = "smtp-pa55word";

/// A Python that has aiosmtpd: `SEKISHO_TEST_PYTHON`, `python3`, or Debian's `/usr/bin/python3`
/// (`python3-aiosmtpd`) when the `python3` on the PATH lacks it (pyenv).
fn python() -> String {
    let has = |py: &str| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::env::var("SEKISHO_TEST_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_owned(), "/usr/bin/python3".to_owned()])
        .find(|p| has(p))
        .unwrap_or_else(|| {
            panic!(
                "no Python with aiosmtpd: apt-get install python3-aiosmtpd (scripts/test.sh does)"
            )
        })
}

/// The mail server's certificate for 127.0.0.1, signed by a fresh CA (`ca` goes to the gateway's
/// `ca_file`). It outlives a server: a restarted server on the same port presents the same one.
pub struct SmtpTls {
    dir: super::TempDir,
    pub ca: PathBuf,
}

impl SmtpTls {
    pub fn new() -> Self {
        let dir = super::TempDir::new("smtp-tls");
        let tls =
            sekisho_sim::carrier::self_signed(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        std::fs::write(dir.0.join("cert.pem"), &tls.cert_pem).unwrap();
        std::fs::write(dir.0.join("key.pem"), &tls.key_pem).unwrap();
        let ca = dir.0.join("ca.pem");
        std::fs::write(&ca, &tls.ca_pem).unwrap();
        Self { dir, ca }
    }
}

pub struct SmtpServer {
    pub port: u16,
    dir: super::TempDir,
    child: Child,
}

impl SmtpServer {
    /// Starts on `port` (or a free one) with `tls`.
    pub fn start(tls: &SmtpTls, port: Option<u16>) -> Self {
        let dir = super::TempDir::new("smtp");
        let (cert, key) = (tls.dir.0.join("cert.pem"), tls.dir.0.join("key.pem"));
        let mail = dir.0.join("mail");
        std::fs::create_dir(&mail).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../notify/tests/smtp_server.py"
        );
        let mut child = Command::new(python())
            .arg(script)
            .arg("--dir")
            .arg(&mail)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--mode", "starttls", "--user", USER, "--password", PASSWORD])
            .args(["--port", &port.unwrap_or(0).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        Self { port, dir, child }
    }

    /// The messages received so far, oldest first.
    pub fn mails(&self) -> Vec<Value> {
        let mut out: Vec<(std::time::SystemTime, Value)> =
            std::fs::read_dir(self.dir.0.join("mail"))
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| {
                    let t = e.metadata().and_then(|m| m.modified()).unwrap();
                    (
                        t,
                        serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap(),
                    )
                })
                .collect();
        out.sort_by_key(|(t, _)| *t);
        out.into_iter().map(|(_, v)| v).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
