//! The browser console: server-rendered HTML (askama) with htmx for in-place updates, served on the admin
//! listener under `/console`, in English and Japanese.
//!
//! It owns pages, forms, the session cookie, the language choice and its static assets (embedded in the
//! binary). It owns no business rule: every read and change goes through the functions the admin API
//! uses (`admin::fields::create_field`, `admin::devices::set_status`, ...), so roles, field scoping,
//! validation, throttling and the admin log are the API's own.
//!
//! Architecture invariant: the console depends on the admin crate, never the other way round.
//!
//! Security: the session cookie is `HttpOnly; Secure; SameSite=Strict` and is read only for requests
//! under `/console`. A state-changing request whose browser names another origin (`Origin`, or
//! `Sec-Fetch-Site` without it) is refused with 403. Every response carries a CSP without inline
//! script or style, `nosniff` and `no-referrer`; askama escapes every value it prints.

#![forbid(unsafe_code)]

mod assets;
mod auth;
mod detections;
mod field;
mod i18n;
mod pages;
mod response;
mod security;
mod view;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use i18n::{Lang, Text};
use sekisho_admin::Admin;
use sekisho_admin::Caller;
use sekisho_core::{ErrorCode, Role};
use sekisho_http::ApiError;
use std::sync::Arc;

/// The language cookie: `en` or `ja`.
pub(crate) const LANG_COOKIE: &str = "lang";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'";

/// The console's routes, merged into the admin router (which adds the state).
/// The console's routes, to be served on the admin listener (`sekisho_admin::router`'s `also`).
pub fn router() -> Router<Arc<Admin>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(pages::dashboard))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/lang", post(auth::set_lang))
        .route(
            "/console/fields",
            get(pages::fields).post(pages::create_field),
        )
        .route("/console/fields/{field}", get(field::page))
        .route("/console/fields/{field}/devices", post(field::register))
        .route(
            "/console/fields/{field}/devices/{device}/{action}",
            post(field::device_action),
        )
        .route("/console/security", get(security::page))
        .route("/console/security/enrol", post(security::enrol))
        .route("/console/security/confirm", post(security::confirm))
        .route("/console/security/disable", post(security::disable))
        .route("/console/history", get(pages::history))
        .route("/console/detections", get(detections::page))
        .route("/console/response", get(response::page))
        .route("/console/response/{id}/{what}", post(response::decide))
        .route("/console/assets/htmx.min.js", get(assets::htmx))
        .route("/console/assets/console.css", get(assets::css))
        .route("/console/{*rest}", any(not_found))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn(guard))
}

/// Refuses cross-origin state changes, then adds the security headers to every console response.
async fn guard(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut resp = if safe || same_origin(req.headers(), req.uri()) {
        next.run(req).await
    } else {
        tracing::warn!(
            origin = ?req.headers().get(header::ORIGIN),
            path = %req.uri().path(),
            "console: cross-origin request refused"
        );
        let lang = Lang::of(req.headers());
        Failure::new(lang, StatusCode::FORBIDDEN, lang.text().err_cross_origin).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Whether a request comes from the console's own origin, as far as the browser tells: `Origin` must be
/// `https://<Host>`. Under `Referrer-Policy: no-referrer` browsers send `Origin: null` for form posts (as
/// do opaque origins such as sandboxed frames), so then `Sec-Fetch-Site` must say `same-origin`. Without
/// `Origin` (not a browser, or an old one), `Sec-Fetch-Site` must at least not name another site.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("?"));
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("?"));
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let strip = |s: &str| s.strip_suffix(":443").unwrap_or(s).to_ascii_lowercase();
    match origin {
        None => !matches!(site, Some("cross-site" | "same-site")),
        Some("null") => site == Some("same-origin"),
        Some(o) => match (o.strip_prefix("https://"), host) {
            (Some(o), Some(h)) => strip(o) == strip(h),
            _ => false,
        },
    }
}

async fn not_found(lang: Lang) -> Failure {
    Failure::new(lang, StatusCode::NOT_FOUND, lang.text().err_not_found)
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers))
    }
}

/// A logged-in console request: who, in which language, on which page. Without a valid session the
/// request is sent to the login page (htmx requests with `HX-Redirect`).
pub(crate) struct Ctx {
    pub lang: Lang,
    pub caller: Caller,
    /// Path and query of this request, for the language switch to come back to.
    pub here: String,
    /// Sent by htmx: answer with a fragment, not a page.
    pub htmx: bool,
}

impl FromRequestParts<Arc<Admin>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Admin>) -> Result<Self, Response> {
        let lang = Lang::of(&parts.headers);
        let htmx = parts.headers.contains_key("hx-request");
        let here = parts
            .uri
            .path_and_query()
            .map_or("/console", |p| p.as_str())
            .to_owned();
        match Caller::from_request_parts(parts, app).await {
            Ok(caller) => Ok(Ctx {
                lang,
                caller,
                here,
                htmx,
            }),
            Err(e) if e.code == ErrorCode::Unauthorized => Err(to_login(htmx)),
            Err(e) => Err(Failure::api(lang, e).into_response()),
        }
    }
}

fn to_login(htmx: bool) -> Response {
    if htmx {
        ([("hx-redirect", "/console/login")], "").into_response()
    } else {
        Redirect::to("/console/login").into_response()
    }
}

