//! A field's cloud service, simulated: `POST /ingest` takes the gateway's forwarding envelope
//! (`{"messages": [{"id", "device_id", "field_id", "received_at", "data"}]}`), answers `200`, keeps each
//! message (at most [`KEPT`], the oldest go first) and hands it to a callback (the binary prints it);
//! `GET /messages` lists what it kept, `{"items": [...]}`. A body that is not such an envelope gets `400`.
//!
//! Delivery is at least once, so a message may arrive twice; the stand-in keeps what arrives.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Messages kept at most.
pub const KEPT: usize = 10_000;

type OnMessage = Box<dyn Fn(&Value) + Send + Sync>;

/// The receiver's state.
#[derive(Clone)]
pub struct Cloud {
    kept: Arc<Mutex<VecDeque<Value>>>,
    on_message: Arc<OnMessage>,
}

impl Cloud {
    /// A receiver that calls `on_message` for every message it takes.
    pub fn new(on_message: impl Fn(&Value) + Send + Sync + 'static) -> Self {
        Self {
            kept: Arc::default(),
            on_message: Arc::new(Box::new(on_message)),
        }
    }

    /// What it has kept, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/ingest", post(ingest))
            .route("/messages", get(list))
            .with_state(self.clone())
    }
}

async fn ingest(State(c): State<Cloud>, body: Bytes) -> (StatusCode, axum::Json<Value>) {
    let messages = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("messages").and_then(Value::as_array).cloned());
    let Some(messages) = messages else {
        let e = json!({"error": "not an envelope", "message": "expected {\"messages\": [...]}"});
        return (StatusCode::BAD_REQUEST, axum::Json(e));
    };
    let n = messages.len();
    for m in messages {
        (c.on_message)(&m);
        let mut kept = c.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(m);
    }
    (StatusCode::OK, axum::Json(json!({"received": n})))
}

async fn list(State(c): State<Cloud>) -> axum::Json<Value> {
    axum::Json(json!({"items": c.messages()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_envelopes_and_refuses_anything_else() {
        let seen = Arc::new(Mutex::new(0));
        let s = seen.clone();
        let cloud = Cloud::new(move |_| *s.lock().unwrap() += 1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = cloud.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let http = reqwest::Client::new();
        let url = |p: &str| format!("http://{addr}{p}");
        let env =
            json!({"messages": [{"id": "m1", "data": {"n": 1}}, {"id": "m2", "data": {"n": 2}}]});
        let r = http.post(url("/ingest")).json(&env).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = http.post(url("/ingest")).body("[1]").send().await.unwrap();
        assert_eq!(r.status(), 400);
        let list: Value = http
            .get(url("/messages"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"][1]["data"]["n"], 2);
        assert_eq!(*seen.lock().unwrap(), 2);
    }
}
