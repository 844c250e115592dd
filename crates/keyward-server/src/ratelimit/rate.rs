//! A limit as configured and announced: `max` events per `window`, written `"5/15m"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A limit: `max` events per `window`, written `"5/15m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub window: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let fix = "write COUNT/WINDOW, e.g. \"100/1m\" or \"5/15m\"";
        let (max, window) = s.split_once('/').ok_or(fix)?;
        let max: u32 = max.trim().parse().map_err(|_| fix)?;
        let window = window.trim();
        // "1m" is humantime; a bare unit ("m") means one of it.
        let window =
            if window.starts_with(|c: char| c.is_ascii_digit()) { window.to_owned() } else { format!("1{window}") };
        let window = humantime::parse_duration(&window).map_err(|_| fix)?;
        if max == 0 || window.is_zero() || window > Duration::from_secs(24 * 3600) {
            return Err("the count must be at least 1 and the window between 1s and 24h".into());
        }
        Ok(Self { max, window })
    }
}

impl fmt::Display for Rate {
    /// As the `RateLimit-Policy` header wants it: `q` and `w` in seconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.max, self.window.as_secs())
    }
}
