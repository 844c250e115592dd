//! The purge task: every `[purge] interval`, deletes what ended longer than
//! `[purge] retention` ago — token families none of whose tokens is live, expired device
//! codes (a redeemed one once its family's tokens are gone), browser sessions — and used
//! JWT ids whose assertion can no longer be accepted. Each table is purged in bounded
//! batches ([`keyward_store::purge`]); the deletes are idempotent and, on PostgreSQL,
//! skip rows another purger holds, so every instance may run it at once.

use std::time::Duration;

use chrono::Utc;
use keyward_store::{PurgeRules, Purged, Store};
use tokio::sync::watch;

use crate::config::PurgeSettings;
use crate::metrics::Metrics;

/// One pass: purges with `settings` as of now, and counts the rows in `metrics`.
pub async fn pass(store: &Store, settings: &PurgeSettings, metrics: &Metrics) -> keyward_store::Result<Purged> {
    let now = Utc::now();
    let retention = chrono::Duration::from_std(settings.retention).unwrap_or(chrono::Duration::MAX);
    let rules = PurgeRules {
        ended_before: now.checked_sub_signed(retention).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC),
        // A used JWT id protects against a replay only until its assertion expires; the
        // expiry stored with it already includes the clock-skew leeway.
        jtis_expired_before: now,
        batch_size: i64::from(settings.batch_size),
        max_batches: settings.max_batches,
    };
    let purged = store.purge(&rules).await?;
    for (table, rows) in purged.by_table() {
        metrics.purged(table, rows);
    }
    Ok(purged)
}

/// Runs a pass every `interval` (the first right away) until `shutdown`.
pub async fn run(
    store: Store,
    settings: PurgeSettings,
    metrics: std::sync::Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    if !settings.enabled {
        return;
    }
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let started = std::time::Instant::now();
        match pass(&store, &settings, &metrics).await {
            Ok(purged) if purged.total() > 0 => {
                tracing::info!(
                    oauth_tokens = purged.oauth_tokens,
                    device_authorizations = purged.device_authorizations,
                    assertion_jtis = purged.assertion_jtis,
                    web_sessions = purged.web_sessions,
                    took_ms = started.elapsed().as_millis() as u64,
                    "purged ended rows"
                );
            }
            Ok(_) => {}
            Err(e) => {
                metrics.purge_failures.inc();
                tracing::warn!(error = %e, "the purge failed; the next pass tries again");
            }
        }
    }
}

/// The longest a shutdown waits for a pass in progress.
pub const STOP_WAIT: Duration = Duration::from_secs(5);
