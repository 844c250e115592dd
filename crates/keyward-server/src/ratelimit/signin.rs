//! Sign-in counters: an attempt is *taken* before its password is checked and given
//! back when it succeeds. In the process by default ([`FailureLimit`]); with
//! `rate_limits.redis_url` shared by every instance in Redis, where an outage **fails
//! closed** — no password is checked while the counters cannot be read, because an
//! uncounted sign-in is an unlimited guess.

use std::sync::Arc;
use std::time::Duration;

use super::redis::RedisCounters;
use super::{FailureLimit, Rate};

/// Why an attempt was not let through.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The limit is reached; the wait until its window ends.
    Limited(Duration),
    /// The shared counters cannot be reached.
    Unavailable,
}

pub struct SignInLimit {
    local: FailureLimit,
    shared: Option<Arc<RedisCounters>>,
}

impl SignInLimit {
    pub fn new(rate: Rate, shared: Option<Arc<RedisCounters>>) -> Self {
        Self { local: FailureLimit::of(rate), shared }
    }

    /// Counts one attempt for `key`, unless the limit is reached.
    pub async fn take(&self, key: &str) -> Result<(), Refused> {
        match &self.shared {
            None => self.local.take(key).map_err(Refused::Limited),
            Some(redis) => match redis.take(&format!("signin:{key}"), self.local.rate()).await {
                Some(Ok(())) => Ok(()),
                Some(Err(wait)) => Err(Refused::Limited(wait)),
                None => Err(Refused::Unavailable),
            },
        }
    }

    /// Gives back an attempt [`take`](Self::take) counted.
    pub async fn give_back(&self, key: &str) {
        match &self.shared {
            None => self.local.give_back(key),
            Some(redis) => redis.give_back(&format!("signin:{key}"), self.local.rate()).await,
        }
    }
}
