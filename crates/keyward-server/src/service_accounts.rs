//! The rules for making service accounts and rotating their secrets, shared by the HTTP
//! API and the admin commands so both refuse the same things in the same words.
//!
//! - A name is required (1–100 characters); the role must exist.
//! - The organization's plan must be at least `service_accounts.min_plan`.
//! - Through the API, the creator must hold every permission of the account's role: an
//!   account is a credential, and nobody may mint one stronger than themselves. Only an
//!   owner makes an `owner` account ([`crate::members`]).
//! - An account has a client secret, registered public keys, or both. The secret is
//!   generated here (`{P}sa_…`) and shown once; only its SHA-256 is stored. Imported
//!   secrets are kept as the bcrypt hash they came with until their first use.

use chrono::Duration;
use keyward_core::assertion::PublicKey;
use keyward_core::domain::{ClientId, Name, Plan};
use keyward_core::ids::{OrgId, ServiceAccountId};
use keyward_core::legacy::BcryptHash;
use keyward_core::permission::{Roles, OWNER_ROLE};
use keyward_core::secret::{PlainSecret, SecretFormat, SecretKind};
use keyward_store::{Actor, NewClientSecret, NewServiceAccount, Org, ServiceAccount, StoreError};

use crate::deployment::Deployment;
use crate::keys::MAX_GRACE_SECONDS;
use crate::members::Acting;

/// The role a service account gets when none is asked for.
pub const DEFAULT_ROLE: &str = "member";

/// Why an account request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountRuleError {
    /// A value breaks a rule (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// The organization's plan is below the configured minimum (HTTP 403 `plan_required`).
    #[error("service accounts need the {required} plan or higher; this organization is on {plan}")]
    PlanTooLow { required: Plan, plan: Plan },
    /// The creator does not hold every permission of the role (HTTP 403).
    #[error("a service account cannot be given the role {0}, which holds permissions its creator lacks")]
    RoleNotHeld(String),
    /// Only an owner gives the owner role (HTTP 403).
    #[error("only an owner can make a service account with the owner role")]
    OwnerOnly,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What someone asks for when making an account.
#[derive(Clone, Debug, Default)]
pub struct AccountRequest {
    pub name: String,
    pub role: Option<String>,
    /// PEM or JWK texts.
    pub public_keys: Vec<String>,
    /// Make a client secret. `None`: yes, unless public keys are given.
    pub secret: Option<bool>,
}

/// The organization an account is made in: its id and plan.
#[derive(Clone, Copy)]
pub struct OrgRef<'a> {
    pub id: &'a OrgId,
    pub plan: Plan,
}

impl<'a> From<&'a Org> for OrgRef<'a> {
    fn from(org: &'a Org) -> Self {
        OrgRef { id: &org.id, plan: org.plan }
    }
}

/// Checks the plan and the role; `giver` is who makes the account (an admin command,
/// [`Acting::Operator`], may give any role).
pub fn check_org_and_role(
    min_plan: Plan,
    roles: &Roles,
    plan: Plan,
    role: &str,
    giver: Acting<'_>,
) -> Result<(), AccountRuleError> {
    if plan < min_plan {
        return Err(AccountRuleError::PlanTooLow { required: min_plan, plan });
    }
    if roles.role(role).is_none() {
        let known: Vec<&str> = roles.names().collect();
        return Err(AccountRuleError::Invalid(format!("unknown role {role}; use one of {}", known.join(", "))));
    }
    if !giver.holds_all_of(roles, role) {
        return Err(AccountRuleError::RoleNotHeld(role.to_owned()));
    }
    if role == OWNER_ROLE && !giver.is_owner() {
        return Err(AccountRuleError::OwnerOnly);
    }
    Ok(())
}

/// Parses each PEM or JWK text (a JWKS gives several keys).
pub fn parse_public_keys(texts: &[String]) -> Result<Vec<PublicKey>, AccountRuleError> {
    let mut keys = Vec::new();
    for text in texts {
        let parsed =
            PublicKey::parse_many(text).map_err(|e| AccountRuleError::Invalid(format!("public key: {}", e.0)))?;
        keys.extend(parsed);
    }
    Ok(keys)
}

fn new_secret(secrets: &SecretFormat) -> (PlainSecret, NewClientSecret) {
    let plain = secrets.generate(SecretKind::ServiceAccountSecret);
    let stored = NewClientSecret::Sha256 { hash: plain.hash(), prefix: plain.display_prefix() };
    (plain, stored)
}

