//! `org`, `user` and `member` commands (their `list` commands are in `lists`).

use std::path::Path;

use anyhow::anyhow;
use keyward_core::domain::{Email, Name, Slug};
use keyward_server::members::{self, Acting, MemberRuleError};
use keyward_store::{Actor, Org, Principal, StoreError, User};
use serde_json::json;

use crate::cli::{MemberCommand, OrgCommand, UserCommand};
use crate::context::{print_json, Context};

pub async fn org(config: Option<&Path>, cmd: OrgCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config).await?;
    let (slug, name, plan, json) = match cmd {
        OrgCommand::Create { slug, name, plan, json } => (slug, name, plan, json),
        OrgCommand::List { json } => return crate::lists::orgs(&ctx, json.json).await,
    };
    let slug = Slug::parse(&slug).map_err(|e| anyhow!(e.0))?;
    let name = Name::parse(name.as_deref().unwrap_or(slug.as_str())).map_err(|e| anyhow!(e.0))?;
    let plan = plan.parse().map_err(|e: keyward_core::domain::Invalid| anyhow!(e.0))?;
    let org = ctx.store.create_org(&slug, name.as_str(), plan).await.map_err(|e| match e {
        StoreError::Conflict(_) => anyhow!("organization {slug} already exists"),
        e => e.into(),
    })?;
    if json.json {
        print_json(&json!({ "id": org.id, "slug": org.slug, "name": org.name, "plan": org.plan }));
    } else {
        eprintln!("created organization {} ({}, plan {})", org.slug, org.name, org.plan);
        crate::out!("{}", org.id);
    }
    Ok(())
}

/// The argon2id hash of a password read from stdin.
async fn password_hash_from_stdin() -> anyhow::Result<String> {
    crate::password::read_hashed(crate::password::Source::Stdin).await
}

pub async fn user(config: Option<&Path>, cmd: UserCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config).await?;
    let (email, org, role, name, password_stdin, json) = match cmd {
        UserCommand::Create { email, org, role, name, password_stdin, json } => {
            (email, org, role, name, password_stdin, json)
        }
        UserCommand::SetPassword { email, password_stdin, json } => {
            let user = ctx.user(&email).await?;
            let source = crate::password::Source::of_this_process(password_stdin);
            let phc = crate::password::read_hashed(source).await?;
            ctx.store.set_password_hash(&user.id, &phc).await?;
            if json.json {
                print_json(&json!({ "id": user.id, "email": user.email, "password_set": true }));
            } else {
                eprintln!("set the password of {}", user.email);
            }
            return Ok(());
        }
        UserCommand::List { json } => return crate::lists::users(&ctx, json.json).await,
    };
    ctx.check_role(&role)?;
    let org = ctx.org(&org).await?;
    let email = Email::parse(&email).map_err(|e| anyhow!(e.0))?;
    let password_hash = if password_stdin { Some(password_hash_from_stdin().await?) } else { None };
    let (user, created) = match ctx.store.user_by_email(&email).await {
        Ok(user) => (user, false),
        Err(StoreError::NotFound) => {
            let default_name = email.as_str().split('@').next().unwrap_or_default().to_owned();
            let display = Name::parse(name.as_deref().unwrap_or(&default_name)).map_err(|e| anyhow!(e.0))?;
            (ctx.store.create_user(&email, display.as_str(), password_hash.as_deref()).await?, true)
        }
        Err(e) => return Err(e.into()),
    };
    ctx.store.add_member(&org.id, &Principal::user(&user.id), &role, &Actor::cli()).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            anyhow!("{email} is already a member of {}; use `keyward member set-role`", org.slug)
        }
        e => e.into(),
    })?;
    // An existing person's password changes only once the command has succeeded.
    if let (false, Some(phc)) = (created, &password_hash) {
        ctx.store.set_password_hash(&user.id, phc).await?;
    }
    if json.json {
        print_json(&json!({ "id": user.id, "email": user.email, "org": org.slug, "role": role, "created": created }));
    } else {
        let verb = if created { "created" } else { "added existing user" };
        eprintln!("{verb} {email} as {role} of {}", org.slug);
        crate::out!("{}", user.id);
    }
    Ok(())
}

pub async fn member(config: Option<&Path>, cmd: MemberCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config).await?;
    match cmd {
        MemberCommand::SetRole { member, role, json } => {
            ctx.check_role(&role)?;
            let (org, user) = ctx.member(&member).await?;
            let roles = &ctx.settings.roles;
            let before =
                members::set_role(&ctx.store, roles, &org.id, Acting::Operator, user.id.as_str(), &role, &Actor::cli())
                    .await
                    .map_err(|e| member_error(e, &org, &user))?;
            let old = before.role;
            if json.json {
                print_json(&json!({ "org": org.slug, "user": user.email, "role": role, "previous_role": old }));
            } else {
                eprintln!("{} is now {role} of {} (was {old})", user.email, org.slug);
            }
        }
        MemberCommand::Remove { member, json } => {
            let (org, user) = ctx.member(&member).await?;
            let roles = &ctx.settings.roles;
            let before = members::remove(&ctx.store, roles, &org.id, Acting::Operator, user.id.as_str(), &Actor::cli())
                .await
                .map_err(|e| member_error(e, &org, &user))?;
            let old = before.role;
            if json.json {
                print_json(&json!({ "org": org.slug, "user": user.email, "removed": true, "previous_role": old }));
            } else {
                eprintln!(
                    "removed {} from {}; their keys and tokens there are revoked for good (adding them back revives none)",
                    user.email, org.slug
                );
            }
        }
        MemberCommand::List { org, json } => crate::lists::members(&ctx, &org, json.json).await?,
    }
    Ok(())
}

/// A refused membership change, in words for the person at the terminal.
fn member_error(e: MemberRuleError, org: &Org, user: &User) -> anyhow::Error {
    match e {
        MemberRuleError::LastOwner => anyhow!(
            "{} is the last owner of {}: make another person owner first (`keyward member set-role --org {} --user EMAIL --role owner`)",
            user.email,
            org.slug,
            org.slug
        ),
        MemberRuleError::Store(StoreError::NotFound) => anyhow!("{} is not a member of {}", user.email, org.slug),
        e => e.into(),
    }
}
