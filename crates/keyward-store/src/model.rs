//! The records the store returns and takes. Field types are the core's parsed types;
//! a row that does not parse back is reported as [`crate::StoreError::Corrupt`].

use chrono::{DateTime, Utc};
use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::ids::{EventId, KeyId, OrgId, UserId};
use keyward_core::permission::PermissionSet;
use keyward_core::secret::DisplayPrefix;

/// An organization (team, workspace, tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub slug: Slug,
    pub name: String,
    pub plan: Plan,
    pub created_at: DateTime<Utc>,
}

/// A person.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub display_name: String,
    /// argon2id PHC string; `None` for a person who cannot sign in with a password.
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("email", &self.email).finish_non_exhaustive()
    }
}

/// What kind of member a principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    User,
    ServiceAccount,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "user" => Ok(PrincipalKind::User),
            "service_account" => Ok(PrincipalKind::ServiceAccount),
            _ => Err(crate::StoreError::Corrupt(format!("principal kind {s:?}"))),
        }
    }
}

/// Who holds a credential: a user or a service account, by id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub id: String,
}

impl Principal {
    pub fn user(id: &UserId) -> Self {
        Self { kind: PrincipalKind::User, id: id.to_string() }
    }
}

/// A member of an organization as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub principal: Principal,
    /// The e-mail of a person, the name of a service account.
    pub label: String,
    pub display_name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// An API key's settings (its secrets live in `api_key_secrets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: KeyId,
    pub org_id: OrgId,
    pub principal: Principal,
    pub name: String,
    pub prefix: DisplayPrefix,
    /// The key's own permission list; `None` inherits all the principal holds.
    pub permissions: Option<PermissionSet>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key to insert.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub org_id: OrgId,
    pub principal: Principal,
    pub name: String,
    pub prefix: DisplayPrefix,
    pub permissions: Option<PermissionSet>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Everything the authentication path needs about a key found by a secret's hash, in
/// one query: the key, the secret's own expiry (set during a roll's grace period), the
/// organization and the principal's current role there (`None`: no longer a member).
#[derive(Clone, Debug)]
pub struct KeyGrant {
    pub key: ApiKey,
    /// The stored hash the row was found by, for a constant-time comparison with the
    /// presented secret's hash.
    pub secret_hash: keyward_core::secret::SecretHash,
    pub secret_expires_at: Option<DateTime<Utc>>,
    pub org_slug: Slug,
    pub org_plan: Plan,
    pub role: Option<String>,
    /// The principal's e-mail (person) or name (service account).
    pub principal_label: String,
}

impl KeyGrant {
    /// When this secret stops working: the earlier of the key's and the secret's expiry.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match (self.key.expires_at, self.secret_expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Who did something, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// `user`, `service_account`, `cli` (an admin command) or `anonymous`.
    pub kind: String,
    pub id: Option<String>,
    /// The credential used, as `api_key:key_…` — never a secret.
    pub credential: Option<String>,
}

impl Actor {
    pub fn cli() -> Self {
        Self { kind: "cli".into(), id: None, credential: None }
    }
}

/// One audit event. `detail` is a JSON object of non-secret facts.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub id: EventId,
    pub org_id: Option<OrgId>,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(org_id: Option<&OrgId>, actor: &Actor, action: &str) -> Self {
        Self {
            id: EventId::generate(),
            org_id: org_id.cloned(),
            at: crate::time::now(),
            actor: actor.clone(),
            action: action.to_owned(),
            target_kind: None,
            target_id: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &str, id: impl ToString) -> Self {
        self.target_kind = Some(kind.to_owned());
        self.target_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A change that may take power away from cached credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// One key: revoked, rolled, expiry changed.
    Key(KeyId),
    /// One principal's standing in one organization: role changed or removed.
    Member { org_id: OrgId, principal_id: String },
    /// A key was created or imported: clears negative caches, which might hold its hash.
    KeyCreated,
}
