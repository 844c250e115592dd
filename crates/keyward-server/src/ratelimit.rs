//! Failure counters in fixed windows: how sign-in and user-code guessing are slowed.
//!
//! Each key (`email:…`, `ip:…`, `user:…`) counts failures in a window; at `max` the key
//! is refused until its window ends. Only failures count, so a person who signs in
//! correctly is never slowed by their own successes. The table is bounded: when it is
//! full, expired windows are dropped, and if it is still full a new key is refused —
//! a flood of distinct keys fails closed rather than growing memory without end.
//!
//! Counters live in one process: with several instances behind a load balancer, each
//! enforces its own limit (documented in docs/decisions.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once.
const MAX_KEYS: usize = 100_000;

pub struct FailureLimit {
    max: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureLimit {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, windows: Mutex::new(HashMap::new()) }
    }

    /// Whether `key` has reached its limit in the current window.
    pub fn is_limited(&self, key: &str) -> bool {
        let now = Instant::now();
        let windows = self.windows.lock().expect("not poisoned");
        match windows.get(key) {
            Some((start, count)) => now.duration_since(*start) < self.window && *count >= self.max,
            None => windows.len() >= MAX_KEYS,
        }
    }

    /// Counts one failure for `key`.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("not poisoned");
        if windows.len() >= MAX_KEYS && !windows.contains_key(key) {
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            if windows.len() >= MAX_KEYS {
                return;
            }
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_limited_after_max_failures_until_its_window_ends() {
        let limit = FailureLimit::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(!limit.is_limited("email:a"));
            limit.fail("email:a");
        }
        assert!(limit.is_limited("email:a"));
        assert!(!limit.is_limited("email:b"), "keys are counted apart");
        std::thread::sleep(Duration::from_millis(250));
        assert!(!limit.is_limited("email:a"), "the window ended");
        limit.fail("email:a");
        assert!(!limit.is_limited("email:a"), "a new window starts from zero");
    }
}