/// Makes an account in `org`; returns it with its client secret (when one was made),
/// shown this once.
pub async fn create(
    d: &Deployment<'_>,
    org: OrgRef<'_>,
    giver: Acting<'_>,
    req: &AccountRequest,
    actor: &Actor,
) -> Result<(ServiceAccount, Option<PlainSecret>), AccountRuleError> {
    let name = Name::parse(&req.name).map_err(|e| AccountRuleError::Invalid(e.0))?;
    let role = req.role.as_deref().unwrap_or(DEFAULT_ROLE);
    check_org_and_role(d.min_plan, d.roles, org.plan, role, giver)?;
    let public_keys = parse_public_keys(&req.public_keys)?;
    let with_secret = req.secret.unwrap_or(public_keys.is_empty());
    if !with_secret && public_keys.is_empty() {
        return Err(AccountRuleError::Invalid("a service account needs a client secret or a public key".into()));
    }
    let (plain, secret) = if with_secret {
        let (plain, stored) = new_secret(d.secrets);
        (Some(plain), Some(stored))
    } else {
        (None, None)
    };
    let new = NewServiceAccount {
        org_id: org.id.clone(),
        name: name.as_str().to_owned(),
        role: role.to_owned(),
        client_id: None,
        secret,
        public_keys,
    };
    let account = d.store.create_service_account(&new, actor).await?;
    Ok((account, plain))
}

/// Registers an account whose bcrypt-hashed client secret comes from another system
/// (an admin command): the client id and secret keep working unchanged.
pub async fn import(
    d: &Deployment<'_>,
    org: OrgRef<'_>,
    client_id: &str,
    bcrypt: &BcryptHash,
    name: Option<&str>,
    role: Option<&str>,
    actor: &Actor,
) -> Result<ServiceAccount, AccountRuleError> {
    let client_id = ClientId::parse(client_id).map_err(|e| AccountRuleError::Invalid(e.0))?;
    let client_id = client_id.as_str();
    let name = Name::parse(name.unwrap_or(client_id)).map_err(|e| AccountRuleError::Invalid(e.0))?;
    let role = role.unwrap_or(DEFAULT_ROLE);
    check_org_and_role(d.min_plan, d.roles, org.plan, role, Acting::Operator)?;
    let new = NewServiceAccount {
        org_id: org.id.clone(),
        name: name.as_str().to_owned(),
        role: role.to_owned(),
        client_id: Some(client_id.to_owned()),
        secret: Some(NewClientSecret::Bcrypt(bcrypt.clone())),
        public_keys: Vec::new(),
    };
    Ok(d.store.create_service_account(&new, actor).await?)
}

/// A new client secret; the old ones keep working for `grace_seconds` (0: they stop now).
pub async fn rotate(
    d: &Deployment<'_>,
    org: &OrgId,
    id: &ServiceAccountId,
    grace_seconds: i64,
    actor: &Actor,
) -> Result<(ServiceAccount, PlainSecret), AccountRuleError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(AccountRuleError::Invalid(format!("grace_seconds must be between 0 and {MAX_GRACE_SECONDS}")));
    }
    let (plain, stored) = new_secret(d.secrets);
    let account = d.store.rotate_client_secret(org, id, &stored, Duration::seconds(grace_seconds), actor).await?;
    Ok((account, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        Roles::default()
    }

    #[test]
    fn the_plan_must_reach_the_minimum() {
        let r = roles();
        assert!(check_org_and_role(Plan::Free, &r, Plan::Free, "member", Acting::Operator).is_ok());
        let err = check_org_and_role(Plan::Pro, &r, Plan::Free, "member", Acting::Operator).unwrap_err();
        assert!(matches!(err, AccountRuleError::PlanTooLow { required: Plan::Pro, plan: Plan::Free }));
        assert!(err.to_string().contains("pro"), "{err}");
        assert!(check_org_and_role(Plan::Pro, &r, Plan::Enterprise, "member", Acting::Operator).is_ok());
    }

    #[test]
    fn nobody_makes_an_account_stronger_than_themselves() {
        let r = roles();
        let holds = r.permissions_of("member");
        let member = Acting::Member { role: Some("member"), holds: &holds };
        assert!(check_org_and_role(Plan::Free, &r, Plan::Free, "viewer", member).is_ok());
        let err = check_org_and_role(Plan::Free, &r, Plan::Free, "admin", member).unwrap_err();
        assert!(matches!(err, AccountRuleError::RoleNotHeld(_)));
        let err = check_org_and_role(Plan::Free, &r, Plan::Free, "owner", member).unwrap_err();
        assert!(matches!(err, AccountRuleError::RoleNotHeld(_)), "{err}");
        let err = check_org_and_role(Plan::Free, &r, Plan::Free, "wizard", Acting::Operator).unwrap_err();
        assert!(matches!(err, AccountRuleError::Invalid(_)));
    }

    #[test]
    fn only_an_owner_makes_an_owner_account() {
        let r = roles();
        let all = r.permissions_of("admin");
        let admin = Acting::Member { role: Some("admin"), holds: &all };
        let owner = Acting::Member { role: Some("owner"), holds: &all };
        let err = check_org_and_role(Plan::Free, &r, Plan::Free, "owner", admin).unwrap_err();
        assert!(matches!(err, AccountRuleError::OwnerOnly), "{err}");
        assert!(check_org_and_role(Plan::Free, &r, Plan::Free, "admin", admin).is_ok());
        assert!(check_org_and_role(Plan::Free, &r, Plan::Free, "owner", owner).is_ok());
        assert!(check_org_and_role(Plan::Free, &r, Plan::Free, "owner", Acting::Operator).is_ok());
    }
}
