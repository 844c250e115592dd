//! What every admin command needs: the checked settings and a migrated store, plus the
//! lookups that turn command-line names into records with clear errors.
//!
//! Admin commands open a database that already exists and never create one: run from the
//! wrong directory, the default `sqlite://keyward.db` would otherwise make a new, empty file
//! there, and the next commands would split the data between two databases. Only `serve`
//! and `migrate` create it ([`Context::create`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, Context as _};
use keyward_core::domain::{Email, Slug};
use keyward_server::deployment::Deployment;
use keyward_server::Settings;
use keyward_store::{Backend, Org, Store, StoreError, User};

pub struct Context {
    pub settings: Settings,
    pub store: Store,
}

impl Context {
    /// What the rule modules need, from this command's store and settings.
    pub fn deployment(&self) -> Deployment<'_> {
        Deployment::new(&self.store, &self.settings)
    }

    /// Opens the configured database, which must exist, and applies pending migrations.
    pub async fn open(config: Option<&Path>) -> anyhow::Result<Self> {
        let settings = Settings::load(config)?;
        let url = existing_database_url(&settings.database_url, config)?;
        Self::connect(settings, &url).await
    }

    /// Opens the configured database, creating a SQLite file that does not exist yet
    /// (`keyward migrate`).
    pub async fn create(config: Option<&Path>) -> anyhow::Result<Self> {
        let settings = Settings::load(config)?;
        let url = settings.database_url.clone();
        Self::connect(settings, &url).await
    }

    async fn connect(settings: Settings, url: &str) -> anyhow::Result<Self> {
        let store = Store::connect(url).await.context("cannot connect to the database (database_url)")?;
        store.migrate().await.context("cannot apply database migrations")?;
        Ok(Self { settings, store })
    }

    pub async fn org(&self, slug: &str) -> anyhow::Result<Org> {
        let slug = Slug::parse(slug).map_err(|e| anyhow!(e.0))?;
        match self.store.org_by_slug(&slug).await {
            Err(StoreError::NotFound) => {
                Err(anyhow!("no organization {slug}; create it with `keyward org create {slug}`"))
            }
            other => Ok(other?),
        }
    }

    pub async fn user(&self, email: &str) -> anyhow::Result<User> {
        let email = Email::parse(email).map_err(|e| anyhow!(e.0))?;
        match self.store.user_by_email(&email).await {
            Err(StoreError::NotFound) => {
                Err(anyhow!("no user {email}; create it with `keyward user create {email} --org …`"))
            }
            other => Ok(other?),
        }
    }

    /// The organization and person named by `--org` and `--user`.
    pub async fn member(&self, m: &crate::cli::Member) -> anyhow::Result<(Org, User)> {
        Ok((self.org(&m.org).await?, self.user(&m.user).await?))
    }

    /// The user's role in the organization, or an error saying they are not a member.
    pub async fn role(&self, org: &Org, user: &User) -> anyhow::Result<String> {
        self.store
            .role_of(&org.id, user.id.as_str())
            .await?
            .ok_or_else(|| anyhow!("{} is not a member of {}", user.email, org.slug))
    }

    pub fn check_role(&self, role: &str) -> anyhow::Result<()> {
        if self.settings.roles.role(role).is_some() {
            Ok(())
        } else {
            let known: Vec<&str> = self.settings.roles.names().collect();
            Err(anyhow!("unknown role {role:?}; the configured roles are {}", known.join(", ")))
        }
    }
}

/// The URL to open an existing database with. For SQLite the file must exist, and the URL
/// gets `mode=rw` (unless it names a mode itself), so that SQLite does not create the file
/// either, should it vanish between this check and the connection. A PostgreSQL database
/// is never created by keyward: the server refuses a database name it does not have.
fn existing_database_url(url: &str, config: Option<&Path>) -> anyhow::Result<String> {
    if Backend::of_url(url) != Some(Backend::Sqlite) {
        return Ok(url.to_owned());
    }
    let Some(file) = sqlite_file(url)? else { return Ok(url.to_owned()) };
    if !file.exists() {
        return Err(anyhow!(missing_database(&file, url, &url_source(config))));
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else {
        format!("{url}{}mode=rw", if url.contains('?') { '&' } else { '?' })
    })
}

