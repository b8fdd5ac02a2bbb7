//! The `mvno` connector against the carrier simulator over loopback HTTP: state changes,
//! idempotency, typed errors, retries, Retry-After, timeouts, ICCID look-ups and usage.

mod common;

use common::*;
use sekisho_carrier::{CarrierError, SimId, SimState};
use sekisho_sim::carrier::Fault;
use std::time::Duration;

fn status_fault(status: u16, count: Option<u32>) -> Fault {
    Fault {
        status: Some(status),
        count,
        ..Fault::default()
    }
}

#[tokio::test]
async fn suspend_and_resume_are_idempotent() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let c = connect(&config(&dir, &running.url), &dir);
    assert_eq!(c.name(), "mvno");
    let id = imsi(IMSI);
    sim.set_session(IMSI, Some("10.1.2.3".parse().unwrap()));

    let s = c.status(&id).await.into_result().unwrap();
    assert_eq!(s.state, SimState::Active);
    assert_eq!(
        (s.online, s.ip),
        (Some(true), Some("10.1.2.3".parse().unwrap()))
    );
    assert_eq!(s.iccid.as_deref(), Some(ICCID));
    assert_eq!(s.msisdn.as_deref(), Some("819000000001"));

    let call = c.suspend(&id).await;
    assert_eq!((call.attempts, call.code()), (1, "ok"));
    let s = call.into_result().unwrap();
    assert_eq!(s.state, SimState::Suspended);
    assert_eq!(s.online, Some(false), "deactivation ends the session");
    assert_eq!(
        c.status(&id).await.into_result().unwrap().state,
        SimState::Suspended
    );
    assert_eq!(sim.sim(IMSI).unwrap().status, "inactive");

    let again = c.suspend(&id).await;
    assert_eq!(again.result.unwrap().state, SimState::Suspended);

    let s = c.resume(&id).await.into_result().unwrap();
    assert_eq!(s.state, SimState::Active);
    assert_eq!(
        c.resume(&id).await.into_result().unwrap().state,
        SimState::Active
    );
    assert_eq!(sim.sim(IMSI).unwrap().status, "active");
    assert_eq!(
        sim.sim(IMSI2).unwrap().status,
        "active",
        "the other SIM is untouched"
    );

    let calls = log(&sim);
    let count = |suffix: &str| {
        calls
            .iter()
            .filter(|(m, p, _)| m == "POST" && p.ends_with(suffix))
            .count()
    };
    assert_eq!(
        (count("/deactivate"), count("/activate")),
        (2, 2),
        "{calls:#?}"
    );
    assert!(calls.iter().all(|(_, _, s)| *s == 200), "{calls:#?}");
}

#[tokio::test]
async fn a_409_for_a_noop_is_success_after_a_status_read() {
    let (sim, running) = started().await;
    sim.conflict_on_noop(true);
    let dir = TempDir::new();
    let c = connect(&config(&dir, &running.url), &dir);
    let id = imsi(IMSI);

    assert_eq!(c.suspend(&id).await.attempts, 1);
    let again = c.suspend(&id).await;
    assert_eq!(again.attempts, 2, "the 409, then the status read");
    assert_eq!(again.result.unwrap().state, SimState::Suspended);
    let tail: Vec<_> = log(&sim).into_iter().rev().take(2).collect();
    assert_eq!(tail[1].2, 409);
    assert_eq!((tail[0].0.as_str(), tail[0].2), ("GET", 200));

    // A terminated SIM is suspended enough, but cannot be resumed: the refusal stands.
    sim.set_status(IMSI2, "terminated");
    let s = c.suspend(&imsi(IMSI2)).await.into_result().unwrap();
    assert_eq!(s.state, SimState::Terminated);
    let e = c.resume(&imsi(IMSI2)).await.into_result().unwrap_err();
    assert!(
        matches!(e, CarrierError::Refused { status: 409, .. }),
        "{e:?}"
    );
    assert!(!e.retryable());
}

