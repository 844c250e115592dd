//! `key` commands. The rules (names, permissions held by the owner, expiry, the grace of a
//! roll) are the server's own ([`keyward_server::keys`]), so the CLI refuses exactly what
//! the API does.

use std::io::Read;
use std::path::Path;

use anyhow::anyhow;
use chrono::Utc;
use keyward_core::ids::KeyId;
use keyward_core::legacy::{BcryptHash, ImportedHash};
use keyward_core::secret::SecretHash;
use keyward_server::keys::{self, Creator, Imported, KeyRequest, KeyRuleError};
use keyward_store::{Actor, ApiKey, KeyScope, Principal, StoreError};
use serde_json::json;

use crate::cli::{ImportSource, KeyCommand};
use crate::context::{print_json, Context};

fn rule_error(e: KeyRuleError) -> anyhow::Error {
    match e {
        KeyRuleError::NotHeld(p) => anyhow!("the user does not hold {p}, so a key of theirs cannot have it"),
        e => anyhow!(e),
    }
}

fn key_json(key: &ApiKey) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "owner": key.principal.id,
        "permissions": key.permissions.as_ref().map(|p| p.to_strings()),
        "created_at": key.created_at,
        "updated_at": key.updated_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    })
}

pub async fn run(config: Option<&Path>, cmd: KeyCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config).await?;
    match cmd {
        KeyCommand::Create { member, name, permissions, expires_in, json } => {
            let (org, user) = ctx.member(&member).await?;
            let holds = ctx.settings.roles.permissions_of(&ctx.role(&org, &user).await?);
            let expires_at = match expires_in {
                Some(text) => {
                    let d = humantime::parse_duration(&text)
                        .map_err(|_| anyhow!("--expires-in {text:?} is not a duration; write e.g. 30d or 12h"))?;
                    Some(Utc::now() + chrono::Duration::from_std(d).map_err(|_| anyhow!("--expires-in is too long"))?)
                }
                None => None,
            };
            let req = KeyRequest { name, permissions: (!permissions.is_empty()).then_some(permissions), expires_at };
            let creator = Creator { holds: &holds, restricted: false };
            let (key, secret) =
                keys::create(&ctx.deployment(), &org.id, &Principal::user(&user.id), &creator, &req, &Actor::cli())
                    .await
                    .map_err(rule_error)?;
            if json.json {
                let mut out = key_json(&key);
                out["key"] = json!(secret.expose());
                print_json(&out);
            } else {
                eprintln!(
                    "created key {} ({}) for {} in {}; it is shown once:",
                    key.id, key.name, user.email, org.slug
                );
                crate::out!("{}", secret.expose());
            }
        }
        KeyCommand::List { org, user, include_revoked, json } => {
            let org = ctx.org(&org).await?;
            let principal_id = match user {
                Some(email) => Some(ctx.user(&email).await?.id.to_string()),
                None => None,
            };
            let keys =
                ctx.store.list_api_keys(&KeyScope { org_id: org.id.clone(), principal_id }, include_revoked).await?;
            if json.json {
                print_json(&json!({ "data": keys.iter().map(key_json).collect::<Vec<_>>() }));
            } else {
                crate::out!(
                    "{:<36}  {:<20}  {:<12}  {:<20}  {:<20}  PERMISSIONS",
                    "ID",
                    "NAME",
                    "PREFIX",
                    "LAST USED",
                    "EXPIRES"
                );
                let when = |t: Option<chrono::DateTime<Utc>>| {
                    t.map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                };
                for k in &keys {
                    let perms = k.permissions.as_ref().map_or("(inherits)".to_owned(), |p| p.to_strings().join(","));
                    let status = if k.revoked_at.is_some() { " [revoked]" } else { "" };
                    crate::out!(
                        "{:<36}  {:<20}  {:<12}  {:<20}  {:<20}  {perms}{status}",
                        k.id,
                        k.name,
                        k.prefix.as_str(),
                        when(k.last_used_at),
                        when(k.expires_at)
                    );
                }
                // A running server writes uses in batches; its own lists (the API, the
                // settings page) also show the ones it has not written yet.
                eprintln!(
                    "times are UTC; LAST USED is as of the servers' last write of usage (every {}, usage_flush_interval)",
                    humantime::format_duration(ctx.settings.usage_flush_interval)
                );
            }
        }
        KeyCommand::Roll { key_id, grace, json } => {
            let id = KeyId::parse(&key_id).ok_or_else(|| anyhow!("{key_id:?} is not a key id (key_…)"))?;
            let grace_seconds = grace.seconds()?;
            let (key, secret) =
                keys::roll(&ctx.deployment(), None, &id, grace_seconds, &Actor::cli()).await.map_err(|e| match e {
                    KeyRuleError::Store(StoreError::NotFound) => anyhow!("no live key {key_id}"),
                    KeyRuleError::Invalid(m) => anyhow!("--grace {}: {m}", grace.grace),
                    e => rule_error(e),
                })?;
            if json.json {
                let mut out = key_json(&key);
                out["key"] = json!(secret.expose());
                print_json(&out);
            } else {
                let old = if grace_seconds == 0 {
                    "the old secret stops working everywhere within a second".to_owned()
                } else {
                    let until = Utc::now() + chrono::Duration::seconds(grace_seconds);
                    format!("the old secret works until {} UTC", until.format("%Y-%m-%d %H:%M:%S"))
                };
                eprintln!("rolled key {} ({}); {old}; the new secret is shown once:", key.id, key.name);
                crate::out!("{}", secret.expose());
            }
        }
        KeyCommand::Revoke { key_id, json } => {
            let id = KeyId::parse(&key_id).ok_or_else(|| anyhow!("{key_id:?} is not a key id (key_…)"))?;
            let key = ctx.store.revoke_api_key(None, &id, &Actor::cli()).await.map_err(|e| match e {
                StoreError::NotFound => anyhow!("no live key {key_id}"),
                e => e.into(),
            })?;
            if json.json {
                print_json(&key_json(&key));
            } else {
                eprintln!("revoked key {} ({}); it stops working everywhere within a second", key.id, key.name);
            }
        }
        KeyCommand::Import { member, name, source, json } => {
            let (org, user) = ctx.member(&member).await?;
            ctx.role(&org, &user).await?;
            let imported = imported(source)?;
            let key = keys::import(&ctx.store, &org.id, &Principal::user(&user.id), &name, imported, &Actor::cli())
                .await
                .map_err(|e| match e {
                    KeyRuleError::Store(StoreError::Conflict(_)) => anyhow!("this key was already imported"),
                    e => rule_error(e),
                })?;
            if json.json {
                print_json(&key_json(&key));
            } else {
                eprintln!(
                    "imported key {} ({}) for {}; it works via HTTP Basic and Bearer",
                    key.id, key.name, user.email
                );
                crate::out!("{}", key.id);
            }
        }
    }
    Ok(())
}

fn imported(source: ImportSource) -> anyhow::Result<Imported> {
    if let Some(hex) = source.sha256 {
        let hash = SecretHash::from_hex(&hex).ok_or_else(|| anyhow!("--sha256 takes 64 hex characters"))?;
        return Ok(Imported::Hash(ImportedHash::Sha256(hash)));
    }
    if let Some(hash) = source.bcrypt {
        return Ok(Imported::Hash(ImportedHash::Bcrypt(BcryptHash::parse(&hash).map_err(|e| anyhow!(e.0))?)));
    }
    let mut plain = String::new();
    std::io::stdin().read_to_string(&mut plain)?;
    Ok(Imported::Plain(plain))
}
