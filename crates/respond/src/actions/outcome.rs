//! How an action ends: done with its output, skipped with a reason, or an error that says whether
//! another attempt may succeed. Shared by every action.

use serde_json::Value;

/// Why an action did not complete.
#[derive(Debug)]
pub struct ActionError {
    pub message: String,
    /// Worth another attempt later (a dead mail server, a carrier outage).
    pub retryable: bool,
}

impl ActionError {
    pub fn fatal(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            retryable: false,
        }
    }

    pub fn retry(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            retryable: true,
        }
    }
}

impl From<sekisho_store::StoreError> for ActionError {
    fn from(e: sekisho_store::StoreError) -> Self {
        Self::retry(format!("store: {e}"))
    }
}

/// How an action ended when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// It did its thing; the output is recorded.
    Done(Value),
    /// It had nothing to act on (a notification whose target the field has not set): recorded as
    /// `skipped` with the reason, neither done nor failed, and never retried.
    Skipped(String),
}
