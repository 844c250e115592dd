//! Purging rows that no longer mean anything: expired device codes, used JWT ids past
//! their expiry, ended browser sessions, and OAuth token families that ended.
//!
//! Every statement deletes at most `batch_size` rows, chosen by a sub-select, so a purge
//! never holds many locks or writes a huge transaction; a pass runs up to `max_batches`
//! statements per table and stops early when one deletes less than a full batch. The
//! deletes are idempotent, so several instances may purge at once: on PostgreSQL the
//! sub-select takes its rows `FOR UPDATE SKIP LOCKED`, so two purgers take disjoint
//! batches and a purge never waits for (or deadlocks with) a request's transaction;
//! SQLite runs one writer at a time anyway.
//!
//! What stays, and why:
//!
//! - a token stays while *any* token of its family is live or ended less than the
//!   retention ago. A used refresh token must stay while its family lives, or its reuse
//!   would no longer be recognised and could not revoke the family; once every token
//!   of a family has ended, nothing can revive it, and the whole family goes together.
//! - a redeemed device code is a signed-in device (`/api/v1/sessions`) and stays while
//!   any token of its family is stored.
//! - API keys, revoked or not, their secrets, and the audit log are never purged:
//!   revoked keys are listed with `?include_revoked=true`, and an attempt with a revoked
//!   key is recognised and audited as such.

use chrono::{DateTime, Utc};

use crate::time::to_ms;
use crate::{Backend, Result, Store};

/// What a purge pass removes and how much at a time.
#[derive(Clone, Debug)]
pub struct PurgeRules {
    /// Tokens, device codes and browser sessions that ended before this go.
    pub ended_before: DateTime<Utc>,
    /// JWT ids whose assertion could no longer be accepted at this time go.
    pub jtis_expired_before: DateTime<Utc>,
    /// Rows per statement.
    pub batch_size: i64,
    /// Statements per table and pass.
    pub max_batches: u32,
}

/// Rows deleted by one pass, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub oauth_tokens: u64,
    pub device_authorizations: u64,
    pub assertion_jtis: u64,
    pub web_sessions: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.oauth_tokens + self.device_authorizations + self.assertion_jtis + self.web_sessions
    }

    /// `(table, rows)` for each table.
    pub fn by_table(&self) -> [(&'static str, u64); 4] {
        [
            ("oauth_tokens", self.oauth_tokens),
            ("device_authorizations", self.device_authorizations),
            ("assertion_jtis", self.assertion_jtis),
            ("web_sessions", self.web_sessions),
        ]
    }
}

/// A token family none of whose tokens ended at or after `$1` (live ones end in the
/// future): `t` is the candidate row.
const FAMILY_ENDED: &str = "NOT EXISTS (SELECT 1 FROM oauth_tokens l WHERE l.family_id = t.family_id \
     AND l.expires_at >= $1 AND (l.revoked_at IS NULL OR l.revoked_at >= $1))";

impl Store {
    /// One purge pass over every table (tokens before device codes, whose redeemed rows
    /// wait for their family's tokens to go).
    pub async fn purge(&self, rules: &PurgeRules) -> Result<Purged> {
        let ended = to_ms(rules.ended_before);
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE OF t SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let tokens_expired = format!(
            "DELETE FROM oauth_tokens WHERE hash IN (SELECT t.hash FROM oauth_tokens t \
             WHERE t.expires_at < $1 AND {FAMILY_ENDED} LIMIT $2{lock})"
        );
        let tokens_revoked = format!(
            "DELETE FROM oauth_tokens WHERE hash IN (SELECT t.hash FROM oauth_tokens t \
             WHERE t.revoked_at < $1 AND {FAMILY_ENDED} LIMIT $2{lock})"
        );
        let devices = format!(
            "DELETE FROM device_authorizations WHERE id IN (SELECT t.id FROM device_authorizations t \
             WHERE t.expires_at < $1 AND (t.family_id IS NULL OR NOT EXISTS \
             (SELECT 1 FROM oauth_tokens o WHERE o.family_id = t.family_id)) LIMIT $2{lock})"
        );
        let jtis = format!(
            "DELETE FROM assertion_jtis WHERE (issuer, jti) IN (SELECT t.issuer, t.jti FROM assertion_jtis t \
             WHERE t.expires_at < $1 LIMIT $2{lock})"
        );
        let sessions = format!(
            "DELETE FROM web_sessions WHERE hash IN (SELECT t.hash FROM web_sessions t \
             WHERE t.expires_at < $1 LIMIT $2{lock})"
        );
        Ok(Purged {
            oauth_tokens: self.purge_batches(&tokens_expired, ended, rules).await?
                + self.purge_batches(&tokens_revoked, ended, rules).await?,
            device_authorizations: self.purge_batches(&devices, ended, rules).await?,
            assertion_jtis: self.purge_batches(&jtis, to_ms(rules.jtis_expired_before), rules).await?,
            web_sessions: self.purge_batches(&sessions, ended, rules).await?,
        })
    }

    /// Runs one bounded delete until it deletes less than a batch, at most
    /// `max_batches` times. Each statement is its own transaction.
    async fn purge_batches(&self, sql: &str, before: i64, rules: &PurgeRules) -> Result<u64> {
        let mut total = 0;
        for _ in 0..rules.max_batches {
            let done = sqlx::query(sql).bind(before).bind(rules.batch_size).execute(&self.pool).await?;
            total += done.rows_affected();
            if done.rows_affected() < rules.batch_size as u64 {
                break;
            }
        }
        Ok(total)
    }
}
