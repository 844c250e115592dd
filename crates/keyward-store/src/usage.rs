//! Per-key request counts by day (written with last-used times; see
//! [`Store::record_key_usage`](crate::Store::record_key_usage)).

use keyward_core::ids::KeyId;
use sqlx::Row;

use crate::{Result, Store};

impl Store {
    /// `(day since epoch, requests)` for one key from `since_day` on, oldest first.
    pub async fn key_usage_by_day(&self, key: &KeyId, since_day: i64) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query("SELECT day, requests FROM key_usage WHERE key_id = $1 AND day >= $2 ORDER BY day")
            .bind(key.as_str())
            .bind(since_day)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("day")?, r.try_get("requests")?))).collect()
    }
}
