//! The carrier integration end to end: Debian's `radclient` plays the packet gateway's RADIUS
//! accounting client against the real gateway; a SIM link (tests/common/carrier.rs) carries test
//! devices' traffic from their SIM's own address and counts it as the packet gateway would.

mod common;

use common::carrier::{Acct, SimLink, download, internet_host, radclient, upload};
use common::{Admin, Device, Gateway, TempDir, eventually, tls_connect};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "pgw-shared-s3cret";

/// A gateway whose RADIUS listener accepts 127.0.0.1 with [`SECRET`].
fn gateway(dir: &TempDir) -> Gateway {
    common::init(&dir.0);
    std::fs::write(dir.0.join("radius.secret"), format!("{SECRET}\n")).unwrap();
    let radius: toml::Table = toml::from_str(
        r#"
        [radius]
        listen = "127.0.0.1:0"
        clients = [{ address = "127.0.0.1", secret_file = "radius.secret" }]
        "#,
    )
    .unwrap();
    common::configure(&dir.0, &[("carrier", "radius", radius["radius"].clone())]);
    let gw = Gateway::start_in(&dir.0);
    assert!(gw.radius.is_some(), "no RADIUS line: {}", gw.log_text());
    gw
}

async fn sim_device(admin: &Admin, field: &Value, unique_id: &str, imsi: &str) -> Value {
    let (s, d) = admin
        .post(
            &format!("/api/v1/fields/{}/devices", field["id"].as_str().unwrap()),
            json!({"unique_id": unique_id, "sim": {"imsi": imsi}}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    d
}

fn sim_path(field: &Value, device: &Value) -> String {
    format!(
        "/api/v1/fields/{}/devices/{}/sim",
        field["id"].as_str().unwrap(),
        device["id"].as_str().unwrap()
    )
}

async fn acct(gw: &Gateway, a: Acct<'_>) {
    radclient(gw.radius.as_deref().unwrap(), SECRET, &a.attrs(), 5)
        .await
        .unwrap_or_else(|e| panic!("radclient: {e}"));
}

async fn radius_status(admin: &Admin) -> Value {
    admin.get("/api/v1/system/status").await.1["radius"].clone()
}

/// Rules detected for one device of a field.
async fn rules_for(admin: &Admin, field: &Value, device_id: &str) -> Vec<String> {
    let (s, v) = admin
        .get(&format!(
            "/api/v1/fields/{}/detections?device={device_id}&limit=100",
            field["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn accounting_from_radclient_builds_the_live_sim_table() {
    let dir = TempDir::new("radius");
    let gw = gateway(&dir);
    let admin = gw.admin().await;
    let field = admin.field("carrier-a").await;
    let dev = sim_device(&admin, &field, "car-1", "440100000000001").await;
    let other = sim_device(&admin, &field, "car-2", "440100000000002").await;
    let server = gw.radius.clone().unwrap();

    let start = |imsi, session, ip| Acct {
        status: "Start",
        imsi,
        session,
        ip,
        up: 0,
        down: 0,
    };
    acct(&gw, start("440100000000001", "s-1", "10.45.0.7")).await;
    // Acknowledged means stored: the live table and the history show it at once.
    let (s, v) = admin.get(&sim_path(&field, &dev)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["session"]["online"], true, "{v}");
    assert_eq!(v["session"]["framed_ip"], "10.45.0.7");
    assert_eq!(v["session"]["msisdn"], "81000000001");
    acct(
        &gw,
        Acct {
            status: "Interim-Update",
            up: (1 << 32) + 1000,
            down: 5000,
            ..start("440100000000001", "s-1", "10.45.0.7")
        },
    )
    .await;
    let v = admin.get(&sim_path(&field, &dev)).await.1;
    assert_eq!(
        v["session"]["input_octets"],
        (1u64 << 32) + 1000,
        "Gigawords"
    );
    assert_eq!(v["session"]["output_octets"], 5000);

    // A retransmission (same identifier and authenticator) is stored once and answered the same.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let packet = sekisho_radius::request(
        &sekisho_radius::Accounting {
            identifier: 77,
            authenticator: [0; 16],
            status: sekisho_radius::Status::InterimUpdate,
            imsi: Some("440100000000001".into()),
            msisdn: None,
            framed_ip: Some("10.45.0.7".parse().unwrap()),
            session_id: Some("s-1".into()),
            input_octets: (1 << 32) + 9000,
            output_octets: 6000,
            session_time: Some(120),
        },
        SECRET.as_bytes(),
    );
    let expected = sekisho_radius::response(
        &sekisho_radius::parse(&packet, SECRET.as_bytes()).unwrap(),
        SECRET.as_bytes(),
    );
    // Garbage and a truncated packet first: counted, dropped, no harm.
    sock.send_to(b"not radius at all", &server).await.unwrap();
    sock.send_to(&packet[..30], &server).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        sock.send_to(&packet, &server).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .expect("the gateway answers a stored record")
            .unwrap();
        answers.push(buf[..n].to_vec());
    }
    assert_eq!(answers, vec![expected.to_vec(), expected.to_vec()]);
    let (_, page) = admin
        .get(&format!("{}/accounting", sim_path(&field, &dev)))
        .await;
    let statuses: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["interim", "interim", "start"], "{page}");
    // Without a carrier API configured, SIM control says so plainly.
    let (s, v) = admin
        .post(&format!("{}/suspend", sim_path(&field, &dev)), json!({}))
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not_configured"),
        "{v}"
    );
    let r = radius_status(&admin).await;
    assert_eq!(
        (r["duplicates"].as_u64(), r["malformed"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );

    // A wrong shared secret gets no answer (radclient gives up) and is recorded.
    let wrong = radclient(
        &server,
        "not-the-secret",
        &start("440100000000002", "x", "10.45.0.9").attrs(),
        1,
    )
    .await;
    assert!(wrong.is_err(), "a wrong secret must not be answered");
    // A packet from an address that is not a client is dropped and recorded.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.9:0").await.unwrap();
    stranger.send_to(&packet, &server).await.unwrap();
    acct(&gw, start("440100000000002", "s-2", "10.45.0.8")).await;
    let r = radius_status(&admin).await;
    assert_eq!(r["bad_authenticator"], 1, "{r}");
    assert_eq!(r["unknown_client"], 1, "{r}");
    assert_eq!(
        (r["sims"].as_u64(), r["sims_online"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    let kinds = eventually(10, || async {
        let (_, v) = admin.get("/api/v1/history/security?limit=100").await;
        let kinds: Vec<String> = v["items"]
            .as_array()?
            .iter()
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect();
        (kinds.iter().any(|k| k == "radius_unknown_client")
            && kinds.iter().any(|k| k == "radius_bad_authenticator"))
        .then_some(kinds)
    })
    .await;
    assert!(kinds.is_some(), "both refusals are security events");

    // Stop ends the session; the SIM has no current address any more.
    acct(
        &gw,
        Acct {
            status: "Stop",
            ..start("440100000000001", "s-1", "10.45.0.7")
        },
    )
    .await;
    let v = admin.get(&sim_path(&field, &dev)).await.1;
    assert_eq!(v["session"]["online"], false, "{v}");

    // The live table survives a SIGKILL; Accounting-On (the packet gateway restarted) ends every
    // session of that client.
    let gw = gw.restart_after_kill9();
    let admin = gw.admin().await;
    let v = admin.get(&sim_path(&field, &other)).await.1;
    assert_eq!(v["session"]["online"], true, "{v}");
    assert_eq!(v["session"]["framed_ip"], "10.45.0.8");
    radclient(
        gw.radius.as_deref().unwrap(),
        SECRET,
        "Acct-Status-Type = Accounting-On\nNAS-IP-Address = 127.0.0.1\n",
        5,
    )
    .await
    .unwrap();
    let v = admin.get(&sim_path(&field, &other)).await.1;
    assert_eq!(v["session"]["online"], false, "{v}");
    let r = radius_status(&admin).await;
    assert_eq!(r["sims_online"], 0, "{r}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("sekisho_radius_stored_total 1"),
        "{metrics}"
    );
}

/// V20: data from another address than the one the carrier gave the device's SIM is spoofing; data
/// from the SIM's own address is not.
#[tokio::test]
async fn data_from_another_address_than_the_sims_is_spoofing() {
    let dir = TempDir::new("v20");
    let gw = gateway(&dir);
    let admin = gw.admin().await;
    let field = admin.field("carrier-v20").await;
    let spoofed = sim_device(&admin, &field, "car-a", "440100000000011").await;
    let genuine = sim_device(&admin, &field, "car-b", "440100000000012").await;
    acct(
        &gw,
        Acct {
            status: "Start",
            imsi: "440100000000011",
            session: "a",
            ip: "10.45.0.7",
            up: 0,
            down: 0,
        },
    )
    .await;
    acct(
        &gw,
        Acct {
            status: "Start",
            imsi: "440100000000012",
            session: "b",
            ip: "127.0.0.2",
            up: 0,
            down: 0,
        },
    )
    .await;
    // The genuine device's traffic leaves from its SIM's address; the spoofer sends from 127.0.0.1.
    let link = SimLink::new("127.0.0.2");
    let mut b = Device::new(&gw, &genuine, "car-b");
    b.base = format!("https://{}", link.route(&gw.device).await);
    b.auth().await;
    assert_eq!(b.send(json!({"seq": 1, "speed": 40})).await.0, 202);
    let mut a = Device::new(&gw, &spoofed, "car-a");
    a.auth().await;
    assert_eq!(a.send(json!({"seq": 1, "speed": 40})).await.0, 202);

    let id_a = spoofed["id"].as_str().unwrap();
    let found = eventually(10, || async {
        let (_, v) = admin
            .get(&format!(
                "/api/v1/fields/{}/detections?rule=network.sim_ip_mismatch",
                field["id"].as_str().unwrap()
            ))
            .await;
        v["items"].as_array().filter(|i| !i.is_empty()).cloned()
    })
    .await
    .expect("the spoofed device is detected");
    assert_eq!(found.len(), 1, "only the spoofed device: {found:?}");
    assert_eq!(found[0]["device_id"], id_a);
    assert_eq!(found[0]["threat"], "spoofing");
    assert_eq!(found[0]["evidence"]["sim_ip"], "10.45.0.7");
    assert_eq!(found[0]["evidence"]["source_ip"], "127.0.0.1");
}

/// V19 without the trial's false positives (※2, ※3): a device that retries a lot (failed handshakes,
/// cut-off requests) is not flagged, a SIM that sends megabytes that never reach the gateway is, and
/// downlink the gateway never sent is reported as its own, lower signal.
#[tokio::test]
async fn sim_volume_reconciles_retries_and_catches_hijacking() {
    let dir = TempDir::new("v19");
    let gw = gateway(&dir);
    let admin = gw.admin().await;
    let field = admin.field("carrier-v19").await;
    let sink = internet_host(0).await;
    let scanner = internet_host(3_000_000).await;
    let mut cases = Vec::new();
    for (name, imsi, ip) in [
        ("retrier", "440100000000021", "127.0.0.3"),
        ("hijacked", "440100000000022", "127.0.0.4"),
        ("scanned", "440100000000023", "127.0.0.5"),
    ] {
        let reg = sim_device(&admin, &field, name, imsi).await;
        acct(
            &gw,
            Acct {
                status: "Start",
                imsi,
                session: name,
                ip,
                up: 0,
                down: 0,
            },
        )
        .await;
        let link = SimLink::new(ip);
        let port = link.route(&gw.device).await;
        let mut d = Device::new(&gw, &reg, name);
        d.base = format!("https://{port}");
        d.auth().await;
        for seq in 1..=5 {
            assert_eq!(
                d.send(json!({"seq": seq, "v": "x".repeat(200)})).await.0,
                202
            );
        }
        cases.push((name, imsi, ip, reg, link, port));
    }

    // The retrier: 20 handshakes that fail and 40 requests cut off half-way (320 KB), as a device on a bad
    // line does. Each reached the gateway, which counts them.
    let (.., retrier_port) = &cases[0];
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(retrier_port).await.unwrap();
        let mut hello = vec![0x16, 0x03, 0x01, 0x01, 0x00];
        hello.extend_from_slice(&[0x42; 256]);
        let _ = s.write_all(&hello).await;
        let _ = s.shutdown().await;
        let mut buf = [0u8; 256];
        while matches!(tokio::io::AsyncReadExt::read(&mut s, &mut buf).await, Ok(n) if n > 0) {}
    }
    for _ in 0..40 {
        let mut tls = tls_connect(&dir.0, retrier_port).await.unwrap();
        tls.write_all(b"POST /v1/telemetry HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 16000\r\n\r\n{\"seq\":")
            .await
            .unwrap();
        tls.write_all(&[b'1'; 8000]).await.unwrap();
        tls.flush().await.unwrap();
        drop(tls);
    }
    // The hijacked device also sends 3 MB elsewhere; the scanned one is sent 3 MB it never asked for.
    let hijacked = &cases[1].4;
    upload(&hijacked.route(&sink).await, 3_000_000).await;
    let scanned = &cases[2].4;
    assert_eq!(download(&scanned.route(&scanner).await).await, 3_000_000);

    // The packet gateway reports what it counted when the sessions end; each Stop is answered only
    // after its window is judged.
    for (name, imsi, ip, _, link, _) in &cases {
        acct(
            &gw,
            Acct {
                status: "Stop",
                imsi,
                session: name,
                ip,
                up: link.uplink(),
                down: link.downlink(),
            },
        )
        .await;
    }
    let id = |i: usize| cases[i].3["id"].as_str().unwrap().to_owned();
    let scanned_rules = eventually(10, || async {
        let r = rules_for(&admin, &field, &id(2)).await;
        r.iter().any(|r| r.starts_with("sim.")).then_some(r)
    })
    .await
    .expect("the scanned device's window is judged");
    assert!(
        scanned_rules.contains(&"sim.downlink_unsolicited".to_owned()),
        "{scanned_rules:?}"
    );
    assert!(
        !scanned_rules.contains(&"sim.uplink_excess".to_owned()),
        "uplink is compared with uplink: {scanned_rules:?}"
    );
    let hijacked_rules = rules_for(&admin, &field, &id(1)).await;
    assert!(
        hijacked_rules.contains(&"sim.uplink_excess".to_owned()),
        "{hijacked_rules:?}"
    );
    let retrier_rules = rules_for(&admin, &field, &id(0)).await;
    assert!(
        !retrier_rules.iter().any(|r| r.starts_with("sim.")),
        "retries are reconciled, not flagged: {retrier_rules:?}"
    );
    // The evidence shows what was compared.
    let (_, v) = admin
        .get(&format!(
            "/api/v1/fields/{}/detections?rule=sim.uplink_excess",
            field["id"].as_str().unwrap()
        ))
        .await;
    let e = &v["items"][0]["evidence"];
    assert!(e["sim_uplink"].as_u64().unwrap() > 3_000_000, "{e}");
    assert!(e["gateway_rx"].as_u64().unwrap() > 5 * 200, "{e}");
}

/// V26: a device's SIM is suspended and resumed through the carrier's API — the carrier simulator
/// (`sekisho-carrier`, a stand-in for a real carrier) over HTTPS with its own CA, called by the real
/// MVNO connector. Suspending twice is harmless; a failing carrier is retried, then reported; every
/// call is recorded.
#[tokio::test]
async fn a_devices_sim_is_suspended_and_resumed_through_the_carrier() {
    use sekisho_sim::carrier::{Fault, NewSim, Simulator, self_signed, server_config};
    const IMSI: &str = "440100000000031";
    let carrier = Simulator::new(Some("carrier-t0ken".into()));
    carrier
        .add_sim(NewSim {
            imsi: IMSI.into(),
            iccid: "8981100000000000031".into(),
            msisdn: Some("819000000031".into()),
            status: "active".into(),
        })
        .unwrap();
    let tls = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let running = carrier
        .start(Some(
            server_config(&tls.cert_pem, &tls.key_pem, None).unwrap(),
        ))
        .await
        .unwrap();

    let dir = TempDir::new("v26");
    common::init(&dir.0);
    std::fs::write(dir.0.join("carrier.token"), "carrier-t0ken\n").unwrap();
    std::fs::write(dir.0.join("carrier-ca.pem"), &tls.ca_pem).unwrap();
    let api: toml::Table = toml::from_str(&format!(
        r#"
        [api]
        kind = "mvno"
        base_url = "{}"
        ca_file = "carrier-ca.pem"
        retries = 2
        backoff_initial_ms = 20
        backoff_max_ms = 100
        "#,
        running.url
    ))
    .unwrap();
    common::configure(&dir.0, &[("carrier", "api", api["api"].clone())]);
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("carrier-v26").await;
    let dev = sim_device(&admin, &field, "car-s", IMSI).await;
    let path = sim_path(&field, &dev);

    for _ in 0..2 {
        let (s, v) = admin.post(&format!("{path}/suspend"), json!({})).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["sim"]["state"], "suspended", "{v}");
        assert_eq!(v["record"]["outcome"], "ok");
    }
    assert_eq!(carrier.sim(IMSI).unwrap().status, "inactive");
    let deactivations = carrier
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/deactivate"))
        .count();
    assert_eq!(
        deactivations, 2,
        "each suspend is one call, the second a no-op"
    );

    carrier.add_usage(IMSI, 1500, 4200, None);
    let (s, v) = admin.get(&format!("{path}/carrier")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"]["state"], "suspended");
    assert_eq!(
        (v["uplink_bytes"].as_u64(), v["downlink_bytes"].as_u64()),
        (Some(1500), Some(4200))
    );

    let (s, v) = admin.post(&format!("{path}/resume"), json!({})).await;
    assert_eq!(
        (s, v["sim"]["state"].as_str()),
        (200, Some("active")),
        "{v}"
    );
    assert_eq!(carrier.sim(IMSI).unwrap().status, "active");

    // The carrier fails: retried (2 retries), then a clear error; the failure is recorded.
    carrier.inject(Fault {
        status: Some(503),
        ..Fault::default()
    });
    let (s, v) = admin.post(&format!("{path}/suspend"), json!({})).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (502, Some("carrier_unavailable")),
        "{v}"
    );
    carrier.clear_faults();
    assert_eq!(carrier.sim(IMSI).unwrap().status, "active");
    let (_, v) = admin.get(&path).await;
    let last = &v["actions"][0];
    assert_eq!(
        (
            last["action"].as_str(),
            last["outcome"].as_str(),
            last["error"].as_str(),
            last["attempts"].as_i64()
        ),
        (
            Some("suspend"),
            Some("failed"),
            Some("unavailable"),
            Some(3)
        ),
        "{v}"
    );
    assert_eq!(last["actor"], "user:admin");
    let actions: Vec<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["suspend", "resume", "usage", "status", "suspend", "suspend"]
    );

    // A device without a SIM has none to suspend.
    let plain = admin.device(&field, "no-sim").await;
    let (s, _) = admin
        .post(&format!("{}/suspend", sim_path(&field, &plain)), json!({}))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_flood_of_bad_packets_is_counted_exactly_and_logged_sparingly() {
    let dir = TempDir::new("radius-flood");
    let gw = gateway(&dir);
    let admin = gw.admin().await;
    let server = gw.radius.clone().unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    const N: u64 = 1570;
    for i in 0..N {
        let packet = sekisho_radius::request(
            &sekisho_radius::Accounting {
                identifier: (i % 256) as u8,
                authenticator: [0; 16],
                status: sekisho_radius::Status::Start,
                imsi: Some("440100000000009".into()),
                msisdn: None,
                framed_ip: Some("10.45.0.9".parse().unwrap()),
                session_id: Some(format!("s-{i}")),
                input_octets: 0,
                output_octets: 0,
                session_time: None,
            },
            b"a-forged-or-misconfigured-secret",
        );
        sock.send_to(&packet, &server).await.unwrap();
        // In steps the socket buffer can hold (UDP on loopback drops what it cannot).
        if (i + 1) % 157 == 0 {
            let counted = eventually(30, || async {
                let r = radius_status(&admin).await;
                (r["bad_authenticator"].as_u64() == Some(i + 1)).then_some(r)
            })
            .await;
            assert!(counted.is_some(), "every bad packet is counted ({})", i + 1);
        }
    }
    let lines = gw
        .log_text()
        .lines()
        .filter(|l| l.contains("wrong authenticator"))
        .count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} log lines for {N} bad packets"
    );
}

/// The carrier connection set through the admin API, without a restart: checked whole, in force at
/// once, kept across a restart, and removed to return to the configuration file's.
#[tokio::test]
async fn the_carrier_connection_is_set_at_run_time() {
    use sekisho_sim::carrier::{NewSim, Simulator, self_signed, server_config};
    const IMSI: &str = "440100000000041";
    let carrier = Simulator::new(Some("run-time-t0ken".into()));
    carrier
        .add_sim(NewSim {
            imsi: IMSI.into(),
            iccid: "8981100000000000041".into(),
            msisdn: None,
            status: "active".into(),
        })
        .unwrap();
    let tls = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let running = carrier
        .start(Some(
            server_config(&tls.cert_pem, &tls.key_pem, None).unwrap(),
        ))
        .await
        .unwrap();
    let dir = TempDir::new("carrier-set");
    let gw = Gateway::start_in(&dir.0);
    let admin = gw.admin().await;
    let field = admin.field("cars").await;
    let dev = sim_device(&admin, &field, "car-r", IMSI).await;
    let path = sim_path(&field, &dev);
    let (_, v) = admin.get("/api/v1/system/carrier").await;
    assert_eq!(
        (v["source"].as_str(), v["kind"].as_str()),
        (Some("configuration"), Some("none")),
        "{v}"
    );

    // Refused whole, with every problem: nothing changes.
    let (s, v) = admin
        .req(
            reqwest::Method::PUT,
            "/api/v1/system/carrier",
            Some(json!({"kind": "mvno", "base_url": "http://carrier.example", "token": "t", "timeout_ms": 0})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let m = v["message"].as_str().unwrap();
    assert!(m.contains("base_url") && m.contains("timeout_ms"), "{m}");
    let (s, v) = admin.post(&format!("{path}/suspend"), json!({})).await;
    assert_eq!(s, 409, "still not configured: {v}");

    let setting = json!({"kind": "mvno", "base_url": running.url, "token": "run-time-t0ken",
        "ca_pem": tls.ca_pem, "retries": 1});
    let (s, v) = admin
        .req(
            reqwest::Method::PUT,
            "/api/v1/system/carrier",
            Some(setting),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["source"].as_str(),
            v["token_set"].as_bool(),
            v["ca_pinned"].as_bool()
        ),
        (Some("admin_api"), Some(true), Some(true)),
        "{v}"
    );
    assert!(
        !v.to_string().contains("run-time-t0ken"),
        "the token is write-only"
    );
    let (s, v) = admin.post(&format!("{path}/suspend"), json!({})).await;
    assert_eq!(
        (s, v["sim"]["state"].as_str()),
        (200, Some("suspended")),
        "{v}"
    );
    assert_eq!(carrier.sim(IMSI).unwrap().status, "inactive");

    // Kept across a restart (the data directory holds it, the token in a 0600 file).
    let gw = gw.restart_after_kill9();
    let admin = gw.admin().await;
    let (_, v) = admin.get("/api/v1/system/carrier").await;
    assert_eq!(v["source"], "admin_api", "{v}");
    let (s, v) = admin.post(&format!("{path}/resume"), json!({})).await;
    assert_eq!(
        (s, v["sim"]["state"].as_str()),
        (200, Some("active")),
        "{v}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.0.join("carrier/token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Removed: the configuration file's [carrier.api] (none) applies again.
    let (s, v) = admin
        .req(reqwest::Method::DELETE, "/api/v1/system/carrier", None)
        .await;
    assert_eq!(
        (s, v["source"].as_str()),
        (200, Some("configuration")),
        "{v}"
    );
    let (s, _) = admin.post(&format!("{path}/suspend"), json!({})).await;
    assert_eq!(s, 409);
    let (s, _) = admin
        .req(reqwest::Method::DELETE, "/api/v1/system/carrier", None)
        .await;
    assert_eq!(s, 404, "nothing left to remove");
}
