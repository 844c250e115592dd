//! Counters shared by every instance in Redis (`rate_limits.redis_url`).
//!
//! One fixed window per key: a Lua script increments the key and, on its first use in a
//! window, gives it the window as expiry, in one round trip and atomically, so two
//! instances counting at once never lose a count or leave a key without expiry. Keys are
//! `{namespace}:{key}:{window in ms}` (`rate_limits.redis_namespace`, default `keyward`),
//! so deployments sharing one Redis, or limits of different windows, never mix.
//!
//! When Redis cannot be reached (connection refused, no answer within 250 ms) a count
//! is `None`: the caller fails open or closed as its limit requires. Each failure is
//! counted in `/metrics` (`keyward_rate_limit_store_errors_total`); the first after a
//! success is logged at WARN, the recovery at INFO. The connection is made at start if
//! it can be; otherwise, and after a loss, it is retried at most once a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Rate;
use crate::metrics::Metrics;

/// Longest wait for Redis, to connect or to answer.
const TIMEOUT: Duration = Duration::from_millis(250);
/// Least time between two connection attempts while Redis is away.
const RETRY: Duration = Duration::from_secs(1);

/// The start of both counting scripts: increments `KEYS[1]` and, on its first use in a
/// window, gives it the window (`ARGV[1]` ms) as expiry; leaves `n` and `ttl` set.
macro_rules! count_in_window {
    () => {
        r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
"
    };
}

/// Counts one event: `{count, ttl}`.
const HIT: &str = concat!(count_in_window!(), "return {n, ttl}\n");

/// Takes a slot unless `ARGV[2]` are taken: `{1, ttl}` taken, `{0, ttl}` refused.
const TAKE: &str = concat!(
    count_in_window!(),
    r"if n > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  return {0, ttl}
end
return {1, ttl}
"
);

/// Gives a slot back, never below zero and never to a window that has ended.
const GIVE_BACK: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return n
";

pub struct RedisCounters {
    client: redis::Client,
    namespace: String,
    script: redis::Script,
    take: redis::Script,
    give_back: redis::Script,
    connection: Mutex<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
    healthy: AtomicBool,
    metrics: Arc<Metrics>,
}

impl RedisCounters {
    /// Opens the client (the URL is checked at configuration) and tries to connect.
    pub async fn connect(url: &str, namespace: &str, metrics: Arc<Metrics>) -> Result<Self, redis::RedisError> {
        let counters = Self {
            client: redis::Client::open(url)?,
            namespace: namespace.to_owned(),
            script: redis::Script::new(HIT),
            take: redis::Script::new(TAKE),
            give_back: redis::Script::new(GIVE_BACK),
            connection: Mutex::new(None),
            last_attempt: Mutex::new(None),
            healthy: AtomicBool::new(true),
            metrics,
        };
        if counters.connection().await.is_none() {
            tracing::warn!("Redis (rate_limits.redis_url) cannot be reached; rate limits will retry it");
        }
        Ok(counters)
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.connection.lock().expect("not poisoned").clone() {
            return Some(c);
        }
        {
            let mut last = self.last_attempt.lock().expect("not poisoned");
            if last.is_some_and(|t| t.elapsed() < RETRY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY);
        let made = tokio::time::timeout(TIMEOUT * 2, self.client.get_connection_manager_with_config(config)).await;
        let manager = made.ok()?.ok()?;
        *self.connection.lock().expect("not poisoned") = Some(manager.clone());
        Some(manager)
    }

    /// Counts one event for `key` under `rate`: the count in the window and the time
    /// until it resets, or `None` when Redis cannot be reached.
    pub async fn hit(&self, key: &str, rate: Rate) -> Option<(u32, Duration)> {
        let (count, ttl) = self.run(&self.script, key, rate).await?;
        Some((u32::try_from(count.max(0)).unwrap_or(u32::MAX), ttl))
    }

    /// Takes one of `rate.max` slots for `key`: `Err(wait)` when all are taken, `None`
    /// when Redis cannot be reached.
    pub async fn take(&self, key: &str, rate: Rate) -> Option<Result<(), Duration>> {
        let (taken, ttl) = self.run(&self.take, key, rate).await?;
        Some(if taken == 1 { Ok(()) } else { Err(ttl) })
    }

    /// Gives back a slot [`take`](Self::take) took (nothing when Redis is away: the
    /// slot then expires with its window).
    pub async fn give_back(&self, key: &str, rate: Rate) {
        let _ = self.run(&self.give_back, key, rate).await;
    }

    /// Runs `script` on `key`'s window: its two numbers, the second as a duration (ms).
    async fn run(&self, script: &redis::Script, key: &str, rate: Rate) -> Option<(i64, Duration)> {
        let window_ms = u64::try_from(rate.window.as_millis()).unwrap_or(u64::MAX);
        let full_key = format!("{}:{key}:{window_ms}", self.namespace);
        let result = match self.connection().await {
            Some(mut c) => {
                let mut invocation = script.key(&full_key);
                let call = invocation.arg(window_ms).arg(rate.max).invoke_async::<Vec<i64>>(&mut c);
                let answer = tokio::time::timeout(TIMEOUT, call).await.map_err(|_| "timed out".to_owned());
                answer.and_then(|r| r.map_err(|e| e.to_string()))
            }
            None => Err("not connected".to_owned()),
        };
        match result {
            Ok(numbers) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis (rate_limits.redis_url) answers again");
                }
                let first = numbers.first().copied().unwrap_or(0);
                let ttl_ms = numbers.get(1).copied().unwrap_or(1).max(1);
                Some((first, Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(1))))
            }
            Err(e) => {
                self.metrics.rate_limit_store_errors.inc();
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis (rate_limits.redis_url) cannot be reached: per-credential and device-authorization limits are not enforced, and sign-in is refused, until it answers");
                }
                None
            }
        }
    }
}
