//! Devices of a field: register (the secret is shown once), list, inspect, delete, stop and restart
//! their authentication, give them a client certificate.

use super::Caller;
use super::mfa::header_code;
use super::views::audit::{AuditRunView, StateView};
use super::views::history::{AuthAttemptView, MessageView};
use crate::Admin;
use axum::Json;
use axum::extract::{Path, State};
use http::{HeaderMap, StatusCode};
use sekisho_core::{Device, DeviceId, DeviceStatus, ErrorCode, Field, Sim};
use sekisho_http::{ApiError, ApiJson, ApiQuery, ApiResult};
use sekisho_registry::DeviceEntry;
use sekisho_registry::crypto;
use sekisho_store::history::Filter;
use sekisho_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    /// IMEI, MAC, serial number or user id; unique among the field's live devices.
    pub unique_id: String,
    pub name: Option<String>,
    pub sim: Option<Sim>,
    /// Critical devices (medical, safety) are never cut off automatically.
    #[serde(default)]
    pub critical: bool,
    /// A client certificate (PEM) to register to the device for mTLS.
    pub certificate_pem: Option<String>,
}

/// A device as the API shows it (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub field_id: String,
    pub unique_id: String,
    pub name: Option<String>,
    pub sim: Option<Sim>,
    pub critical: bool,
    pub status: DeviceStatus,
    /// Hex SHA-256 of the registered client certificate.
    pub certificate_sha256: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub id: String,
    /// The device's secret: shown this once, stored only as a hash.
    pub auth_secret: String,
    /// The field's common auth ID, to configure on the device with the secret.
    pub auth_id: String,
    pub device: DeviceView,
}

/// A device with what the gateway recently saw of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetail {
    pub device: DeviceView,
    /// The latest 20 messages, newest first.
    pub recent_messages: Vec<MessageView>,
    /// The latest 20 token requests, newest first.
    pub recent_auth_attempts: Vec<AuthAttemptView>,
    /// Its latest self-report with what changed (`null` before the first).
    pub latest_report: Option<StateView>,
    /// Its latest audit with what it found (`null` before the first).
    pub latest_audit: Option<AuditRunView>,
}

fn view(d: &Device) -> DeviceView {
    DeviceView {
        id: d.id.0.clone(),
        field_id: d.field_id.0.clone(),
        unique_id: d.unique_id.clone(),
        name: d.name.clone(),
        sim: d.sim.clone(),
        critical: d.critical,
        status: d.status,
        certificate_sha256: d.cert_sha256.clone(),
        created_at: sekisho_core::time::rfc3339(d.created_at),
        updated_at: sekisho_core::time::rfc3339(d.updated_at),
    }
}

fn unique_id_problems(u: &str) -> Vec<String> {
    if (1..=128).contains(&u.len()) && u.chars().all(|c| c.is_ascii_graphic()) {
        Vec::new()
    } else {
        vec!["unique_id must be 1 to 128 printable ASCII characters without spaces".into()]
    }
}

/// Register a device in a field.
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices", tag = "devices", params(("field" = String, Path)), request_body = RegisterDevice,
    responses((status = 201, body = Registered), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody),
              (status = 409, description = "a live device of the field has this unique_id or certificate", body = sekisho_core::ErrorBody)))]
