//! Notification actions: mail to the field's administrator or person in charge, and the field's
//! webhook. Where they go is set per field (`PUT /api/v1/fields/{field}/notify`); the SMTP server is
//! `[response.smtp]`. The texts (Japanese and English) come from `sekisho-notify`.
//!
//! A notification whose target the field has not set is not an error of each incident but a state of
//! the field: the action is recorded `skipped` with the reason, the field's status lists the unset
//! targets (`GET /api/v1/fields/{field}` → `notifications`), and the log says so once per field per
//! hour ([`OncePer`]).

use super::{ActionError, Outcome};
use crate::Responder;
use sekisho_core::Action;
use sekisho_notify::text::{Incident, Lang, incident_mail, webhook_body};
use sekisho_notify::{Mail, Webhook};
use sekisho_store::prelude::*;
use sekisho_store::response::{ActionFilter, ActionRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

/// Where a field's notifications go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// `notify_admin` mails these addresses.
    pub admin_emails: Vec<String>,
    /// `notify_person_in_charge` mails these addresses.
    pub person_in_charge_emails: Vec<String>,
    /// `ja`, `en` or `both` (Japanese first).
    pub language: String,
    /// `notify_webhook` posts here (HTTPS, or HTTP on loopback).
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the webhook's `X-Sekisho-Signature`. Write-only: answers say only
    /// whether it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl NotifySettings {
    /// Every problem with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (key, list) in [
            ("admin_emails", &self.admin_emails),
            ("person_in_charge_emails", &self.person_in_charge_emails),
        ] {
            for m in list {
                if m.parse::<lettre::Address>().is_err() {
                    p.push(format!("{key}: '{m}' is not a mail address"));
                }
            }
        }
        if !matches!(self.language.as_str(), "" | "ja" | "en" | "both") {
            p.push(format!(
                "language: '{}' is not ja, en or both",
                self.language
            ));
        }
        if let Some(u) = &self.webhook_url {
            match reqwest::Url::parse(u) {
                Ok(url)
                    if url.scheme() == "https"
                        || (url.scheme() == "http"
                            && url.host_str().is_some_and(|h| {
                                h == "localhost"
                                    || h.parse::<std::net::IpAddr>()
                                        .is_ok_and(|ip| ip.is_loopback())
                            })) => {}
                _ => p.push(format!(
                    "webhook_url: '{u}' is not an https URL (http only on loopback)"
                )),
            }
            if self.webhook_secret.as_deref().is_none_or(|s| s.len() < 16) {
                p.push(
                    "webhook_secret: 16 characters or more are needed with a webhook_url".into(),
                );
            }
        }
        p
    }

    pub fn lang(&self) -> Lang {
        match self.language.as_str() {
            "ja" => Lang::Ja,
            "en" => Lang::En,
            _ => Lang::Both,
        }
    }
}

/// The notification actions these settings give nowhere to go, each with the setting it lacks.
pub fn unset(s: &NotifySettings) -> Vec<(Action, &'static str)> {
    let mut out = Vec::new();
    if s.admin_emails.is_empty() {
        out.push((Action::NotifyAdmin, "admin_emails"));
    }
    if s.person_in_charge_emails.is_empty() {
        out.push((Action::NotifyPersonInCharge, "person_in_charge_emails"));
    }
    if s.webhook_url.is_none() || s.webhook_secret.is_none() {
        out.push((Action::NotifyWebhook, "webhook_url"));
    }
    out
}

/// Says yes once per key per period: a log line about a lasting state, not one per incident. It runs
/// on tokio's clock, so a test can pause and advance it.
pub struct OncePer {
    period: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl OncePer {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::default(),
        }
    }

    pub fn hourly() -> Self {
        Self::new(Duration::from_secs(3600))
    }

    /// Whether `key` may be told about now; if so, not again until a period has passed.
    pub fn first(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(key) {
            Some(t) if now.duration_since(*t) < self.period => false,
            _ => {
                last.insert(key.to_owned(), now);
                true
            }
        }
    }
}

/// Why `a` has nowhere to go under `s`, if it has not; logs the field's unset targets, at most once
/// per field per hour.
fn nowhere(app: &Responder, a: &ActionRow, s: &NotifySettings) -> Option<String> {
    let missing = unset(s);
    let (_, setting) = missing.iter().find(|(action, _)| *action == a.action)?;
    if app.notify_unset_log.first(&a.field_id) {
        let targets: Vec<&str> = missing.iter().map(|(_, s)| *s).collect();
        tracing::warn!(
            field = a.field_id,
            unset = targets.join(","),
            "this field's notifications have nowhere to go: actions that need them are recorded as skipped \
             (set them with PUT /api/v1/fields/{{field}}/notify; said once an hour)"
        );
    }
    Some(format!(
        "this field has no {setting} (PUT /api/v1/fields/{{field}}/notify)"
    ))
}

/// The field's settings as stored (default: nowhere).
pub async fn settings(app: &Responder, field: &str) -> Result<NotifySettings, ActionError> {
    Ok(match app.store.field_notify(field).await? {
        Some(body) => serde_json::from_str(&body)
            .map_err(|e| ActionError::fatal(format!("stored notification settings: {e}")))?,
        None => NotifySettings::default(),
    })
}

