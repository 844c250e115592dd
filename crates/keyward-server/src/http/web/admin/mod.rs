//! `/admin/…`: the organization admin's pages — members and their roles, service
//! accounts (create with a client secret or an uploaded public key, rotate, delete), and
//! the audit log. Every page acts on the current organization only: an id of another
//! organization's member or account is `404`.
//!
//! **Who may see them.** Every admin page needs `members:write` — the permission that
//! makes someone an organization admin (`owner` and `admin` hold `*`) — on top of the
//! permission of the page itself (`members:read`, `service_accounts:write`,
//! `audit:read`). A viewer or a member (who hold `members:read`) gets `403`, and the
//! navigation hides the links by the same rule ([`super::app::Person::nav`]).
//!
//! **The rules are the API's own.** Accounts are made and rotated by
//! [`crate::service_accounts`]; roles, removals and deletions go through the store,
//! which writes the change row other instances follow, and this instance's grant cache
//! drops the member at once, as the API does.
//!
//! # Layout
//!
//! - [`members`]: `/admin/members…`: list, change a role, remove after a confirmation.
//! - [`service_accounts`]: `/admin/service-accounts…`: list, create, rotate, delete.
//! - [`audit`]: `/admin/audit`: newest first, 50 a page, filtered by action and actor.

pub mod audit;
pub mod members;
pub mod service_accounts;

use axum::http::{HeaderMap, StatusCode};
use keyward_core::permission::Roles;

pub use super::app::ADMIN;
use super::app::{person, Person};
use super::WebError;
use crate::state::AppState;

/// The signed-in person if they may use an admin page needing `page` (and [`ADMIN`]);
/// [`WebError::SignIn`] for nobody signed in; `403` otherwise.
pub async fn admin(state: &AppState, headers: &HeaderMap, back: &str, page: &str) -> Result<Person, WebError> {
    let p = person(state, headers, back).await?;
    require_admin(&p, page)?;
    Ok(p)
}

/// `403` unless the person holds [`ADMIN`] and `page`.
pub fn require_admin(p: &Person, page: &str) -> Result<(), WebError> {
    p.require(ADMIN)?;
    p.require(page)
}

/// The roles `p` may give: those whose every permission they hold (nobody makes a
/// member, or an account, stronger than themselves), and `owner` only for an owner
/// ([`crate::members`]). In the configuration's order.
pub fn givable_roles(roles: &Roles, p: &Person) -> Vec<String> {
    crate::members::givable_roles(roles, p.acting())
}

/// The status and message of a refused membership change ([`crate::members`]): `403` not
/// allowed, `409` the last owner, `422` an unknown role; a store failure stays an error.
pub fn member_refusal(e: crate::members::MemberRuleError) -> Result<(StatusCode, String), WebError> {
    use crate::members::MemberRuleError;
    match e {
        MemberRuleError::Invalid(m) => Ok((StatusCode::UNPROCESSABLE_ENTITY, m)),
        MemberRuleError::Forbidden(m) => Ok((StatusCode::FORBIDDEN, m)),
        e @ MemberRuleError::LastOwner => Ok((StatusCode::CONFLICT, e.to_string())),
        MemberRuleError::Store(keyward_store::StoreError::NotFound) => Err(WebError::NotFound),
        MemberRuleError::Store(e) => Err(e.into()),
    }
}
