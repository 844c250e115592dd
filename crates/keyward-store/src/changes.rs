//! The change log: how processes sharing a database learn that a credential lost power.
//!
//! Each mutation that can take power away appends a row in its own transaction. Servers
//! poll for rows past the highest sequence number they have seen (and re-read a window
//! below it, because on PostgreSQL a lower sequence number can commit after a higher
//! one). Applying a change twice is harmless, so the overlap needs no bookkeeping
//! beyond a set of recently seen numbers kept by the reader.

use chrono::DateTime;
use chrono::Utc;
use keyward_core::ids::{FamilyId, KeyId, OrgId};
use sqlx::postgres::PgListener;
use sqlx::{Any, Row, Transaction};

use crate::time::{from_ms, to_ms};
use crate::{Backend, Change, Result, Store};

/// The PostgreSQL channel a change is announced on (in the writing transaction, so the
/// notification is delivered exactly when the change becomes visible).
pub const CHANGE_CHANNEL: &str = "keyward_changes";

/// The `application_name` of the notification connection, so operators (and a test)
/// can find it in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "keyward-change-listener";

/// A change as read back, with its sequence number and when it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub change: Change,
}

fn encode(change: &Change) -> (&'static str, String) {
    match change {
        Change::Key(id) => ("key", id.to_string()),
        Change::Member { org_id, principal_id } => ("member", format!("{org_id}/{principal_id}")),
        Change::KeyCreated => ("key_created", String::new()),
        Change::Tokens(family) => ("tokens", family.to_string()),
    }
}

fn decode(kind: &str, subject: &str) -> Option<Change> {
    match kind {
        "key" => KeyId::parse(subject).map(Change::Key),
        "member" => {
            let (org, principal) = subject.split_once('/')?;
            Some(Change::Member { org_id: OrgId::parse(org)?, principal_id: principal.to_owned() })
        }
        "key_created" => Some(Change::KeyCreated),
        "tokens" => FamilyId::parse(subject).map(Change::Tokens),
        _ => None,
    }
}

/// Wakes a reader when a change is committed (PostgreSQL `LISTEN`). Notifications are
/// only a hint to read the log now: one lost while the connection is down is made up
/// for by the periodic read.
pub struct ChangeListener {
    inner: PgListener,
}

impl ChangeListener {
    /// Waits for the next notification. `Ok(false)`: the connection was lost and has
    /// been re-established (notifications may have been missed meanwhile).
    pub async fn next(&mut self) -> Result<bool> {
        Ok(self.inner.try_recv().await?.is_some())
    }
}

impl Store {
    /// Appends a change to the log inside `tx` (and announces it on PostgreSQL).
    pub(crate) async fn record_change(&self, tx: &mut Transaction<'_, Any>, change: &Change) -> Result<()> {
        let (kind, subject) = encode(change);
        sqlx::query("INSERT INTO changes (at, kind, subject) VALUES ($1, $2, $3)")
            .bind(to_ms(crate::time::now()))
            .bind(kind)
            .bind(subject)
            .execute(&mut **tx)
            .await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')").bind(CHANGE_CHANNEL).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A listener for change notifications, on PostgreSQL; `None` on SQLite, where the
    /// periodic read of the log is the only path (and cheap: a local file).
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}application_name={LISTENER_APPLICATION_NAME}", self.url);
        let mut inner = PgListener::connect(&url).await?;
        inner.listen(CHANGE_CHANNEL).await?;
        Ok(Some(ChangeListener { inner }))
    }

    /// The highest sequence number in the log (0 when empty).
    pub async fn latest_change(&self) -> Result<i64> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes").fetch_one(&self.pool).await?;
        Ok(max.unwrap_or(0))
    }

    /// Changes with a sequence number above `after`, oldest first, at most `limit`.
    /// Rows of an unknown kind (written by a newer version) are skipped.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<LoggedChange>> {
        self.changes_since(after, after, DateTime::<Utc>::MIN_UTC, limit).await
    }

    /// The rows a follower must read: every row past `cursor`, and those between
    /// `floor` and `cursor` written at or after `recent_since` (on PostgreSQL a
    /// transaction holding a lower number can commit after a higher one, but only
    /// while it runs, so old rows below the cursor need not be read again and again).
    pub async fn changes_since(
        &self,
        floor: i64,
        cursor: i64,
        recent_since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<LoggedChange>> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, subject FROM changes WHERE seq > $1 AND (seq > $2 OR at >= $3) ORDER BY seq LIMIT $4",
        )
        .bind(floor)
        .bind(cursor)
        .bind(to_ms(recent_since.max(DateTime::<Utc>::UNIX_EPOCH)))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let subject: String = row.try_get("subject")?;
            if let Some(change) = decode(&kind, &subject) {
                out.push(LoggedChange { seq: row.try_get("seq")?, at: from_ms(row.try_get("at")?), change });
            }
        }
        Ok(out)
    }

    /// Deletes log rows older than `max_age`; readers only ever look seconds back.
    pub async fn prune_changes(&self, max_age: chrono::Duration) -> Result<u64> {
        let done = sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(to_ms(crate::time::now() - max_age))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_their_encoding() {
        for c in [
            Change::Key(KeyId::generate()),
            Change::Member { org_id: OrgId::generate(), principal_id: "usr_x".into() },
            Change::KeyCreated,
        ] {
            let (kind, subject) = encode(&c);
            assert_eq!(decode(kind, &subject), Some(c));
        }
        assert_eq!(decode("future", ""), None);
    }
}
