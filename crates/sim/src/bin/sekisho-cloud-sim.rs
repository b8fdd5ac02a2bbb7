//! `sekisho-cloud-sim`: a **stand-in for a field's cloud service** (see `sekisho_sim::cloud`), for
//! tests, demos and the README's tour. It is not a cloud service: it keeps messages in memory only.
//!
//! ```text
//! sekisho-cloud-sim [--listen 127.0.0.1:0] [--tls-cert-out ca.pem]
//! ```
//!
//! Serves HTTPS with a throw-away CA and certificate (for localhost, 127.0.0.1, ::1); `--tls-cert-out`
//! writes the CA's PEM there (give it to the gateway as the destination's `ca_pem`). Prints
//! `listening on https://ADDR/ingest` on stderr, then one line of JSON per message received on stdout.
//! Runs until interrupted. Exit code 64 on bad arguments.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: sekisho-cloud-sim [--listen ADDR] [--tls-cert-out FILE]";

fn parse(mut it: impl Iterator<Item = String>) -> Result<(String, Option<PathBuf>), String> {
    let (mut listen, mut out) = ("127.0.0.1:0".to_owned(), None);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--tls-cert-out" => out = Some(value.into()),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok((listen, out))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (listen, out) = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
    let tls =
        sekisho_sim::carrier::self_signed_as("sekisho cloud stand-in", &names).and_then(|m| {
            if let Some(p) = &out {
                std::fs::write(p, &m.ca_pem).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            sekisho_sim::carrier::server_config(&m.cert_pem, &m.key_pem, None)
        });
    let tls = match tls {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    eprintln!("sekisho cloud STAND-IN (for tests and demos; not a cloud service)");
    eprintln!("listening on https://{addr}/ingest");
    let cloud = sekisho_sim::cloud::Cloud::new(|m| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{m}");
        let _ = stdout.flush();
    });
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match sekisho_sim::carrier::serve_tls(listener, tls, cloud.router(), stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
