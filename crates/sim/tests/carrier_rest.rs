//! The `rest` connector: templates written in TOML against the simulator's MVNO endpoints (the
//! templates reproduce the `mvno` connector), and against a differently shaped API addressed by
//! ICCID, with its own auth header, a JSON body and boolean states.

mod common;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use common::*;
use http::{HeaderMap, StatusCode};
use sekisho_carrier::{CarrierApiConfig, CarrierError, SimState};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const MVNO_TEMPLATES: &str = r#"
kind = "rest"
[rest]
state_pointer = "/status"
active_values = ["active"]
suspended_values = ["inactive", "suspended"]
terminated_values = ["terminated"]
imsi_pointer = "/imsi"
online_pointer = "/sessionStatus/online"
ip_pointer = "/sessionStatus/ipAddress"
uplink_pointer = "/*/dataTrafficStatsMap/*/uploadByteSizeTotal"
downlink_pointer = "/*/dataTrafficStatsMap/*/downloadByteSizeTotal"
[rest.suspend]
method = "POST"
path = "/v1/subscribers/{imsi}/deactivate"
[rest.resume]
method = "POST"
path = "/v1/subscribers/{imsi}/activate"
[rest.status]
method = "GET"
path = "/v1/subscribers/{imsi}"
[rest.usage]
method = "GET"
path = "/v1/stats/air/subscribers/{imsi}?from=0"
[rest.resolve]
method = "GET"
path = "/v1/sims/{iccid}"
"#;

/// `config(...)` with the TOML's keys on top.
fn rest_config(dir: &TempDir, url: &str, toml_text: &str) -> CarrierApiConfig {
    let base = config(dir, url);
    let over: CarrierApiConfig = toml::from_str(toml_text).unwrap();
    CarrierApiConfig {
        kind: over.kind,
        rest: over.rest,
        auth_header: over.auth_header,
        auth_scheme: over.auth_scheme,
        headers: over.headers,
        ..base
    }
}

#[tokio::test]
async fn templates_drive_the_mvno_api() {
    let (sim, running) = started().await;
    let dir = TempDir::new();
    let c = connect(&rest_config(&dir, &running.url, MVNO_TEMPLATES), &dir);
    assert_eq!(c.name(), "rest");
    let id = imsi(IMSI);
    sim.set_session(IMSI, Some("10.9.8.7".parse().unwrap()));
    sim.add_usage(IMSI, 300, 4_000, Some(1_700_000_000));
    sim.add_usage(IMSI, 5, 6, None);

    let s = c.status(&id).await.into_result().unwrap();
    assert_eq!((s.state, s.online), (SimState::Active, Some(true)));
    assert_eq!(s.ip, Some("10.9.8.7".parse().unwrap()));
    assert_eq!(
        s.msisdn.as_deref(),
        Some("819000000001"),
        "msisdn_pointer's default"
    );

    let call = c.suspend(&id).await;
    assert_eq!(
        call.attempts, 1,
        "the answer holds the state: no status read"
    );
    assert_eq!(call.result.unwrap().state, SimState::Suspended);
    assert_eq!(
        c.suspend(&id).await.result.unwrap().state,
        SimState::Suspended
    );
    assert_eq!(c.resume(&id).await.result.unwrap().state, SimState::Active);

    let u = c.usage(&id).await.into_result().unwrap();
    assert_eq!((u.uplink_bytes, u.downlink_bytes), (305, 4_006));

    let by_card = c.suspend(&iccid(ICCID2)).await;
    assert_eq!(by_card.attempts, 2, "resolve, then deactivate");
    assert_eq!(by_card.result.unwrap().imsi.as_deref(), Some(IMSI2));
    assert_eq!(sim.sim(IMSI2).unwrap().status, "inactive");

    sim.conflict_on_noop(true);
    let again = c.suspend(&id).await;
    assert_eq!((again.code(), again.attempts), ("ok", 1));
    let noop = c.suspend(&imsi(IMSI2)).await;
    assert_eq!(
        (noop.code(), noop.attempts),
        ("ok", 2),
        "409, then the status read"
    );

    assert_eq!(
        c.status(&imsi("440109999999999")).await.result,
        Err(CarrierError::NotFound)
    );
}

/// What the "lines" API saw.
#[derive(Default)]
struct Lines {
    suspended: Mutex<bool>,
    bodies: Mutex<Vec<Value>>,
    headers: Mutex<Vec<(Option<String>, Option<String>)>>,
}

const LINE_ICCID: &str = "8944000000000000017";

fn authorized(lines: &Lines, h: &HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    lines
        .headers
        .lock()
        .unwrap()
        .push((get("x-api-key"), get("x-tenant")));
    get("x-api-key").as_deref() == Some(TOKEN) && get("x-tenant").as_deref() == Some("fleet-7")
}

