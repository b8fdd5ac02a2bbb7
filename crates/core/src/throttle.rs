//! Fixed-window counters keyed by a string (a unique ID, a source IP, a user name): how many events in
//! the current window. Used to refuse floods of token requests and logins with `429` + `Retry-After`.
//!
//! Architecture invariant: a counter never blocks; it only answers "over the limit, retry after N s".

use std::collections::HashMap;
use std::sync::Mutex;

pub struct Throttle {
    window_ms: i64,
    limit: u32,
    counts: Mutex<HashMap<String, (i64, u32)>>,
    /// Size at which stale keys are next pruned; grows after each pass (amortised O(1) per hit).
    prune_at: std::sync::atomic::AtomicUsize,
}

impl Throttle {
    pub fn new(window_ms: i64, limit: u32) -> Self {
        Self {
            window_ms,
            limit,
            counts: Mutex::new(HashMap::new()),
            prune_at: std::sync::atomic::AtomicUsize::new(100_000),
        }
    }

    fn window_start(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.window_ms)
    }

    /// Seconds to wait when `key` is over the limit in the current window, without counting.
    pub fn blocked(&self, key: &str, now: i64) -> Option<u64> {
        let g = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let start = self.window_start(now);
        match g.get(key) {
            Some(&(w, n)) if w == start && n >= self.limit => Some(self.retry_after(now)),
            _ => None,
        }
    }

    /// Counts one event for `key`; returns the seconds to wait if that made it exceed the limit.
    pub fn hit(&self, key: &str, now: i64) -> Option<u64> {
        let mut g = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let start = self.window_start(now);
        use std::sync::atomic::Ordering::Relaxed;
        if g.len() >= self.prune_at.load(Relaxed) {
            g.retain(|_, (w, _)| *w == start);
            self.prune_at.store((g.len() * 2).max(100_000), Relaxed);
        }
        let e = g.entry(key.to_owned()).or_insert((start, 0));
        if e.0 != start {
            *e = (start, 0);
        }
        e.1 = e.1.saturating_add(1);
        (e.1 > self.limit).then(|| self.retry_after(now))
    }

    /// Forgets `key` (after a successful login, say).
    pub fn clear(&self, key: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn retry_after(&self, now: i64) -> u64 {
        let end = self.window_start(now) + self.window_ms;
        ((end - now + 999) / 1000).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_per_window() {
        let t = Throttle::new(60_000, 3);
        for _ in 0..3 {
            assert_eq!(t.hit("a", 1_000), None);
        }
        assert_eq!(t.blocked("a", 2_000), Some(58));
        assert_eq!(t.hit("a", 2_000), Some(58));
        assert_eq!(t.blocked("b", 2_000), None);
        assert_eq!(t.blocked("a", 60_000), None, "a new window");
        t.clear("a");
        assert_eq!(t.hit("a", 3_000), None);
    }
}
