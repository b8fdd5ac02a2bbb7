//! The detections page: a field's (or every visible field's) detections, newest first, with their
//! threat, severity, rule, what was seen and how often; filtered by field and threat, paged.

use super::view::{DetectionRow, query};
use super::{Chrome, Ctx, Failure, render};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use sekisho_admin::Admin;
use sekisho_core::Threat;
use sekisho_store::detections::DetectionFilter;
use sekisho_store::prelude::*;
use serde::Deserialize;
use std::sync::Arc;

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct DetectionForm {
    #[serde(default)]
    field: String,
    #[serde(default)]
    threat: String,
    #[serde(default)]
    before: String,
}

#[derive(Template)]
#[template(path = "console/detections.html")]
struct DetectionsPage {
    c: Chrome,
    q: DetectionForm,
    fields: Vec<(String, String)>,
    threats: Vec<(&'static str, String)>,
    rows: Vec<DetectionRow>,
    older: Option<String>,
    newest: Option<String>,
}

pub async fn page(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    q: Result<Query<DetectionForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let t = ctx.t();
    let mut q = q.map(|q| q.0).unwrap_or_default();
    let threat = q.threat.parse::<Threat>().ok();
    if threat.is_none() {
        q.threat.clear();
    }
    let field = q.field.trim().to_owned();
    if !field.is_empty() {
        // The field must exist and be visible to this user (else: not found).
        ctx.caller.field(&app, &field).map_err(|e| ctx.fail(e))?;
    }
    let before = q.before.trim().parse::<i64>().ok();
    let filter = DetectionFilter {
        field: (!field.is_empty()).then(|| field.clone()),
        visible_fields: ctx.caller.visible_fields(),
        device: None,
        rule: None,
        threat,
        since: None,
        before,
        limit: PAGE,
    };
    let found = app
        .store
        .search_detections(&filter)
        .await
        .map_err(|e| ctx.fail(e.into()))?;
    let next = (found.len() as i64 == PAGE)
        .then(|| found.last().map(|d| d.id))
        .flatten();
    let link = |before: &str| {
        format!(
            "/console/detections{}",
            query(&[("field", &field), ("threat", &q.threat), ("before", before)])
        )
    };
    let page = DetectionsPage {
        c: ctx.chrome("detections", t.detections),
        fields: app
            .registry
            .fields()
            .iter()
            .filter(|f| ctx.caller.sees(&f.id))
            .map(|f| (f.id.0.clone(), f.name.clone()))
            .collect(),
        threats: Threat::ALL
            .iter()
            .map(|th| (th.as_str(), t.word(th.as_str())))
            .collect(),
        rows: found.iter().map(|d| DetectionRow::of(&app, t, d)).collect(),
        older: next.map(|n| link(&n.to_string())),
        newest: before.map(|_| link("")),
        q,
    };
    Ok(render(StatusCode::OK, &page))
}
