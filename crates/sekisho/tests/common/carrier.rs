//! The carrier's side for tests: Debian's `radclient` as the packet gateway's RADIUS accounting client,
//! and a SIM link — what the packet gateway sees of one SIM's traffic.
//!
//! A [`SimLink`] stands for the mobile network between a device and the Internet: every connection a
//! test device opens through it leaves from the SIM's own address (a 127.0.0.x alias) and every byte is
//! counted the way a packet gateway counts a SIM's volume — payload plus IP/TCP headers (52 bytes per
//! segment, 3 segments to open and close a connection). Those counts are what the tests then report
//! in Accounting-Interim/Stop, as the carrier would.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// IPv4 + TCP (with timestamps) header bytes per segment.
const HEADER: u64 = 52;

/// One SIM's path to the Internet, counted as the packet gateway counts it.
#[derive(Clone)]
pub struct SimLink {
    pub ip: IpAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl SimLink {
    pub fn new(ip: &str) -> Self {
        Self {
            ip: ip.parse().unwrap(),
            up: Arc::default(),
            down: Arc::default(),
        }
    }

    /// Bytes the SIM sent so far (accounting input octets).
    pub fn uplink(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }

    /// Bytes the SIM received so far (accounting output octets).
    pub fn downlink(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }

    /// A local port whose connections reach `target` through this SIM (from its address).
    pub async fn route(&self, target: &str) -> String {
        let target: SocketAddr = target.parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap();
        let link = self.clone();
        tokio::spawn(async move {
            while let Ok((device_side, _)) = listener.accept().await {
                let link = link.clone();
                tokio::spawn(async move {
                    let s = TcpSocket::new_v4().unwrap();
                    s.bind(SocketAddr::new(link.ip, 0)).unwrap();
                    let Ok(net_side) = s.connect(target).await else {
                        return;
                    };
                    link.up.fetch_add(3 * HEADER, Ordering::SeqCst);
                    link.down.fetch_add(2 * HEADER, Ordering::SeqCst);
                    let (dr, dw) = device_side.into_split();
                    let (nr, nw) = net_side.into_split();
                    tokio::join!(pump(dr, nw, &link.up), pump(nr, dw, &link.down));
                });
            }
        });
        port.to_string()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: &AtomicU64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64 + HEADER, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A host on the Internet: it reads whatever it is sent, or sends `push` bytes to whoever connects.
pub async fn internet_host(push: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if push > 0 {
                    let _ = s.write_all(&vec![0x5a; push]).await;
                    let _ = s.shutdown().await;
                } else {
                    let mut buf = vec![0u8; 64 * 1024];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    addr
}

/// Sends `n` bytes over a fresh connection to `addr` and waits for the peer to close.
pub async fn upload(addr: &str, n: usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&vec![0xa5; n]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut buf = [0u8; 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Reads everything `addr` sends until it closes; returns the byte count.
pub async fn download(addr: &str) -> usize {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).await.unwrap();
    v.len()
}

/// An accounting request's attributes, as radclient reads them.
pub struct Acct<'a> {
    pub status: &'a str,
    pub imsi: &'a str,
    pub session: &'a str,
    pub ip: &'a str,
    pub up: u64,
    pub down: u64,
}

impl Acct<'_> {
    pub fn attrs(&self) -> String {
        format!(
            "Acct-Status-Type = {}\n3GPP-IMSI = \"{}\"\nCalling-Station-Id = \"81{}\"\nFramed-IP-Address = {}\n\
             Acct-Session-Id = \"{}\"\nAcct-Input-Octets = {}\nAcct-Input-Gigawords = {}\n\
             Acct-Output-Octets = {}\nAcct-Output-Gigawords = {}\n",
            self.status,
            self.imsi,
            &self.imsi[self.imsi.len() - 9..],
            self.ip,
            self.session,
            self.up & 0xffff_ffff,
            self.up >> 32,
            self.down & 0xffff_ffff,
            self.down >> 32,
        )
    }
}

/// Sends one Accounting-Request with Debian's `radclient`; `Ok` when it accepted the gateway's
/// Accounting-Response (right Response Authenticator), `Err` with its output otherwise (one try,
/// `timeout` seconds).
pub async fn radclient(
    server: &str,
    secret: &str,
    attrs: &str,
    timeout: u32,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new("radclient")
        .args([
            "-x",
            "-r",
            "1",
            "-t",
            &timeout.to_string(),
            server,
            "acct",
            secret,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("radclient (apt-get install freeradius-utils; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Accounting-Response") {
        Ok(())
    } else {
        Err(text)
    }
}