pub async fn register(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiJson(req): ApiJson<RegisterDevice>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let out = register_device(&app, &caller, &field, req).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Validates and registers a device, and logs the change; the returned secret exists nowhere else.
/// Shared by the API and the console.
pub async fn register_device(
    app: &Admin,
    caller: &Caller,
    field: &str,
    req: RegisterDevice,
) -> ApiResult<Registered> {
    let f = caller.managed_field(app, field)?;
    let mut problems = unique_id_problems(&req.unique_id);
    if let Some(sim) = &req.sim {
        problems.extend(sim.problems());
    }
    let cert_sha256 = match &req.certificate_pem {
        Some(pem) => match sekisho_registry::pki::cert_sha256_hex(pem) {
            Ok(fp) => Some(fp),
            Err(e) => {
                problems.push(format!("certificate_pem: {e}"));
                None
            }
        },
        None => None,
    };
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let now = app.clock.now_ms();
    let device = Device {
        id: DeviceId::from_random(crypto::random()),
        field_id: f.id.clone(),
        unique_id: req.unique_id,
        name: req.name,
        sim: req.sim,
        critical: req.critical,
        status: DeviceStatus::Active,
        cert_sha256,
        created_at: now,
        updated_at: now,
    };
    let secret = crypto::new_secret();
    let s = secret.clone();
    let hash = tokio::task::spawn_blocking(move || crypto::hash_password(&s))
        .await
        .map_err(ApiError::internal)?;
    app.registry.add_device(&device, hash).await?;
    caller
        .log(
            app,
            "device_register",
            Some(device.id.as_str()),
            Some(f.id.as_str()),
        )
        .await;
    Ok(Registered {
        id: device.id.0.clone(),
        auth_secret: secret,
        auth_id: f.auth_id.clone(),
        device: view(&device),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only devices with this status.
    pub status: Option<DeviceStatus>,
    /// Cursor: the `next_before` of the previous page.
    pub before: Option<usize>,
    /// Devices to skip (the older way to page; `before` is preferred).
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// A page of the field's devices, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    /// Devices that match, on every page.
    pub total: usize,
    pub items: Vec<DeviceView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<usize>,
}

/// The field's live (not deleted) devices, oldest first.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices", tag = "devices", params(("field" = String, Path), ListQuery),
    responses((status = 200, body = DeviceList), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn list(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path(field): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<DeviceList>> {
    let f = caller.field(&app, &field)?;
    let all: Vec<_> = app
        .registry
        .devices_of(&f.id)
        .into_iter()
        .filter(|d| q.status.is_none_or(|s| d.device.status == s))
        .collect();
    // The cursor is the position of the next page in the list (the registry keeps it in order).
    let skip = q.before.or(q.offset).unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items: Vec<DeviceView> = all
        .iter()
        .skip(skip)
        .take(limit)
        .map(|d| view(&d.device))
        .collect();
    let next = skip + items.len();
    Ok(Json(DeviceList {
        total: all.len(),
        next_before: (next < all.len()).then_some(next),
        items,
    }))
}

pub fn device_in(app: &Admin, f: &Field, device: &str) -> ApiResult<Arc<DeviceEntry>> {
    app.registry
        .device(&DeviceId(device.to_owned()))
        .filter(|d| d.device.field_id == f.id)
        .ok_or_else(|| ApiError::not_found("device in this field"))
}

/// A device with its recent messages and authentication attempts, its latest self-report and audit.
#[utoipa::path(get, path = "/api/v1/fields/{field}/devices/{device}", tag = "devices", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn get_one(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<DeviceDetail>> {
    let f = caller.field(&app, &field)?;
    let d = device_in(&app, &f, &device)?;
    let id = d.device.id.as_str();
    let filter = Filter {
        device: Some(id.to_owned()),
        limit: 20,
        ..Default::default()
    };
    let messages = app.store.search_messages(&filter).await?;
    let attempts = app.store.search_auth_attempts(&filter).await?;
    let report = app.store.states(id, None, 1).await?.into_iter().next();
    let audit = app.store.audit_runs(&f.id.0, Some(id), None, 1).await?;
    Ok(Json(DeviceDetail {
        device: view(&d.device),
        recent_messages: messages.into_iter().map(MessageView::from).collect(),
        recent_auth_attempts: attempts.into_iter().map(AuthAttemptView::from).collect(),
        latest_report: report.map(StateView::from),
        latest_audit: audit.into_iter().next().map(AuditRunView::from),
    }))
}

/// Sets a device's status; stopping or deleting also revokes its tokens at once. Shared by the API and
/// the console.
pub async fn set_status(
    app: &Admin,
    caller: &Caller,
    field: &str,
    device: &str,
    status: DeviceStatus,
) -> ApiResult<Device> {
    let f = caller.managed_field(app, field)?;
    let entry = device_in(app, &f, device)?;
    let d = app
        .registry
        .set_status(&entry, status, app.clock.now_ms())
        .await?;
    let action = match status {
        DeviceStatus::Active => "device_enable",
        DeviceStatus::Disabled => "device_disable",
        DeviceStatus::Quarantined => "device_quarantine",
        DeviceStatus::Deleted => "device_delete",
    };
    caller
        .log(app, action, Some(d.id.as_str()), Some(f.id.as_str()))
        .await;
    Ok(d)
}

/// Before a person stops or deletes a device: may they change it, then their second factor (a code
/// is spent only on an action that can happen). Shared by the API and the console.
pub async fn check_stop(
    app: &Admin,
    caller: &Caller,
    field: &str,
    device: &str,
    code: Option<&str>,
) -> ApiResult<()> {
    let f = caller.managed_field(app, field)?;
    device_in(app, &f, device)?;
    caller.second_factor_code(app, code).await
}

/// Delete a device: its credentials stop working at once (V07); its history stays. Needs the caller's
/// second factor when they have one.
#[utoipa::path(delete, path = "/api/v1/fields/{field}/devices/{device}", tag = "devices",
    params(("field" = String, Path), ("device" = String, Path),
           ("X-Sekisho-TOTP" = Option<String>, Header, description = "A current code, for users with a second factor")),
    responses((status = 204), (status = 403, description = "`second_factor_required`: the code is missing, wrong or already used", body = sekisho_core::ErrorBody),
              (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    check_stop(&app, &caller, &field, &device, header_code(&headers)).await?;
    set_status(&app, &caller, &field, &device, DeviceStatus::Deleted).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-enable a device's authentication.
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices/{device}/enable", tag = "devices", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 200, body = DeviceView), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn enable(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<Json<DeviceView>> {
    Ok(Json(view(
        &set_status(&app, &caller, &field, &device, DeviceStatus::Active).await?,
    )))
}

/// Stop a device's authentication: tokens revoked at once, new ones refused with `403 device_disabled` (V25).
/// Needs the caller's second factor when they have one.
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices/{device}/disable", tag = "devices",
    params(("field" = String, Path), ("device" = String, Path),
           ("X-Sekisho-TOTP" = Option<String>, Header, description = "A current code, for users with a second factor")),
    responses((status = 200, body = DeviceView), (status = 403, description = "`second_factor_required`: the code is missing, wrong or already used", body = sekisho_core::ErrorBody),
              (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn disable(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<DeviceView>> {
    check_stop(&app, &caller, &field, &device, header_code(&headers)).await?;
    Ok(Json(view(
        &set_status(&app, &caller, &field, &device, DeviceStatus::Disabled).await?,
    )))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedCertificate {
    pub certificate_pem: String,
    /// The private key: shown this once, never stored by the gateway.
    pub private_key_pem: String,
    /// The device CA, for the device's trust store.
    pub ca_pem: String,
    pub sha256: String,
}

async fn register_cert(
    app: &Admin,
    caller: &Caller,
    field: &str,
    device: &str,
    fp: &str,
) -> ApiResult<Device> {
    let f = caller.managed_field(app, field)?;
    let entry = device_in(app, &f, device)?;
    let now = app.clock.now_ms();
    let d = app.registry.set_cert(&entry, Some(fp), now).await?;
    caller
        .log(app, "device_certificate", Some(d.id.as_str()), Some(fp))
        .await;
    Ok(d)
}

/// Issue a client certificate for the device from the gateway's device CA (replaces any registered one).
#[utoipa::path(post, path = "/api/v1/fields/{field}/devices/{device}/certificate", tag = "devices", params(("field" = String, Path), ("device" = String, Path)),
    responses((status = 201, body = IssuedCertificate), (status = 404, body = sekisho_core::ErrorBody), (status = 409, description = "the gateway has no device CA key", body = sekisho_core::ErrorBody)))]
pub async fn issue_certificate(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<IssuedCertificate>)> {
    let ca = app.device_ca.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "this gateway has no device CA key (tls/device-ca.key); register a certificate instead",
        )
    })?;
    let f = caller.managed_field(&app, &field)?;
    let entry = device_in(&app, &f, &device)?;
    let (cert, key) = ca
        .issue(
            entry.device.id.as_str(),
            std::slice::from_ref(&entry.device.id.0),
            true,
        )
        .map_err(ApiError::internal)?;
    let fp = sekisho_registry::pki::cert_sha256_hex(&cert).map_err(ApiError::internal)?;
    register_cert(&app, &caller, &field, &device, &fp).await?;
    let out = IssuedCertificate {
        certificate_pem: cert,
        private_key_pem: key,
        ca_pem: ca.cert_pem.clone(),
        sha256: fp,
    };
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCertificate {
    pub certificate_pem: String,
}

/// Register a client certificate made elsewhere (it must chain to a CA in `device.client_ca`).
#[utoipa::path(put, path = "/api/v1/fields/{field}/devices/{device}/certificate", tag = "devices", params(("field" = String, Path), ("device" = String, Path)),
    request_body = SetCertificate, responses((status = 200, body = DeviceView), (status = 400, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn set_certificate(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    Path((field, device)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetCertificate>,
) -> ApiResult<Json<DeviceView>> {
    let fp = sekisho_registry::pki::cert_sha256_hex(&req.certificate_pem)
        .map_err(|e| ApiError::invalid(vec![format!("certificate_pem: {e}")]))?;
    Ok(Json(view(
        &register_cert(&app, &caller, &field, &device, &fp).await?,
    )))
}
