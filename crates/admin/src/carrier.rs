//! The carrier API connection as an operator sets it at run time (`/api/v1/system/carrier`): which
//! connector, where, with which token and CA. Reading it is for maintainers and analysts; changing it
//! is for maintainers, with their second factor once they have one (it decides who can cut SIMs off).
//! The token and the client key are write-only: answers say whether they are set.
//! See [`sekisho_carrier::settings`] for where it is kept.

use super::Caller;
use crate::Admin;
use axum::Json;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use sekisho_carrier::control::CarrierSource;
use sekisho_carrier::settings::{self, Material};
use sekisho_carrier::{CarrierApiConfig, RestTemplates};
use sekisho_core::{ErrorCode, Role};
use sekisho_http::{ApiError, ApiJson, ApiResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(paths(get, put, delete))]
pub struct CarrierApi;

/// The carrier API connection in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CarrierView {
    /// `configuration` (the file's `[carrier.api]`) or `admin_api` (set here).
    pub source: String,
    /// `none`, `mvno` or `rest`.
    pub kind: String,
    pub base_url: String,
    pub auth_header: String,
    pub auth_scheme: String,
    /// Names of the extra headers sent (their values are not shown).
    pub headers: Vec<String>,
    /// Whether a token is available (never the token).
    pub token_set: bool,
    /// Whether the carrier's certificate is checked against a pinned CA instead of the system's roots.
    pub ca_pinned: bool,
    /// Whether a client certificate is presented (mTLS).
    pub client_certificate: bool,
    pub timeout_ms: u64,
    pub retries: u32,
}

/// A new carrier API connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarrierSetting {
    /// `none` (no SIM control), `mvno` or `rest`.
    pub kind: String,
    #[serde(default)]
    pub base_url: String,
    /// The API token (write-only). Required unless `kind` is `none`.
    pub token: Option<String>,
    /// PEM CAs to trust for the carrier's certificate instead of the system's roots.
    pub ca_pem: Option<String>,
    /// PEM client certificate and key for mTLS to the carrier (both or neither; the key is write-only).
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    pub auth_header: Option<String>,
    pub auth_scheme: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub backoff_initial_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    /// The `rest` connector's requests and answer mapping, as `[carrier.api.rest]` in the configuration.
    #[schema(value_type = Option<Object>)]
    pub rest: Option<RestTemplates>,
}

fn view(cfg: &CarrierApiConfig, source: CarrierSource) -> CarrierView {
    CarrierView {
        source: match source {
            CarrierSource::Configuration => "configuration",
            CarrierSource::AdminApi => "admin_api",
        }
        .into(),
        kind: cfg.kind.clone(),
        base_url: cfg.base_url.clone(),
        auth_header: cfg.auth_header.clone(),
        auth_scheme: cfg.auth_scheme.clone(),
        headers: cfg.headers.keys().cloned().collect(),
        token_set: cfg.kind != "none" && cfg.token(Path::new("")).is_ok(),
        ca_pinned: cfg.ca_file.is_some(),
        client_certificate: cfg.client_cert_file.is_some(),
        timeout_ms: cfg.timeout_ms,
        retries: cfg.retries,
    }
}

fn current(app: &Admin) -> CarrierView {
    let (cfg, source) = app.carrier.setting();
    view(&cfg, source)
}

fn for_operators(caller: &Caller) -> ApiResult<()> {
    if caller.user.role == Role::FieldAdmin {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the carrier connection is for maintainers and analysts",
        ));
    }
    Ok(())
}

/// The carrier API connection in force.
#[utoipa::path(get, path = "/api/v1/system/carrier", tag = "system",
    responses((status = 200, body = CarrierView), (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn get(State(app): State<Arc<Admin>>, caller: Caller) -> ApiResult<Json<CarrierView>> {
    for_operators(&caller)?;
    Ok(Json(current(&app)))
}

/// Sets the carrier API connection, checked whole and in force at once (no restart); it replaces the
/// configuration file's `[carrier.api]` until it is deleted.
#[utoipa::path(put, path = "/api/v1/system/carrier", tag = "system", request_body = CarrierSetting,
    params(("X-Sekisho-TOTP" = Option<String>, Header, description = "the second factor, once the user has one")),
    responses((status = 200, body = CarrierView), (status = 400, description = "`invalid_request`: every problem listed", body = sekisho_core::ErrorBody),
        (status = 403, body = sekisho_core::ErrorBody)))]