#[tokio::test]
async fn unknown_sims_and_bad_identifiers() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let c = connect(&config(&dir, &running.url), &dir);

    let call = c.status(&imsi("440109999999999")).await;
    assert_eq!(
        (call.code(), call.attempts),
        ("not_found", 1),
        "404 is not retried"
    );
    assert_eq!(
        c.suspend(&imsi("440109999999999")).await.result,
        Err(CarrierError::NotFound)
    );
    assert_eq!(
        c.usage(&imsi("440109999999999")).await.result,
        Err(CarrierError::NotFound)
    );

    let before = sim.requests().len();
    let bad = c.suspend(&SimId::Imsi("4401/../x".into())).await;
    assert_eq!((bad.code(), bad.attempts), ("invalid", 0));
    assert_eq!(sim.requests().len(), before, "nothing was sent");
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_not_retried() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let cfg = config(&dir, &running.url);
    dir.write("carrier.token", "not-the-token");
    let c = connect(&cfg, &dir);
    let call = c.suspend(&imsi(IMSI)).await;
    assert!(
        matches!(call.result, Err(CarrierError::Unauthorized(_))),
        "{:?}",
        call.result
    );
    assert_eq!(call.attempts, 1);
    assert_eq!(log(&sim).len(), 1, "{:#?}", log(&sim));
    assert_eq!(log(&sim)[0].2, 401);
    let text = call.result.unwrap_err().to_string();
    assert!(!text.contains("not-the-token"), "{text}");
    assert_eq!(sim.sim(IMSI).unwrap().status, "active");
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let c = connect(&config(&dir, &running.url), &dir);

    sim.inject(status_fault(503, Some(2)));
    let call = c.suspend(&imsi(IMSI)).await;
    assert_eq!((call.code(), call.attempts), ("ok", 3));
    let statuses: Vec<u16> = log(&sim).iter().map(|r| r.2).collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(sim.sim(IMSI).unwrap().status, "inactive");

    sim.clear_requests();
    sim.inject(status_fault(503, None));
    let call = c.resume(&imsi(IMSI)).await;
    assert_eq!(call.attempts, 3, "retries (2) + 1");
    let e = call.result.unwrap_err();
    assert!(
        matches!(
            e,
            CarrierError::Unavailable {
                status: Some(503),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.retryable());
    assert_eq!(log(&sim).len(), 3);
    sim.clear_faults();

    // A 4xx other than 408/429 is final.
    sim.clear_requests();
    sim.inject(status_fault(400, Some(1)));
    let call = c.status(&imsi(IMSI)).await;
    assert_eq!((call.code(), call.attempts), ("refused", 1));
    sim.inject(status_fault(408, Some(1)));
    assert_eq!(c.status(&imsi(IMSI)).await.attempts, 2, "408 is retried");
}

#[tokio::test]
async fn retry_after_is_honoured_and_capped() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let mut cfg = config(&dir, &running.url);
    cfg.backoff_max_ms = 5_000;
    let c = connect(&cfg, &dir);

    sim.inject(Fault {
        retry_after_secs: Some(1),
        ..status_fault(429, Some(1))
    });
    let call = c.status(&imsi(IMSI)).await;
    assert_eq!((call.code(), call.attempts), ("ok", 2));
    let r = sim.requests();
    assert_eq!((r[0].status, r[1].status), (429, 200));
    let gap = r[1].at_ms - r[0].at_ms;
    assert!(
        gap >= 1_000,
        "the retry came {gap} ms after a Retry-After of 1 s"
    );

    // Still limited after every retry: RateLimited, with what the carrier asked for.
    sim.inject(Fault {
        retry_after_secs: Some(0),
        ..status_fault(429, None)
    });
    let e = c.status(&imsi(IMSI)).await.into_result().unwrap_err();
    assert_eq!(
        e,
        CarrierError::RateLimited {
            retry_after_ms: Some(0)
        }
    );
    sim.clear_faults();

    // An hour-long Retry-After waits backoff_max_ms at most.
    cfg.backoff_max_ms = 20;
    let c = connect(&cfg, &dir);
    sim.inject(Fault {
        retry_after_secs: Some(3_600),
        ..status_fault(429, Some(1))
    });
    let call = tokio::time::timeout(Duration::from_secs(60), c.status(&imsi(IMSI)))
        .await
        .expect("the wait is capped by backoff_max_ms");
    assert_eq!((call.code(), call.attempts), ("ok", 2));
}

