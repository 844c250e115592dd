//! Abuse controls: counters in fixed windows, the client address they are kept for,
//! and the bound on password checks.
//!
//! # Layout
//!
//! - this module: [`Rate`] (`"5/15m"`) and [`FailureLimit`], a bounded table of counters.
//! - [`settings`]: the `[rate_limits]` table.
//! - [`address`]: the client address (TCP peer, or `X-Forwarded-For` behind a trusted proxy).
//! - [`passwords`]: at most a few password hashes at once, each in a reused work area.
//! - [`credential`]: per-credential limits by organization plan.
//! - [`counters`], [`windows`]: fixed-window request counters (in the process, or shared).
//! - [`quota`]: the `RateLimit-Policy`/`RateLimit`/`Retry-After` headers.
//! - [`redis`]: the counters in Redis when `rate_limits.redis_url` is set.
//! - [`signin`]: sign-in counters, taken before a password check (in Redis: fail closed).
//!
//! A [`FailureLimit`] counts per key (`email:…`, `ip:…`, `user:…`) in a window; at `max`
//! the key is refused until its window ends. Sign-in *takes* a slot before it hashes a
//! password ([`FailureLimit::take`]) and gives it back on success, so concurrent guesses
//! cannot run past the limit. The table is bounded: when it is full, expired windows are
//! dropped, and if it is still full a new key is refused — a flood of distinct keys fails
//! closed rather than growing memory without end.
//!
//! Per-credential, device-authorization and sign-in counters live in the process by
//! default, or in Redis with `rate_limits.redis_url` (one count for every instance).
//! User-code and failed-authentication counters always live in the process: with
//! several instances each enforces its own (docs/decisions.md).

pub mod address;
pub mod counters;
pub mod credential;
pub mod passwords;
pub mod proxies;
pub mod quota;
pub mod rate;
pub mod redis;
pub mod signin;
pub mod windows;

pub use rate::Rate;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once.
const MAX_KEYS: usize = 100_000;

/// Whole seconds to wait, at least 1 (for `Retry-After`).
pub fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

pub struct FailureLimit {
    max: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureLimit {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, windows: Mutex::new(HashMap::new()) }
    }

    pub fn of(rate: Rate) -> Self {
        Self::new(rate.max, rate.window)
    }

    /// The limit, as configured.
    pub fn rate(&self) -> Rate {
        Rate { max: self.max, window: self.window }
    }

    /// Whether `key` has reached its limit in the current window.
    pub fn is_limited(&self, key: &str) -> bool {
        self.retry_after(key).is_some()
    }

    /// How long until `key` may try again, when it has reached its limit.
    pub fn retry_after(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().expect("not poisoned");
        match windows.get(key) {
            Some((start, count)) => {
                let left = self.window.saturating_sub(now.duration_since(*start));
                (!left.is_zero() && *count >= self.max).then_some(left)
            }
            None => (windows.len() >= MAX_KEYS).then_some(self.window),
        }
    }

    /// Counts one failure for `key`.
    pub fn fail(&self, key: &str) {
        let _ = self.count(key, false);
    }

    /// Counts one attempt for `key` unless it has reached its limit (then: how long to
    /// wait). Checking and counting happen under one lock, so of N concurrent callers at
    /// most `max` get through in a window.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.count(key, true)
    }

    /// Gives back an attempt [`take`](Self::take) counted (a success, or an attempt that
    /// never got to check anything).
    pub fn give_back(&self, key: &str) {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("not poisoned");
        if let Some((start, count)) = windows.get_mut(key) {
            if now.duration_since(*start) < self.window {
                *count = count.saturating_sub(1);
            }
        }
    }

    fn count(&self, key: &str, refuse_at_max: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("not poisoned");
        if windows.len() >= MAX_KEYS && !windows.contains_key(key) {
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            if windows.len() >= MAX_KEYS {
                return Err(self.window);
            }
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if refuse_at_max && entry.1 >= self.max {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)).max(Duration::from_millis(1)));
        }
        entry.1 = entry.1.saturating_add(1);
        Ok(())
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

    #[test]
    fn take_lets_at_most_max_through_and_give_back_returns_a_slot() {
        let limit = std::sync::Arc::new(FailureLimit::new(5, Duration::from_secs(60)));
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let limit = limit.clone();
                std::thread::spawn(move || limit.take("k").is_ok())
            })
            .collect();
        let through = threads.into_iter().map(|t| t.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(through, 5);
        let wait = limit.take("k").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(limit.retry_after("k").map(seconds), Some(60));
        limit.give_back("k");
        assert!(limit.take("k").is_ok(), "a slot given back can be taken again");
        assert!(limit.take("k").is_err());
    }

    #[test]
    fn rates_parse_and_render_as_the_policy_header_wants() {
        assert_eq!("100/1m".parse::<Rate>(), Ok(Rate { max: 100, window: Duration::from_secs(60) }));
        assert_eq!("5 / 15m".parse::<Rate>().unwrap().to_string(), "5/900s");
        assert_eq!("600/m".parse::<Rate>().unwrap().window, Duration::from_secs(60));
        for bad in ["", "5", "x/1m", "5/x", "0/1m", "5/0s", "5/2d"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::ZERO), 1);
        assert_eq!(seconds(Duration::from_secs(7)), 7);
    }
}
