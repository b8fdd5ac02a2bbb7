//! What the admin API answers with: view types of its own, made from store rows, so that a column
//! can change without changing the public API. They follow one style (docs/api.md):
//!
//! - every time is an RFC 3339 UTC string, under a name ending `_at`; durations are numbers with
//!   their unit in the name (`uptime_secs`, `elapsed_ms`);
//! - JSON is JSON: what the store keeps as JSON text (action input and output, report bodies, audit
//!   findings, evidence, self-reports) is parsed into the answer, never sent as a string;
//! - every list is `{"items": [...], "next_before": <cursor or null>}` ([`Page`]).
//!
//! The views do not read the store: handlers read rows and turn them into views here. The console
//! shows the same rows through its own display types (`console::view`).

pub mod audit;
pub mod carrier;
pub mod history;
pub mod response;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A time as the API shows it: RFC 3339, UTC.
pub fn at(ms: i64) -> String {
    sekisho_core::time::rfc3339(ms)
}

/// JSON text from the store as JSON. Text that is not JSON (never written by the gateway) stays a
/// string, so nothing is lost and no JSON text hides in a string.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The paging parameters of the lists that take no other filter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Rows per page, 1-200.
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The page size asked for, or `default`, within 1-200.
    pub fn limit(&self, default: i64) -> i64 {
        self.limit.unwrap_or(default).clamp(1, 200)
    }
}

/// One page of a list, newest first unless the endpoint says otherwise.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `before` for the next page; `null` on the last page (and for lists that are never
    /// paged).
    pub next_before: Option<i64>,
}

impl<T> Page<T> {
    /// A list that is always whole.
    pub fn all(items: Vec<T>) -> Self {
        Page {
            items,
            next_before: None,
        }
    }

    /// A page of at most `limit` rows, the cursor of the next one taken from the last row when this
    /// one is full.
    pub fn of<R>(rows: Vec<R>, limit: i64, id: impl Fn(&R) -> i64, view: impl Fn(R) -> T) -> Self {
        let next_before = (rows.len() as i64 >= limit)
            .then(|| rows.last().map(&id))
            .flatten();
        Page {
            items: rows.into_iter().map(view).collect(),
            next_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_becomes_json_and_other_text_stays_text() {
        assert_eq!(json("{\"a\":[1]}"), serde_json::json!({"a": [1]}));
        assert_eq!(json("not json"), Value::String("not json".into()));
        assert_eq!(at(1_795_611_600_250), "2026-11-25T13:00:00.25Z");
    }

    #[test]
    fn a_full_page_has_a_cursor_and_the_last_has_none() {
        let full = Page::of(vec![9, 8, 7], 3, |r| *r, |r| r * 10);
        assert_eq!((full.items, full.next_before), (vec![90, 80, 70], Some(7)));
        let last = Page::of(vec![6], 3, |r| *r, |r| r);
        assert_eq!(last.next_before, None);
    }
}
