//! The change log: how processes sharing a database learn that a credential lost power.
//!
//! Each mutation that can take power away appends a row in its own transaction, through a
//! [`WriteTx`]. Once that transaction commits, the changes it recorded are also handed to
//! this process's subscriber ([`Store::on_change`]: the server's grant cache), so the
//! process that made a change sees it at once and handlers never restate it. Servers
//! poll for rows past the highest sequence number they have seen (and re-read a window
//! below it, because on PostgreSQL a lower sequence number can commit after a higher
//! one). Applying a change twice is harmless, so the overlap needs no bookkeeping
//! beyond a set of recently seen numbers kept by the reader.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, RwLock};

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

/// What this process does with a change it committed itself.
type Subscriber = Arc<dyn Fn(&Change) + Send + Sync>;

/// The subscriber of one [`Store`] and its clones (set once the server has its cache).
#[derive(Default)]
pub(crate) struct LocalChanges(RwLock<Option<Subscriber>>);

impl LocalChanges {
    fn publish(&self, changes: &[Change]) {
        let subscriber = self.0.read().expect("not poisoned").clone();
        if let Some(subscriber) = subscriber {
            changes.iter().for_each(|c| subscriber(c));
        }
    }
}

/// A write transaction that may record changes. Its changes reach this process's
/// subscriber only after [`WriteTx::commit`]: applied earlier, a concurrent request could
/// load the old rows again and cache them after the invalidation. Dropped without a commit,
/// it rolls back and tells nobody.
pub(crate) struct WriteTx<'c> {
    tx: Transaction<'c, Any>,
    changes: Vec<Change>,
    local: Arc<LocalChanges>,
}

impl<'c> Deref for WriteTx<'c> {
    type Target = Transaction<'c, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl WriteTx<'_> {
    /// Commits, then tells this process's subscriber what changed.
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        self.local.publish(&self.changes);
        Ok(())
    }

    /// Rolls back: nothing recorded happened.
    pub(crate) async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
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
    /// Starts a transaction whose recorded changes this process learns when it commits.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'static>> {
        Ok(WriteTx { tx: self.pool.begin().await?, changes: Vec::new(), local: self.local_changes.clone() })
    }

    /// Calls `subscriber` with every change this store (or a clone of it) commits, right
    /// after the commit and before the mutation returns. Other processes learn the same
    /// changes from the log. A second call replaces the first subscriber.
    pub fn on_change(&self, subscriber: impl Fn(&Change) + Send + Sync + 'static) {
        *self.local_changes.0.write().expect("not poisoned") = Some(Arc::new(subscriber));
    }

    /// Appends a change to the log inside `tx` (and announces it on PostgreSQL).
    pub(crate) async fn record_change(&self, tx: &mut WriteTx<'_>, change: &Change) -> Result<()> {
        let (kind, subject) = encode(change);
        sqlx::query("INSERT INTO changes (at, kind, subject) VALUES ($1, $2, $3)")
            .bind(to_ms(crate::time::now()))
            .bind(kind)
            .bind(subject)
            .execute(&mut ***tx)
            .await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')").bind(CHANGE_CHANNEL).execute(&mut ***tx).await?;
        }
        tx.changes.push(change.clone());
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
