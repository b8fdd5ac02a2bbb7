//! Operations (subsystem ⑧): the system's status, Prometheus metrics, and users.

use super::Caller;
use super::views::Page;
use super::views::history::OutboxView;
use crate::Admin;
use axum::Json;
use axum::extract::State;
use http::StatusCode;
use sekisho_core::{FieldId, Role, UserId};
use sekisho_http::listener::ListenerStats;
use sekisho_http::{ApiError, ApiJson, ApiResult};
use sekisho_registry::crypto;
use sekisho_store::prelude::*;
use sekisho_store::users::UserRow;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListenerStatus {
    pub accepted: u64,
    pub open: u64,
    pub plaintext_refused: u64,
    pub handshake_failed: u64,
    pub over_limit: u64,
    /// Connections refused at their source address's cap.
    pub address_over_limit: u64,
    /// Refused connections answered `503 too_many_connections` (the others were closed unanswered).
    pub refusals_answered: u64,
}

fn listener(s: &ListenerStats) -> ListenerStatus {
    ListenerStatus {
        accepted: s.accepted.load(Ordering::Relaxed),
        open: s.open.load(Ordering::Relaxed),
        plaintext_refused: s.plaintext_refused.load(Ordering::Relaxed),
        handshake_failed: s.handshake_failed.load(Ordering::Relaxed),
        over_limit: s.over_limit.load(Ordering::Relaxed),
        address_over_limit: s.address_over_limit.load(Ordering::Relaxed),
        refusals_answered: s.refusals_answered.load(Ordering::Relaxed),
    }
}

/// The encrypted message log (where messages are durable before `202`) and the history indexer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogStatus {
    /// One past the newest durable record (the log's offsets count records from 0).
    pub durable_offset: u64,
    /// One past the newest record copied into the searchable history.
    pub indexed_offset: u64,
    /// Records durable in the log and not yet in the history.
    pub index_lag: u64,
    pub segments: usize,
    pub file_bytes: u64,
    /// Group commits written (one sealed frame each) and the fdatasyncs that made them durable.
    pub frames: u64,
    pub syncs: u64,
    /// Failed writes or syncs (full disk, I/O errors): their messages were refused, not acknowledged.
    pub failures: u64,
    /// Appends refused because too much waited for the writer.
    pub refused: u64,
    /// Damage the recovery pass found at start (each entry is in the log with the records it cost).
    pub damage_at_open: usize,
    /// Log records the indexer could not read (each in the log with its offset).
    pub unreadable: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoreStatus {
    pub queued_writes: usize,
    pub commits: u64,
    pub records: u64,
    pub failed_commits: u64,
    pub refused_writes: u64,
    pub file_bytes: u64,
}

/// The carrier's RADIUS accounting as the gateway received it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RadiusStatus {
    /// Whether the accounting listener runs (`[carrier.radius] listen`).
    pub listening: bool,
    pub received: u64,
    /// Records stored and answered.
    pub stored: u64,
    /// Retransmissions recognised (stored once).
    pub duplicates: u64,
    pub malformed: u64,
    /// Wrong Request Authenticator (a shared secret mismatch, or forgery).
    pub bad_authenticator: u64,
    pub unknown_client: u64,
    /// Dropped unanswered because the store could not take them (the packet gateway retransmits).
    pub not_stored: u64,
    /// SIMs in the live table, and those with a session now.
    pub sims: usize,
    pub sims_online: usize,
}

