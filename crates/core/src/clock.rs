//! Time as a seam: every subsystem asks a [`Clock`] what time it is and sleeps on it, so that tests
//! run time-based behaviour (silence steps, rate windows, quiet hours, TOTP steps, retries, backoff)
//! on a [`ManualClock`] they move by hand, in-process, without waiting for the wall clock.
//!
//! [`SystemClock`] is the wall clock with tokio's timers. A [`ManualClock`] only moves when the test
//! calls [`ManualClock::advance`]; its sleepers wake when it passes their deadline. Timeouts that guard
//! I/O (handshakes, body reads) stay on tokio's clock: they are about the peer, not the domain.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A sleep that resolves at the clock's time.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What time it is, and waiting for a time.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;
    /// Completes once [`Clock::now_ms`] has reached `at_ms`.
    fn sleep_until(&self, at_ms: i64) -> Sleep;
    /// Completes after `d` of this clock's time.
    fn sleep(&self, d: Duration) -> Sleep {
        self.sleep_until(self.now_ms().saturating_add(d.as_millis() as i64))
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock; sleeps on tokio's timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at_ms: i64) -> Sleep {
        let wait = at_ms.saturating_sub(self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
    moved: tokio::sync::watch::Sender<i64>,
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            now: AtomicI64::new(now_ms),
            moved: tokio::sync::watch::channel(now_ms).0,
        })
    }

    /// Moves the clock forward by `d`, waking every sleeper whose time has come.
    pub fn advance(&self, d: Duration) {
        let now = self.now.fetch_add(d.as_millis() as i64, Ordering::SeqCst) + d.as_millis() as i64;
        self.moved.send_replace(now);
    }

    /// Sets the clock to `at_ms` (forward only).
    pub fn set(&self, at_ms: i64) {
        let now = self.now.fetch_max(at_ms, Ordering::SeqCst).max(at_ms);
        self.moved.send_replace(now);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, at_ms: i64) -> Sleep {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first, then each change.
            let _ = moved.wait_for(|now| *now >= at_ms).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_it_passes_them() {
        let clock = ManualClock::new(1_000);
        let c: SharedClock = clock.clone();
        let early = tokio::spawn(c.sleep(Duration::from_secs(5)));
        let late = tokio::spawn(c.sleep_until(60_000));
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!early.is_finished(), "not yet");
        clock.advance(Duration::from_secs(1));
        early.await.unwrap();
        assert!(!late.is_finished());
        clock.set(60_000);
        late.await.unwrap();
        assert_eq!(c.now_ms(), 60_000);
        clock.set(10);
        assert_eq!(c.now_ms(), 60_000, "never backwards");
        c.sleep_until(0).await;
    }
}
