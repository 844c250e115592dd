//! Last-used times, per-day request counts and failed-authentication audit events,
//! gathered in memory on the request path and written in one batch per
//! `usage_flush_interval` (default one minute): at most one write per key per interval,
//! never a write per request. The batch is also written at shutdown.
//!
//! Failed authentications whose key is known (revoked, expired, holder no longer a
//! member) become one `auth.failed` audit event per key and reason per batch, with a
//! count; unknown secrets have no organization to audit them in and are only logged,
//! with the display prefix at most.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use keyward_core::ids::KeyId;
use keyward_store::{Actor, AuditAction, AuditEvent, KeyUsage, Store};

use crate::auth::grant::Grant;

/// Distinct (key, reason) failure tallies kept between flushes at most; a flood beyond
/// that is counted in the log line, not in separate events.
const MAX_FAILURE_TALLIES: usize = 10_000;

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    touches: HashMap<KeyId, Touch>,
    /// Completed days (a key used across midnight) and batches a failed flush returned.
    spill: Vec<KeyUsage>,
    /// The last-used times of the batch the last flush took, kept until the next flush
    /// takes its own: a list that read the database before that batch was written, then
    /// this memory after it was taken, still sees the use.
    recent: HashMap<KeyId, DateTime<Utc>>,
    failures: HashMap<(String, &'static str), Failure>,
    dropped_failures: u64,
}

struct Touch {
    last: DateTime<Utc>,
    day: i64,
    requests: i64,
}

struct Failure {
    event: AuditEvent,
    prefix: String,
    count: u64,
    last: DateTime<Utc>,
}

fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl UsageRecorder {
    /// Notes one successful use of a key.
    pub fn touch(&self, key: &KeyId) {
        let now = Utc::now();
        let day = day_of(now);
        let mut p = self.pending.lock().expect("not poisoned");
        let Pending { touches, spill, .. } = &mut *p;
        match touches.get_mut(key) {
            Some(t) if t.day == day => {
                t.last = now;
                t.requests += 1;
            }
            Some(t) => {
                spill.push(KeyUsage { key_id: key.clone(), last_used_at: t.last, day: t.day, requests: t.requests });
                *t = Touch { last: now, day, requests: 1 };
            }
            None => {
                touches.insert(key.clone(), Touch { last: now, day, requests: 1 });
            }
        }
    }

    /// A use not yet written (or written by the last flush), so lists on this instance
    /// are current at once. Callers take the later of this and the database's time.
    pub fn last_used(&self, key: &KeyId) -> Option<DateTime<Utc>> {
        let p = self.pending.lock().expect("not poisoned");
        let spilled = p.spill.iter().filter(|u| u.key_id == *key).map(|u| u.last_used_at);
        p.touches.get(key).map(|t| t.last).into_iter().chain(spilled).chain(p.recent.get(key).copied()).max()
    }

    /// Requests this process counted for `key` and has not written yet, as
    /// `(day since epoch, requests)`: the current day's and any spilled ones.
    pub fn pending_counts(&self, key: &KeyId) -> Vec<(i64, i64)> {
        let p = self.pending.lock().expect("not poisoned");
        let current = p.touches.get(key).map(|t| (t.day, t.requests));
        let spilled = p.spill.iter().filter(|u| u.key_id == *key).map(|u| (u.day, u.requests));
        current.into_iter().chain(spilled).collect()
    }

    /// Notes a failed use of a credential this server knows (revoked, expired, of a
    /// principal no longer a member) for the audit log: one event per credential and
    /// reason per flush, with a count.
    pub fn record_failed_use(&self, grant: &Grant, reason: &'static str) {
        let now = Utc::now();
        let mut p = self.pending.lock().expect("not poisoned");
        let slot = (grant.credential_label(), reason);
        if let Some(f) = p.failures.get_mut(&slot) {
            f.count += 1;
            f.last = now;
        } else if p.failures.len() < MAX_FAILURE_TALLIES {
            let actor = Actor::anonymous();
            let event = AuditEvent::new(Some(&grant.org_id), &actor, AuditAction::AuthFailed)
                .target(grant.credential.kind(), grant.credential.id());
            p.failures.insert(slot, Failure { event, prefix: grant.prefix.as_str().to_owned(), count: 1, last: now });
        } else {
            p.dropped_failures += 1;
        }
        drop(p);
        tracing::info!(reason, credential = %grant.credential_label(), prefix = grant.prefix.as_str(), "authentication failed");
    }

    /// Writes everything gathered since the last flush. On failure the batch is kept
    /// for the next attempt.
    pub async fn flush(&self, store: &Store) {
        let (usage, events, dropped) = {
            let mut p = self.pending.lock().expect("not poisoned");
            let mut usage = std::mem::take(&mut p.spill);
            usage.extend(p.touches.drain().map(|(key_id, t)| KeyUsage {
                key_id,
                last_used_at: t.last,
                day: t.day,
                requests: t.requests,
            }));
            p.recent = usage.iter().map(|u| (u.key_id.clone(), u.last_used_at)).collect();
            let events: Vec<AuditEvent> = p
                .failures
                .drain()
                .map(|((_, reason), f)| {
                    let detail = serde_json::json!({
                        "reason": reason,
                        "count": f.count,
                        "prefix": f.prefix,
                        "last_at": f.last,
                    });
                    f.event.detail(detail)
                })
                .collect();
            (usage, events, std::mem::take(&mut p.dropped_failures))
        };
        if dropped > 0 {
            tracing::warn!(dropped, "failed authentications beyond the per-batch audit limit");
        }
        if let Err(e) = store.record_key_usage(&usage).await {
            tracing::warn!(error = %e, keys = usage.len(), "cannot write key usage; will retry");
            self.pending.lock().expect("not poisoned").spill.extend(usage);
        }
        if !events.is_empty() {
            if let Err(e) = store.append_events(&events).await {
                tracing::warn!(error = %e, events = events.len(), "cannot write failed-authentication events; dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_coalesce_per_key() {
        let r = UsageRecorder::default();
        let (a, b) = (KeyId::generate(), KeyId::generate());
        assert_eq!(r.last_used(&a), None);
        for _ in 0..3 {
            r.touch(&a);
        }
        r.touch(&b);
        let p = r.pending.lock().unwrap();
        assert_eq!(p.touches.len(), 2);
        assert_eq!(p.touches[&a].requests, 3);
        drop(p);
        assert!(r.last_used(&a).is_some());
    }

    /// A flush takes the batch out of the touches before the database has it: the
    /// last-used time must stay visible in memory meanwhile (and until the next flush).
    #[tokio::test]
    async fn a_taken_batch_stays_visible_until_the_next_flush() {
        let db = keyward_store::testing::TestDb::sqlite();
        let store = db.store().await;
        let r = UsageRecorder::default();
        let key = KeyId::generate();
        r.touch(&key);
        let used = r.last_used(&key).unwrap();
        // The key is not in the database, so the write changes no row: what matters is
        // what memory answers after the batch was taken.
        r.flush(&store).await;
        assert_eq!(r.last_used(&key), Some(used), "visible after its batch was taken");
        r.flush(&store).await;
        assert_eq!(r.last_used(&key), None, "forgotten once the next flush took its own batch");
    }
}