fn radius(app: &Admin) -> RadiusStatus {
    let r = &app.radius;
    let (sims, sims_online) = app.sims.counts();
    RadiusStatus {
        listening: app.settings.radius_listening,
        received: n(&r.received),
        stored: n(&r.stored),
        duplicates: n(&r.duplicates),
        malformed: n(&r.malformed),
        bad_authenticator: n(&r.bad_authenticator),
        unknown_client: n(&r.unknown_client),
        not_stored: n(&r.not_stored),
        sims,
        sims_online,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub version: String,
    pub started_at: String,
    pub uptime_secs: i64,
    pub fields: usize,
    pub devices: usize,
    pub device_listener: ListenerStatus,
    pub admin_listener: ListenerStatus,
    pub store: StoreStatus,
    pub log: LogStatus,
    pub outbox: OutboxView,
    pub messages_accepted: u64,
    pub messages_rejected: u64,
    pub auth_success: u64,
    pub auth_failure: u64,
    pub radius: RadiusStatus,
}

fn n(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The whole system's status (maintainers and analysts).
#[utoipa::path(get, path = "/api/v1/system/status", tag = "system", responses((status = 200, body = Status), (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn status(State(app): State<Arc<Admin>>, caller: Caller) -> ApiResult<Json<Status>> {
    if caller.user.role == Role::FieldAdmin {
        return Err(ApiError::new(
            sekisho_core::ErrorCode::Forbidden,
            "system status is for maintainers and analysts",
        ));
    }
    Ok(Json(status_of(&app).await?))
}

/// The whole system's status, for whoever may see it. Shared by the API and the console.
pub async fn status_of(app: &Admin) -> ApiResult<Status> {
    let w = app.store.writer.stats();
    let file_bytes = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", app.settings.store_path.display())).ok())
        .map(|m| m.len())
        .sum();
    let s = &app.stats;
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").into(),
        started_at: sekisho_core::time::rfc3339(app.started_at),
        uptime_secs: (app.clock.now_ms() - app.started_at) / 1000,
        fields: app.registry.fields().len(),
        devices: app.registry.device_count(),
        device_listener: listener(&s.device_listener),
        admin_listener: listener(&s.admin_listener),
        store: StoreStatus {
            queued_writes: app.store.writer.queued(),
            commits: n(&w.commits),
            records: n(&w.records),
            failed_commits: n(&w.failures),
            refused_writes: n(&w.refused),
            file_bytes,
        },
        log: log_status(app),
        outbox: app.store.outbox_counts(None).await?.into(),
        messages_accepted: n(&s.ingest.messages_accepted),
        messages_rejected: n(&s.ingest.messages_rejected),
        auth_success: n(&s.ingest.auth_success),
        auth_failure: n(&s.ingest.auth_failure),
        radius: radius(app),
    })
}

fn log_status(app: &Admin) -> LogStatus {
    let log = app.journal.log();
    let (l, i) = (log.stats(), app.journal.stats());
    let (segments, file_bytes) = log.disk_usage();
    let (durable, indexed) = (log.durable(), *app.journal.indexed().borrow());
    LogStatus {
        durable_offset: durable,
        indexed_offset: indexed,
        index_lag: durable.saturating_sub(indexed),
        segments,
        file_bytes,
        frames: n(&l.frames),
        syncs: n(&l.syncs),
        failures: n(&l.failures),
        refused: n(&l.refused),
        damage_at_open: app.journal.damage_at_open(),
        unreadable: n(&i.unreadable),
    }
}

/// Prometheus text exposition of the gateway's counters (no device ids as labels; the names are
/// listed in docs/api.md). Open unless `[admin] metrics_token_file` is set; then it needs
/// `Authorization: Bearer <that token>` (not a session token).
#[utoipa::path(get, path = "/metrics", tag = "system", security((), ("bearer" = [])),
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
              (status = 401, description = "`unauthorized`: a metrics token is configured and was not sent", body = sekisho_core::ErrorBody)))]
