//! The command line as clap types: every command, flag and help text (docs/cli.md
//! describes them for people).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keyward", version, about = "API keys, service accounts and OAuth for your API")]
pub struct Cli {
    /// Configuration file (default: keyward.toml when present). KEYWARD_* variables override it.
    #[arg(long, global = true, env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations (serve also does this at start).
    Migrate {
        #[command(flatten)]
        json: Json,
    },
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// People.
    #[command(subcommand)]
    User(UserCommand),
    /// Memberships and roles.
    #[command(subcommand)]
    Member(MemberCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Service accounts: non-human members with a client secret or a public key.
    #[command(subcommand, name = "serviceaccount", alias = "service-account")]
    ServiceAccount(ServiceAccountCommand),
    /// Sign in to a keyward server with the device flow (a code to approve in a browser);
    /// the tokens are kept in $XDG_CONFIG_HOME/keyward/credentials.json, mode 0600.
    Login {
        /// The server's base URL, e.g. https://keys.example.com.
        #[arg(long)]
        server: String,
        /// Space-separated permissions to ask for (default: all the person holds).
        #[arg(long)]
        scope: Option<String>,
        /// Do not try to open a browser; only print the address and the code.
        #[arg(long)]
        no_browser: bool,
    },
    /// Who the stored sign-in is (refreshing its token when it has expired).
    Whoami {
        #[command(flatten)]
        json: Json,
    },
    /// End the stored sign-in at the server and delete it.
    Logout,
}

#[derive(Subcommand)]
pub enum ServiceAccountCommand {
    /// Make a service account; prints its client secret alone on stdout (with
    /// --public-key and no secret: its client id).
    Add {
        #[arg(long)]
        org: String,
        /// Default: "service account".
        #[arg(long)]
        name: Option<String>,
        /// Default: member.
        #[arg(long)]
        role: Option<String>,
        /// A PEM or JWK (or JWKS) file with the public key(s) that sign its assertions;
        /// then no client secret is made unless --with-secret is given.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
        /// Make a client secret too when public keys are given.
        #[arg(long)]
        with_secret: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Register an existing client whose secret is kept as a bcrypt hash
    /// ($2a$/$2b$/$2y$); re-hashed to the fast form on its first use.
    Import {
        #[arg(long)]
        org: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        bcrypt_hash: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List an organization's service accounts.
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        json: Json,
    },
    /// Give a service account a new client secret; prints it alone on stdout. The old
    /// secrets keep working for --grace, then stop.
    Rotate {
        #[arg(long)]
        org: String,
        /// The account's id (sa_…).
        id: String,
        #[command(flatten)]
        grace: Grace,
        #[command(flatten)]
        json: Json,
    },
    /// Delete a service account: its secrets, keys and tokens stop working at once.
    Delete {
        #[arg(long)]
        org: String,
        /// The account's id (sa_…).
        id: String,
        #[command(flatten)]
        json: Json,
    },
}

/// `--grace D`: how long an old secret keeps working after a roll or rotation.
#[derive(Args)]
pub struct Grace {
    /// How long the old secret keeps working: 0 (the default: it stops now) up to 7d;
    /// a duration (90s, 10m, 1h, 2d) or whole seconds, like the API's grace_seconds.
    #[arg(long = "grace", value_name = "D", default_value = "0")]
    pub grace: String,
}

impl Grace {
    /// The grace period in seconds, for the same rule the API applies to `grace_seconds`
    /// (which also bounds it). Whole seconds only: a fraction would be cut silently.
    pub fn seconds(&self) -> anyhow::Result<i64> {
        let text = self.grace.trim();
        let invalid = || anyhow::anyhow!("--grace {text:?} is not a duration; write e.g. 0, 300, 10m, 1h or 2d");
        let seconds = match text.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                let d = humantime::parse_duration(text).map_err(|_| invalid())?;
                if d.subsec_nanos() != 0 {
                    return Err(anyhow::anyhow!("--grace {text:?}: give whole seconds"));
                }
                d.as_secs()
            }
        };
        i64::try_from(seconds).map_err(|_| invalid())
    }
}

#[derive(Args)]
pub struct Json {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A person in an organization: `--org SLUG --user EMAIL`.
#[derive(Args)]
pub struct Member {
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub user: String,
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization; prints its id.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "free", value_parser = ["free", "pro", "enterprise"])]
        plan: String,
        #[command(flatten)]
        json: Json,
    },
    /// List every organization.
    List {
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a person (or reuse an existing one) and make them a member; prints the user id.
    Create {
        email: String,
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "member")]
        role: String,
        /// Display name (default: the part of the e-mail before the @).
        #[arg(long)]
        name: Option<String>,
        /// Read a password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Set a person's password (for the sign-in page). On a terminal it is asked for twice,
    /// without echo; otherwise, or with --password-stdin, the first line of stdin is read.
    SetPassword {
        email: String,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        json: Json,
    },
    /// List every person, with whether they have a password for the sign-in page.
    List {
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Change a member's role; takes effect on their keys at the next request.
    SetRole {
        #[command(flatten)]
        member: Member,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        json: Json,
    },
    /// Remove a member; all their keys in the organization stop working at once.
    Remove {
        #[command(flatten)]
        member: Member,
        #[command(flatten)]
        json: Json,
    },
    /// List an organization's members: people and service accounts, with their roles.
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints the secret alone (shown this once).
    Create {
        #[command(flatten)]
        member: Member,
        #[arg(long)]
        name: String,
        /// A permission for the key (repeatable); none: the key inherits the user's.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List keys of an organization (or of one person in it).
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        include_revoked: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Give a key a new secret, keeping its settings; prints the new secret alone (shown
    /// this once). The old secret keeps working for --grace, then stops.
    Roll {
        key_id: String,
        #[command(flatten)]
        grace: Grace,
        #[command(flatten)]
        json: Json,
    },
    /// Revoke a key, at once and for good.
    Revoke {
        key_id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Import a key from a previous system, keeping its hash; prints the key id.
    Import {
        #[command(flatten)]
        member: Member,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        source: ImportSource,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ImportSource {
    /// SHA-256 of the key, hex.
    #[arg(long)]
    pub sha256: Option<String>,
    /// bcrypt hash of the key ($2a$, $2b$ or $2y$).
    #[arg(long)]
    pub bcrypt: Option<String>,
    /// Read the plain key from stdin (hashed at once; never stored).
    #[arg(long)]
    pub plain_stdin: bool,
}

#[cfg(test)]
mod tests {
    use super::Grace;

    fn grace(text: &str) -> anyhow::Result<i64> {
        Grace { grace: text.into() }.seconds()
    }

    #[test]
    fn grace_is_seconds_or_a_duration() {
        assert_eq!(grace("0").unwrap(), 0);
        assert_eq!(grace("300").unwrap(), 300);
        assert_eq!(grace("10m").unwrap(), 600);
        assert_eq!(grace("1h").unwrap(), 3600);
        assert_eq!(grace("7d").unwrap(), 604_800);
        assert!(grace("1.5s").is_err(), "no fractions");
        assert!(grace("soon").is_err());
        assert!(grace("-5").is_err());
        // Above 7 days parses; the shared rule refuses it, as the API does.
        assert_eq!(grace("8d").unwrap(), 691_200);
    }
}
