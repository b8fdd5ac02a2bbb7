//! A field's page: its auth ID, outbox and notification status, its devices with the register form and the enable / disable /
//! delete buttons (htmx swaps the row; without JavaScript they are plain forms), its recent messages.
//! For a user with a second factor, disable and delete carry a `totp` code field, checked by the API's
//! own check before the change.
//!
//! A new device's secret is shown once, in the response to the register form, and nowhere else.

use super::view::{DeviceRow, MessageRow, query, when};
use super::{Chrome, Ctx, Failure, render, see_other};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use sekisho_admin::Admin;
use sekisho_admin::devices::{RegisterDevice, check_stop, device_in, register_device, set_status};
use sekisho_core::{DeviceStatus, Field, Sim};
use sekisho_store::history::Filter;
use sekisho_store::outbox::OutboxCounts;
use sekisho_store::prelude::*;
use serde::Deserialize;
use std::sync::Arc;

/// The register form's values (kept when the form is refused).
#[derive(Debug, Default, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    unique_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    imsi: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    critical: Option<String>,
}

/// What the register response shows once.
struct NewDevice {
    id: String,
    unique_id: String,
    auth_id: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "console/field.html")]
struct FieldPage {
    c: Chrome,
    f: Arc<Field>,
    auth_mode: &'static str,
    cloud: Option<String>,
    created: String,
    outbox: OutboxCounts,
    /// The notification actions the field gives nowhere to go, in words.
    notify_unset: Vec<String>,
    devices: Vec<DeviceRow>,
    messages: Vec<MessageRow>,
    can_manage: bool,
    history: String,
    registered: Option<NewDevice>,
    form: RegisterForm,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/device_row.html")]
struct RowFragment {
    t: &'static super::i18n::Text,
    row: DeviceRow,
}

async fn field_page(
    app: &Admin,
    ctx: &Ctx,
    field: &str,
    status: StatusCode,
    registered: Option<NewDevice>,
    form: RegisterForm,
    error: Option<String>,
) -> Result<Response, Failure> {
    let f = ctx.caller.field(app, field).map_err(|e| ctx.fail(e))?;
    let t = ctx.t();
    let can_manage = ctx.caller.manages(&f.id);
    let mfa = ctx.caller.user.mfa_enabled;
    let recent = Filter {
        field: Some(f.id.0.clone()),
        limit: 20,
        ..Default::default()
    };
    let messages = app.store.search_messages(&recent).await;
    let outbox = app.store.outbox_counts(Some(f.id.as_str())).await;
    let shown = sekisho_admin::fields::view(app, &f).await;
    let notify_unset = shown.map_err(|e| ctx.fail(e))?.notifications.unset;
    let page = FieldPage {
        c: ctx.chrome("fields", f.name.clone()),
        auth_mode: t.mode(f.auth_mode),
        cloud: f.cloud.as_ref().map(|c| c.url.clone()),
        created: when(f.created_at),
        outbox: outbox.map_err(|e| ctx.fail(e.into()))?,
        notify_unset: notify_unset.iter().map(|a| t.word(a.as_str())).collect(),
        devices: app
            .registry
            .devices_of(&f.id)
            .iter()
            .map(|d| DeviceRow::of(t, &d.device, can_manage).with_totp(mfa))
            .collect(),
        messages: messages
            .map_err(|e| ctx.fail(e.into()))?
            .iter()
            .map(|m| MessageRow::of(app, t, m))
            .collect(),
        can_manage,
        history: format!("/console/history{}", query(&[("field", f.id.as_str())])),
        registered,
        form,
        error,
        f,
    };
    Ok(render(status, &page))
}

pub async fn page(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    Path(field): Path<String>,
) -> Result<Response, Failure> {
    field_page(
        &app,
        &ctx,
        &field,
        StatusCode::OK,
        None,
        RegisterForm::default(),
        None,
    )
    .await
}

/// Registers a device and answers with the field's page showing the new secret, once.
pub async fn register(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    Path(field): Path<String>,
    Form(form): Form<RegisterForm>,
) -> Result<Response, Failure> {
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let req = RegisterDevice {
        unique_id: form.unique_id.trim().to_owned(),
        name: opt(&form.name),
        sim: opt(&form.imsi).map(|imsi| Sim {
            imsi,
            iccid: None,
            msisdn: None,
        }),
        critical: form.critical.is_some(),
        certificate_pem: None,
    };
    match register_device(&app, &ctx.caller, &field, req).await {
        Ok(r) => {
            let shown = NewDevice {
                id: r.id,
                unique_id: r.device.unique_id,
                auth_id: r.auth_id,
                secret: r.auth_secret,
            };
            let (status, form) = (StatusCode::OK, RegisterForm::default());
            field_page(&app, &ctx, &field, status, Some(shown), form, None).await
        }
        Err(e) => {
            let fail = ctx.fail(e);
            if fail.status() == StatusCode::NOT_FOUND {
                return Err(fail);
            }
            let (status, line) = (fail.status(), fail.line());
            field_page(&app, &ctx, &field, status, None, form, Some(line)).await
        }
    }
}

/// The device buttons' form: a second-factor code for disable and delete (users with one).
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    totp: Option<String>,
}

/// Enables, disables or deletes a device. htmx gets the new table row; a plain form post goes back to
/// the field's page. Disable and delete are disruptive: they pass the second-factor check first.
pub async fn device_action(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    Path((field, device, action)): Path<(String, String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    let form = form.map(|f| f.0).unwrap_or_default();
    let status = match action.as_str() {
        "enable" => DeviceStatus::Active,
        "disable" => DeviceStatus::Disabled,
        "delete" => DeviceStatus::Deleted,
        _ => {
            return Err(Failure::new(
                ctx.lang,
                StatusCode::NOT_FOUND,
                ctx.t().err_not_found,
            ));
        }
    };
    let t = ctx.t();
    let mfa = ctx.caller.user.mfa_enabled;
    let changed = async {
        if status != DeviceStatus::Active {
            let code = form.totp.as_deref();
            check_stop(&app, &ctx.caller, &field, &device, code).await?;
        }
        set_status(&app, &ctx.caller, &field, &device, status).await
    };
    let d = match changed.await {
        Ok(d) => d,
        // htmx swaps only successful answers: show the problem in the row while it is there.
        Err(e) if ctx.htmx => {
            let fail = ctx.fail(e);
            let entry = ctx
                .caller
                .field(&app, &field)
                .and_then(|f| device_in(&app, &f, &device));
            let Ok(entry) = entry else {
                return Err(fail);
            };
            let manage = ctx.caller.manages(&entry.device.field_id);
            let mut row = DeviceRow::of(t, &entry.device, manage).with_totp(mfa);
            row.note = Some(fail.line());
            return Ok(render(StatusCode::OK, &RowFragment { t, row }));
        }
        Err(e) => return Err(ctx.fail(e)),
    };
    if !ctx.htmx {
        return Ok(see_other(&format!("/console/fields/{}", d.field_id)));
    }
    let row = DeviceRow::of(t, &d, ctx.caller.manages(&d.field_id)).with_totp(mfa);
    Ok(render(StatusCode::OK, &RowFragment { t, row }))
}
