//! The security page: the logged-in user's second factor (TOTP). Start enrolment (the key and the
//! `otpauth://` URI are shown as text, to type or paste into an authenticator app), confirm it with a
//! code, turn it off with a code. Everything goes through `admin::mfa`, as the API does.

use super::{Chrome, Ctx, Failure, render};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use sekisho_admin::Admin;
use sekisho_admin::mfa::{
    Enrolment, confirm_enrolment, disable_own, pending_enrolment, start_enrolment,
};
use sekisho_core::ErrorCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "console/security.html")]
struct SecurityPage {
    c: Chrome,
    enabled: bool,
    /// A started enrolment: its key and URI.
    enrolment: Option<Enrolment>,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// What the page shows after a request.
struct Shown {
    status: StatusCode,
    enabled: bool,
    enrolment: Option<Enrolment>,
    notice: Option<&'static str>,
    error: Option<String>,
}

impl Shown {
    fn state(enabled: bool) -> Self {
        Shown {
            status: StatusCode::OK,
            enabled,
            enrolment: None,
            notice: None,
            error: None,
        }
    }

    fn failed(enabled: bool, fail: &Failure) -> Self {
        Shown {
            status: fail.status(),
            error: Some(fail.line()),
            ..Shown::state(enabled)
        }
    }
}

fn show(ctx: &Ctx, s: Shown) -> Response {
    let mut c = ctx.chrome("security", ctx.t().security);
    // The language switch comes back to the page, not to the form's address.
    c.here = "/console/security".to_owned();
    let page = SecurityPage {
        c,
        enabled: s.enabled,
        enrolment: s.enrolment,
        notice: s.notice,
        error: s.error,
    };
    render(s.status, &page)
}

pub async fn page(ctx: Ctx) -> Response {
    let enabled = ctx.caller.user.mfa_enabled;
    show(&ctx, Shown::state(enabled))
}

/// Starts (or restarts) enrolment and shows the new key once.
pub async fn enrol(State(app): State<Arc<Admin>>, ctx: Ctx) -> Response {
    let enabled = ctx.caller.user.mfa_enabled;
    let shown = match start_enrolment(&app, &ctx.caller).await {
        Ok(e) => Shown {
            enrolment: Some(e),
            ..Shown::state(false)
        },
        Err(e) => Shown::failed(enabled, &ctx.fail(e)),
    };
    show(&ctx, shown)
}

#[derive(Debug, Default, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// Confirms the enrolment with a code; a wrong code shows the pending key again.
pub async fn confirm(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    Form(f): Form<CodeForm>,
) -> Result<Response, Failure> {
    let t = ctx.t();
    let shown = match confirm_enrolment(&app, &ctx.caller, &f.code).await {
        Ok(()) => Shown {
            notice: Some(t.mfa_enabled_done),
            ..Shown::state(true)
        },
        Err(e) if e.code == ErrorCode::InvalidRequest => Shown {
            status: StatusCode::BAD_REQUEST,
            enrolment: pending_enrolment(&app, &ctx.caller)
                .await
                .map_err(|e| ctx.fail(e))?,
            error: Some(t.mfa_wrong_code.to_owned()),
            ..Shown::state(false)
        },
        Err(e) => Shown::failed(ctx.caller.user.mfa_enabled, &ctx.fail(e)),
    };
    Ok(show(&ctx, shown))
}

/// Turns the second factor off with a current code (or cancels a started enrolment).
pub async fn disable(State(app): State<Arc<Admin>>, ctx: Ctx, Form(f): Form<CodeForm>) -> Response {
    let shown = match disable_own(&app, &ctx.caller, Some(&f.code)).await {
        Ok(()) => Shown {
            notice: Some(ctx.t().mfa_disabled_done),
            ..Shown::state(false)
        },
        Err(e) => Shown::failed(ctx.caller.user.mfa_enabled, &ctx.fail(e)),
    };
    show(&ctx, shown)
}
