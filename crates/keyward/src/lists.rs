//! `org list`, `user list` and `member list`: what the database holds, as a table on stdout
//! or, with `--json`, as `{"data": [record…]}` like the HTTP API's lists. `member list`
//! prints exactly the records of `GET /api/v1/members` (the same type serialises them).
//! Nothing secret is listed: a person's password shows only as whether one is set.

use chrono::{DateTime, Utc};
use keyward_server::http::org::MemberView;
use keyward_server::http::views::PrincipalView;
use keyward_store::{Org, User};
use serde_json::json;

use crate::context::{print_json, Context};

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn org_json(o: &Org) -> serde_json::Value {
    json!({ "id": o.id, "slug": o.slug, "name": o.name, "plan": o.plan, "created_at": o.created_at })
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "password_set": u.password_hash.is_some(),
        "created_at": u.created_at,
    })
}

/// `keyward org list`: every organization, by slug.
pub async fn orgs(ctx: &Context, json: bool) -> anyhow::Result<()> {
    let orgs = ctx.store.orgs().await?;
    if json {
        print_json(&json!({ "data": orgs.iter().map(org_json).collect::<Vec<_>>() }));
        return Ok(());
    }
    crate::out!("{:<36}  {:<24}  {:<10}  {:<16}  NAME", "ID", "SLUG", "PLAN", "CREATED (UTC)");
    for o in &orgs {
        crate::out!(
            "{:<36}  {:<24}  {:<10}  {:<16}  {}",
            o.id.as_str(),
            o.slug.as_str(),
            o.plan.as_str(),
            when(o.created_at),
            o.name
        );
    }
    if orgs.is_empty() {
        eprintln!("no organizations yet; create one with `keyward org create <slug>`");
    }
    Ok(())
}

/// `keyward user list`: every person, by e-mail address.
pub async fn users(ctx: &Context, json: bool) -> anyhow::Result<()> {
    let users = ctx.store.users().await?;
    if json {
        print_json(&json!({ "data": users.iter().map(user_json).collect::<Vec<_>>() }));
        return Ok(());
    }
    crate::out!("{:<36}  {:<32}  {:<8}  {:<16}  NAME", "ID", "EMAIL", "PASSWORD", "CREATED (UTC)");
    for u in &users {
        let password = if u.password_hash.is_some() { "set" } else { "-" };
        crate::out!(
            "{:<36}  {:<32}  {:<8}  {:<16}  {}",
            u.id.as_str(),
            u.email.as_str(),
            password,
            when(u.created_at),
            u.display_name
        );
    }
    if users.is_empty() {
        eprintln!("no people yet; add one with `keyward user create <email> --org <slug>`");
    }
    Ok(())
}

/// `keyward member list --org SLUG`: the organization's people, then its service accounts.
pub async fn members(ctx: &Context, org: &str, json: bool) -> anyhow::Result<()> {
    let org = ctx.org(org).await?;
    let members: Vec<MemberView> = ctx
        .store
        .members(&org.id)
        .await?
        .into_iter()
        .map(|m| MemberView {
            principal: PrincipalView::new(&m.principal, &m.label),
            display_name: m.display_name,
            role: m.role,
            joined_at: m.joined_at,
        })
        .collect();
    if json {
        print_json(&json!({ "data": members }));
        return Ok(());
    }
    crate::out!("{:<16}  {:<36}  {:<32}  {:<10}  JOINED (UTC)", "KIND", "ID", "EMAIL OR NAME", "ROLE");
    for m in &members {
        let p = &m.principal;
        let label = p.email.as_deref().or(p.name.as_deref()).unwrap_or_default();
        crate::out!("{:<16}  {:<36}  {:<32}  {:<10}  {}", p.kind, p.id, label, m.role, when(m.joined_at));
    }
    if members.is_empty() {
        eprintln!("{} has no members; add one with `keyward user create <email> --org {}`", org.slug, org.slug);
    }
    Ok(())
}
