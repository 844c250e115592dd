//! `serviceaccount` commands. The rules (plan, role, name, keys, the grace of a rotation)
//! are the server's own ([`keyward_server::service_accounts`]), so the CLI refuses exactly
//! what the API does; an admin command may give any configured role.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use keyward_core::ids::ServiceAccountId;
use keyward_core::legacy::BcryptHash;
use keyward_server::service_accounts::{self as rules, AccountRequest, AccountRuleError, OrgRef};
use keyward_store::{Actor, ServiceAccount, StoreError};
use serde_json::json;

use crate::cli::ServiceAccountCommand;
use crate::context::{print_json, Context};

fn account_json(a: &ServiceAccount) -> serde_json::Value {
    json!({
        "id": a.id,
        "kind": "service_account",
        "client_id": a.client_id,
        "name": a.name,
        "role": a.role,
        "created_at": a.created_at,
        "secrets": a.secrets.iter().map(|s| json!({ "prefix": s.prefix.as_str(), "created_at": s.created_at, "expires_at": s.expires_at })).collect::<Vec<_>>(),
        "public_keys": a.public_keys.iter().map(|k| json!({ "kid": k.kid(), "alg": k.alg().as_str() })).collect::<Vec<_>>(),
    })
}

pub async fn run(config: Option<&Path>, cmd: ServiceAccountCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config).await?;
    match cmd {
        ServiceAccountCommand::Add { org, name, role, public_keys, with_secret, json } => {
            let org = ctx.org(&org).await?;
            let mut texts = Vec::with_capacity(public_keys.len());
            for path in &public_keys {
                texts.push(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?);
            }
            let req = AccountRequest {
                name: name.unwrap_or_else(|| "service account".into()),
                role,
                secret: Some(with_secret || texts.is_empty()),
                public_keys: texts,
            };
            let (account, secret) = rules::create(
                &ctx.deployment(),
                OrgRef::from(&org),
                keyward_server::members::Acting::Operator,
                &req,
                &Actor::cli(),
            )
            .await?;
            if json.json {
                let mut out = account_json(&account);
                if let Some(s) = &secret {
                    out["client_secret"] = json!(s.expose());
                }
                print_json(&out);
            } else if let Some(s) = secret {
                eprintln!(
                    "created service account {} in {} (role {}), client id {}; its secret is shown once:",
                    account.name, org.slug, account.role, account.client_id
                );
                crate::out!("{}", s.expose());
            } else {
                eprintln!(
                    "created service account {} in {} (role {}) with {} public key(s); its client id:",
                    account.name,
                    org.slug,
                    account.role,
                    account.public_keys.len()
                );
                crate::out!("{}", account.client_id);
            }
        }
        ServiceAccountCommand::Import { org, client_id, bcrypt_hash, name, role, json } => {
            let org = ctx.org(&org).await?;
            let hash = BcryptHash::parse(&bcrypt_hash).map_err(|e| anyhow!("--bcrypt-hash: {}", e.0))?;
            let account = rules::import(
                &ctx.deployment(),
                OrgRef::from(&org),
                &client_id,
                &hash,
                name.as_deref(),
                role.as_deref(),
                &Actor::cli(),
            )
            .await?;
            if json.json {
                print_json(&account_json(&account));
            } else {
                eprintln!(
                    "imported client {} into {} as service account {} (role {})",
                    account.client_id, org.slug, account.id, account.role
                );
                crate::out!("{}", account.id);
            }
        }
        ServiceAccountCommand::List { org, json } => {
            let org = ctx.org(&org).await?;
            let accounts = ctx.store.service_accounts(&org.id).await?;
            if json.json {
                print_json(&json!({ "data": accounts.iter().map(account_json).collect::<Vec<_>>() }));
            } else {
                crate::out!("{:<35}  {:<36}  {:<20}  {:<10}  CREDENTIALS", "ID", "CLIENT ID", "NAME", "ROLE");
                for a in &accounts {
                    crate::out!(
                        "{:<35}  {:<36}  {:<20}  {:<10}  {} secret(s), {} key(s)",
                        a.id,
                        a.client_id,
                        a.name,
                        a.role,
                        a.secrets.len(),
                        a.public_keys.len()
                    );
                }
            }
        }
        ServiceAccountCommand::Rotate { org, id, grace, json } => {
            let org = ctx.org(&org).await?;
            let parsed =
                ServiceAccountId::parse(&id).ok_or_else(|| anyhow!("{id:?} is not a service account id (sa_…)"))?;
            let grace_seconds = grace.seconds()?;
            let (account, secret) = rules::rotate(&ctx.deployment(), &org.id, &parsed, grace_seconds, &Actor::cli())
                .await
                .map_err(|e| match e {
                    AccountRuleError::Store(StoreError::NotFound) => {
                        anyhow!("no service account {id} in {}", org.slug)
                    }
                    AccountRuleError::Invalid(m) => anyhow!("--grace {}: {m}", grace.grace),
                    e => e.into(),
                })?;
            if json.json {
                let mut out = account_json(&account);
                out["client_secret"] = json!(secret.expose());
                print_json(&out);
            } else {
                let old = if grace_seconds == 0 {
                    "the old secrets stop working everywhere within a second".to_owned()
                } else {
                    let until = chrono::Utc::now() + chrono::Duration::seconds(grace_seconds);
                    format!("the old secrets work until {} UTC", until.format("%Y-%m-%d %H:%M:%S"))
                };
                eprintln!(
                    "rotated the client secret of {} ({}, client id {}); {old}; the new secret is shown once:",
                    account.name, account.id, account.client_id
                );
                crate::out!("{}", secret.expose());
            }
        }
        ServiceAccountCommand::Delete { org, id, json } => {
            let org = ctx.org(&org).await?;
            let parsed =
                ServiceAccountId::parse(&id).ok_or_else(|| anyhow!("{id:?} is not a service account id (sa_…)"))?;
            match ctx.store.delete_service_account(&org.id, &parsed, &Actor::cli()).await {
                Err(StoreError::NotFound) => return Err(anyhow!("no service account {id} in {}", org.slug)),
                other => other?,
            }
            if json.json {
                print_json(&json!({ "id": id, "deleted": true }));
            } else {
                eprintln!("deleted service account {id}; its secrets, keys and tokens no longer work");
            }
        }
    }
    Ok(())
}