pub async fn metrics(
    State(app): State<Arc<Admin>>,
    headers: http::HeaderMap,
) -> ApiResult<([(http::HeaderName, &'static str); 1], String)> {
    super::metrics_token::check(&app, &headers)?;
    let s = &app.stats;
    let f = app.forward.stats();
    let w = app.store.writer.stats();
    let mut out = String::with_capacity(2048);
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP sekisho_{name} {help}\n# TYPE sekisho_{name} {kind}\nsekisho_{name} {v}"
        );
    };
    put(
        "messages_accepted_total",
        "counter",
        "Telemetry objects stored durably.",
        n(&s.ingest.messages_accepted),
    );
    put(
        "messages_rejected_total",
        "counter",
        "Telemetry requests refused (and recorded).",
        n(&s.ingest.messages_rejected),
    );
    put(
        "auth_success_total",
        "counter",
        "Device tokens issued.",
        n(&s.ingest.auth_success),
    );
    put(
        "auth_failure_total",
        "counter",
        "Device token requests refused.",
        n(&s.ingest.auth_failure),
    );
    put(
        "forwarded_total",
        "counter",
        "Messages delivered to clouds.",
        n(&f.forwarded),
    );
    put(
        "forward_failures_total",
        "counter",
        "Failed cloud delivery attempts.",
        n(&f.failures),
    );
    put(
        "dead_lettered_total",
        "counter",
        "Messages dead-lettered.",
        n(&f.dead_lettered),
    );
    put(
        "forward_poisoned_total",
        "counter",
        "Messages dead-lettered because the cloud kept failing them alone while accepting the next.",
        n(&f.poisoned),
    );
    put(
        "store_commits_total",
        "counter",
        "Group commits.",
        n(&w.commits),
    );
    put(
        "store_failed_commits_total",
        "counter",
        "Failed commits.",
        n(&w.failures),
    );
    put(
        "store_refused_writes_total",
        "counter",
        "Writes refused because the queue stayed full.",
        n(&w.refused),
    );
    put(
        "store_queued_writes",
        "gauge",
        "Writes waiting for the store.",
        app.store.writer.queued() as u64,
    );
    let log = log_status(&app);
    put(
        "log_frames_total",
        "counter",
        "Group commits written to the message log.",
        log.frames,
    );
    put(
        "log_syncs_total",
        "counter",
        "fdatasyncs of the message log.",
        log.syncs,
    );
    put(
        "log_failures_total",
        "counter",
        "Failed message log writes or syncs (their messages were refused).",
        log.failures,
    );
    put(
        "log_refused_total",
        "counter",
        "Appends refused because the message log's queue was full.",
        log.refused,
    );
    put(
        "log_file_bytes",
        "gauge",
        "Bytes in message log segments.",
        log.file_bytes,
    );
    put(
        "index_lag",
        "gauge",
        "Records durable in the message log and not yet in the history.",
        log.index_lag,
    );
    let received = app.received.stats();
    put(
        "received_published_total",
        "counter",
        "Stored messages, token requests and SIM windows queued for detection.",
        n(&received.published),
    );
    put(
        "received_waited_total",
        "counter",
        "Publishes that waited because detection's queue was full (backpressure, nothing dropped).",
        n(&received.waited),
    );
    put(
        "received_queued",
        "gauge",
        "Events waiting for detection.",
        app.received.queued() as u64,
    );
    put(
        "device_connections_open",
        "gauge",
        "Open device connections.",
        n(&s.device_listener.open),
    );
    put(
        "device_plaintext_refused_total",
        "counter",
        "Plain HTTP requests refused on the device port.",
        n(&s.device_listener.plaintext_refused),
    );
    put(
        "device_handshake_failed_total",
        "counter",
        "Failed TLS handshakes on the device port.",
        n(&s.device_listener.handshake_failed),
    );
    put(
        "device_connections_over_limit_total",
        "counter",
        "Device connections refused at the listener's max_connections.",
        n(&s.device_listener.over_limit),
    );
    put(
        "device_connections_over_address_limit_total",
        "counter",
        "Device connections refused at their source address's cap.",
        n(&s.device_listener.address_over_limit),
    );
    put(
        "device_connection_refusals_answered_total",
        "counter",
        "Refused device connections that were answered 503 too_many_connections.",
        n(&s.device_listener.refusals_answered),
    );
    put(
        "devices",
        "gauge",
        "Registered live devices.",
        app.registry.device_count() as u64,
    );
    let r = radius(&app);
    for (name, help, v) in [
        (
            "received",
            "RADIUS accounting packets received.",
            r.received,
        ),
        (
            "stored",
            "Accounting records stored and answered.",
            r.stored,
        ),
        (
            "duplicates",
            "Retransmissions recognised (stored once).",
            r.duplicates,
        ),
        (
            "malformed",
            "Malformed accounting packets dropped.",
            r.malformed,
        ),
        (
            "bad_authenticator",
            "Packets with a wrong authenticator dropped.",
            r.bad_authenticator,
        ),
        (
            "unknown_client",
            "Packets from unknown clients dropped.",
            r.unknown_client,
        ),
        (
            "not_stored",
            "Packets dropped because the store could not take them.",
            r.not_stored,
        ),
    ] {
        put(&format!("radius_{name}_total"), "counter", help, v);
    }
    put(
        "sims_online",
        "gauge",
        "SIMs with a live session.",
        r.sims_online as u64,
    );
    let rs = &app.responder.stats;
    for (name, help, v) in [
        (
            "response_decisions_total",
            "Detections decided by the response.",
            n(&rs.decisions),
        ),
        (
            "response_suppressed_total",
            "Decisions that took no new actions (same incident).",
            n(&rs.suppressed),
        ),
        (
            "response_actions_done_total",
            "Response actions done.",
            n(&rs.actions_done),
        ),
        (
            "response_actions_failed_total",
            "Response actions that failed for good.",
            n(&rs.actions_failed),
        ),
        (
            "response_actions_skipped_total",
            "Notifications skipped: the field has not set where they go.",
            n(&rs.actions_skipped),
        ),
        (
            "response_retries_total",
            "Response action attempts that failed and wait for another.",
            n(&rs.retries),
        ),
    ] {
        put(name, "counter", help, v);
    }
    Ok((
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    pub role: Role,
    /// The fields a field administrator manages.
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub fields: Vec<String>,
    pub created_at: String,
    /// The user has a confirmed second factor (TOTP).
    pub mfa_enabled: bool,
}

fn user_view(u: &UserRow) -> UserView {
    UserView {
        id: u.id.0.clone(),
        username: u.username.clone(),
        role: u.role,
        fields: u.fields.iter().map(|f| f.0.clone()).collect(),
        created_at: sekisho_core::time::rfc3339(u.created_at),
        mfa_enabled: u.mfa_enabled,
    }
}

/// Every problem with a new user's name and password.
pub fn user_problems(username: &str, password: &str) -> Vec<String> {
    let mut p = Vec::new();
    if !(1..=64).contains(&username.len())
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        p.push("username must be 1 to 64 characters of letters, digits and . _ - @".into());
    }
    if password.chars().count() < 12 {
        p.push("password must be at least 12 characters".into());
    }
    p
}

/// Create a user (maintainer).
#[utoipa::path(post, path = "/api/v1/users", tag = "system", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = sekisho_core::ErrorBody), (status = 403, body = sekisho_core::ErrorBody), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn create_user(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    caller.require(Role::Maintainer)?;
    let mut problems = user_problems(&req.username, &req.password);
    let fields: Vec<FieldId> = req.fields.iter().map(|f| FieldId(f.clone())).collect();
    for f in &fields {
        if app.registry.field(f).is_none() {
            problems.push(format!("fields: no field {f}"));
        }
    }
    if req.role == Role::FieldAdmin && fields.is_empty() {
        problems.push("a field_admin needs at least one field".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let password = req.password;
    let password_hash = tokio::task::spawn_blocking(move || crypto::hash_password(&password))
        .await
        .map_err(ApiError::internal)?;
    let user = UserRow {
        id: UserId::from_random(crypto::random()),
        username: req.username,
        password_hash,
        role: req.role,
        fields,
        created_at: app.clock.now_ms(),
        mfa_enabled: false,
    };
    app.store.insert_user(&user).await?;
    caller
        .log(
            &app,
            "user_create",
            Some(user.id.as_str()),
            Some(&user.username),
        )
        .await;
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

/// Every user (maintainer; the whole list: `next_before` is always null).
#[utoipa::path(get, path = "/api/v1/users", tag = "system", responses((status = 200, body = Page<UserView>), (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn list_users(
    State(app): State<Arc<Admin>>,
    caller: Caller,
) -> ApiResult<Json<Page<UserView>>> {
    caller.require(Role::Maintainer)?;
    let users = app.store.users().await?;
    Ok(Json(Page::all(users.iter().map(user_view).collect())))
}
