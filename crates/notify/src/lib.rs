//! Notifications (mail, webhooks). Filled in by the threat-response work.
