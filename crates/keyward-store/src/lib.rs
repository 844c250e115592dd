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

pub mod api_keys;
pub mod audit;
pub mod changes;
pub mod db;
pub mod device;
pub mod members;
pub mod model;
pub mod orgs;
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
pub use model::*;

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
    /// A stored value did not parse back (a corrupted or hand-edited row).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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
