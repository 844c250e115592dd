//! The `keyward` binary: the server (`serve`) and the admin commands, which work
//! directly on the configured database — no server needed.
//!
//! Admin commands print what they create on stdout — the one secret alone, or an id —
//! and every message on stderr, so `KEY=$(keyward key create …)` just works; `--json`
//! prints a JSON document instead.
//!
//! # Layout
//!
//! - `cli`: the command line, as clap types.
//! - `admin`: organizations, people, memberships.
//! - `lists`: `org list`, `user list`, `member list`.
//! - `password`: people's passwords, asked on the terminal or read from stdin.
//! - `keys`: key create, list, roll, revoke, import.
//! - `service_accounts`: service account add, import, list, rotate, delete.
//! - `context`: loading settings and opening the database (existing only, except for
//!   `migrate`), shared by the commands.
//! - `login`: `login`, `whoami`, `logout` — a device-flow client of a server; no
//!   configuration, no database.

mod admin;
mod cli;
mod context;
mod keys;
mod lists;
mod login;
mod password;
mod service_accounts;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate { json } => {
            // Opening the context applies the migrations; migrate may create the database.
            let ctx = context::Context::create(config).await?;
            let current = ctx.store.is_current().await?;
            if json.json {
                context::print_json(&serde_json::json!({ "migrations_current": current }));
            } else {
                eprintln!("migrations applied");
            }
            Ok(())
        }
        Command::Org(cmd) => admin::org(config, cmd).await,
        Command::User(cmd) => admin::user(config, cmd).await,
        Command::Member(cmd) => admin::member(config, cmd).await,
        Command::Key(cmd) => keys::run(config, cmd).await,
        Command::ServiceAccount(cmd) => service_accounts::run(config, cmd).await,
        Command::Login { server, scope, no_browser } => login::login(&server, scope.as_deref(), no_browser).await,
        Command::Whoami { json } => login::whoami(json.json).await,
        Command::Logout => login::logout().await,
    }
}

async fn serve(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let settings = keyward_server::Settings::load(config)?;
    keyward_server::startup::init_tracing(settings.log_format);
    let server = keyward_server::Server::build(settings).await?;
    // Tests and scripts read the bound address (port 0 picks a free one) from here.
    eprintln!("keyward listening on http://{}", server.local_addr());
    server.run(keyward_server::startup::shutdown_signal()).await
}
