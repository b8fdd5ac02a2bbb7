//! Notification actions: mail to the field's administrator or person in charge, and the field's
//! webhook. Where they go is set per field (`PUT /api/v1/fields/{field}/notify`); the SMTP server is
//! `[response.smtp]`. The texts (Japanese and English) come from `sekisho-notify`.

use super::actions::ActionError;
use crate::app::App;
use sekisho_notify::text::{Incident, Lang, incident_mail, webhook_body};
use sekisho_notify::{Mail, Webhook};
use sekisho_store::response::{ActionFilter, ActionRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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

/// The field's settings as stored (default: nowhere).
pub async fn settings(app: &App, field: &str) -> Result<NotifySettings, ActionError> {
    Ok(match app.store.field_notify(field).await? {
        Some(body) => serde_json::from_str(&body)
            .map_err(|e| ActionError::fatal(format!("stored notification settings: {e}")))?,
        None => NotifySettings::default(),
    })
}

/// The incident an action is about, as the texts describe it.
async fn incident(app: &App, a: &ActionRow) -> Result<(Incident, i64), ActionError> {
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
    let mut actions: Vec<(String, String)> = actions
        .into_iter()
        .filter(|x| !x.action.starts_with("notify_"))
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
            threat: d.threat.clone(),
            severity: d.severity.clone(),
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

/// Sends the notification `a` asks for.
pub async fn send(app: &App, a: &ActionRow) -> Result<Value, ActionError> {
    let s = settings(app, &a.field_id).await?;
    let (incident, decision) = incident(app, a).await?;
    if a.action == "notify_webhook" {
        let (Some(url), Some(secret)) = (&s.webhook_url, &s.webhook_secret) else {
            return Err(ActionError::fatal(
                "no webhook set for this field (PUT /api/v1/fields/{field}/notify)",
            ));
        };
        let hook = Webhook::new(
            url,
            secret.as_bytes(),
            std::time::Duration::from_millis(app.config.response.webhook_timeout_ms),
        )
        .map_err(|e| ActionError::fatal(format!("webhook: {e}")))?;
        let event = format!("sekisho-action-{}", a.id);
        return match hook.post(&event, &webhook_body(&incident, decision)).await {
            Ok(status) => Ok(json!({"url": url, "status": status, "event": event})),
            Err(e) if e.retryable() => Err(ActionError::retry(format!("webhook: {e}"))),
            Err(e) => Err(ActionError::fatal(format!("webhook: {e}"))),
        };
    }
    let to = if a.action == "notify_admin" {
        &s.admin_emails
    } else {
        &s.person_in_charge_emails
    };
    if to.is_empty() {
        return Err(ActionError::fatal(format!(
            "no address for {} in this field (PUT /api/v1/fields/{{field}}/notify)",
            a.action
        )));
    }
    let (subject, text) = incident_mail(s.lang(), &incident);
    let mail = Mail {
        to: to.clone(),
        subject: subject.clone(),
        text,
        reply_to: None,
    };
    match app.mailer.send(&mail).await {
        Ok(()) => Ok(json!({"to": to, "subject": subject})),
        Err(e) if e.retryable() => Err(ActionError::retry(format!("mail: {e}"))),
        Err(e) => Err(ActionError::fatal(format!("mail: {e}"))),
    }
}
