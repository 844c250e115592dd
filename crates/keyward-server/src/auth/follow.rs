//! How changes reach this process's grant cache: the only two paths, side by side.
//! [`subscribe`]: a change this process commits is applied right after its commit, before
//! the request that made it is answered (no handler touches the cache). [`follow`]: the
//! change log is followed, so that a change made by another process (another instance, or
//! `keyward key revoke`) reaches this one's cache within one second.
//!
//! Two paths wake the reader. On PostgreSQL a `LISTEN` connection is woken by the
//! `pg_notify` each change's transaction sends, so propagation usually takes a few
//! milliseconds. Independently, the log is read every `change_poll_interval` (250 ms by
//! default, at most 1 s): that reconciliation repairs anything a lost notification
//! connection missed, and is the only path on SQLite.
//!
//! Each read takes the rows past the highest sequence number seen and, on PostgreSQL,
//! those of the [`WINDOW`] numbers below it written in the last [`LATE_COMMIT`] again:
//! on PostgreSQL a transaction holding a lower number
//! can commit after one holding a higher number. Numbers already applied are remembered
//! for the window, so each change is applied once. If the log cannot be read for
//! [`FAIL_CLOSED_AFTER`], the cache is emptied on every failed read: requests then go
//! to the database, which is the truth (and answers 503 while it is down) — a revoked
//! key is never served from a cache that cannot be kept fresh.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use keyward_store::Store;
use tokio::sync::{watch, Notify};

use super::GrantCache;
use crate::metrics::Metrics;

/// Applies every change this process's `store` commits to `cache`, right after the commit.
/// (The same changes come back through the log later; applying one twice is harmless.)
pub fn subscribe(store: &Store, cache: Arc<GrantCache>) {
    store.on_change(move |change| cache.apply(change));
}

/// How far below the highest sequence number each read looks again.
pub const WINDOW: i64 = 1000;

/// How long a PostgreSQL transaction that wrote a change may take to commit and still
/// be seen: rows below the cursor older than this are not read again. keyward's
/// writing transactions last milliseconds; this is a wide margin.
pub const LATE_COMMIT: chrono::Duration = chrono::Duration::seconds(30);
/// How long the log may be unreadable before the cache stops being trusted.
pub const FAIL_CLOSED_AFTER: Duration = Duration::from_secs(2);
/// Rows older than this are deleted from the log, now and then.
const LOG_RETENTION_HOURS: i64 = 24;
/// The longest a read of the log may take before it counts as failed (the pool would
/// otherwise wait for a connection for its whole acquire timeout).
const READ_TIMEOUT: Duration = Duration::from_millis(750);
/// Pause before re-opening a notification connection that failed.
const LISTENER_RETRY: Duration = Duration::from_millis(200);

/// Reads the change log until `shutdown`, applying each change to `cache`.
pub async fn follow(
    store: Store,
    cache: Arc<GrantCache>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(store.clone(), wake.clone(), metrics.clone(), shutdown.clone()));
    let mut cursor = store.latest_change().await.unwrap_or(0);
    // Rows already in the window at start are history, not news: the cache is empty,
    // and counting them would report their age as propagation lag.
    let mut seen: BTreeSet<i64> = match store.changes_after((cursor - WINDOW).max(0), 10_000).await {
        Ok(rows) => rows.into_iter().map(|r| r.seq).collect(),
        Err(_) => BTreeSet::new(),
    };
    let mut last_ok = Instant::now();
    let mut last_prune = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => break,
        }
        // SQLite has one writer at a time, so its numbers commit in order and nothing
        // below the cursor can appear late; PostgreSQL's can, but only from a
        // transaction still running, so only recent rows below the cursor are re-read.
        // (Re-reading the whole window every tick cost every instance CPU in
        // proportion to how busy the log had been: bench/scale.sh saw it in p99.)
        let floor = match store.backend() {
            keyward_store::Backend::Sqlite => cursor,
            keyward_store::Backend::Postgres => (cursor - WINDOW).max(0),
        };
        let since = Utc::now() - LATE_COMMIT;
        let read = tokio::time::timeout(READ_TIMEOUT, store.changes_since(floor, cursor, since, 10_000)).await;
        match read.unwrap_or_else(|_| Err(keyward_store::StoreError::Database(sqlx_timeout()))) {
            Ok(rows) => {
                let now = Utc::now();
                for row in rows {
                    if seen.insert(row.seq) {
                        cache.apply(&row.change);
                        metrics.propagation_lag(now - row.at);
                    }
                    cursor = cursor.max(row.seq);
                }
                seen = seen.split_off(&(cursor - WINDOW));
                last_ok = Instant::now();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change log");
                if last_ok.elapsed() >= FAIL_CLOSED_AFTER {
                    cache.clear();
                    metrics.fail_closed.inc();
                }
            }
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = Instant::now();
            if let Err(e) = store.prune_changes(chrono::Duration::hours(LOG_RETENTION_HOURS)).await {
                tracing::warn!(error = %e, "cannot prune the change log");
            }
        }
    }
    listener.abort();
}

/// Keeps a notification connection open (PostgreSQL) and wakes the reader on each
/// notification and after each reconnection (notifications may have been missed).
async fn listen(store: Store, wake: Arc<Notify>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let mut listener = match store.change_listener().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the change notification connection");
                tokio::select! {
                    _ = tokio::time::sleep(LISTENER_RETRY) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        loop {
            let event = tokio::select! {
                event = listener.next() => event,
                _ = shutdown.changed() => return,
            };
            match event {
                Ok(true) => wake.notify_one(),
                Ok(false) => {
                    metrics.listener_reconnects.inc();
                    tracing::warn!("the change notification connection was lost and re-opened");
                    wake.notify_one();
                }
                Err(e) => {
                    metrics.listener_reconnects.inc();
                    tracing::warn!(error = %e, "the change notification connection failed");
                    wake.notify_one();
                    break;
                }
            }
        }
    }
}

/// The error a timed-out read is reported as.
fn sqlx_timeout() -> sqlx::Error {
    sqlx::Error::PoolTimedOut
}
