//! The response page: disruptive actions waiting for approval (approve with the second factor when
//! the user has one, or reject), and the latest actions with their state (a skipped notification
//! with its reason) and undo. It calls the same functions as the admin API (roles, scoping, second
//! factor, admin log).

use super::view::{device_label, field_name, when};
use super::{Ctx, Failure, render, see_other};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use sekisho_admin::Admin;
use sekisho_admin::response::{approve_action, reject_action, undo_action};
use sekisho_core::ActionState;
use sekisho_store::prelude::*;
use sekisho_store::response::{ActionFilter, ActionRow};
use serde::Deserialize;
use std::sync::Arc;

/// One action as the page shows it.
pub struct ActionLine {
    pub id: i64,
    pub when: String,
    pub field: String,
    pub device: String,
    pub action: String,
    pub action_label: String,
    pub state: String,
    pub state_label: String,
    pub trigger: String,
    /// Why it failed, or (skipped) why it did not run.
    pub error: String,
    pub can_manage: bool,
    pub can_undo: bool,
}

#[derive(Template)]
#[template(path = "console/response.html")]
struct ResponsePage {
    c: super::Chrome,
    waiting: Vec<ActionLine>,
    recent: Vec<ActionLine>,
    totp: bool,
}

fn line(app: &Admin, ctx: &Ctx, a: &ActionRow) -> ActionLine {
    let t = ctx.t();
    let can_manage = ctx
        .caller
        .manages(&sekisho_core::FieldId(a.field_id.clone()));
    ActionLine {
        id: a.id,
        when: when(a.updated_at),
        field: field_name(app, Some(&a.field_id)),
        device: device_label(app, a.device_id.as_deref(), None),
        action: a.action.to_string(),
        action_label: t.word(a.action.as_str()),
        state: a.state.to_string(),
        state_label: t.word(a.state.as_str()),
        trigger: a.trigger.clone(),
        error: a
            .error
            .clone()
            .or_else(|| skip_reason(a))
            .unwrap_or_default(),
        can_manage,
        can_undo: can_manage
            && a.state == ActionState::Done
            && a.undone_by.is_none()
            && a.action.undo().is_some(),
    }
}

/// The reason a skipped action recorded (`{"reason": …}` in its output).
fn skip_reason(a: &ActionRow) -> Option<String> {
    if a.state != ActionState::Skipped {
        return None;
    }
    let out: serde_json::Value = serde_json::from_str(a.output.as_deref()?).ok()?;
    out["reason"].as_str().map(str::to_owned)
}

pub async fn page(State(app): State<Arc<Admin>>, ctx: Ctx) -> Result<Response, Failure> {
    let visible = ctx.caller.visible_fields();
    let search = |state: Option<ActionState>, limit| ActionFilter {
        visible_fields: visible.clone(),
        state,
        limit,
        ..Default::default()
    };
    let fail = |e: sekisho_store::StoreError| ctx.fail(e.into());
    let waiting = app
        .store
        .actions(&search(Some(ActionState::AwaitingApproval), 200))
        .await
        .map_err(fail)?;
    let recent = app.store.actions(&search(None, 50)).await.map_err(fail)?;
    let page = ResponsePage {
        c: ctx.chrome("response", ctx.t().response),
        waiting: waiting.iter().map(|a| line(&app, &ctx, a)).collect(),
        recent: recent.iter().map(|a| line(&app, &ctx, a)).collect(),
        totp: ctx.caller.user.mfa_enabled,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    totp: Option<String>,
}

/// Approve, reject or undo one action, then back to the page.
pub async fn decide(
    State(app): State<Arc<Admin>>,
    ctx: Ctx,
    Path((id, what)): Path<(i64, String)>,
    form: Result<Form<DecideForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    let form = form.map(|f| f.0).unwrap_or_default();
    let done = match what.as_str() {
        "approve" => approve_action(&app, &ctx.caller, id, form.totp.as_deref()).await,
        "reject" => reject_action(&app, &ctx.caller, id).await,
        "undo" => undo_action(&app, &ctx.caller, id).await,
        _ => {
            return Err(Failure::new(
                ctx.lang,
                StatusCode::NOT_FOUND,
                ctx.t().err_not_found,
            ));
        }
    };
    done.map_err(|e| ctx.fail(e))?;
    Ok(see_other("/console/response"))
}