#[tokio::test]
async fn a_slow_carrier_times_out_and_the_retry_succeeds() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let mut cfg = config(&dir, &running.url);
    cfg.timeout_ms = 200;
    cfg.retries = 0;
    let c = connect(&cfg, &dir);
    sim.inject(Fault {
        delay_ms: 3_000,
        count: Some(1),
        ..Fault::default()
    });
    let call = c.status(&imsi(IMSI)).await;
    assert_eq!(
        (call.result, call.attempts),
        (Err(CarrierError::Timeout), 1)
    );

    cfg.retries = 1;
    let c = connect(&cfg, &dir);
    sim.inject(Fault {
        delay_ms: 3_000,
        count: Some(1),
        ..Fault::default()
    });
    let call = c.suspend(&imsi(IMSI)).await;
    assert_eq!((call.code(), call.attempts), ("ok", 2));
}

#[tokio::test]
async fn an_unreachable_carrier_is_unavailable_after_every_retry() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = TempDir::new();
    let c = connect(&config(&dir, &format!("http://{closed}")), &dir);
    let call = c.status(&imsi(IMSI)).await;
    assert_eq!(call.attempts, 3);
    assert!(
        matches!(
            call.result,
            Err(CarrierError::Unavailable { status: None, .. })
        ),
        "{:?}",
        call.result
    );
}

#[tokio::test]
async fn iccids_are_resolved_to_the_subscriber() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let c = connect(&config(&dir, &running.url), &dir);

    let call = c.status(&iccid(ICCID2)).await;
    assert_eq!(call.attempts, 2, "look-up, then the subscriber");
    assert_eq!(call.result.unwrap().imsi.as_deref(), Some(IMSI2));
    let s = c.suspend(&iccid(ICCID2)).await.into_result().unwrap();
    assert_eq!(s.state, SimState::Suspended);
    assert_eq!(sim.sim(IMSI2).unwrap().status, "inactive");
    assert_eq!(sim.sim(IMSI).unwrap().status, "active");
    let paths: Vec<String> = log(&sim).into_iter().map(|r| r.1).collect();
    assert_eq!(
        paths,
        [
            format!("/v1/sims/{ICCID2}"),
            format!("/v1/subscribers/{IMSI2}"),
            format!("/v1/sims/{ICCID2}"),
            format!("/v1/subscribers/{IMSI2}/deactivate"),
        ]
    );
    let unknown = c.status(&iccid("8981100000000009999")).await;
    assert_eq!((unknown.code(), unknown.attempts), ("not_found", 1));
}

#[tokio::test]
async fn usage_adds_up_every_period() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let c = connect(&config(&dir, &running.url), &dir);

    let u = c.usage(&imsi(IMSI)).await.into_result().unwrap();
    assert_eq!(
        (u.uplink_bytes, u.downlink_bytes),
        (0, 0),
        "no statistics yet"
    );

    let day = 86_400;
    sim.add_usage(IMSI, 1_000, 50_000, Some(1_700_000_000));
    sim.add_usage(IMSI, 234, 6, Some(1_700_000_000 + 2 * day));
    sim.add_usage(IMSI, 10, 1, None);
    sim.add_usage(IMSI2, 7, 7, None);
    let u = c.usage(&imsi(IMSI)).await.into_result().unwrap();
    assert_eq!((u.uplink_bytes, u.downlink_bytes), (1_244, 50_007));
    let by_card = c.usage(&iccid(ICCID)).await;
    assert_eq!(by_card.attempts, 2);
    assert_eq!(by_card.result.unwrap(), u);
}

/// Collects everything logged.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_attempt_is_logged_and_the_token_never() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (sim, running) = started().await;
        let dir = TempDir::new();
        let cfg = config(&dir, &running.url);
        let c = connect(&cfg, &dir);
        sim.inject(status_fault(503, Some(1)));
        assert_eq!(c.suspend(&imsi(IMSI)).await.attempts, 2);
        dir.write("carrier.token", "wrong-token-abcdef");
        let wrong = connect(&cfg, &dir);
        assert_eq!(wrong.status(&imsi(IMSI)).await.code(), "unauthorized");
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let attempts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("carrier request"))
        .collect();
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    for (line, want) in attempts.iter().zip([
        "outcome=\"unavailable\"",
        "outcome=\"ok\"",
        "outcome=\"unauthorized\"",
    ]) {
        assert!(line.contains(want) && line.contains(IMSI), "{line}");
    }
    assert!(attempts[0].contains("attempt=1") && attempts[1].contains("attempt=2"));
    assert!(!text.contains(TOKEN), "the token was logged");
    assert!(!text.contains("wrong-token-abcdef"), "the token was logged");
}
