//! Fixed-window request counters in the process: one count per key and window, in a
//! bounded table (the shared alternative is [`super::redis`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Rate;

/// Most keys tracked at once; when full, expired windows are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Windows {
    table: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Windows {
    /// Counts one request for `key` under `rate`: the count in the current window
    /// (this request included) and the time until it resets. A full table counts
    /// nothing and answers 0 (the caller decides whether that fails open).
    pub fn hit(&self, key: &str, rate: Rate) -> (u32, Duration) {
        let now = Instant::now();
        let mut table = self.table.lock().expect("not poisoned");
        if table.len() >= MAX_KEYS && !table.contains_key(key) {
            table.retain(|_, (start, _)| now.duration_since(*start) < rate.window);
            if table.len() >= MAX_KEYS {
                return (0, rate.window);
            }
        }
        let entry = table.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= rate.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        (entry.1, rate.window.saturating_sub(now.duration_since(entry.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_a_window_then_starts_again() {
        let w = Windows::default();
        let rate = Rate { max: 2, window: Duration::from_millis(100) };
        assert_eq!(w.hit("a", rate).0, 1);
        assert_eq!(w.hit("a", rate).0, 2);
        assert_eq!(w.hit("b", rate).0, 1, "keys apart");
        let (n, reset) = w.hit("a", rate);
        assert_eq!(n, 3);
        assert!(reset <= Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(w.hit("a", rate).0, 1, "a new window");
    }
}
