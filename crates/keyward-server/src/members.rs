//! The rules for roles and memberships, shared by the HTTP API, the web pages and the
//! admin commands, so all three refuse the same things in the same words.
//!
//! - A role given must exist.
//! - Nobody gives a role holding a permission they lack, and nobody changes or removes a
//!   member whose role holds a permission they lack.
//! - Only an owner gives or takes the `owner` role ([`OWNER_ROLE`]): makes someone (or a
//!   service account) owner, changes an owner's role, removes an owner or deletes an
//!   owner service account. The admin commands act as the instance's operator, above
//!   every organization: they may. (Deleting any other account needs only
//!   `service_accounts:write`, as before: deleting takes power away, it gives none.)
//! - An organization keeps at least one *person* who is owner: the last one can be
//!   neither removed nor demoted, not even by the admin commands. (A service account
//!   cannot sign in to the web pages or approve anything; an organization owned only by
//!   one would have nobody to run it.)
//! - Removal is final: the store revokes the member's keys and tokens in the
//!   organization in the same transaction, so adding them back revives nothing.
//!
//! The checks that depend on the member's current role and on the other owners run
//! inside the store's transaction, after it has locked the organization's row
//! ([`Store::set_role_checked`], [`Store::remove_member_checked`],
//! [`Store::delete_service_account_checked`]): two owners removing each other at the
//! same moment leave one owner, on SQLite and on PostgreSQL alike.

use keyward_core::ids::{OrgId, ServiceAccountId};
use keyward_core::permission::{PermissionSet, Roles, OWNER_ROLE};
use keyward_store::{Actor, PrincipalKind, Standing, Store, StoreError};

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MemberRuleError {
    /// An unknown role (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// Not allowed for this actor (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The change would leave the organization without an owner (HTTP 409 `last_owner`).
    #[error("this is the organization's last owner: make another person owner first, then change or remove this one")]
    LastOwner,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who changes a membership.
#[derive(Clone, Copy, Debug)]
pub enum Acting<'a> {
    /// An admin command: the instance's operator, who may give and take any role.
    Operator,
    /// A member of the organization: its role there (`None`: none) and what the
    /// credential it acts with may do.
    Member { role: Option<&'a str>, holds: &'a PermissionSet },
}

impl Acting<'_> {
    /// Whether this actor is an owner (the operator counts as one).
    pub fn is_owner(&self) -> bool {
        match self {
            Acting::Operator => true,
            Acting::Member { role, .. } => *role == Some(OWNER_ROLE),
        }
    }

    /// Whether this actor holds every permission of `role` (an unknown role: no).
    pub fn holds_all_of(&self, roles: &Roles, role: &str) -> bool {
        match self {
            Acting::Operator => roles.role(role).is_some(),
            Acting::Member { holds, .. } => roles.role(role).is_some_and(|perms| perms.iter().all(|p| holds.allows(p))),
        }
    }

    /// May this actor give `role` to someone?
    pub fn may_give(&self, roles: &Roles, role: &str) -> Result<(), MemberRuleError> {
        if roles.role(role).is_none() {
            let known: Vec<&str> = roles.names().collect();
            return Err(MemberRuleError::Invalid(format!("unknown role {role:?}; use one of {}", known.join(", "))));
        }
        if role == OWNER_ROLE && !self.is_owner() {
            return Err(MemberRuleError::Forbidden(format!("only an owner can give the {OWNER_ROLE} role")));
        }
        if !self.holds_all_of(roles, role) {
            return Err(MemberRuleError::Forbidden(format!(
                "the role {role} holds permissions you lack, so you cannot give it"
            )));
        }
        Ok(())
    }

    /// May this actor change the role of, or remove, a member whose role is `role`?
    pub fn may_take(&self, roles: &Roles, role: &str) -> Result<(), MemberRuleError> {
        if role == OWNER_ROLE && !self.is_owner() {
            return Err(MemberRuleError::Forbidden(format!("only an owner can change or remove an {OWNER_ROLE}")));
        }
        // A role since removed from the configuration holds nothing: anyone may act.
        if roles.role(role).is_some() && !self.holds_all_of(roles, role) {
            return Err(MemberRuleError::Forbidden(format!(
                "this member's role {role} holds permissions you lack, so you cannot change or remove them"
            )));
        }
        Ok(())
    }
}

/// The roles `acting` may give, in the configuration's order (the web pages' choices).
pub fn givable_roles(roles: &Roles, acting: Acting<'_>) -> Vec<String> {
    roles.names().filter(|r| acting.may_give(roles, r).is_ok()).map(str::to_owned).collect()
}

/// Refuses a change that takes `owner` from the organization's last person holding it.
/// `new_role`: the role after the change (`None`: removal).
pub fn keeps_an_owner(before: &Standing, new_role: Option<&str>) -> Result<(), MemberRuleError> {
    let last = before.kind == PrincipalKind::User && before.role == OWNER_ROLE && before.other_owners == 0;
    if last && new_role != Some(OWNER_ROLE) {
        return Err(MemberRuleError::LastOwner);
    }
    Ok(())
}

