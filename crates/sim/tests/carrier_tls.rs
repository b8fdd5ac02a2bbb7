//! HTTPS: the real `sekisho-carrier-sim` binary with its throw-away certificate trusted through
//! `ca_file` (and driven through its `/_sim/` endpoints), an untrusted certificate refused, and
//! mTLS to the carrier with `client_cert_file`/`client_key_file`.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use sekisho_carrier::{CarrierError, SimState};
use sekisho_sim::carrier::{self as simulator, NewSim};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The simulator binary, its base URL, and a client for its control endpoints.
struct SimProcess {
    _child: tokio::process::Child,
    url: String,
    control: reqwest::Client,
}

async fn spawn_sim(dir: &TempDir) -> SimProcess {
    let sims = json!([
        {"imsi": IMSI, "iccid": ICCID, "msisdn": "819000000001"},
        {"imsi": IMSI2, "iccid": ICCID2, "status": "ready"},
    ]);
    let sims_file = dir.write("sims.json", &sims.to_string());
    let ca = dir.path().join("sim-ca.pem");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sekisho-carrier-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--tls-cert-out",
        ])
        .arg(&ca)
        .arg("--sims")
        .arg(&sims_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).await.unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let pem = std::fs::read(&ca).unwrap();
    let control = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    SimProcess {
        _child: child,
        url,
        control,
    }
}

impl SimProcess {
    async fn post(&self, path: &str, body: Value) {
        let r = self
            .control
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    async fn requests(&self) -> Vec<Value> {
        let r = self
            .control
            .get(format!("{}/_sim/requests", self.url))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}

#[tokio::test]
async fn the_simulator_binary_over_https() {
    let dir = TempDir::new();
    let sim = spawn_sim(&dir).await;
    let mut cfg = config(&dir, &sim.url);
    cfg.ca_file = Some("sim-ca.pem".into());
    let c = connect(&cfg, &dir);

    let s = c.status(&imsi(IMSI2)).await.into_result().unwrap();
    assert_eq!(s.state, SimState::Unknown("ready".into()));
    let s = c.resume(&iccid(ICCID2)).await.into_result().unwrap();
    assert_eq!(s.state, SimState::Active);

    sim.post(
        &format!("/_sim/sims/{IMSI}/session"),
        json!({"ip": "10.20.30.40"}),
    )
    .await;
    let s = c.status(&imsi(IMSI)).await.into_result().unwrap();
    assert_eq!(s.ip, Some("10.20.30.40".parse().unwrap()));

    sim.post(
        "/_sim/faults",
        json!({"status": 503, "count": 2, "path_contains": "/deactivate"}),
    )
    .await;
    let call = c.suspend(&imsi(IMSI)).await;
    assert_eq!((call.code(), call.attempts), ("ok", 3));
    let again = c.suspend(&imsi(IMSI)).await;
    assert_eq!(again.result.unwrap().state, SimState::Suspended);
    let deactivations: Vec<u64> = sim
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/deactivate"))
        })
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(deactivations, [503, 503, 200, 200]);

    sim.post(
        &format!("/_sim/sims/{IMSI}/usage"),
        json!({"uplink_bytes": 1500, "downlink_bytes": 90000}),
    )
    .await;
    sim.post(
        &format!("/_sim/sims/{IMSI}/usage"),
        json!({"uplink_bytes": 500, "unixtime": 1_700_000_000}),
    )
    .await;
    let u = c.usage(&imsi(IMSI)).await.into_result().unwrap();
    assert_eq!((u.uplink_bytes, u.downlink_bytes), (2000, 90000));

    // The simulator's certificate is not trusted without ca_file: nothing reaches its API.
    let before = sim.requests().await.len();
    cfg.ca_file = None;
    cfg.retries = 0;
    let untrusted = connect(&cfg, &dir).status(&imsi(IMSI)).await;
    assert!(
        matches!(
            untrusted.result,
            Err(CarrierError::Unavailable { status: None, .. })
        ),
        "{:?}",
        untrusted.result
    );
    let message = untrusted.result.unwrap_err().to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert_eq!(sim.requests().await.len(), before);
}

/// A client CA and a client certificate it issued: (CA PEM, certificate PEM, key PEM).
fn client_identity() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut p = CertificateParams::new(vec!["sekisho-app".to_owned()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn mutual_tls_to_the_carrier() {
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let server = simulator::self_signed(&names).unwrap();
    let (client_ca, client_cert, client_key) = client_identity();
    let tls =
        simulator::server_config(&server.cert_pem, &server.key_pem, Some(&client_ca)).unwrap();
    let sim = simulator();
    sim.add_sim(NewSim {
        imsi: "001010000000123".into(),
        iccid: "8900000000000000123".into(),
        msisdn: None,
        status: "active".into(),
    })
    .unwrap();
    let running = sim.start(Some(tls)).await.unwrap();
    assert!(running.url.starts_with("https://"));

    let dir = TempDir::new();
    let mut cfg = config(&dir, &running.url.replace("127.0.0.1", "localhost"));
    cfg.ca_file = Some(dir.write("ca.pem", &server.ca_pem));
    cfg.retries = 0;
    let without = connect(&cfg, &dir).status(&imsi(IMSI)).await;
    assert_eq!(without.code(), "unavailable", "{:?}", without.result);
    let message = without.result.unwrap_err().to_string();
    assert!(message.contains("CertificateRequired"), "{message}");
    assert!(
        sim.requests().is_empty(),
        "no request without a client certificate"
    );

    cfg.client_cert_file = Some(dir.write("client.pem", &client_cert));
    cfg.client_key_file = Some(dir.write("client.key", &client_key));
    let c = connect(&cfg, &dir);
    let s = c
        .suspend(&imsi("001010000000123"))
        .await
        .into_result()
        .unwrap();
    assert_eq!(s.state, SimState::Suspended);
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn the_simulator_binary_refuses_bad_arguments() {
    for args in [
        vec!["--bogus"],
        vec!["--token"],
        vec!["--tls-cert", "a.pem"],
        vec!["--client-ca", "ca.pem"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sekisho-carrier-sim"))
            .args(&args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