/// The file a SQLite URL names, as sqlx reads the URL (a relative path is relative to the
/// working directory); `None` for an in-memory database.
fn sqlite_file(url: &str) -> anyhow::Result<Option<PathBuf>> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| anyhow!("invalid configuration: `database_url`: {e}"))?;
    let in_memory = url.starts_with("sqlite::memory:") || url.contains("mode=memory");
    Ok((!in_memory).then(|| options.get_filename().to_path_buf()))
}

/// Where the database URL came from, for the message about a missing database.
fn url_source(config: Option<&Path>) -> String {
    if std::env::var_os("KEYWARD_DATABASE_URL").is_some() {
        "from KEYWARD_DATABASE_URL".into()
    } else if let Some(file) = config {
        format!("with the configuration {}", file.display())
    } else if Path::new("keyward.toml").exists() {
        "with ./keyward.toml".into()
    } else {
        "the default: no --config, no ./keyward.toml, no KEYWARD_DATABASE_URL".into()
    }
}

/// Names the file that was looked for, where it came from, and the ways to the right one.
fn missing_database(file: &Path, url: &str, source: &str) -> String {
    let shown = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    format!(
        "no database at {} (database_url {url:?}, {source}); admin commands never create one. \
         Run this where `keyward serve` runs, or point at its database with --config FILE or \
         KEYWARD_DATABASE_URL=sqlite:///path/to/keyward.db (or a postgres:// URL); \
         to start a new database here, run `keyward migrate` first",
        shown.display()
    )
}

/// Writes a line on stdout. A reader that went away (`keyward key list | head`) ends
/// the command quietly, as a broken pipe ends any other Unix tool, instead of a panic.
pub fn write_stdout(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// `println!` for command output: see [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::context::write_stdout(format_args!($($arg)*)) };
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    crate::out!("{}", serde_json::to_string_pretty(value).expect("JSON values serialise"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_names_its_file() {
        assert_eq!(sqlite_file("sqlite://keyward.db").unwrap(), Some(PathBuf::from("keyward.db")));
        assert_eq!(
            sqlite_file("sqlite:///var/lib/kw/keyward.db?mode=rwc").unwrap(),
            Some("/var/lib/kw/keyward.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:").unwrap(), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory").unwrap(), None);
    }

    #[test]
    fn an_existing_file_is_opened_without_create() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyward.db");
        std::fs::write(&file, b"").unwrap();
        let url = format!("sqlite://{}", file.display());
        assert_eq!(existing_database_url(&url, None).unwrap(), format!("{url}?mode=rw"));
        let with_query = format!("{url}?cache=private");
        assert_eq!(existing_database_url(&with_query, None).unwrap(), format!("{with_query}&mode=rw"));
        let explicit = format!("{url}?mode=ro");
        assert_eq!(existing_database_url(&explicit, None).unwrap(), explicit, "a mode the URL names is kept");
        let pg = "postgres://postgres@127.0.0.1/keyward";
        assert_eq!(existing_database_url(pg, None).unwrap(), pg, "PostgreSQL is never created by keyward");
    }

    #[test]
    fn a_missing_file_is_named_with_the_ways_to_the_right_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyward.db");
        let url = format!("sqlite://{}", file.display());
        let message = existing_database_url(&url, Some(Path::new("/etc/keyward.toml"))).unwrap_err().to_string();
        assert!(message.starts_with(&format!("no database at {} ", file.display())), "{message}");
        for part in ["--config FILE", "KEYWARD_DATABASE_URL", "keyward migrate", "keyward serve"] {
            assert!(message.contains(part), "{part}: {message}");
        }
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(!file.exists(), "nothing was created");
    }
}