async fn line(
    State(lines): State<Arc<Lines>>,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Json<Value>, StatusCode> {
    if !authorized(&lines, &h) {
        return Err(StatusCode::FORBIDDEN);
    }
    if id != LINE_ICCID {
        return Err(StatusCode::NOT_FOUND);
    }
    let suspended = *lines.suspended.lock().unwrap();
    Ok(Json(json!({"line": {
        "iccid": id, "imsi": "234150000000017", "number": "+447700900017",
        "suspended": suspended,
        "session": {"up": !suspended, "addr": if suspended { Value::Null } else { json!("100.64.0.17") }},
    }})))
}

async fn change(
    State(lines): State<Arc<Lines>>,
    Path(id): Path<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    if !authorized(&lines, &h) {
        return StatusCode::FORBIDDEN;
    }
    if id != LINE_ICCID || body["iccid"] != id {
        return StatusCode::BAD_REQUEST;
    }
    *lines.suspended.lock().unwrap() = body["suspended"] == true;
    lines.bodies.lock().unwrap().push(body);
    StatusCode::NO_CONTENT
}

async fn usage(State(lines): State<Arc<Lines>>, h: HeaderMap) -> Result<Json<Value>, StatusCode> {
    if !authorized(&lines, &h) {
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(Json(
        json!({"periods": [{"tx": "10", "rx": 20}, {"tx": 1, "rx": 2.0}]}),
    ))
}

const LINES_TEMPLATES: &str = r#"
kind = "rest"
auth_header = "X-Api-Key"
auth_scheme = ""
[headers]
X-Tenant = "fleet-7"
[rest]
state_pointer = "/line/suspended"
active_values = ["false"]
suspended_values = ["true"]
terminated_values = []
imsi_pointer = "/line/imsi"
iccid_pointer = "/line/iccid"
msisdn_pointer = "/line/number"
online_pointer = "/line/session/up"
ip_pointer = "/line/session/addr"
uplink_pointer = "/periods/*/tx"
downlink_pointer = "/periods/*/rx"
[rest.suspend]
method = "PATCH"
path = "/api/v2/lines/{iccid}"
body = '{"iccid": "{iccid}", "suspended": true}'
[rest.resume]
method = "PATCH"
path = "/api/v2/lines/{iccid}"
body = '{"iccid": "{id}", "suspended": false}'
[rest.status]
method = "GET"
path = "/api/v2/lines/{iccid}"
[rest.usage]
method = "GET"
path = "/api/v2/lines/{iccid}/usage"
[rest.resolve]
method = "GET"
path = ""
"#;

#[tokio::test]
async fn templates_drive_a_differently_shaped_api() {
    let lines = Arc::new(Lines::default());
    let app = Router::new()
        .route("/api/v2/lines/{id}", get(line).patch(change))
        .route("/api/v2/lines/{id}/usage", get(usage))
        .with_state(lines.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = TempDir::new();
    let cfg = rest_config(&dir, &url, LINES_TEMPLATES);
    let c = connect(&cfg, &dir);
    let id = iccid(LINE_ICCID);

    let s = c.status(&id).await.into_result().unwrap();
    assert_eq!((s.state, s.online), (SimState::Active, Some(true)));
    assert_eq!(s.ip, Some("100.64.0.17".parse().unwrap()));
    assert_eq!(s.msisdn.as_deref(), Some("+447700900017"));

    let call = c.suspend(&id).await;
    assert_eq!(call.attempts, 2, "204 without a body, then the status read");
    let s = call.into_result().unwrap();
    assert_eq!(
        (s.state, s.online, s.ip),
        (SimState::Suspended, Some(false), None)
    );
    assert_eq!(
        c.resume(&id).await.into_result().unwrap().state,
        SimState::Active
    );
    assert_eq!(
        *lines.bodies.lock().unwrap(),
        [
            json!({"iccid": LINE_ICCID, "suspended": true}),
            json!({"iccid": LINE_ICCID, "suspended": false})
        ]
    );

    let u = c.usage(&id).await.into_result().unwrap();
    assert_eq!((u.uplink_bytes, u.downlink_bytes), (11, 22));

    // The templates address lines by ICCID; an IMSI cannot fill them, and nothing is sent.
    let sent = lines.headers.lock().unwrap().len();
    let by_imsi = c.status(&imsi("234150000000017")).await;
    assert_eq!((by_imsi.code(), by_imsi.attempts), ("invalid", 0));
    assert_eq!(lines.headers.lock().unwrap().len(), sent);
    assert!(
        lines
            .headers
            .lock()
            .unwrap()
            .iter()
            .all(|(k, t)| k.as_deref() == Some(TOKEN) && t.as_deref() == Some("fleet-7"))
    );

    let mut wrong = cfg.clone();
    wrong.headers.insert("X-Tenant".into(), "other".into());
    let denied = connect(&wrong, &dir).status(&id).await;
    assert_eq!((denied.code(), denied.attempts), ("unauthorized", 1));
}
