//! Connecting to the database and applying migrations.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

use crate::Result;

// Migrations are additive by policy, so during a rolling upgrade an older binary still
// starts against a schema a newer one has extended: versions it does not know are
// ignored rather than refused.
static SQLITE_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| additive(sqlx::migrate!("./migrations/sqlite")));
static POSTGRES_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| additive(sqlx::migrate!("./migrations/postgres")));

fn additive(mut m: Migrator) -> Migrator {
    m.set_ignore_missing(true);
    m
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or `None` for an unsupported scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// The store: a connection pool and the backend it talks to. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// Kept for the change listener's own connection; never printed.
    pub(crate) url: String,
    /// Who in this process hears of committed changes (shared by clones).
    pub(crate) local_changes: std::sync::Arc<crate::changes::LocalChanges>,
}

/// Never prints the pool's URL, which may carry a password.
impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url` (`sqlite://file.db` — created if missing — or `postgres://…`).
    /// SQLite runs in WAL mode with a busy timeout, so the server and the CLI can write
    /// the same file at once.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            sqlx::Error::Configuration("database_url must start with sqlite:// or postgres://".into())
        })?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            // Short enough that an unreachable database becomes a 503 in seconds.
            .acquire_timeout(Duration::from_secs(3));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        Ok(Self { pool, backend, url, local_changes: Default::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every migration not yet applied.
    pub async fn migrate(&self) -> Result<()> {
        self.backend.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers and every migration this binary knows is applied.
    pub async fn is_current(&self) -> Result<bool> {
        let latest = self.backend.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await
            .or_else(|e| match e {
                // No migrations table yet: nothing applied.
                sqlx::Error::Database(_) => Ok(None),
                e => Err(e),
            })?;
        // A newer binary may have applied migrations this one does not know; they are
        // additive by policy (docs/deployment.md), so this binary is still current.
        Ok(applied.is_some_and(|a| a >= latest))
    }

    /// Connections open, and how many of them are idle.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
