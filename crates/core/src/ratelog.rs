//! Log lines that a remote party can trigger, bounded: a burst of bad RADIUS packets, refused requests,
//! plaintext probes or connection floods must not grow the log without bound. Each such line has a
//! [`LogLimit`] (one `static` per call site): at most `burst` lines per `window`; the rest are counted and
//! the next line that gets through says how many were left out. The counts that matter stay exact in
//! metrics and security events; the log only carries samples.
//!
//! Time is tokio's clock, so tests drive windows with `tokio::time::pause`/`advance`.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A budget of log lines for one call site.
pub struct LogLimit {
    burst: u32,
    window: Duration,
    state: Mutex<Window>,
}

struct Window {
    start: Option<Instant>,
    emitted: u32,
    suppressed: u64,
}

impl LogLimit {
    /// At most `burst` lines a minute.
    pub const fn per_minute(burst: u32) -> Self {
        Self {
            burst,
            window: Duration::from_secs(60),
            state: Mutex::new(Window {
                start: None,
                emitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this line may be logged now, `n` being the lines left out since the last one that
    /// was logged; `None` when it is to be left out (and counted).
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if w.start.is_none_or(|s| now.duration_since(s) >= self.window) {
            w.start = Some(now);
            w.emitted = 0;
        }
        if w.emitted < self.burst {
            w.emitted += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_sampled_and_the_rest_counted() {
        let l = LogLimit::per_minute(3);
        let got: Vec<Option<u64>> = (0..1570).map(|_| l.allow()).collect();
        assert_eq!(&got[..4], &[Some(0), Some(0), Some(0), None]);
        assert_eq!(got.iter().filter(|g| g.is_some()).count(), 3);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(l.allow(), None, "still the same minute");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            l.allow(),
            Some(1568),
            "the next line says how many were left out"
        );
        assert_eq!(l.allow(), Some(0));
    }
}
