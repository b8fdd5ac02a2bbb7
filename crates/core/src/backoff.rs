//! The one retry backoff of the gateway (cloud forwarding, response actions, carrier calls): exponential
//! with jitter — a random wait in `[base/2, base]`, `base` doubling from `initial` up to `max`. Pure: the
//! caller passes the random number, so the same inputs give the same wait (and tests need no luck).

use std::time::Duration;

/// Exponential backoff with jitter, capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    pub const fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self { initial_ms, max_ms }
    }

    /// The wait before attempt `attempt + 1` (`attempt` 0 is the first retry), given a random number.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let base = self
            .initial_ms
            .saturating_mul(1u64 << attempt.min(20))
            .min(self.max_ms);
        Duration::from_millis(base / 2 + random % (base / 2 + 1))
    }

    /// [`Backoff::delay`] with a random number from the operating system.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, random_u64())
    }

    /// [`Backoff::delay`] with a `Retry-After` from the other side, which wins but is capped by `max`.
    pub fn delay_or(&self, attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        match retry_after {
            Some(ra) => ra.min(Duration::from_millis(self.max_ms)),
            None => self.delay(attempt, random),
        }
    }
}

/// A random number for jitter. Jitter only spreads retries out: without randomness it degrades to
/// the midpoint.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return u64::MAX / 2;
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_respects_the_cap() {
        let b = Backoff::new(500, 10_000);
        for (attempt, random, want_ms) in [
            (0, 0, 250),
            (0, u64::MAX, 250 + u64::MAX % 251),
            (1, 0, 500),
            (3, 0, 2000),
            (10, 0, 5000),
            (10, 5000, 10_000),
            (40, 5000, 10_000),
        ] {
            assert_eq!(
                b.delay(attempt, random),
                Duration::from_millis(want_ms),
                "attempt {attempt}"
            );
        }
        for attempt in 0..30 {
            let d = b.delay(attempt, attempt as u64 * 7919).as_millis() as u64;
            let base = (500u64 << attempt.min(20)).min(10_000);
            assert!((base / 2..=base).contains(&d), "attempt {attempt}: {d}");
        }
        assert_eq!(
            b.delay_or(0, Some(Duration::from_secs(60)), 0),
            Duration::from_secs(10),
            "a Retry-After is capped"
        );
        assert_eq!(
            b.delay_or(0, Some(Duration::from_secs(2)), 0),
            Duration::from_secs(2)
        );
    }
}