pub async fn put(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CarrierSetting>,
) -> ApiResult<Json<CarrierView>> {
    caller.require(Role::Maintainer)?;
    caller.second_factor(&app, &headers).await?;
    let d = CarrierApiConfig::default();
    let cfg = CarrierApiConfig {
        kind: req.kind,
        base_url: req.base_url,
        auth_header: req.auth_header.unwrap_or(d.auth_header.clone()),
        auth_scheme: req.auth_scheme.unwrap_or(d.auth_scheme.clone()),
        headers: req.headers.unwrap_or_default(),
        timeout_ms: req.timeout_ms.unwrap_or(d.timeout_ms),
        retries: req.retries.unwrap_or(d.retries),
        backoff_initial_ms: req.backoff_initial_ms.unwrap_or(d.backoff_initial_ms),
        backoff_max_ms: req.backoff_max_ms.unwrap_or(d.backoff_max_ms),
        rest: req.rest.unwrap_or_default(),
        ..d
    };
    if cfg.kind != "none" && req.token.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(ApiError::invalid(vec![
            "token: the carrier API's token is required".into(),
        ]));
    }
    let material = Material {
        token: req.token.map(|t| t.trim().to_owned()),
        ca_pem: req.ca_pem,
        client_cert_pem: req.client_cert_pem,
        client_key_pem: req.client_key_pem,
    };
    let data_dir = app.settings.data_dir.clone();
    let staging = data_dir.join(".carrier-staging");
    let _ = std::fs::remove_dir_all(&staging);
    let staged = settings::stage(&staging, cfg, &material).map_err(ApiError::internal)?;
    let connector = match sekisho_carrier::connect(&staged, Path::new("")) {
        Ok(c) => c,
        Err(problems) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(ApiError::invalid(problems));
        }
    };
    // The connector holds what it read; the files move into place for the next start.
    let live = settings::commit(&staging, &data_dir).map_err(ApiError::internal)?;
    install(&app, connector, live, CarrierSource::AdminApi);
    let v = current(&app);
    caller
        .log(&app, "carrier_api_set", Some(&v.kind), Some(&v.base_url))
        .await;
    Ok(Json(v))
}

/// Removes the connection set here: the configuration file's `[carrier.api]` applies again.
#[utoipa::path(delete, path = "/api/v1/system/carrier", tag = "system",
    params(("X-Sekisho-TOTP" = Option<String>, Header, description = "the second factor, once the user has one")),
    responses((status = 200, body = CarrierView), (status = 403, body = sekisho_core::ErrorBody), (status = 404, body = sekisho_core::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<Admin>>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<CarrierView>)> {
    caller.require(Role::Maintainer)?;
    caller.second_factor(&app, &headers).await?;
    let file = app.settings.carrier_api.clone();
    let connector = sekisho_carrier::connect(&file, Path::new("")).map_err(|p| {
        ApiError::invalid(p.into_iter().map(|p| format!("carrier.api.{p}")).collect())
    })?;
    if !settings::remove(&app.settings.data_dir).map_err(ApiError::internal)? {
        return Err(ApiError::not_found(
            "carrier API setting made through the admin API",
        ));
    }
    install(&app, connector, file, CarrierSource::Configuration);
    caller.log(&app, "carrier_api_reset", None, None).await;
    Ok((StatusCode::OK, Json(current(&app))))
}

fn install(
    app: &Admin,
    connector: Arc<dyn sekisho_carrier::SimControl>,
    cfg: CarrierApiConfig,
    source: CarrierSource,
) {
    app.carrier.replace(connector, cfg, source);
    tracing::info!(source = ?source, "carrier API connection changed");
}
