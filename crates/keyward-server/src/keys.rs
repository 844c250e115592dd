//! The rules for making, importing and rolling API keys, shared by the HTTP API and the
//! admin commands so both refuse the same things in the same words.
//!
//! - A name is required (1–100 characters).
//! - Every permission must be well formed and in the catalogue, and held by the
//!   creator: a key can never be given a permission its creator lacks.
//! - Without a permission list a key inherits everything its principal holds, at every
//!   request. When the creator is itself a restricted credential (an API key), the new
//!   key gets the creator's permissions written out instead, so a narrow key cannot mint
//!   a broad one.
//! - An expiry must lie in the future.
//! - No credential can mint one that outlives it: a key made by an API key or an OAuth
//!   access token expires no later than its maker ([`Lineage`]): without `expires_at`
//!   it gets the maker's expiry, a later one is refused. The key also records its
//!   maker, and the access token at the root of its line, so that revoking that token
//!   (or its family) revokes the key (in the store, in the same transaction).

use chrono::{DateTime, Duration, Utc};
use keyward_core::domain::Name;
use keyward_core::ids::{KeyId, OrgId};
use keyward_core::legacy::ImportedHash;
use keyward_core::permission::{Permission, PermissionSet, Roles};
use keyward_core::secret::{DisplayPrefix, PlainSecret, SecretKind};
use keyward_store::{Actor, ApiKey, CredentialRef, KeyOrigin, KeyScope, NewApiKey, Principal, Store, StoreError};

use crate::auth::grant::Grant;
use crate::deployment::Deployment;

/// The longest grace period a roll may keep an old secret alive for.
pub const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// Why a key request was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyRuleError {
    /// A value breaks a rule (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// The creator does not hold this permission (HTTP 403).
    #[error("the creator does not hold {0}")]
    NotHeld(Permission),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What someone asks for when making a key.
#[derive(Clone, Debug, Default)]
pub struct KeyRequest {
    pub name: String,
    pub permissions: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who makes a key: what they hold now, and whether they are a restricted credential.
pub struct Creator<'a> {
    pub holds: &'a PermissionSet,
    pub restricted: bool,
}

/// The credential a key is made with, as far as the new key's lifetime goes: its expiry
/// bounds the key's, and its line is recorded. Default: a person or an admin command,
/// which bounds nothing.
#[derive(Clone, Debug, Default)]
pub struct Lineage {
    /// The latest expiry the new key may have: its maker's own.
    pub expires_by: Option<DateTime<Utc>>,
    pub origin: KeyOrigin,
}

impl Lineage {
    /// The lineage of a key made over the API by the credential `grant` describes.
    ///
    /// An API key and an OAuth access token are credentials with a life of their own (an
    /// expiry, a revocation): the new key is bounded by them. A service account's client
    /// secret and a person's web session stand for the principal itself — the key is
    /// the principal's, bounded by its membership, not by the secret's rotation or the
    /// session's end — so they bound nothing; the maker is still recorded.
    pub fn of(grant: &Grant) -> Self {
        let created_by = Some(grant.credential_label());
        match &grant.credential {
            CredentialRef::ApiKey(_) => Self {
                expires_by: grant.expires_at,
                origin: KeyOrigin {
                    created_by,
                    token: grant.key_origin.token.clone(),
                    family: grant.key_origin.family.clone(),
                },
            },
            CredentialRef::AccessToken { id, family, .. } => Self {
                expires_by: grant.expires_at,
                origin: KeyOrigin { created_by, token: Some(id.clone()), family: Some(family.clone()) },
            },
            CredentialRef::ClientSecret { .. } | CredentialRef::Session { .. } => {
                Self { expires_by: None, origin: KeyOrigin { created_by, token: None, family: None } }
            }
        }
    }

