//! keyward's storage: SQLite and PostgreSQL from one SQL code base.
//!
//! The queries are written once, in the SQL both backends share, and run through
//! `sqlx::Any`; only the migrations differ per backend (`migrations/sqlite`,
//! `migrations/postgres`). A trait with one implementation per backend would have
//! meant writing every query twice for no gain; the contract test suite
//! (`tests/contract.rs`) runs the same cases against both to keep the shared SQL honest.
//!
//! Every mutation that can take power away from a credential (revoke, roll, role
//! change, member removal) writes a row to the `changes` log in the same transaction,
//! which is how other processes sharing the database learn of it ([`changes`]).
//!
//! # Layout
//!
//! - [`db`]: connecting (SQLite WAL, busy timeout), migrations, readiness.
//! - [`model`]: the records the store returns.
//! - [`orgs`], [`members`], [`api_keys`], [`service_accounts`], [`tokens`], [`device`],
//!   [`web_sessions`], [`usage`], [`audit`], [`changes`]: the queries, one module per
//!   table family.
//! - [`purge`]: deleting, in bounded batches, rows that ended (token families, device
//!   codes, used JWT ids, browser sessions).
//!
//! # Concurrency
//!
//! Every transaction that reads and then writes *writes first*: a conditional update
//! (`… WHERE revoked_at IS NULL`, or a compare-and-set on what was read before) whose
//! row count says whether this request won, or a no-op update that takes the row lock.
//! On PostgreSQL that row lock serialises the competing transactions; on SQLite the first
//! write takes the database's write lock (a transaction that read first would fail with
//! "database is locked" instead of waiting). A request that lost a race gets
//! [`StoreError::Concurrent`] (or `NotFound` when the winner removed what it wanted),
//! never a database error. Statements that lock many rows in an order PostgreSQL
//! chooses (a whole token family, an account's keys) run in [`retrying`] transactions,
//! so a deadlock victim is run again instead of failing.

pub mod api_keys;
pub mod audit;
pub mod changes;
pub mod db;
pub mod device;
pub mod members;
pub mod model;
pub mod orgs;
pub mod purge;

pub mod service_accounts;
pub mod tokens;
pub mod usage;
pub mod web_sessions;

#[cfg(feature = "test-support")]
pub mod testing;

mod text;
mod time;

pub use api_keys::{KeyScope, KeyUsage};
pub use audit::AuditFilter;
pub use changes::{ChangeListener, LoggedChange, CHANGE_CHANNEL, LISTENER_APPLICATION_NAME};
pub use db::{Backend, Store};
pub use members::Standing;
pub use model::*;
pub use purge::{PurgeRules, Purged};

/// Errors of the storage layer. The server maps them: `NotFound` → 404, `Conflict` →
/// 409, `Database` → 503 when the pool timed out or the connection failed (the
/// database is unreachable), otherwise 500 like `Corrupt` and `Migrate` (logged,
/// never echoed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the text names what already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// Another request changed the same thing at the same time and won; the text names
    /// what. Trying again (after reading the new state) is safe.
    #[error("{0} was changed by another request at the same time; try again")]
    Concurrent(&'static str),
    /// A stored value did not parse back (a corrupted or hand-edited row).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The database could not be reached (the pool timed out, or the connection failed):
    /// every layer answers `503`, not `500`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether PostgreSQL aborted the transaction only because of other transactions: a
/// deadlock victim (`40P01`) or a serialization failure (`40001`). Running it again is
/// the documented remedy.
pub(crate) fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// Runs `op` (one whole transaction) again, up to three more times, when it failed
/// [transiently](is_transient).
pub(crate) async fn retrying<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if attempt < 3 && is_transient(&e) => {
                attempt += 1;
                tracing::debug!(attempt, error = %e, "transaction aborted by a concurrent one; running it again");
            }
            other => return other,
        }
    }
}

/// Whether a text can be in a column at all: PostgreSQL's `text` cannot hold U+0000
/// (SQLite's can, but keyward never writes one), so a lookup by such a value must find
/// nothing, on both backends alike, instead of failing with a database error on one.
pub(crate) fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// Maps a unique violation to `Conflict(what)`, anything else to `Database`.
pub(crate) fn conflict_as(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}
