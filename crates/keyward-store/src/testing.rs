//! Test support: a fresh, migrated database per test, on either backend.
//!
//! SQLite databases are files in a temporary directory. PostgreSQL databases are
//! schemas (`kwtest_<time>_<random>`) in the server named by `KEYWARD_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), selected through the connection
//! URL's `search_path`, so parallel tests and parallel runs never collide. Schemas left
//! by earlier runs are dropped after an hour.
//!
//! When PostgreSQL is unreachable, [`TestDb::postgres`] returns `None` after printing
//! why, so the caller can skip — except with `CI=true`, where it panics: CI must not
//! pass by skipping the PostgreSQL backend.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::{Backend, Store};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database. Keep it alive for the test's duration (SQLite's directory is
/// deleted on drop).
pub struct TestDb {
    /// The URL to give to the server or the CLI.
    pub url: String,
    pub backend: Backend,
    /// The PostgreSQL schema, for `pg_dump -n`.
    pub schema: Option<String>,
    /// The SQLite file.
    pub path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("keyward.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            schema: None,
            path: Some(path),
            _dir: Some(dir),
        }
    }

    /// The base URL of the PostgreSQL server tests use.
    pub fn postgres_base_url() -> String {
        std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned())
    }

    pub async fn postgres() -> Option<Self> {
        let base = Self::postgres_base_url();
        let mut conn = match PgConnection::connect(&base).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL at {base} is required in CI and unreachable: {e}");
                }
                eprintln!("SKIPPED: PostgreSQL at {base} unreachable ({e}); set KEYWARD_TEST_POSTGRES_URL");
                return None;
            }
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let stale: Vec<String> = conn
            .fetch_all("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'kwtest\\_%'")
            .await
            .expect("list schemas")
            .iter()
            .map(|r| r.get::<String, _>(0))
            .filter(|name| name.split('_').nth(1).and_then(|t| t.parse::<u64>().ok()).is_some_and(|t| t + 3600 < now))
            .collect();
        for name in stale {
            let _ = conn.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str()).await;
        }
        let schema = format!("kwtest_{now}_{:08x}", rand::thread_rng().gen::<u32>());
        conn.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            backend: Backend::Postgres,
            schema: Some(schema),
            path: None,
            _dir: None,
        })
    }

    /// Connects and migrates.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// Everything the database holds, as text: the SQLite file with its WAL, or a
    /// `pg_dump` of the schema. For tests that assert no secret is stored in plain.
    pub fn dump(&self) -> Vec<u8> {
        match (&self.path, &self.schema) {
            (Some(path), _) => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    if let Ok(bytes) = std::fs::read(p) {
                        all.extend(bytes);
                    }
                }
                all
            }
            (_, Some(schema)) => {
                let out = std::process::Command::new("pg_dump")
                    .args(["--no-owner", "-n", schema, &Self::postgres_base_url()])
                    .output()
                    .expect("pg_dump is installed with the PostgreSQL client");
                assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
                out.stdout
            }
            _ => unreachable!("a test database is a file or a schema"),
        }
    }
}

impl Store {
    /// How many rows `table` holds (tests of the purge). Only the tables the purge
    /// touches are accepted.
    pub async fn row_count(&self, table: &str) -> i64 {
        assert!(
            ["oauth_tokens", "device_authorizations", "assertion_jtis", "web_sessions"].contains(&table),
            "not a purged table: {table}"
        );
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await.expect("count rows")
    }
}
