//! What a forwarder does after each attempt, apart from any I/O: how many messages it reads next,
//! when it retries, when it isolates a batch, when it probes past a message that keeps failing and when
//! it dead-letters. The loop in `lib.rs` carries out what this decides; the waits are durations the
//! loop sleeps, so the whole schedule is tested here without a clock.

use crate::CloudConfig;
use sekisho_core::backoff::Backoff;
use std::time::Duration;

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the outbox again at once.
    Again,
    /// Wait this long, then read the outbox again.
    Wait(Duration),
    /// Dead-letter the lone message the cloud refused.
    DeadLetter,
    /// The lone message keeps failing: send the one after it to tell a dead cloud from a message the
    /// cloud cannot take, then report with [`Policy::probed`].
    Probe,
}

/// One field's forwarding state: whole batches or one at a time, failures in a row, the backoff step.
#[derive(Debug)]
pub(crate) struct Policy {
    backoff: Backoff,
    batch_max: usize,
    isolate_after: u32,
    poison_after: u32,
    /// Sending one message at a time (after a refused batch, or a batch that kept failing).
    isolate: bool,
    /// Failed attempts in a row of the current batch (or lone message).
    failures: u32,
    /// Singles delivered in a row while isolating; `batch_max` of them end the isolation.
    delivered_alone: usize,
    /// Grows with every retryable failure, reset by a delivery.
    backoff_step: u32,
}

impl Policy {
    pub(crate) fn new(cfg: &CloudConfig) -> Self {
        Self {
            backoff: Backoff::new(cfg.backoff_initial_ms, cfg.backoff_max_ms),
            batch_max: cfg.batch_max,
            isolate_after: cfg.isolate_after,
            poison_after: cfg.poison_after,
            isolate: false,
            failures: 0,
            delivered_alone: 0,
            backoff_step: 0,
        }
    }

    /// How many pending messages the next attempt sends.
    pub(crate) fn batch_limit(&self) -> usize {
        if self.isolate { 1 } else { self.batch_max }
    }

    /// The cloud took the batch.
    pub(crate) fn delivered(&mut self) {
        self.backoff_step = 0;
        self.failures = 0;
        self.delivered_alone += 1;
        if !self.isolate || self.delivered_alone >= self.batch_max {
            self.whole_batches();
        }
    }

    /// The cloud refused the content of a batch of `len` (a 4xx other than 408/429).
    pub(crate) fn refused(&mut self, len: usize) -> Next {
        if len == 1 {
            self.whole_batches();
            Next::DeadLetter
        } else {
            self.one_at_a_time();
            Next::Again
        }
    }

    /// A retryable failure (network, timeout, 408, 429, 5xx) of a batch of `len`; `random` is the
    /// jitter.
    pub(crate) fn failed(&mut self, len: usize, random: u64) -> Next {
        self.failures += 1;
        self.delivered_alone = 0;
        if !self.isolate && len > 1 && self.failures >= self.isolate_after {
            self.one_at_a_time();
            return Next::Again;
        }
        if self.isolate && self.failures >= self.poison_after {
            self.failures = 0;
            return Next::Probe;
        }
        self.wait(random)
    }

    /// How a probe ended: `moved` when the head of the outbox moved (the cloud took the next message,
    /// and the suspect was delivered or dead-lettered).
    pub(crate) fn probed(&mut self, moved: bool, random: u64) -> Next {
        if moved {
            self.backoff_step = 0;
            Next::Again
        } else {
            self.wait(random)
        }
    }

    fn wait(&mut self, random: u64) -> Next {
        let d = self.backoff.delay(self.backoff_step, random);
        self.backoff_step = self.backoff_step.saturating_add(1);
        Next::Wait(d)
    }

    fn one_at_a_time(&mut self) {
        self.isolate = true;
        self.failures = 0;
        self.delivered_alone = 0;
    }

    fn whole_batches(&mut self) {
        self.isolate = false;
        self.failures = 0;
        self.delivered_alone = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        // The shipped settings: 500 ms doubling to 60 s, batches of 100, isolate after 3, probe after 5.
        Policy::new(&CloudConfig::default())
    }

    /// The lowest jitter draw: every wait is half its step, exactly.
    const LOW: u64 = 0;

    fn ms(n: u64) -> Next {
        Next::Wait(Duration::from_millis(n))
    }

    #[test]
    fn a_dead_cloud_is_retried_with_growing_waits_up_to_the_cap_and_a_delivery_resets_them() {
        let mut p = policy();
        let waits: Vec<Next> = (0..10).map(|_| p.failed(1, LOW)).collect();
        assert_eq!(
            waits,
            [
                250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000
            ]
            .map(ms)
        );
        // Jitter spreads a wait over the upper half of its step, never beyond it.
        for r in [1, 7, 1 << 40, u64::MAX] {
            let Next::Wait(d) = p.failed(1, r) else {
                panic!("a wait")
            };
            assert!((30_000..=60_000).contains(&(d.as_millis() as u64)), "{d:?}");
        }
        p.delivered();
        assert_eq!(p.failed(1, LOW), ms(250));
        assert_eq!(p.failed(1, LOW), ms(500));
    }

    #[test]
    fn a_batch_that_keeps_failing_is_sent_one_message_at_a_time() {
        let mut p = policy();
        assert_eq!(p.batch_limit(), 100);
        assert_eq!(p.failed(100, LOW), ms(250));
        assert_eq!(p.failed(100, LOW), ms(500));
        assert_eq!(
            p.failed(100, LOW),
            Next::Again,
            "the third failure isolates"
        );
        assert_eq!(p.batch_limit(), 1);
        // The backoff keeps growing across the switch: the cloud is still failing.
        assert_eq!(p.failed(1, LOW), ms(1000));
    }

    #[test]
    fn a_lone_message_that_keeps_failing_is_probed_past() {
        let mut p = policy();
        assert_eq!(p.refused(100), Next::Again);
        for i in 0..4 {
            assert!(
                matches!(p.failed(1, LOW), Next::Wait(_)),
                "failure {}",
                i + 1
            );
        }
        assert_eq!(p.failed(1, LOW), Next::Probe, "the fifth failure alone");
        // The cloud failed the next message too: it is down; keep backing off from where it was.
        assert_eq!(p.probed(false, LOW), ms(4000));
        for _ in 0..4 {
            p.failed(1, LOW);
        }
        assert_eq!(p.failed(1, LOW), Next::Probe);
        // The head moved: try again at once, with the backoff reset.
        assert_eq!(p.probed(true, LOW), Next::Again);
        assert_eq!(p.failed(1, LOW), ms(250));
    }

    #[test]
    fn refusals_isolate_a_batch_then_dead_letter_the_one_refused() {
        let mut p = policy();
        assert_eq!(p.refused(100), Next::Again);
        assert_eq!(p.batch_limit(), 1);
        assert_eq!(p.refused(1), Next::DeadLetter);
        assert_eq!(p.batch_limit(), 100, "back to whole batches");
    }

    #[test]
    fn isolation_ends_after_a_batch_worth_of_singles() {
        let mut p = policy();
        p.refused(100);
        for _ in 0..99 {
            p.delivered();
            assert_eq!(p.batch_limit(), 1);
        }
        p.delivered();
        assert_eq!(p.batch_limit(), 100);
    }
}
