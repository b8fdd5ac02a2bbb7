//! The console's static files, embedded in the binary: htmx (vendored from npm `htmx.org`, see
//! `assets/README.md`) and the style sheet. Pages link them with `?v=<content hash>`, so they can be
//! cached for a year and still change with the binary.

use axum::response::IntoResponse;
use http::header;
use std::sync::LazyLock;

static HTMX: &[u8] = include_bytes!("../assets/htmx.min.js");
static CSS: &[u8] = include_bytes!("../assets/console.css");

const CACHE: &str = "public, max-age=31536000, immutable";

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut both = HTMX.to_vec();
    both.extend_from_slice(CSS);
    hex::encode(&sekisho_registry::crypto::sha256(&both)[..6])
});

/// A short hash of the assets, for cache-busting links.
pub fn version() -> &'static str {
    &VERSION
}

pub async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        HTMX,
    )
}

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        CSS,
    )
}