/// The incident an action is about, as the texts describe it.
async fn incident(app: &Responder, a: &ActionRow) -> Result<(Incident, i64), ActionError> {
    let decision_id = a
        .decision_id
        .ok_or_else(|| ActionError::fatal("a notification needs a decision"))?;
    let decision = app
        .store
        .decision(decision_id)
        .await?
        .ok_or_else(|| ActionError::fatal("decision not found"))?;
    let d = app
        .store
        .detection(decision.detection_id)
        .await?
        .ok_or_else(|| ActionError::fatal("detection not found"))?;
    let field = app
        .registry
        .field(&sekisho_core::FieldId(d.field_id.clone()));
    let device = d
        .device_id
        .as_ref()
        .and_then(|id| app.registry.device(&sekisho_core::DeviceId(id.clone())));
    let actions = app
        .store
        .actions(&ActionFilter {
            decision: Some(decision_id),
            limit: 50,
            ..Default::default()
        })
        .await?;
    let mut actions: Vec<_> = actions
        .into_iter()
        .filter(|x| !x.action.is_notification())
        .map(|x| (x.action, x.state))
        .collect();
    actions.reverse();
    let console = app.console_url();
    Ok((
        Incident {
            field_name: field.map(|f| f.name.clone()).unwrap_or_default(),
            field_id: d.field_id.clone(),
            device_id: d.device_id.clone().unwrap_or_default(),
            device_name: device.as_ref().and_then(|e| e.device.name.clone()),
            unique_id: device
                .as_ref()
                .map(|e| e.device.unique_id.clone())
                .unwrap_or_default(),
            critical: device.as_ref().is_some_and(|e| e.device.critical),
            threat: d.threat,
            severity: d.severity,
            rule: d.rule.clone(),
            summary: d.summary.clone(),
            evidence: serde_json::from_str(&d.evidence).unwrap_or(Value::Null),
            first_at_ms: d.first_at,
            last_at_ms: d.last_at,
            count: d.count as u64,
            actions,
            console_url: Some(format!("{console}/detections?field={}", d.field_id)),
        },
        decision_id,
    ))
}

/// Sends the notification `a` asks for, or skips it when the field has not set where it goes.
pub async fn send(app: &Responder, a: &ActionRow) -> Result<Outcome, ActionError> {
    let s = settings(app, &a.field_id).await?;
    if let Some(reason) = nowhere(app, a, &s) {
        return Ok(Outcome::Skipped(reason));
    }
    let (incident, decision) = incident(app, a).await?;
    if a.action == Action::NotifyWebhook {
        let (Some(url), Some(secret)) = (&s.webhook_url, &s.webhook_secret) else {
            return Err(ActionError::fatal("no webhook set for this field"));
        };
        let hook = Webhook::new(
            url,
            secret.as_bytes(),
            std::time::Duration::from_millis(app.config.webhook_timeout_ms),
        )
        .map_err(|e| ActionError::fatal(format!("webhook: {e}")))?;
        let event = format!("sekisho-action-{}", a.id);
        return match hook.post(&event, &webhook_body(&incident, decision)).await {
            Ok(status) => Ok(Outcome::Done(
                json!({"url": url, "status": status, "event": event}),
            )),
            Err(e) if e.retryable() => Err(ActionError::retry(format!("webhook: {e}"))),
            Err(e) => Err(ActionError::fatal(format!("webhook: {e}"))),
        };
    }
    let to = if a.action == Action::NotifyAdmin {
        &s.admin_emails
    } else {
        &s.person_in_charge_emails
    };
    // Mail switched off for the whole gateway is a state too, not a failure per incident.
    if !app.mailer.enabled() {
        if app.notify_unset_log.first("[response.smtp]") {
            tracing::warn!(
                "mail is off ([response.smtp] host is not set): mail actions are recorded as skipped \
                 (said once an hour)"
            );
        }
        return Ok(Outcome::Skipped(
            "mail is off: the gateway has no [response.smtp] host".into(),
        ));
    }
    let (subject, text) = incident_mail(s.lang(), &incident);
    let mail = Mail {
        to: to.clone(),
        subject: subject.clone(),
        text,
        reply_to: None,
    };
    match app.mailer.send(&mail).await {
        Ok(()) => Ok(Outcome::Done(json!({"to": to, "subject": subject}))),
        Err(e) if e.retryable() => Err(ActionError::retry(format!("mail: {e}"))),
        Err(e) => Err(ActionError::fatal(format!("mail: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn says_yes_once_per_key_per_period() {
        let once = OncePer::hourly();
        assert!(once.first("f1"));
        assert!(!once.first("f1"));
        assert!(once.first("f2"), "each key has its own hour");
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert!(!once.first("f1"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(once.first("f1"), "an hour later it is said again");
        assert!(!once.first("f1"));
    }

    #[test]
    fn lists_the_notifications_without_a_target() {
        let none = NotifySettings::default();
        let all: Vec<Action> = unset(&none).into_iter().map(|(a, _)| a).collect();
        assert_eq!(
            all,
            [
                Action::NotifyAdmin,
                Action::NotifyPersonInCharge,
                Action::NotifyWebhook
            ]
        );
        let set = NotifySettings {
            admin_emails: vec!["ops@example.jp".into()],
            webhook_url: Some("https://siem.example/hook".into()),
            webhook_secret: Some("0123456789abcdef".into()),
            ..Default::default()
        };
        assert_eq!(
            unset(&set),
            [(Action::NotifyPersonInCharge, "person_in_charge_emails")]
        );
        let no_secret = NotifySettings {
            webhook_secret: None,
            ..set
        };
        assert!(
            unset(&no_secret)
                .iter()
                .any(|(a, _)| *a == Action::NotifyWebhook)
        );
    }
}
