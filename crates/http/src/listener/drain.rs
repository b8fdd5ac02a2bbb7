//! Answers that reach the client: a request refused before its body was read (`401` for a revoked token,
//! `413`, `415`…) still has that body on the wire. Dropping it makes HTTP/2 reset the stream and HTTP/1.1
//! close the connection while the client is still sending, so the client sees `curl: (92) Stream error`
//! or a broken pipe instead of the answer, and retries for ever.
//!
//! [`Reclaim`] is the body a handler gets: whatever it leaves unread goes back to the connection, which
//! reads and discards it — at most `max_bytes`, within `timeout` — before the answer is sent. Past either
//! bound the answer goes out with `Connection: close` (HTTP/1.1) and the rest is dropped.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Where a dropped, unfinished body is put back.
pub type Slot = Arc<Mutex<Option<Incoming>>>;

/// A request body that hands back what the handler did not read.
pub struct Reclaim {
    inner: Option<Incoming>,
    slot: Slot,
}

impl Reclaim {
    pub fn new(inner: Incoming, slot: Slot) -> Self {
        Self {
            inner: Some(inner),
            slot,
        }
    }
}

impl Body for Reclaim {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.inner = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for Reclaim {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take().filter(|b| !b.is_end_stream()) {
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(rest);
        }
    }
}

/// Takes what a handler left of its request body out of `slot`.
pub fn take(slot: &Slot) -> Option<Incoming> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Reads and discards `rest`, at most `max_bytes` within `timeout`. `true` when it reached the end.
pub async fn discard(mut rest: Incoming, max_bytes: u64, timeout: Duration) -> bool {
    let read = async {
        let mut n = 0u64;
        while let Some(frame) = rest.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(d) = frame.data_ref() {
                n += d.len() as u64;
                if n > max_bytes {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(false)
}
