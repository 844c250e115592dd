//! `/admin/members…`: the organization's people and service accounts with their roles;
//! change a role, remove a person after a confirmation.
//!
//! Rules: those of [`crate::members`], shared with the API and the CLI — the new role's
//! permissions must all be held by the admin, and so must the member's current role's
//! (nobody changes or removes someone stronger than themselves); only an owner gives
//! or takes `owner`; the last owner stays (`409`). On top, for the pages: nobody
//! changes their own role or removes themselves (another admin must); a service
//! account is removed by deleting it on its own page. A removal revokes the member's
//! keys and tokens here for good. A change takes effect at once: the store writes the
//! change row other instances follow, and this instance's cache drops the member's
//! grants.

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use keyward_store::{Member, PrincipalKind};

use super::super::app::{Nav, Person, SignedIn};
use super::super::keys::{ConfirmPage, When};
use super::super::{html, query_param, redirect, CsrfForm, WebError};
use super::{givable_roles, member_refusal};
use crate::members::{self, MemberRuleError};
use crate::state::AppState;

/// The page's own permission; changes need [`super::ADMIN`], which every admin page needs.
const PAGE: &str = "members:read";

struct MemberRow {
    id: String,
    /// `person` or `service account`.
    kind: &'static str,
    is_account: bool,
    /// The e-mail of a person, the name of an account.
    label: String,
    display_name: String,
    role: String,
    joined_at: When,
    /// The signed-in person themselves: no change, no removal.
    is_you: bool,
    /// The roles this admin may give this member; empty when the member is out of reach
    /// (the admin's own row, or a stronger member).
    roles: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
struct MembersPage<'a> {
    nav: Nav,
    members: Vec<MemberRow>,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

async fn members_page(
    state: &AppState,
    p: &Person,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let now = Utc::now();
    let givable = givable_roles(&state.settings.roles, p);
    let you = p.user.id.to_string();
    let members = state
        .store
        .members(&p.org.id)
        .await?
        .into_iter()
        .map(|m| {
            let is_you = m.principal.kind == PrincipalKind::User && m.principal.id == you;
            let reachable = !is_you && p.acting().may_take(&state.settings.roles, &m.role).is_ok();
            let is_account = m.principal.kind == PrincipalKind::ServiceAccount;
            MemberRow {
                id: m.principal.id,
                kind: if is_account { "service account" } else { "person" },
                is_account,
                display_name: if m.display_name == m.label { String::new() } else { m.display_name },
                label: m.label,
                joined_at: When::of(m.joined_at, now),
                is_you,
                roles: if reachable { givable.clone() } else { Vec::new() },
                role: m.role,
            }
        })
        .collect();
    let page = MembersPage { nav: p.nav("members"), members, notice, error };
    Ok(html(status, &page, &p.cookies))
}

/// `GET /admin/members`.
pub async fn list(State(state): State<AppState>, SignedIn(p): SignedIn, req: Request) -> Result<Response, WebError> {
    super::require_admin(&p, PAGE)?;
    let notice = match query_param(req.uri(), "done").as_deref() {
        Some("role") => Some("The role was changed. It applies to every key and token of the member from now on."),
        Some("removed") => Some("The member was removed. Their keys and tokens in this organization no longer work."),
        _ => None,
    };
    members_page(&state, &p, StatusCode::OK, notice, None).await
}

/// A member of the current organization by a path id; anything else is `404`.
async fn member_of_org(state: &AppState, p: &Person, id: &str) -> Result<Member, WebError> {
    state.store.members(&p.org.id).await?.into_iter().find(|m| m.principal.id == id).ok_or(WebError::NotFound)
}

fn is_you(p: &Person, m: &Member) -> bool {
    m.principal.kind == PrincipalKind::User && m.principal.id == p.user.id.to_string()
}

/// `POST /admin/members/{id}/role` (form: `csrf`, `role`).
pub async fn set_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let p = super::admin(&state, &parts.headers, "/admin/members", PAGE).await?;
    let member = member_of_org(&state, &p, &id).await?;
    if is_you(&p, &member) {
        return Err(WebError::BadRequest("you cannot change your own role; ask another admin of this organization"));
    }
    let role = form.get("role").unwrap_or_default();
    if role != member.role {
        let changed = members::set_role(
            &state.store,
            &state.settings.roles,
            &p.org.id,
            p.acting(),
            &member.principal.id,
            role,
            &p.actor(),
        )
        .await;
        if let Err(e) = changed {
            let (status, message) = member_refusal(e)?;
            return members_page(&state, &p, status, None, Some(&message)).await;
        }
    }
    Ok(redirect("/admin/members?done=role", &p.cookies))
}

/// Refuses removing `member` before asking: oneself, a service account, or someone out
/// of reach (the rules are checked again, inside the removal's transaction).
fn check_removable(state: &AppState, p: &Person, member: &Member) -> Result<(), WebError> {
    if is_you(p, member) {
        return Err(WebError::BadRequest("you cannot remove yourself; ask another admin of this organization"));
    }
    if member.principal.kind == PrincipalKind::ServiceAccount {
        return Err(WebError::BadRequest("delete a service account on the Service accounts page"));
    }
    if p.acting().may_take(&state.settings.roles, &member.role).is_err() {
        return Err(WebError::Forbidden(
            "you cannot remove this member: their role holds permissions you lack, or they are an owner",
        ));
    }
    Ok(())
}

/// `GET /admin/members/{id}/remove`: the confirmation.
pub async fn confirm_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedIn(p): SignedIn,
) -> Result<Response, WebError> {
    super::require_admin(&p, PAGE)?;
    let member = member_of_org(&state, &p, &id).await?;
    check_removable(&state, &p, &member)?;
    let text = format!(
        "Removing {} ({}) from {} is immediate and final: every API key and token they hold here is revoked at once. \
         They can be added again later, but their keys stay revoked.",
        member.label, member.role, p.org.slug
    );
    let action = format!("/admin/members/{}/remove", member.principal.id);
    let page = ConfirmPage {
        nav: p.nav("members"),
        heading: "Remove this member?",
        text: &text,
        action: &action,
        button: "Remove member",
        cancel: "/admin/members",
    };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

/// `POST /admin/members/{id}/remove` (form: `csrf`, `confirm=yes`).
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let p = super::admin(&state, &parts.headers, "/admin/members", PAGE).await?;
    if form.get("confirm") != Some("yes") {
        return Err(WebError::BadRequest("confirm the removal on the confirmation page"));
    }
    let member = member_of_org(&state, &p, &id).await?;
    check_removable(&state, &p, &member)?;
    let removed =
        members::remove(&state.store, &state.settings.roles, &p.org.id, p.acting(), &member.principal.id, &p.actor())
            .await;
    match removed {
        Ok(_) | Err(MemberRuleError::Store(keyward_store::StoreError::NotFound)) => {}
        Err(e) => {
            let (status, message) = member_refusal(e)?;
            return members_page(&state, &p, status, None, Some(&message)).await;
        }
    }
    Ok(redirect("/admin/members?done=removed", &p.cookies))
}
