//! Where fixed-window counters live: in this process ([`super::windows`]), or shared by
//! every instance in Redis ([`super::redis`]).

use std::sync::Arc;
use std::time::Duration;

use super::windows::Windows;
use super::Rate;

pub enum Counters {
    Local(Windows),
    Redis(Arc<super::redis::RedisCounters>),
}

impl Counters {
    /// Counts one event for `key` under `rate`: the count in the current window and the
    /// time until it resets, or `None` when the counters cannot be reached (the caller
    /// fails open or closed as its limit requires).
    pub async fn hit(&self, key: &str, rate: Rate) -> Option<(u32, Duration)> {
        match self {
            Counters::Local(w) => Some(w.hit(key, rate)),
            Counters::Redis(r) => r.hit(key, rate).await,
        }
    }
}
