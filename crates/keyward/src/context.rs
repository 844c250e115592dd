//! What every admin command needs: the checked settings and a migrated store, plus the
//! lookups that turn command-line names into records with clear errors.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use keyward_core::domain::{Email, Slug};
use keyward_server::Settings;
use keyward_store::{Org, Store, StoreError, User};

pub struct Context {
    pub settings: Settings,
    pub store: Store,
}

impl Context {
    pub async fn open(config: Option<&Path>) -> anyhow::Result<Self> {
        let settings = Settings::load(config)?;
        let store =
            Store::connect(&settings.database_url).await.context("cannot connect to the database (database_url)")?;
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
