//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Relaxed atomic counters for the fixed series, and one small map for responses by
//! route and status. The request path pays an atomic add per counter and one short,
//! uncontended lock for the route map; rendering happens only when scraped. (The set
//! is small and fixed, so a metrics registry crate would add indirection and nothing
//! else.)

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::auth::reason::Reason;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Metrics {
    pub auth_ok: Counter,
    /// By [`Reason`], in the order of [`Reason::ALL`].
    rejected: [Counter; Reason::ALL.len()],
    pub cache_hit: Counter,
    pub cache_miss: Counter,
    /// Route template → status → responses.
    responses: Mutex<HashMap<String, HashMap<u16, u64>>>,
    lag_micros_sum: Counter,
    lag_count: Counter,
    lag_micros_max: AtomicU64,
    /// Times the cache was emptied because the change log could not be read.
    pub fail_closed: Counter,
    /// Times the PostgreSQL notification connection was lost.
    pub listener_reconnects: Counter,
    /// Rows deleted by the purge task, by table (in the order of [`PURGED_TABLES`]).
    purged: [Counter; PURGED_TABLES.len()],
    /// Purge passes that failed (logged; the next pass tries again).
    pub purge_failures: Counter,
    /// Password hashes computed (sign-in checks, unknown e-mails included).
    pub password_checks: Counter,
    /// Password checks refused because none could start in time.
    pub password_checks_refused: Counter,
    /// Rate-limit counts that could not reach Redis.
    pub rate_limit_store_errors: Counter,
}

/// The tables the purge task deletes from.
pub const PURGED_TABLES: [&str; 4] = ["oauth_tokens", "device_authorizations", "assertion_jtis", "web_sessions"];

/// Figures read at scrape time rather than counted.
pub struct Gauges {
    pub cached_grants: u64,
    pub pool_size: u32,
    pub pool_idle: usize,
}

impl Metrics {
    pub fn auth_rejected(&self, reason: Reason) {
        self.rejected[reason as usize].inc();
    }

    /// One response on `route` (the route template, e.g. `/api/v1/api-keys/{id}`).
    pub fn response(&self, route: &str, status: u16) {
        let mut map = self.responses.lock().expect("not poisoned");
        let statuses = match map.get_mut(route) {
            Some(s) => s,
            None => map.entry(route.to_owned()).or_default(),
        };
        *statuses.entry(status).or_default() += 1;
    }

    /// `rows` deleted from `table` by the purge task.
    pub fn purged(&self, table: &str, rows: u64) {
        if let Some(i) = PURGED_TABLES.iter().position(|t| *t == table) {
            self.purged[i].add(rows);
        }
    }

