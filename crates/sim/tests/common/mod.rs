//! Shared test fixtures: a temporary directory, the in-process carrier simulator with two SIMs, and
//! a connector configuration pointing at it.
#![allow(dead_code)]

use sekisho_carrier::{CarrierApiConfig, SimControl, SimId};
use sekisho_sim::carrier::{NewSim, Running, Simulator};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

pub const TOKEN: &str = "test-token-0123456789";
pub const IMSI: &str = "440103000000001";
pub const ICCID: &str = "8981100000000000001";
pub const IMSI2: &str = "440103000000002";
pub const ICCID2: &str = "8981100000000000002";

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sekisho-carrier-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The simulator with two active SIMs, requiring [`TOKEN`].
pub fn simulator() -> Simulator {
    let sim = Simulator::new(Some(TOKEN.into()));
    for (imsi, iccid, msisdn) in [
        (IMSI, ICCID, "819000000001"),
        (IMSI2, ICCID2, "819000000002"),
    ] {
        sim.add_sim(NewSim {
            imsi: imsi.into(),
            iccid: iccid.into(),
            msisdn: Some(msisdn.into()),
            status: "active".into(),
        })
        .unwrap();
    }
    sim
}

/// A started simulator (plain HTTP on loopback) and the simulator handle.
pub async fn started() -> (Simulator, Running) {
    let sim = simulator();
    let running = sim.start(None).await.unwrap();
    (sim, running)
}

/// An `mvno` configuration for `url`, the token in a file of `dir`; short backoffs so retries are
/// quick, and no token variable.
pub fn config(dir: &TempDir, url: &str) -> CarrierApiConfig {
    dir.write("carrier.token", &format!("{TOKEN}\n"));
    CarrierApiConfig {
        kind: "mvno".into(),
        base_url: url.into(),
        token_env: String::new(),
        timeout_ms: 5_000,
        retries: 2,
        backoff_initial_ms: 1,
        backoff_max_ms: 20,
        ..CarrierApiConfig::default()
    }
}

pub fn connect(cfg: &CarrierApiConfig, dir: &TempDir) -> Arc<dyn SimControl> {
    match sekisho_carrier::connect(cfg, dir.path()) {
        Ok(c) => c,
        Err(p) => panic!("configuration refused: {p:#?}"),
    }
}

pub fn imsi(s: &str) -> SimId {
    SimId::imsi(s).unwrap()
}

pub fn iccid(s: &str) -> SimId {
    SimId::iccid(s).unwrap()
}

/// (method, path, status) of every request the simulator logged.
pub fn log(sim: &Simulator) -> Vec<(String, String, u16)> {
    sim.requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect()
}
