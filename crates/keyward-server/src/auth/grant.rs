//! What a credential grants, and the authenticated caller.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyward_core::credential::Via;
use keyward_core::domain::{Plan, Slug};
use keyward_core::ids::OrgId;
use keyward_core::permission::{Permission, PermissionSet, Roles};
use keyward_core::secret::DisplayPrefix;
use keyward_store::{CredentialGrant, CredentialRef, KeyOrigin, Principal};

/// Why an authenticated caller may not do something. The HTTP layer maps it to `403`
/// (`insufficient_scope` with the missing scope, or a plain refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The credential does not grant this permission.
    MissingScope(String),
    /// The credential grants it, but a rule says this credential may not use it here.
    Refused(String),
}

/// Everything a credential (API key, access token, client secret) grants, computed
/// once per cache fill and shared by every request that presents it. Role permissions
/// come from configuration, which does not change while the process runs, so
/// `effective` stays right until the credential or the membership changes — and those
/// changes invalidate the entry.
#[derive(Debug)]
pub struct Grant {
    pub credential: CredentialRef,
    /// The secret's display prefix (audit events and logs of failed uses).
    pub prefix: DisplayPrefix,
    pub principal: Principal,
    /// E-mail of a person, name of a service account.
    pub principal_label: String,
    pub org_id: OrgId,
    pub org_slug: Slug,
    pub org_plan: Plan,
    /// The credential's own list (a key's permissions, a token's scopes); `None`
    /// inherits everything the principal holds.
    pub own_permissions: Option<PermissionSet>,
    /// The principal's role in the organization now (`None`: no longer a member).
    pub role: Option<String>,
    /// What the principal's role holds now.
    pub role_permissions: PermissionSet,
    /// own ∩ role: what the credential may do.
    pub effective: PermissionSet,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub member: bool,
    /// For an API key: the credential that made it and the access token at the root of
    /// its line (a key made with this one inherits the line).
    pub key_origin: KeyOrigin,
    /// The `/auth/check` and `/api/v1/me` answer for this grant, rendered on first use
    /// and shared by every later request (the grant does not change while cached). Only
    /// the HTTP layer knows its type (`http::identity::Rendered`); authentication sits
    /// below it and keeps the slot without looking in.
    pub rendered: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl Grant {
    pub fn from_found(found: CredentialGrant, roles: &Roles) -> Self {
        let role_permissions = found.role.as_deref().map(|r| roles.permissions_of(r)).unwrap_or_default();
        let effective = PermissionSet::effective(found.own_permissions.as_ref(), &role_permissions);
        Self {
            expires_at: found.expires_at,
            credential: found.credential,
            prefix: found.prefix,
            principal: found.principal,
            principal_label: found.principal_label,
            org_id: found.org_id,
            org_slug: found.org_slug,
            org_plan: found.org_plan,
            own_permissions: found.own_permissions,
            role_permissions,
            key_origin: found.key_origin,
            effective,
            revoked: found.revoked,
            member: found.role.is_some(),
            role: found.role,
            rendered: std::sync::OnceLock::new(),
        }
    }

    /// `kind:id` of the credential, as `X-Keyward-Credential` and the audit log show it.
    pub fn credential_label(&self) -> String {
        format!("{}:{}", self.credential.kind(), self.credential.id())
    }
}

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Identity {
    grant: Arc<Grant>,
    via: Via,
}

impl Identity {
    pub fn new(grant: Arc<Grant>, via: Via) -> Self {
        Self { grant, via }
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    pub fn via(&self) -> Via {
        self.via
    }

    pub fn permissions(&self) -> &PermissionSet {
        &self.grant.effective
    }

    /// Refused unless the credential grants `p`.
    pub fn require(&self, p: &Permission) -> Result<(), Denied> {
        if self.grant.effective.allows(p) {
            Ok(())
        } else {
            Err(Denied::MissingScope(p.to_string()))
        }
    }

    /// For managing API keys with an API key: the key must name `p` in its own list
    /// (DESIGN.md: "unless it holds api_keys:write / api_keys:read explicitly"), so an
    /// inherit-all or wildcard key pasted into a CI job cannot mint or revoke keys.
    /// Other credentials (a service account's own secret, an access token) need `p`
    /// only: they are the principal itself, or what it was granted for this purpose.
    pub fn require_explicit(&self, p: &Permission) -> Result<(), Denied> {
        self.require(p)?;
        if self.grant.credential.api_key().is_none() {
            return Ok(());
        }
        match &self.grant.own_permissions {
            Some(own) if own.names(p) => Ok(()),
            _ => Err(Denied::Refused(format!(
                "managing API keys with an API key needs {p} in the key's own permission list"
            ))),
        }
    }

    /// The audit actor for this caller.
    pub fn actor(&self) -> keyward_store::Actor {
        keyward_store::Actor::principal(&self.grant.principal, Some(self.grant.credential_label()))
    }
}
