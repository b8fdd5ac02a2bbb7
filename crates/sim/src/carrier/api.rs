//! The simulator's carrier API (see the module table in `simulator`), behind the gate that injects
//! faults, checks the token and logs every request.

use super::{SimRecord, Simulator};
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

pub(super) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/v1/subscribers/{imsi}", get(subscriber))
        .route("/v1/subscribers/{imsi}/deactivate", post(deactivate))
        .route("/v1/subscribers/{imsi}/activate", post(activate))
        .route("/v1/sims/{iccid}", get(by_iccid))
        .route("/v1/stats/air/subscribers/{imsi}", get(stats))
        .layer(middleware::from_fn_with_state(sim.clone(), gate))
        .with_state(sim)
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// Faults first (as a load balancer in front of the API would), then the token, then the API.
async fn gate(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let seq = sim.log_arrival(req.method().as_str(), &path, req.uri().query());
    let fault = sim.take_fault(&path);
    if let Some(f) = &fault
        && f.delay_ms > 0
    {
        tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
    }
    let resp = match fault
        .as_ref()
        .and_then(|f| f.status.map(|s| (s, f.retry_after_secs)))
    {
        Some((status, retry_after)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut r = error(status, "SIM0000", "injected fault");
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, secs.into());
            }
            r
        }
        None if !sim.authorized(req.headers()) => error(
            StatusCode::UNAUTHORIZED,
            "AUT0001",
            "missing or invalid API token",
        ),
        None => next.run(req).await,
    };
    sim.log_answer(seq, resp.status().as_u16());
    resp
}

fn no_such(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, "SEM0001", &format!("no such {what}"))
}

/// A subscriber as the API shows it.
fn show(s: &SimRecord) -> Value {
    let session = if s.online || s.ip.is_some() {
        json!({"online": s.online, "ipAddress": s.ip.map(|ip| ip.to_string()), "lastUpdatedAt": s.last_modified_ms})
    } else {
        json!({"online": false, "lastUpdatedAt": s.last_modified_ms})
    };
    json!({
        "imsi": s.imsi,
        "iccid": s.iccid,
        "msisdn": s.msisdn,
        "status": s.status,
        "speedClass": "s1.standard",
        "sessionStatus": session,
        "lastModifiedAt": s.last_modified_ms,
    })
}

async fn subscriber(State(sim): State<Simulator>, Path(imsi): Path<String>) -> Response {
    match sim.sim(&imsi) {
        Some(s) => Json(show(&s)).into_response(),
        None => no_such("subscriber"),
    }
}

async fn deactivate(State(sim): State<Simulator>, Path(imsi): Path<String>) -> Response {
    transition(&sim, &imsi, "inactive", &["inactive", "suspended"])
}

async fn activate(State(sim): State<Simulator>, Path(imsi): Path<String>) -> Response {
    transition(&sim, &imsi, "active", &["active"])
}

/// Moves a SIM to `to`; `already` are the states where there is nothing to do.
fn transition(sim: &Simulator, imsi: &str, to: &str, already: &[&str]) -> Response {
    let Some(s) = sim.sim(imsi) else {
        return no_such("subscriber");
    };
    if s.status == "terminated" {
        return error(
            StatusCode::CONFLICT,
            "SEM0005",
            "the subscriber is terminated",
        );
    }
    if already.contains(&s.status.as_str()) {
        if sim
            .shared
            .conflict_on_noop
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return error(
                StatusCode::CONFLICT,
                "SEM0006",
                &format!("the subscriber is already {}", s.status),
            );
        }
        return Json(show(&s)).into_response();
    }
    sim.update(imsi, |s| {
        to.clone_into(&mut s.status);
        if to != "active" {
            s.online = false;
            s.ip = None;
        }
    });
    match sim.sim(imsi) {
        Some(s) => Json(show(&s)).into_response(),
        None => no_such("subscriber"),
    }
}

async fn by_iccid(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Response {
    let iccid = iccid.to_ascii_uppercase();
    match sim.sims().into_iter().find(|s| s.iccid == iccid) {
        Some(s) => Json(json!({
            "simId": s.iccid, "iccid": s.iccid, "imsi": s.imsi, "msisdn": s.msisdn, "status": s.status,
        }))
        .into_response(),
        None => no_such("SIM"),
    }
}

#[derive(Deserialize)]
struct Period {
    from: Option<i64>,
    to: Option<i64>,
}

async fn stats(
    State(sim): State<Simulator>,
    Path(imsi): Path<String>,
    Query(q): Query<Period>,
) -> Response {
    let Some(s) = sim.sim(&imsi) else {
        return no_such("subscriber");
    };
    let (from, to) = (q.from.unwrap_or(i64::MIN), q.to.unwrap_or(i64::MAX));
    let days: Vec<Value> = s
        .usage
        .range(from..=to)
        .map(|(&day, &(up, down))| {
            let date = time::OffsetDateTime::from_unix_timestamp(day)
                .map(|d| format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day()))
                .unwrap_or_default();
            json!({
                "date": date,
                "unixtime": day,
                "dataTrafficStatsMap": {"s1.standard": {
                    "uploadByteSizeTotal": up, "downloadByteSizeTotal": down,
                    "uploadPacketSizeTotal": up.div_ceil(1400), "downloadPacketSizeTotal": down.div_ceil(1400),
                }},
            })
        })
        .collect();
    Json(days).into_response()
}
