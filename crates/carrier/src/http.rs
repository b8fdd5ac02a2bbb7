//! The HTTP core both connectors use: one request to the carrier, with retries, mapped to a
//! [`CarrierError`] on failure.
//!
//! - Every attempt has `timeout_ms` (connect, send, answer and body).
//! - Transport errors, timeouts, `408`, `429` and `5xx` are retried up to `retries` times, waiting
//!   an exponential backoff with jitter (a random time in `[base/2, base]`, `base` doubling from
//!   `backoff_initial_ms` up to `backoff_max_ms`), or the carrier's `Retry-After` capped by
//!   `backoff_max_ms`. Every other answer is final: `401`/`403` → `Unauthorized`, `404` → `NotFound`,
//!   other `3xx`/`4xx` → `Refused` (redirects are not followed: the token is for the carrier alone).
//! - Answers are read up to [`MAX_BODY`]; a longer success answer is `BadResponse`.
//! - Every attempt is logged (operation, SIM, attempt number, status, outcome); the token is a
//!   sensitive header value and never logged.
//!
//! Also here: [`Ctx`], which counts the attempts of one operation, and [`run`], which turns an
//! operation into a [`Call`].

use crate::{Call, CarrierError, Op, SimId, SimState, SimStatus};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use sekisho_core::backoff::{Backoff, random_u64};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The largest answer read from the carrier.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// How often and how long to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub retries: u32,
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): the carrier's `Retry-After` capped by the
    /// maximum, or the jittered backoff.
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        Backoff::new(self.initial_ms, self.max_ms).delay_or(retry, retry_after, random)
    }
}

/// One operation in progress: what it is, for which SIM, and the attempts made so far.
#[derive(Clone)]
pub(crate) struct Ctx<'a> {
    pub op: Op,
    pub sim: &'a SimId,
    attempts: Arc<AtomicU32>,
}

impl Ctx<'_> {
    fn attempt(&self) -> u32 {
        self.attempts.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Runs an operation: checks the SIM identifier, then `f`, and accounts for it.
pub(crate) async fn run<'a, T, F, Fut>(op: Op, sim: &'a SimId, f: F) -> Call<T>
where
    F: FnOnce(Ctx<'a>) -> Fut,
    Fut: Future<Output = Result<T, CarrierError>>,
{
    let started = Instant::now();
    let ctx = Ctx {
        op,
        sim,
        attempts: Arc::default(),
    };
    let attempts = ctx.attempts.clone();
    let result = match sim.check() {
        Ok(()) => f(ctx).await,
        Err(e) => Err(e),
    };
    let call = Call {
        result,
        attempts: attempts.load(Ordering::Relaxed),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    match &call.result {
        Ok(_) => {
            tracing::info!(op = %op, sim = %sim, attempts = call.attempts, elapsed_ms = call.elapsed_ms, "carrier call succeeded")
        }
        Err(e) => {
            tracing::warn!(op = %op, sim = %sim, attempts = call.attempts, elapsed_ms = call.elapsed_ms, code = e.code(), error = %e, "carrier call failed")
        }
    }
    call
}

/// The state a suspend or resume asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Suspended,
    Active,
}

impl Want {
    /// After a `409`: success when the SIM is where it was asked to be (a terminated SIM carries no
    /// traffic, so it counts as suspended), else the carrier's refusal stands.
    pub fn settle(self, status: SimStatus, conflict: String) -> Result<SimStatus, CarrierError> {
        let done = match self {
            Self::Suspended => matches!(status.state, SimState::Suspended | SimState::Terminated),
            Self::Active => status.state == SimState::Active,
        };
        if done {
            Ok(status)
        } else {
            Err(CarrierError::Refused {
                status: 409,
                message: format!("{conflict} (the SIM is {})", status.state),
            })
        }
    }
}

/// A request to the carrier, relative to the API base URL.
pub(crate) struct Req {
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// JSON body.
    pub body: Option<Vec<u8>>,
}

impl Req {
    pub fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            body: None,
        }
    }

    pub fn post(path: String) -> Self {
        Self {
            method: Method::POST,
            path,
            body: None,
        }
    }
}

