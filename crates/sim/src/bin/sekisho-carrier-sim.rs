//! `sekisho-carrier-sim`: the carrier **simulator** for tests and demos (see
//! `sekisho_sim::carrier`). It is not a carrier and controls no real SIM.
//!
//! ```text
//! sekisho-carrier-sim [--listen 127.0.0.1:0] [--token T] [--sims sims.json] [--conflict-on-noop]
//!                     [--tls-cert-out ca.pem | --tls-cert cert.pem --tls-key key.pem] [--client-ca ca.pem]
//! ```
//!
//! The first line on stdout is `listening on http://ADDR` (or `https://`). `--tls-cert-out` makes a
//! throw-away CA and server certificate (for localhost, 127.0.0.1, ::1) and writes the CA's PEM
//! there for clients to trust; `--tls-cert`/`--tls-key` use given PEM files instead. `--client-ca`
//! requires client certificates signed by that CA. `--sims` loads a JSON array of
//! `{"imsi", "iccid", "msisdn"?, "status"?}`. Runs until interrupted. Exit code 64 on bad arguments.

use sekisho_sim::carrier::{self as simulator, NewSim, Simulator};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Default)]
struct Args {
    listen: Option<String>,
    token: Option<String>,
    sims: Option<PathBuf>,
    tls_cert_out: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    conflict_on_noop: bool,
}

const USAGE: &str = "usage: sekisho-carrier-sim [--listen ADDR] [--token T] [--sims FILE] [--conflict-on-noop] \
[--tls-cert-out FILE | --tls-cert FILE --tls-key FILE] [--client-ca FILE]";

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(flag) = it.next() {
        if flag == "--conflict-on-noop" {
            a.conflict_on_noop = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => a.listen = Some(value),
            "--token" => a.token = Some(value),
            "--sims" => a.sims = Some(value.into()),
            "--tls-cert-out" => a.tls_cert_out = Some(value.into()),
            "--tls-cert" => a.tls_cert = Some(value.into()),
            "--tls-key" => a.tls_key = Some(value.into()),
            "--client-ca" => a.client_ca = Some(value.into()),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if a.tls_cert.is_some() != a.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if a.tls_cert.is_some() && a.tls_cert_out.is_some() {
        return Err(
            "--tls-cert-out makes a certificate; --tls-cert uses one: give one of them".into(),
        );
    }
    if a.client_ca.is_some() && a.tls_cert.is_none() && a.tls_cert_out.is_none() {
        return Err("--client-ca needs TLS (--tls-cert-out or --tls-cert)".into());
    }
    Ok(a)
}

fn read(p: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn tls(a: &Args) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
    let client_ca = a.client_ca.as_ref().map(read).transpose()?;
    let (cert, key) = match (&a.tls_cert, &a.tls_key, &a.tls_cert_out) {
        (Some(c), Some(k), _) => (read(c)?, read(k)?),
        (_, _, Some(out)) => {
            let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
            let m = simulator::self_signed(&names)?;
            std::fs::write(out, &m.ca_pem).map_err(|e| format!("{}: {e}", out.display()))?;
            (m.cert_pem, m.key_pem)
        }
        _ => return Ok(None),
    };
    simulator::server_config(&cert, &key, client_ca.as_deref()).map(Some)
}

fn setup(a: &Args) -> Result<Simulator, String> {
    let sim = Simulator::new(a.token.clone());
    sim.conflict_on_noop(a.conflict_on_noop);
    if let Some(p) = &a.sims {
        let list: Vec<NewSim> =
            serde_json::from_str(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?;
        for s in list {
            sim.add_sim(s)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(sim)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let prepared = parse(std::env::args().skip(1)).and_then(|a| Ok((setup(&a)?, tls(&a)?, a)));
    let (sim, tls, args) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let addr = args.listen.as_deref().unwrap_or("127.0.0.1:0");
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening on {scheme}://{bound}");
    let _ = std::io::stdout().flush();
    if args.token.is_none() {
        eprintln!("warning: no --token: the simulated API accepts every request");
    }
    eprintln!("sekisho carrier SIMULATOR (for tests and demos; not a carrier)");
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match sim.serve(listener, tls, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
