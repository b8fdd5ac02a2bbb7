//! Update management in the admin API: artifacts (uploaded, stored by their SHA-256), the signing
//! keys (public keys for devices, rotation), and each field's campaigns with per-device progress.

use super::Caller;
use super::views::{Page, at, json};
use crate::Admin;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::HeaderMap;
use sekisho_core::{ErrorCode, Role};
use sekisho_http::{ApiError, ApiJson, ApiQuery, ApiResult};
use sekisho_store::prelude::*;
use sekisho_store::update::{ArtifactRow, CampaignRow, NewCampaign, ProgressRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(paths(upload, artifacts, keys, rotate, approve, campaigns, halt, resume))]
pub struct UpdateApi;

pub fn router(max_artifact: usize) -> Router<Arc<Admin>> {
    Router::new()
        .route(
            "/api/v1/update/artifacts",
            post(upload)
                .get(artifacts)
                .layer(DefaultBodyLimit::max(max_artifact)),
        )
        .route("/api/v1/update/keys", get(keys))
        .route("/api/v1/update/keys/rotate", post(rotate))
        .route("/api/v1/fields/{field}/update", get(campaigns).put(approve))
        .route("/api/v1/fields/{field}/update/{kind}/halt", post(halt))
        .route("/api/v1/fields/{field}/update/{kind}/resume", post(resume))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `firmware` or `config`.
    pub kind: String,
    pub version: String,
    pub name: Option<String>,
}

/// An uploaded artifact.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArtifactView {
    pub sha256: String,
    pub size: i64,
    /// `firmware` or `config`.
    pub kind: String,
    pub version: String,
    pub name: String,
    pub uploaded_at: String,
    pub uploaded_by: String,
}

impl From<ArtifactRow> for ArtifactView {
    fn from(a: ArtifactRow) -> Self {
        Self {
            sha256: a.sha256,
            size: a.size,
            kind: a.kind,
            version: a.version,
            name: a.name,
            uploaded_at: at(a.at),
            uploaded_by: a.by,
        }
    }
}