/// Gives the member `principal_id` of `org` the role `role`; returns its standing before.
pub async fn set_role(
    store: &Store,
    roles: &Roles,
    org: &OrgId,
    acting: Acting<'_>,
    principal_id: &str,
    role: &str,
    actor: &Actor,
) -> Result<Standing, MemberRuleError> {
    acting.may_give(roles, role)?;
    store
        .set_role_checked(org, principal_id, role, actor, |before| {
            acting.may_take(roles, &before.role)?;
            keeps_an_owner(before, Some(role))
        })
        .await
}

/// Removes the member `principal_id` from `org` for good (its keys and tokens there are
/// revoked); returns its standing before.
pub async fn remove(
    store: &Store,
    roles: &Roles,
    org: &OrgId,
    acting: Acting<'_>,
    principal_id: &str,
    actor: &Actor,
) -> Result<Standing, MemberRuleError> {
    store
        .remove_member_checked(org, principal_id, actor, |before| {
            acting.may_take(roles, &before.role)?;
            keeps_an_owner(before, None)
        })
        .await
}

/// Deletes a service account of `org` (its secrets, keys and tokens stop working). The
/// API's rule for deleting is `service_accounts:write` (checked by the caller); on top,
/// only an owner deletes an `owner` account.
pub async fn delete_service_account(
    store: &Store,
    org: &OrgId,
    acting: Acting<'_>,
    id: &ServiceAccountId,
    actor: &Actor,
) -> Result<(), MemberRuleError> {
    store
        .delete_service_account_checked(org, id, actor, |before| {
            if before.role == OWNER_ROLE && !acting.is_owner() {
                return Err(MemberRuleError::Forbidden(format!(
                    "only an owner can delete a service account with the {OWNER_ROLE} role"
                )));
            }
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(kind: PrincipalKind, role: &str, other_owners: i64) -> Standing {
        Standing { kind, role: role.to_owned(), other_owners }
    }

    #[test]
    fn only_an_owner_gives_or_takes_owner() {
        let roles = Roles::default();
        let all = roles.permissions_of("admin");
        let admin = Acting::Member { role: Some("admin"), holds: &all };
        let owner = Acting::Member { role: Some("owner"), holds: &all };
        assert!(
            matches!(admin.may_give(&roles, "owner"), Err(MemberRuleError::Forbidden(m)) if m.contains("only an owner"))
        );
        assert!(
            matches!(admin.may_take(&roles, "owner"), Err(MemberRuleError::Forbidden(m)) if m.contains("only an owner"))
        );
        assert!(admin.may_give(&roles, "admin").is_ok() && admin.may_take(&roles, "admin").is_ok());
        assert!(owner.may_give(&roles, "owner").is_ok() && owner.may_take(&roles, "owner").is_ok());
        assert!(Acting::Operator.may_give(&roles, "owner").is_ok());
        assert_eq!(givable_roles(&roles, admin), ["admin", "member", "viewer"]);
        assert_eq!(givable_roles(&roles, owner), ["admin", "member", "owner", "viewer"]);
    }

    #[test]
    fn nobody_reaches_a_stronger_member() {
        let roles = Roles::default();
        let member_holds = roles.permissions_of("member");
        let member = Acting::Member { role: Some("member"), holds: &member_holds };
        assert!(matches!(member.may_give(&roles, "admin"), Err(MemberRuleError::Forbidden(_))));
        assert!(matches!(member.may_take(&roles, "admin"), Err(MemberRuleError::Forbidden(_))));
        assert!(member.may_give(&roles, "viewer").is_ok());
        assert!(matches!(member.may_give(&roles, "wizard"), Err(MemberRuleError::Invalid(m)) if m.contains("wizard")));
        assert_eq!(givable_roles(&roles, member), ["member", "viewer"]);
    }

    #[test]
    fn the_last_person_who_owns_stays() {
        let user = PrincipalKind::User;
        assert!(matches!(keeps_an_owner(&standing(user, "owner", 0), None), Err(MemberRuleError::LastOwner)));
        assert!(matches!(keeps_an_owner(&standing(user, "owner", 0), Some("admin")), Err(MemberRuleError::LastOwner)));
        assert!(keeps_an_owner(&standing(user, "owner", 0), Some("owner")).is_ok(), "no change");
        assert!(keeps_an_owner(&standing(user, "owner", 1), None).is_ok(), "another owner remains");
        assert!(keeps_an_owner(&standing(user, "admin", 0), None).is_ok(), "not an owner");
        // An owner service account is not what keeps an organization owned.
        assert!(keeps_an_owner(&standing(PrincipalKind::ServiceAccount, "owner", 0), None).is_ok());
    }
}
