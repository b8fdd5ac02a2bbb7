//! Against a real client: Debian's `radclient` (freeradius-utils) sends Accounting-Requests to a UDP
//! socket on loopback; the codec reads them and answers, and radclient accepts the answer only if
//! its Response Authenticator is right (it exits non-zero otherwise).

use sekisho_radius::{Status, parse, response};
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn radclient_accounting_round_trip() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let attrs = "Acct-Status-Type = Interim-Update\n\
                 3GPP-IMSI = \"440101234567890\"\n\
                 Calling-Station-Id = \"819012345678\"\n\
                 Framed-IP-Address = 10.20.30.40\n\
                 Acct-Session-Id = \"sess-42\"\n\
                 Acct-Input-Octets = 1000\n\
                 Acct-Input-Gigawords = 2\n\
                 Acct-Output-Octets = 3000\n";
    let mut client = Command::new("radclient")
        .args(["-x", "-r", "1", "-t", "10"])
        .arg(addr.to_string())
        .args(["acct", "shared-s3cret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient (apt-get install freeradius-utils; scripts/test.sh installs it)");
    client
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .unwrap();

    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert!(
        parse(&buf[..n], b"wrong-secret").is_err(),
        "another secret does not authenticate it"
    );
    let a = parse(&buf[..n], b"shared-s3cret").unwrap();
    assert_eq!(a.status, Status::InterimUpdate);
    assert_eq!(a.imsi.as_deref(), Some("440101234567890"));
    assert_eq!(a.msisdn.as_deref(), Some("819012345678"));
    assert_eq!(
        a.framed_ip.map(|ip| ip.to_string()).as_deref(),
        Some("10.20.30.40")
    );
    assert_eq!(a.session_id.as_deref(), Some("sess-42"));
    assert_eq!(a.input_octets, (2u64 << 32) + 1000);
    assert_eq!(a.output_octets, 3000);
    sock.send_to(&response(&a, b"shared-s3cret"), from).unwrap();

    let out = client.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "radclient refused the response:\n{text}"
    );
    assert!(text.contains("Accounting-Response"), "{text}");
}
