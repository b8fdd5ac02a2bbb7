//! Logging in and out of the console, and the language switch. Login goes through the API's own
//! `open_session` (same Argon2 check, same `login_failures` throttle, same sessions table, same admin
//! log); the token travels in the `sekisho_session` cookie instead of a bearer header.

use super::i18n::Lang;
use super::view::is_console_path;
use super::{Chrome, Ctx, LANG_COOKIE, render, see_other};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use sekisho_admin::Admin;
use sekisho_admin::Caller;
use sekisho_admin::session::open_session;
use sekisho_admin::session::{SESSION_COOKIE, cookie};
use sekisho_core::ErrorCode;
use sekisho_http::ApiError;
use sekisho_registry::crypto;
use sekisho_store::prelude::*;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    c: Chrome,
    username: String,
    error: Option<String>,
}

fn login_form(lang: Lang, status: StatusCode, username: &str, error: Option<String>) -> Response {
    let page = LoginPage {
        c: Chrome::anonymous(lang, lang.text().login, "/console/login"),
        username: username.to_owned(),
        error,
    };
    render(status, &page)
}

pub async fn login_page(lang: Lang, caller: Result<Caller, ApiError>) -> Response {
    match caller {
        Ok(_) => see_other("/console"),
        Err(_) => login_form(lang, StatusCode::OK, "", None),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn login(
    State(app): State<Arc<Admin>>,
    lang: Lang,
    Form(f): Form<LoginForm>,
) -> Response {
    let t = lang.text();
    match open_session(&app, &f.username, &f.password).await {
        Ok(s) => {
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
                s.token, s.ttl_secs
            );
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/console".to_owned()),
                    (header::SET_COOKIE, cookie),
                ],
            )
                .into_response()
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match e.code {
                ErrorCode::Unauthorized => t.login_failed.to_owned(),
                ErrorCode::TooManyRequests => t
                    .login_locked
                    .replace("{secs}", &e.retry_after.unwrap_or(1).to_string()),
                _ => super::Failure::api(lang, e).line(),
            };
            login_form(lang, status, &f.username, Some(message))
        }
    }
}

/// Ends this session (the row in the sessions table too) and forgets the cookie.
pub async fn logout(State(app): State<Arc<Admin>>, ctx: Ctx, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = app
            .store
            .delete_session(&crypto::sha256(token.as_bytes()))
            .await
    {
        return ctx.fail(e.into()).into_response();
    }
    ctx.caller.log(&app, "logout", None, None).await;
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login".to_owned()),
            (header::SET_COOKIE, clear),
        ],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LangForm {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
}

/// Remembers the chosen language for a year and goes back to the page the switch was on.
pub async fn set_lang(Form(f): Form<LangForm>) -> Response {
    let back = if is_console_path(&f.back) {
        f.back
    } else {
        "/console".to_owned()
    };
    let Some(lang) = Lang::parse(&f.lang) else {
        return see_other(&back);
    };
    let cookie = format!(
        "{LANG_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=31536000",
        lang.code()
    );
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, back), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}
