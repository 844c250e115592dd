//! `keyward-bench`: fills a database with one organization, one admin and N API
//! keys, through the store's own write path (so the rows are exactly what the server
//! makes), and prints a sample of the plain keys, one per line, for the load generator.

use std::io::Write;

use clap::Parser;
use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::permission::PermissionSet;
use keyward_core::secret::{SecretFormat, SecretKind};
use keyward_store::{Actor, NewApiKey, Principal, Store};

#[derive(Parser)]
struct Args {
    /// Database URL, e.g. sqlite:///tmp/bench.db.
    #[arg(long)]
    database: String,
    /// How many keys to store.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// How many of them to print (the last ones made).
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    /// Concurrent writers (PostgreSQL benefits; SQLite serialises anyway).
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// Keys per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Also print this many well-formed keys that are NOT stored, to this file.
    #[arg(long)]
    wrong_file: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    wrong: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = Store::connect(&args.database).await?;
    store.migrate().await?;
    let org = store.create_org(&Slug::parse("bench")?, "Bench", Plan::Enterprise).await?;
    let user = store.create_user(&Email::parse("bench@example.com")?, "Bench", None).await?;
    store.add_member(&org.id, &Principal::user(&user.id), "admin", &Actor::cli()).await?;
    let format = SecretFormat::new("kw")?;
    let perms = PermissionSet::parse(["projects:read", "projects:write"])?;
    let started = std::time::Instant::now();
    let per_writer = args.keys.div_ceil(args.writers);
    let batch_size = args.batch.max(1);
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let (store, org_id, user_id, format, perms) =
            (store.clone(), org.id.clone(), user.id.clone(), format.clone(), perms.clone());
        let count = per_writer.min(args.keys.saturating_sub(w * per_writer));
        let keep = args.sample.div_ceil(args.writers);
        tasks.push(tokio::spawn(async move {
            let mut sample = Vec::new();
            let mut batch = Vec::with_capacity(batch_size);
            for i in 0..count {
                let secret = format.generate(SecretKind::ApiKey);
                let new = NewApiKey {
                    org_id: org_id.clone(),
                    principal: Principal::user(&user_id),
                    name: format!("bench-{w}-{i}"),
                    prefix: secret.display_prefix(),
                    permissions: Some(perms.clone()),
                    expires_at: None,
                };
                batch.push((new, secret.hash()));
                if i + keep >= count {
                    sample.push(secret.expose().to_owned());
                }
                if batch.len() == batch_size || i + 1 == count {
                    store.create_api_keys(&batch, &Actor::cli()).await?;
                    batch.clear();
                }
            }
            anyhow::Ok(sample)
        }));
    }
    let mut out = std::io::stdout().lock();
    for t in tasks {
        for key in t.await?? {
            writeln!(out, "{key}")?;
        }
    }
    eprintln!("seeded {} keys in {:.1?}", args.keys, started.elapsed());
    if let Some(path) = args.wrong_file {
        let wrong: Vec<String> =
            (0..args.wrong).map(|_| format.generate(SecretKind::ApiKey).expose().to_owned()).collect();
        std::fs::write(path, wrong.join("\n") + "\n")?;
    }
    Ok(())
}
