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

use axum::http::HeaderMap;
use axum::response::Response;
use keyward_core::permission::{PermissionSet, Roles};

use super::app::{person, Person};
use super::WebError;
use crate::state::AppState;

/// What makes someone an organization admin: needed on every admin page.
pub const ADMIN: &str = "members:write";

/// The signed-in person if they may use an admin page needing `page` (and [`ADMIN`]);
/// `Ok(Err(redirect))` to `/login` for nobody signed in; `403` otherwise.
pub async fn admin(
    state: &AppState,
    headers: &HeaderMap,
    back: &str,
    page: &str,
) -> Result<Result<Person, Response>, WebError> {
    let p = match person(state, headers, back).await? {
        Ok(p) => p,
        Err(to_login) => return Ok(Err(to_login)),
    };
    require_admin(&p, page)?;
    Ok(Ok(p))
}

/// `403` unless the person holds [`ADMIN`] and `page`.
pub fn require_admin(p: &Person, page: &str) -> Result<(), WebError> {
    p.require(ADMIN)?;
    p.require(page)
}

/// The roles someone holding `holds` may give: those whose every permission they hold
/// (nobody makes a member, or an account, stronger than themselves). In the
/// configuration's order.
pub fn givable_roles(roles: &Roles, holds: &PermissionSet) -> Vec<String> {
    roles
        .names()
        .filter(|name| roles.role(name).is_some_and(|perms| perms.iter().all(|p| holds.allows(p))))
        .map(str::to_owned)
        .collect()
}

/// `admin(…)` or return its redirect to `/login`.
macro_rules! admin_or_return {
    ($state:expr, $headers:expr, $back:expr, $page:expr) => {
        match super::admin($state, $headers, $back, $page).await? {
            Ok(p) => p,
            Err(to_login) => return Ok(to_login),
        }
    };
}
pub(crate) use admin_or_return;

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        Roles::default()
    }

    #[test]
    fn an_admin_may_give_every_role_a_member_only_weaker_ones() {
        let r = roles();
        assert_eq!(givable_roles(&r, &r.permissions_of("admin")), vec!["admin", "member", "owner", "viewer"]);
        let member = givable_roles(&r, &r.permissions_of("member"));
        assert!(member.contains(&"member".to_owned()) && member.contains(&"viewer".to_owned()), "{member:?}");
        assert!(!member.contains(&"admin".to_owned()) && !member.contains(&"owner".to_owned()), "{member:?}");
        assert_eq!(givable_roles(&r, &r.permissions_of("viewer")), vec!["viewer"]);
        assert!(givable_roles(&r, &r.permissions_of("no such role")).is_empty());
    }
}