/// A success answer.
pub(crate) struct Reply {
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; an empty body is `None`.
    pub fn json(&self) -> Result<Option<Value>, CarrierError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| CarrierError::BadResponse(format!("not JSON: {e}")))
    }

    /// The body as JSON, which must be there.
    pub fn json_required(&self) -> Result<Value, CarrierError> {
        self.json()?
            .ok_or_else(|| CarrierError::BadResponse("empty answer".into()))
    }
}

/// The carrier's API as a place to send requests.
pub(crate) struct HttpCore {
    client: reqwest::Client,
    base: String,
    auth: Option<(HeaderName, HeaderValue)>,
    headers: HeaderMap,
    policy: RetryPolicy,
}

/// What one attempt came to.
enum Attempt {
    Done(Result<Reply, CarrierError>),
    Retry {
        error: CarrierError,
        retry_after: Option<Duration>,
    },
}

impl HttpCore {
    /// `auth` is the header carrying the token; its value is marked sensitive here.
    pub fn new(
        client: reqwest::Client,
        base: &str,
        auth: Option<(HeaderName, HeaderValue)>,
        headers: HeaderMap,
        policy: RetryPolicy,
    ) -> Self {
        let auth = auth.map(|(n, mut v)| {
            v.set_sensitive(true);
            (n, v)
        });
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            headers,
            policy,
        }
    }

    /// Sends `req`, retrying what may be retried; the final outcome.
    pub async fn send(&self, ctx: &Ctx<'_>, req: &Req) -> Result<Reply, CarrierError> {
        let mut retry = 0;
        loop {
            let attempt = ctx.attempt();
            let started = Instant::now();
            let (outcome, status) = self.once(req).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (op, sim, method, path) =
                (ctx.op.as_str(), ctx.sim, req.method.as_str(), &req.path);
            match outcome {
                Attempt::Done(Ok(reply)) => {
                    tracing::debug!(op, %sim, attempt, method, path, status, elapsed_ms, outcome = "ok", "carrier request");
                    return Ok(reply);
                }
                Attempt::Done(Err(e)) => {
                    tracing::warn!(op, %sim, attempt, method, path, status, elapsed_ms, outcome = e.code(), error = %e, "carrier request failed");
                    return Err(e);
                }
                Attempt::Retry { error, retry_after } => {
                    let last = retry >= self.policy.retries;
                    tracing::warn!(op, %sim, attempt, method, path, status, elapsed_ms, outcome = error.code(), error = %error, will_retry = !last, "carrier request failed");
                    if last {
                        return Err(error);
                    }
                    let wait = self.policy.wait(retry, retry_after, random_u64());
                    retry += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn once(&self, req: &Req) -> (Attempt, Option<u16>) {
        let url = format!("{}{}", self.base, req.path);
        let mut r = self
            .client
            .request(req.method.clone(), url)
            .headers(self.headers.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((name, value)) = &self.auth {
            r = r.header(name.clone(), value.clone());
        }
        if let Some(body) = &req.body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let mut resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) => return (transport(&e), None),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let (body, complete) = match read_body(&mut resp).await {
            Ok(b) => b,
            Err(e) => return (transport(&e), Some(status.as_u16())),
        };
        (
            classify(status, body, complete, retry_after),
            Some(status.as_u16()),
        )
    }
}

/// Reads at most [`MAX_BODY`] bytes; `false` when the answer was longer.
async fn read_body(resp: &mut reqwest::Response) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            let room = MAX_BODY - body.len();
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

fn transport(e: &reqwest::Error) -> Attempt {
    let error = if e.is_timeout() {
        CarrierError::Timeout
    } else {
        // The chain says what went wrong (refused, reset, TLS); the URL holds no secret.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        CarrierError::Unavailable {
            status: None,
            message,
        }
    };
    Attempt::Retry {
        error,
        retry_after: None,
    }
}

fn classify(
    status: StatusCode,
    body: Vec<u8>,
    complete: bool,
    retry_after: Option<Duration>,
) -> Attempt {
    let code = status.as_u16();
    if status.is_success() {
        if !complete {
            return Attempt::Done(Err(CarrierError::BadResponse(format!(
                "answer longer than {MAX_BODY} bytes"
            ))));
        }
        return Attempt::Done(Ok(Reply { body }));
    }
    let message = excerpt(&body);
    let retry = |error| Attempt::Retry { error, retry_after };
    match code {
        401 | 403 => Attempt::Done(Err(CarrierError::Unauthorized(format!(
            "{code}: {message}"
        )))),
        404 => Attempt::Done(Err(CarrierError::NotFound)),
        429 => retry(CarrierError::RateLimited {
            retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
        }),
        408 | 500..=599 => retry(CarrierError::Unavailable {
            status: Some(code),
            message: format!("{code}: {message}"),
        }),
        _ => Attempt::Done(Err(CarrierError::Refused {
            status: code,
            message,
        })),
    }
}

/// What the carrier said, shortly: a JSON answer's `message` (or `error`), else the start of the text.
fn excerpt(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        ["message", "error", "detail"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if clean.trim().is_empty() {
        "(no message)".into()
    } else {
        clean.trim().to_owned()
    }
}

/// `Retry-After`: delta-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy {
            retries: 3,
            initial_ms: 10,
            max_ms: 5000,
        };
        let ra = |s| p.wait(0, Some(Duration::from_secs(s)), 0);
        assert_eq!(ra(2), Duration::from_secs(2));
        assert_eq!(ra(3600), Duration::from_secs(5));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let text = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let got = parse_retry_after(&text).unwrap().as_secs();
        assert!((100..=120).contains(&got), "{got}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn answers_map_to_typed_errors() {
        let check = |code: u16, body: &str, want: &str, retried: bool| {
            let got = classify(
                StatusCode::from_u16(code).unwrap(),
                body.as_bytes().to_vec(),
                true,
                None,
            );
            let (c, r) = match got {
                Attempt::Done(Ok(_)) => ("ok", false),
                Attempt::Done(Err(e)) => (e.code(), false),
                Attempt::Retry { error, .. } => (error.code(), true),
            };
            assert_eq!((c, r), (want, retried), "status {code}");
        };
        check(200, "{}", "ok", false);
        check(204, "", "ok", false);
        check(401, "", "unauthorized", false);
        check(403, "", "unauthorized", false);
        check(404, "", "not_found", false);
        check(400, "", "refused", false);
        check(409, "", "refused", false);
        check(302, "", "refused", false);
        check(408, "", "unavailable", true);
        check(429, "", "rate_limited", true);
        check(500, "", "unavailable", true);
        check(503, "", "unavailable", true);
        let Attempt::Done(Err(e)) = classify(StatusCode::OK, vec![b'x'; 10], false, None) else {
            panic!("an over-long answer is final");
        };
        assert_eq!(e.code(), "bad_response");
    }

    #[test]
    fn excerpts_are_short_and_clean() {
        assert_eq!(
            excerpt(br#"{"code":"X","message":"No such subscriber"}"#),
            "No such subscriber"
        );
        assert_eq!(excerpt(b"plain\ntext"), "plain text");
        assert_eq!(excerpt(b""), "(no message)");
        assert_eq!(excerpt(&[b'a'; 1000]).len(), 200);
    }

    #[test]
    fn a_conflict_succeeds_only_in_the_wanted_state() {
        let status = |state| SimStatus {
            imsi: None,
            iccid: None,
            msisdn: None,
            state,
            online: None,
            ip: None,
        };
        let c = || "conflict".to_owned();
        assert!(
            Want::Suspended
                .settle(status(SimState::Suspended), c())
                .is_ok()
        );
        assert!(
            Want::Suspended
                .settle(status(SimState::Terminated), c())
                .is_ok()
        );
        assert!(Want::Active.settle(status(SimState::Active), c()).is_ok());
        let e = Want::Active
            .settle(status(SimState::Terminated), c())
            .unwrap_err();
        assert_eq!(e.code(), "refused");
        assert!(e.to_string().contains("terminated"), "{e}");
        assert!(
            Want::Suspended
                .settle(status(SimState::Active), c())
                .is_err()
        );
    }
}