    /// How long a change took from its commit to this instance's cache.
    pub fn propagation_lag(&self, lag: chrono::Duration) {
        let micros = lag.num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
        self.lag_micros_sum.add(micros);
        self.lag_count.inc();
        self.lag_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let mut series = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let mut auth = vec![("{result=\"ok\",kind=\"api_key\"}".to_owned(), self.auth_ok.get().to_string())];
        for (reason, c) in Reason::ALL.iter().zip(&self.rejected) {
            // Keys whose record was found are api_key rejections; the rest name no kind.
            let kind = if reason.found_the_credential() { "api_key" } else { "none" };
            let reason = reason.as_str();
            auth.push((format!("{{result=\"{reason}\",kind=\"{kind}\"}}"), c.get().to_string()));
        }
        series("keyward_authentications_total", "counter", "Credentials checked, by result and credential kind.", auth);
        series(
            "keyward_grant_cache_lookups_total",
            "counter",
            "Grant cache lookups, by outcome; every miss is one database query.",
            vec![
                ("{outcome=\"hit\"}".into(), self.cache_hit.get().to_string()),
                ("{outcome=\"miss\"}".into(), self.cache_miss.get().to_string()),
            ],
        );
        series(
            "keyward_grant_cache_entries",
            "gauge",
            "Grants held in the cache.",
            vec![(String::new(), gauges.cached_grants.to_string())],
        );
        let mut responses: Vec<(String, String)> = Vec::new();
        for (route, statuses) in self.responses.lock().expect("not poisoned").iter() {
            for (status, n) in statuses {
                responses.push((format!("{{route=\"{route}\",status=\"{status}\"}}"), n.to_string()));
            }
        }
        responses.sort();
        series("keyward_http_responses_total", "counter", "HTTP responses, by route template and status.", responses);
        let micros = |v: u64| format!("{:.6}", v as f64 / 1e6);
        series(
            "keyward_change_propagation_seconds",
            "summary",
            "Time from a change's commit to its application in this instance's cache.",
            // A summary's rows are the name with `_sum` and `_count` appended.
            vec![
                ("_sum".into(), micros(self.lag_micros_sum.get())),
                ("_count".into(), self.lag_count.get().to_string()),
            ],
        );
        series(
            "keyward_change_propagation_seconds_max",
            "gauge",
            "The longest propagation seen.",
            vec![(String::new(), micros(self.lag_micros_max.load(Ordering::Relaxed)))],
        );
        series(
            "keyward_cache_fail_closed_total",
            "counter",
            "Cache flushes because the change log was unreadable.",
            vec![(String::new(), self.fail_closed.get().to_string())],
        );
        series(
            "keyward_change_listener_reconnects_total",
            "counter",
            "Lost PostgreSQL notification connections.",
            vec![(String::new(), self.listener_reconnects.get().to_string())],
        );
        series(
            "keyward_purged_rows_total",
            "counter",
            "Rows deleted by the purge task (ended tokens, device codes, used JWT ids, browser sessions), by table.",
            PURGED_TABLES
                .iter()
                .zip(&self.purged)
                .map(|(t, c)| (format!("{{table=\"{t}\"}}"), c.get().to_string()))
                .collect(),
        );
        series(
            "keyward_purge_failures_total",
            "counter",
            "Purge passes that failed.",
            vec![(String::new(), self.purge_failures.get().to_string())],
        );
        series(
            "keyward_password_checks_total",
            "counter",
            "Password hashes computed to check a sign-in.",
            vec![(String::new(), self.password_checks.get().to_string())],
        );
        series(
            "keyward_password_checks_refused_total",
            "counter",
            "Sign-ins refused (503) because no password check could start in time.",
            vec![(String::new(), self.password_checks_refused.get().to_string())],
        );
        series(
            "keyward_rate_limit_store_errors_total",
            "counter",
            "Rate-limit counts that could not reach Redis (per-credential limits then fail open).",
            vec![(String::new(), self.rate_limit_store_errors.get().to_string())],
        );
        series(
            "keyward_db_pool_connections",
            "gauge",
            "Database pool connections, by state.",
            vec![
                ("{state=\"idle\"}".into(), gauges.pool_idle.to_string()),
                ("{state=\"in_use\"}".into(), (gauges.pool_size as usize).saturating_sub(gauges.pool_idle).to_string()),
            ],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = Metrics::default();
        m.auth_ok.inc();
        m.auth_rejected(crate::auth::Reason::Revoked);
        m.response("/api/v1/me", 401);
        m.response("/api/v1/me", 401);
        m.propagation_lag(chrono::Duration::milliseconds(12));
        m.purged("web_sessions", 3);
        m.purged("no_such_table", 5);
        let text = m.render(&Gauges { cached_grants: 3, pool_size: 4, pool_idle: 1 });
        for line in [
            "keyward_authentications_total{result=\"ok\",kind=\"api_key\"} 1",
            "keyward_authentications_total{result=\"revoked\",kind=\"api_key\"} 1",
            "keyward_http_responses_total{route=\"/api/v1/me\",status=\"401\"} 2",
            "keyward_grant_cache_entries 3",
            "keyward_change_propagation_seconds_sum 0.012000",
            "keyward_change_propagation_seconds_count 1",
            "keyward_db_pool_connections{state=\"in_use\"} 3",
            "keyward_purged_rows_total{table=\"web_sessions\"} 3",
            "keyward_purged_rows_total{table=\"oauth_tokens\"} 0",
            "keyward_purge_failures_total 0",
            "keyward_password_checks_total 0",
            "keyward_password_checks_refused_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