    /// The expiry the new key gets: the one asked for, which may not be later than the
    /// maker's; none asked for → the maker's.
    pub fn bound(&self, asked: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, KeyRuleError> {
        match (asked, self.expires_by) {
            (Some(t), Some(limit)) if t > limit => Err(KeyRuleError::Invalid(format!(
                "expires_at cannot be later than the expiry of the credential making the key ({}): no credential can make one that outlives it",
                limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))),
            (Some(t), _) => Ok(Some(t)),
            (None, limit) => Ok(limit),
        }
    }
}

/// Checks a request against the rules; returns the name and the permission list to store.
pub fn check_request(
    roles: &Roles,
    creator: &Creator<'_>,
    req: &KeyRequest,
    now: DateTime<Utc>,
) -> Result<(Name, Option<PermissionSet>), KeyRuleError> {
    let name = Name::parse(&req.name).map_err(|e| KeyRuleError::Invalid(e.0))?;
    let permissions = match &req.permissions {
        Some(list) => {
            let set = PermissionSet::parse(list).map_err(|e| KeyRuleError::Invalid(e.0))?;
            if let Some(unknown) = set.iter().find(|p| !roles.is_catalogued(p)) {
                return Err(KeyRuleError::Invalid(format!("unknown permission {unknown}")));
            }
            if let Some(missing) = set.iter().find(|p| !creator.holds.allows(p)) {
                return Err(KeyRuleError::NotHeld(missing.clone()));
            }
            Some(set)
        }
        None if creator.restricted => Some(creator.holds.clone()),
        None => None,
    };
    if req.expires_at.is_some_and(|t| t <= now) {
        return Err(KeyRuleError::Invalid("expires_at must lie in the future".into()));
    }
    Ok((name, permissions))
}

/// Makes a key for `principal` in `org`; returns it with its secret, shown this once.
pub async fn create(
    d: &Deployment<'_>,
    org: &OrgId,
    principal: &Principal,
    creator: &Creator<'_>,
    req: &KeyRequest,
    actor: &Actor,
) -> Result<(ApiKey, PlainSecret), KeyRuleError> {
    create_from(d, org, principal, creator, &Lineage::default(), req, actor).await
}

/// Makes a key as [`create`] does, made by the credential `lineage` describes: bounded
/// by its expiry, and recorded as its descendant.
pub async fn create_from(
    d: &Deployment<'_>,
    org: &OrgId,
    principal: &Principal,
    creator: &Creator<'_>,
    lineage: &Lineage,
    req: &KeyRequest,
    actor: &Actor,
) -> Result<(ApiKey, PlainSecret), KeyRuleError> {
    let (name, permissions) = check_request(d.roles, creator, req, Utc::now())?;
    let expires_at = lineage.bound(req.expires_at)?;
    let secret = d.secrets.generate(SecretKind::ApiKey);
    let new = NewApiKey {
        org_id: org.clone(),
        principal: principal.clone(),
        name: name.as_str().to_owned(),
        prefix: secret.display_prefix(),
        permissions,
        expires_at,
    };
    let key = d.store.create_api_key_from(&new, &secret.hash(), &lineage.origin, actor).await?;
    Ok((key, secret))
}

/// How an imported key's secret arrives.
pub enum Imported {
    /// The plain key (read from stdin): hashed with SHA-256 at once, never stored.
    Plain(String),
    Hash(ImportedHash),
}

/// Imports a key from a previous system. It inherits its principal's permissions.
pub async fn import(
    store: &Store,
    org: &OrgId,
    principal: &Principal,
    name: &str,
    imported: Imported,
    actor: &Actor,
) -> Result<ApiKey, KeyRuleError> {
    let name = Name::parse(name).map_err(|e| KeyRuleError::Invalid(e.0))?;
    let (hash, prefix) = match imported {
        Imported::Plain(plain) => {
            let plain = plain.trim();
            if plain.len() < 16 {
                return Err(KeyRuleError::Invalid("an imported key has at least 16 characters".into()));
            }
            // Show at most a quarter of a legacy key: they are often short.
            let shown: String = plain.chars().take((plain.len() / 4).min(12)).collect();
            (ImportedHash::Sha256(keyward_core::secret::SecretHash::of(plain)), DisplayPrefix::from_stored(shown))
        }
        // Nothing of the key itself is known: no display prefix.
        Imported::Hash(h) => (h, DisplayPrefix::from_stored(String::new())),
    };
    let new = NewApiKey {
        org_id: org.clone(),
        principal: principal.clone(),
        name: name.as_str().to_owned(),
        prefix,
        permissions: None,
        expires_at: None,
    };
    Ok(store.import_api_key(&new, &hash, actor).await?)
}

/// Gives a key a new secret; the old one keeps working for `grace_seconds`.
pub async fn roll(
    d: &Deployment<'_>,
    scope: Option<&KeyScope>,
    id: &KeyId,
    grace_seconds: i64,
    actor: &Actor,
) -> Result<(ApiKey, PlainSecret), KeyRuleError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(KeyRuleError::Invalid(format!("grace_seconds must lie between 0 and {MAX_GRACE_SECONDS}")));
    }
    let secret = d.secrets.generate(SecretKind::ApiKey);
    let key = d
        .store
        .roll_api_key(scope, id, &secret.hash(), &secret.display_prefix(), Duration::seconds(grace_seconds), actor)
        .await?;
    Ok((key, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(perms: Option<&[&str]>) -> KeyRequest {
        KeyRequest {
            name: "ci".into(),
            permissions: perms.map(|p| p.iter().map(|s| s.to_string()).collect()),
            expires_at: None,
        }
    }

    #[test]
    fn a_key_cannot_exceed_its_creator() {
        let roles = Roles::default();
        let viewer = roles.permissions_of("viewer");
        let creator = Creator { holds: &viewer, restricted: false };
        let now = Utc::now();
        assert!(matches!(
            check_request(&roles, &creator, &req(Some(&["projects:write"])), now),
            Err(KeyRuleError::NotHeld(p)) if p.as_str() == "projects:write"
        ));
        assert!(matches!(check_request(&roles, &creator, &req(Some(&["*"])), now), Err(KeyRuleError::NotHeld(_))));
        assert!(matches!(
            check_request(&roles, &creator, &req(Some(&["rockets:launch"])), now),
            Err(KeyRuleError::Invalid(m)) if m.contains("unknown permission")
        ));
        let (_, perms) = check_request(&roles, &creator, &req(Some(&["projects:read"])), now).unwrap();
        assert_eq!(perms.unwrap().to_strings(), ["projects:read"]);
    }

    #[test]
    fn a_restricted_creator_writes_its_permissions_out() {
        let roles = Roles::default();
        let narrow = PermissionSet::parse(["api_keys:write", "projects:read"]).unwrap();
        let (_, perms) =
            check_request(&roles, &Creator { holds: &narrow, restricted: true }, &req(None), Utc::now()).unwrap();
        assert_eq!(perms, Some(narrow.clone()));
        let (_, perms) =
            check_request(&roles, &Creator { holds: &narrow, restricted: false }, &req(None), Utc::now()).unwrap();
        assert_eq!(perms, None, "a person's key inherits");
    }

    #[test]
    fn a_key_never_outlives_its_maker() {
        let now = Utc::now();
        let limit = now + Duration::minutes(2);
        let lineage = Lineage { expires_by: Some(limit), origin: KeyOrigin::default() };
        assert_eq!(lineage.bound(None).unwrap(), Some(limit), "no expiry asked: the maker's");
        let sooner = now + Duration::minutes(1);
        assert_eq!(lineage.bound(Some(sooner)).unwrap(), Some(sooner));
        assert_eq!(lineage.bound(Some(limit)).unwrap(), Some(limit), "the same instant is allowed");
        let err = lineage.bound(Some(limit + Duration::seconds(1))).unwrap_err();
        assert!(matches!(&err, KeyRuleError::Invalid(m) if m.contains("outlives")), "{err}");
        // A maker that does not expire bounds nothing.
        assert_eq!(Lineage::default().bound(None).unwrap(), None);
        let later = now + Duration::days(365);
        assert_eq!(Lineage::default().bound(Some(later)).unwrap(), Some(later));
    }

    #[test]
    fn names_and_expiry_are_checked() {
        let roles = Roles::default();
        let all = roles.permissions_of("owner");
        let creator = Creator { holds: &all, restricted: false };
        let mut r = req(None);
        r.name = "x".repeat(101);
        assert!(matches!(check_request(&roles, &creator, &r, Utc::now()), Err(KeyRuleError::Invalid(_))));
        let mut r = req(None);
        r.expires_at = Some(Utc::now() - Duration::seconds(1));
        assert!(
            matches!(check_request(&roles, &creator, &r, Utc::now()), Err(KeyRuleError::Invalid(m)) if m.contains("future"))
        );
    }
}
