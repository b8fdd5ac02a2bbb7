//! The simulator's `/_sim/` control endpoints: set SIMs up, inject faults, read the request log.

use super::api::error;
use super::{Fault, NewSim, Simulator};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;

pub(super) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/_sim/sims", get(list).post(create))
        .route("/_sim/sims/{imsi}/status", post(set_status))
        .route(
            "/_sim/sims/{imsi}/session",
            post(start_session).delete(end_session),
        )
        .route("/_sim/sims/{imsi}/usage", post(add_usage))
        .route(
            "/_sim/faults",
            get(faults).post(inject).delete(clear_faults),
        )
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/config", put(config))
        .with_state(sim)
}

fn done(found: bool) -> Response {
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "SEM0001", "no such subscriber")
    }
}

async fn list(State(sim): State<Simulator>) -> Response {
    Json(sim.sims()).into_response()
}

async fn create(State(sim): State<Simulator>, Json(new): Json<NewSim>) -> Response {
    match sim.add_sim(new) {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => error(StatusCode::CONFLICT, "SIM0001", &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    status: String,
}

async fn set_status(
    State(sim): State<Simulator>,
    Path(imsi): Path<String>,
    Json(b): Json<SetStatus>,
) -> Response {
    done(sim.set_status(&imsi, &b.status))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Session {
    ip: IpAddr,
}

async fn start_session(
    State(sim): State<Simulator>,
    Path(imsi): Path<String>,
    Json(b): Json<Session>,
) -> Response {
    done(sim.set_session(&imsi, Some(b.ip)))
}

async fn end_session(State(sim): State<Simulator>, Path(imsi): Path<String>) -> Response {
    done(sim.set_session(&imsi, None))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Usage {
    #[serde(default)]
    uplink_bytes: u64,
    #[serde(default)]
    downlink_bytes: u64,
    unixtime: Option<i64>,
}

async fn add_usage(
    State(sim): State<Simulator>,
    Path(imsi): Path<String>,
    Json(b): Json<Usage>,
) -> Response {
    done(sim.add_usage(&imsi, b.uplink_bytes, b.downlink_bytes, b.unixtime))
}

async fn faults(State(sim): State<Simulator>) -> Response {
    Json(sim.faults()).into_response()
}

async fn inject(State(sim): State<Simulator>, Json(f): Json<Fault>) -> Response {
    sim.inject(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(sim): State<Simulator>) -> Response {
    sim.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(sim): State<Simulator>) -> Response {
    Json(sim.requests()).into_response()
}

async fn clear_requests(State(sim): State<Simulator>) -> Response {
    sim.clear_requests();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    conflict_on_noop: bool,
}

async fn config(State(sim): State<Simulator>, Json(c): Json<Config>) -> Response {
    sim.conflict_on_noop(c.conflict_on_noop);
    Json(json!({"conflict_on_noop": c.conflict_on_noop})).into_response()
}