impl Ctx {
    pub fn t(&self) -> &'static Text {
        self.lang.text()
    }

    pub fn fail(&self, e: ApiError) -> Failure {
        Failure::api(self.lang, e)
    }

    /// The page frame: header, navigation, language switch.
    pub fn chrome(&self, nav: &'static str, title: impl Into<String>) -> Chrome {
        let t = self.t();
        let u = &self.caller.user;
        Chrome {
            t,
            lang: self.lang.code(),
            title: title.into(),
            nav,
            here: self.here.clone(),
            user: Some(UserBadge {
                name: u.username.clone(),
                role: t.role(u.role),
            }),
            asset_v: assets::version(),
        }
    }

    pub fn is(&self, role: Role) -> bool {
        self.caller.user.role == role
    }
}

/// What every page shows around its content.
pub(crate) struct Chrome {
    pub t: &'static Text,
    pub lang: &'static str,
    pub title: String,
    /// The active navigation entry: `dashboard`, `fields`, `detections`, `response`, `history`,
    /// `security` or empty.
    pub nav: &'static str,
    pub here: String,
    pub user: Option<UserBadge>,
    pub asset_v: &'static str,
}

impl Chrome {
    /// The frame of a page shown before login (or without a session).
    pub fn anonymous(lang: Lang, title: &str, here: &str) -> Self {
        Chrome {
            t: lang.text(),
            lang: lang.code(),
            title: title.to_owned(),
            nav: "",
            here: here.to_owned(),
            user: None,
            asset_v: assets::version(),
        }
    }
}

pub(crate) struct UserBadge {
    pub name: String,
    pub role: &'static str,
}

/// Renders a template into a response with `status`.
pub(crate) fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A console error page: a status and a message in the user's language, with details if any.
pub(crate) struct Failure {
    lang: Lang,
    status: StatusCode,
    message: &'static str,
    detail: Option<String>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    c: Chrome,
    message: &'a str,
    detail: Option<&'a str>,
}

impl Failure {
    pub fn new(lang: Lang, status: StatusCode, message: &'static str) -> Self {
        Self {
            lang,
            status,
            message,
            detail: None,
        }
    }

    pub fn api(lang: Lang, e: ApiError) -> Self {
        let (message, detail) = explain(lang.text(), &e);
        Self {
            lang,
            status: StatusCode::from_u16(e.code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
            detail,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message and its details on one line, for a form.
    pub fn line(&self) -> String {
        match &self.detail {
            Some(d) => format!("{} {d}", self.message),
            None => self.message.to_owned(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let t = self.lang.text();
        let page = ErrorPage {
            c: Chrome::anonymous(self.lang, t.error, "/console"),
            message: self.message,
            detail: self.detail.as_deref(),
        };
        render(self.status, &page)
    }
}

/// An API error in the user's words; validation details stay as the API words them.
fn explain(t: &'static Text, e: &ApiError) -> (&'static str, Option<String>) {
    match e.code {
        ErrorCode::NotFound => (t.err_not_found, None),
        ErrorCode::Forbidden => (t.err_forbidden, None),
        ErrorCode::SecondFactorRequired => (t.err_second_factor, None),
        ErrorCode::Conflict => (t.err_conflict, Some(e.message.clone())),
        ErrorCode::InvalidRequest => (t.err_invalid, Some(e.message.clone())),
        ErrorCode::StoreUnavailable | ErrorCode::TooManyRequests => (t.err_unavailable, None),
        _ => (t.err_internal, None),
    }
}

/// `303 See Other` to a console path.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_the_consoles_own_origin_may_change_things() {
        let h1: Uri = "/console/fields".parse().unwrap();
        let h2: Uri = "https://127.0.0.1:8443/console/fields".parse().unwrap();
        let check = |pairs: &[(&'static str, &'static str)], uri: &Uri, want: bool| {
            assert_eq!(same_origin(&req(pairs), uri), want, "{pairs:?} {uri}")
        };
        check(&[("host", "127.0.0.1:8443")], &h1, true);
        check(
            &[
                ("host", "127.0.0.1:8443"),
                ("origin", "https://127.0.0.1:8443"),
            ],
            &h1,
            true,
        );
        check(&[("origin", "https://127.0.0.1:8443")], &h2, true);
        check(
            &[("host", "gw.example"), ("origin", "https://GW.example:443")],
            &h1,
            true,
        );
        check(
            &[
                ("host", "127.0.0.1:8443"),
                ("origin", "https://evil.example"),
            ],
            &h1,
            false,
        );
        check(
            &[
                ("host", "127.0.0.1:8443"),
                ("origin", "http://127.0.0.1:8443"),
            ],
            &h1,
            false,
        );
        check(
            &[("host", "127.0.0.1:8443"), ("origin", "null")],
            &h1,
            false,
        );
        check(
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
            &h2,
            true,
        );
        check(
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
            &h2,
            false,
        );
        check(
            &[("origin", "null"), ("sec-fetch-site", "none")],
            &h2,
            false,
        );
        check(&[("origin", "https://127.0.0.1:8443")], &h1, false);
        check(
            &[("host", "127.0.0.1:8443"), ("sec-fetch-site", "cross-site")],
            &h1,
            false,
        );
        check(
            &[
                ("host", "127.0.0.1:8443"),
                ("sec-fetch-site", "same-origin"),
            ],
            &h1,
            true,
        );
    }
}