/// Upload an artifact (the raw bytes); it is stored under its SHA-256.
#[utoipa::path(post, path = "/api/v1/update/artifacts", tag = "update", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ArtifactView), (status = 400, body = sekisho_core::ErrorBody), (status = 413, body = sekisho_core::ErrorBody)))]
pub async fn upload(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Bytes,
) -> ApiResult<(http::StatusCode, Json<ArtifactView>)> {
    if caller.user.role == Role::Analyst {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "analysts change nothing",
        ));
    }
    let mut problems = Vec::new();
    if !matches!(q.kind.as_str(), "firmware" | "config") {
        problems.push(format!("kind: '{}' is neither firmware nor config", q.kind));
    }
    if q.version.is_empty() || q.version.len() > 64 {
        problems.push("version: 1 to 64 characters".into());
    }
    if body.is_empty() {
        problems.push("the artifact is empty".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let sha256 = sekisho_update::sha256_hex(&body);
    let path = app.campaigns.artifact_path(&sha256);
    let tmp = path.with_extension("tmp");
    let write = async {
        tokio::fs::write(&tmp, &body).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    write.await.map_err(ApiError::internal)?;
    let row = ArtifactRow {
        sha256,
        size: body.len() as i64,
        kind: q.kind,
        version: q.version,
        name: q.name.unwrap_or_default(),
        at: app.clock.now_ms(),
        by: caller.user.username.clone(),
    };
    app.store.insert_artifact(&row).await?;
    caller
        .log(
            &app,
            "artifact_upload",
            Some(&row.sha256),
            Some(&row.version),
        )
        .await;
    Ok((http::StatusCode::CREATED, Json(row.into())))
}

/// Every stored artifact, newest first (the whole list: `next_before` is always null).
#[utoipa::path(get, path = "/api/v1/update/artifacts", tag = "update", responses((status = 200, body = Page<ArtifactView>)))]
pub async fn artifacts(
    State(app): State<Arc<Admin>>,
    _caller: Caller,
) -> ApiResult<Json<Page<ArtifactView>>> {
    let rows = app.store.artifacts().await?;
    Ok(Json(Page::all(
        rows.into_iter().map(ArtifactView::from).collect(),
    )))
}

/// A public key devices trust.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub key_id: String,
    /// The 32-byte Ed25519 public key, base64.
    pub public_key: String,
    /// The same as SPKI PEM.
    pub pem: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Keys {
    /// Signs the manifests made from now on.
    pub current: KeyView,
    /// Earlier keys, still to be trusted by devices that have not moved to the current one.
    pub previous: Vec<KeyView>,
}

fn key_view(k: &sekisho_update::PublicKey) -> KeyView {
    KeyView {
        key_id: k.key_id(),
        public_key: k.to_base64(),
        pem: k.to_pem().unwrap_or_default(),
    }
}

fn keys_of(app: &Admin) -> Keys {
    Keys {
        current: key_view(&app.update_keys.public()),
        previous: app.update_keys.previous().iter().map(key_view).collect(),
    }
}

/// The manifest signing keys' public halves, to provision on devices.
#[utoipa::path(get, path = "/api/v1/update/keys", tag = "update", responses((status = 200, body = Keys)))]
pub async fn keys(State(app): State<Arc<Admin>>, _caller: Caller) -> ApiResult<Json<Keys>> {
    Ok(Json(keys_of(&app)))
}

/// Rotate the signing key (maintainer, second factor): new manifests are signed with a new key; the
/// old public key stays published. Active campaigns are re-signed.
#[utoipa::path(post, path = "/api/v1/update/keys/rotate", tag = "update", responses((status = 200, body = Keys), (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn rotate(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<Keys>> {
    caller.require(Role::Maintainer)?;
    caller.second_factor(&app, &headers).await?;
    let k = app.update_keys.rotate().map_err(ApiError::internal)?;
    caller
        .log(&app, "update_key_rotate", Some(&k.key_id()), None)
        .await;
    Ok(Json(keys_of(&app)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// `firmware` or `config`.
    pub kind: String,
    /// The approved artifact (uploaded before), by its SHA-256.
    pub sha256: String,
    /// Share of the field's devices offered the update, 1 to 100 (a stable choice per device).
    #[serde(default = "all")]
    pub percent: i64,
    /// Rejections by devices before the campaign halts (0: never).
    #[serde(default)]
    pub max_failures: i64,
}

fn all() -> i64 {
    100
}

/// One device's progress in a campaign.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProgressView {
    pub device_id: String,
    /// `offered`, `applied`, `rejected` or `confirmed`.
    pub state: String,
    /// Why the device refused it.
    pub reason: Option<String>,
    pub updated_at: String,
}

/// A campaign with its devices' progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    pub id: i64,
    pub field_id: String,
    /// `firmware` or `config`.
    pub kind: String,
    pub version: String,
    /// The artifact's SHA-256.
    pub sha256: String,
    /// The manifest's sequence (monotonic per field).
    pub sequence: i64,
    /// The signed manifest. Devices verify the signature over its exact bytes, which they get from
    /// the device API (`GET /v1/device/update`).
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    /// The manifest's Ed25519 signature (base64).
    pub signature: String,
    pub key_id: String,
    /// Share of the field's devices offered it.
    pub percent: i64,
    /// Rejections before it halts (0: never).
    pub max_failures: i64,
    /// `active`, `halted` or `superseded`.
    pub status: String,
    pub note: Option<String>,
    pub created_at: String,
    /// Who approved it.
    pub created_by: String,
    pub progress: Vec<ProgressView>,
    /// Devices per state (`offered`, `applied`, `rejected`, `confirmed`).
    pub counts: std::collections::BTreeMap<String, usize>,
}

fn campaign_view(c: CampaignRow, progress: Vec<ProgressRow>) -> CampaignView {
    let mut counts = std::collections::BTreeMap::new();
    for p in &progress {
        *counts.entry(p.state.clone()).or_default() += 1;
    }
    CampaignView {
        id: c.id,
        field_id: c.field_id,
        kind: c.kind,
        version: c.version,
        sha256: c.sha256,
        sequence: c.sequence,
        manifest: json(&c.payload),
        signature: c.signature,
        key_id: c.key_id,
        percent: c.percent,
        max_failures: c.max_failures,
        status: c.status,
        note: c.note,
        created_at: at(c.created_at),
        created_by: c.by,
        progress: progress
            .into_iter()
            .map(|p| ProgressView {
                device_id: p.device_id,
                state: p.state,
                reason: p.reason,
                updated_at: at(p.at),
            })
            .collect(),
        counts,
    }
}

/// The field's campaigns (the whole list: `next_before` is always null).
async fn views(app: &Admin, field: &str) -> ApiResult<Page<CampaignView>> {
    let mut out = Vec::new();
    for c in app.store.campaigns(field).await? {
        let progress = app.store.progress(c.id).await?;
        out.push(campaign_view(c, progress));
    }
    Ok(Page::all(out))
}

/// Approve an artifact for the field: a signed manifest with the next sequence, rolled out to the
/// field's devices (V31). A disruptive action: the second factor when MFA is on.
#[utoipa::path(put, path = "/api/v1/fields/{field}/update", tag = "update", params(("field" = String, Path)), request_body = Approve,
    responses((status = 200, body = Page<CampaignView>), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn approve(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
    Path(field): Path<String>,
    ApiJson(a): ApiJson<Approve>,
) -> ApiResult<Json<Page<CampaignView>>> {
    let f = caller.managed_field(&app, &field)?;
    let art = app
        .store
        .artifact(&a.sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("artifact (upload it first)"))?;
    let mut problems = Vec::new();
    if art.kind != a.kind {
        problems.push(format!(
            "kind: the artifact is {}, not {}",
            art.kind, a.kind
        ));
    }
    if !(1..=100).contains(&a.percent) {
        problems.push("percent: 1 to 100".into());
    }
    if a.max_failures < 0 {
        problems.push("max_failures: 0 or more".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    caller.second_factor(&app, &headers).await?;
    let sequence = app.store.next_sequence(&f.id.0).await?;
    let now = app.clock.now_ms();
    let manifest = sekisho_update::Manifest {
        kind: if a.kind == "firmware" {
            sekisho_update::Kind::Firmware
        } else {
            sekisho_update::Kind::Config
        },
        version: art.version.clone(),
        sequence: sequence as u64,
        field_id: f.id.0.clone(),
        artifact: sekisho_update::Artifact {
            sha256: art.sha256.clone(),
            size: art.size as u64,
            url: format!("/v1/device/artifacts/{}", art.sha256),
        },
        issued_at: sekisho_core::time::rfc3339(now),
        min_version: None,
    };
    let signed = app.update_keys.sign(&manifest);
    let id = app
        .store
        .start_campaign(&NewCampaign {
            field_id: &f.id.0,
            kind: &a.kind,
            version: &art.version,
            sha256: &art.sha256,
            sequence,
            payload: &signed.payload,
            signature: &signed.signature,
            key_id: &signed.key_id,
            percent: a.percent,
            max_failures: a.max_failures,
            at: now,
            by: &caller.user.username,
        })
        .await?;
    for c in app.store.campaigns(&f.id.0).await? {
        if c.id == id {
            app.campaigns.announce(&c);
        }
    }
    caller
        .log(
            &app,
            "update_approve",
            Some(f.id.as_str()),
            Some(&format!("{} {} seq {sequence}", a.kind, art.version)),
        )
        .await;
    Ok(Json(views(&app, &f.id.0).await?))
}

/// The field's current campaigns with every device's progress.
#[utoipa::path(get, path = "/api/v1/fields/{field}/update", tag = "update", params(("field" = String, Path)),
    responses((status = 200, body = Page<CampaignView>), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn campaigns(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
) -> ApiResult<Json<Page<CampaignView>>> {
    let f = caller.field(&app, &field)?;
    Ok(Json(views(&app, &f.id.0).await?))
}

async fn set_status(
    app: &Admin,
    caller: &Caller,
    field: &str,
    kind: &str,
    from: &str,
    to: &str,
) -> ApiResult<Page<CampaignView>> {
    let f = caller.managed_field(app, field)?;
    let c = app
        .store
        .campaigns(&f.id.0)
        .await?
        .into_iter()
        .find(|c| c.kind == kind && c.status == from)
        .ok_or_else(|| ApiError::new(ErrorCode::Conflict, format!("no {from} {kind} campaign")))?;
    app.store
        .set_campaign_status(c.id, to, Some(&format!("{to} by {}", caller.user.username)))
        .await?;
    if to == "active" {
        app.campaigns.announce(&CampaignRow {
            status: to.into(),
            ..c
        });
    } else {
        for d in app.registry.devices_of(&f.id) {
            app.commands
                .retain(&d.device.id, |v| v["sequence"] != c.sequence);
        }
    }
    caller
        .log(
            app,
            &format!("update_{to}"),
            Some(f.id.as_str()),
            Some(kind),
        )
        .await;
    views(app, &f.id.0).await
}

/// Halt a campaign: devices are no longer offered it.
#[utoipa::path(post, path = "/api/v1/fields/{field}/update/{kind}/halt", tag = "update", params(("field" = String, Path), ("kind" = String, Path)),
    responses((status = 200, body = Page<CampaignView>), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn halt(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, kind)): Path<(String, String)>,
) -> ApiResult<Json<Page<CampaignView>>> {
    Ok(Json(
        set_status(&app, &caller, &field, &kind, "active", "halted").await?,
    ))
}

/// Resume a halted campaign.
#[utoipa::path(post, path = "/api/v1/fields/{field}/update/{kind}/resume", tag = "update", params(("field" = String, Path), ("kind" = String, Path)),
    responses((status = 200, body = Page<CampaignView>), (status = 409, body = sekisho_core::ErrorBody)))]
pub async fn resume(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, kind)): Path<(String, String)>,
) -> ApiResult<Json<Page<CampaignView>>> {
    Ok(Json(
        set_status(&app, &caller, &field, &kind, "halted", "active").await?,
    ))
}
