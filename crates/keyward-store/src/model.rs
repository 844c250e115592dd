//! The records the store returns and takes. Field types are the core's parsed types;
//! a row that does not parse back is reported as [`crate::StoreError::Corrupt`].

use chrono::{DateTime, Utc};
use keyward_core::assertion::PublicKey;
use keyward_core::device::UserCode;
use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::ids::{DeviceId, EventId, FamilyId, KeyId, OrgId, ServiceAccountId, TokenId, UserId};
use keyward_core::permission::PermissionSet;
use keyward_core::secret::{DisplayPrefix, SecretHash};

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

    pub fn service_account(id: &ServiceAccountId) -> Self {
        Self { kind: PrincipalKind::ServiceAccount, id: id.to_string() }
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
    /// Which credential made the key, and the access token at the root of its line.
    pub origin: KeyOrigin,
}

/// Where a key came from (DESIGN.md: no credential can mint one that outlives it).
/// `token`/`family`: the OAuth access token whose holder made the key, directly or
/// through keys made by keys; revoking that token or its family revokes the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyOrigin {
    /// `kind:id` of the credential that made the key (`api_key:key_…`,
    /// `access_token:tok_…`, `client_secret:sa_…`, `session:usr_…`); `None` for an
    /// admin command's key, an imported one, or one made before this was recorded.
    pub created_by: Option<String>,
    pub token: Option<TokenId>,
    pub family: Option<FamilyId>,
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

impl From<KeyGrant> for CredentialGrant {
    fn from(found: KeyGrant) -> Self {
        CredentialGrant {
            expires_at: found.expires_at(),
            credential: CredentialRef::ApiKey(found.key.id),
            prefix: found.key.prefix,
            org_id: found.key.org_id,
            org_slug: found.org_slug,
            org_plan: found.org_plan,
            principal: found.key.principal,
            principal_label: found.principal_label,
            own_permissions: found.key.permissions,
            role: found.role,
            secret_hash: found.secret_hash,
            revoked: found.key.revoked_at.is_some(),
            key_origin: found.key.origin,
        }
    }
}

/// Which stored credential a secret belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialRef {
    ApiKey(KeyId),
    /// An access token issued by the token endpoint to `client_id`.
    AccessToken {
        id: TokenId,
        family: FamilyId,
        client_id: String,
    },
    /// A service account's own client secret, presented as HTTP Basic.
    ClientSecret {
        account: ServiceAccountId,
        client_id: String,
    },
    /// A person's browser session (the web UI's cookie), on the management API.
    Session {
        user: UserId,
    },
}

impl CredentialRef {
    /// `api_key`, `access_token`, `client_secret` or `session`: the kind shown in `/api/v1/me`,
    /// `X-Keyward-Credential` and audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialRef::ApiKey(_) => "api_key",
            CredentialRef::AccessToken { .. } => "access_token",
            CredentialRef::ClientSecret { .. } => "client_secret",
            CredentialRef::Session { .. } => "session",
        }
    }

    /// The id of the credential's row: a key id, a token id, a service account id.
    pub fn id(&self) -> &str {
        match self {
            CredentialRef::ApiKey(id) => id.as_str(),
            CredentialRef::AccessToken { id, .. } => id.as_str(),
            CredentialRef::ClientSecret { account, .. } => account.as_str(),
            CredentialRef::Session { user } => user.as_str(),
        }
    }

    pub fn api_key(&self) -> Option<&KeyId> {
        match self {
            CredentialRef::ApiKey(id) => Some(id),
            _ => None,
        }
    }
}

/// What any stored credential grants, found by its secret's hash: the one shape the
/// authentication path works with, whatever the credential's kind.
#[derive(Clone, Debug)]
pub struct CredentialGrant {
    pub credential: CredentialRef,
    pub prefix: DisplayPrefix,
    pub org_id: OrgId,
    pub org_slug: Slug,
    pub org_plan: Plan,
    pub principal: Principal,
    /// The principal's e-mail (person) or name (service account).
    pub principal_label: String,
    /// The credential's own permission list (a key's list, a token's scopes); `None`
    /// inherits everything the principal holds.
    pub own_permissions: Option<PermissionSet>,
    /// The principal's role in the organization now; `None`: no longer a member.
    pub role: Option<String>,
    /// The stored hash the row was found by, for a constant-time comparison.
    pub secret_hash: SecretHash,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// For an API key: where it came from (a key made with it inherits the line);
    /// empty for other credentials.
    pub key_origin: KeyOrigin,
}

/// A service account as listed: never a secret, only what identifies its secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub org_id: OrgId,
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub secrets: Vec<ClientSecretInfo>,
    pub public_keys: Vec<PublicKey>,
}

/// One client secret of a service account, as shown: its display prefix and times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSecretInfo {
    /// Empty for an imported (bcrypt) secret: nothing of it is known.
    pub prefix: DisplayPrefix,
    pub created_at: DateTime<Utc>,
    /// Set while a rotation's grace period runs.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new service account. A secret (its hash), public keys, or both.
#[derive(Clone, Debug)]
pub struct NewServiceAccount {
    pub org_id: OrgId,
    pub name: String,
    pub role: String,
    /// `None`: the account's id is its client id. `Some`: an imported client id.
    pub client_id: Option<String>,
    pub secret: Option<NewClientSecret>,
    pub public_keys: Vec<PublicKey>,
}

/// A client secret to store: SHA-256 of a generated secret, or an imported bcrypt hash.
#[derive(Clone, Debug)]
pub enum NewClientSecret {
    Sha256 { hash: SecretHash, prefix: DisplayPrefix },
    Bcrypt(keyward_core::legacy::BcryptHash),
}

/// How a stored secret was hashed: keyward's own SHA-256, or an imported bcrypt hash
/// (re-hashed to SHA-256 on first use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HashKind {
    Sha256,
    Bcrypt,
}

impl HashKind {
    /// The `hash_kind` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Sha256 => "sha256",
            HashKind::Bcrypt => "bcrypt",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "sha256" => Ok(HashKind::Sha256),
            "bcrypt" => Ok(HashKind::Bcrypt),
            _ => Err(crate::StoreError::Corrupt(format!("hash kind {s:?}"))),
        }
    }
}

/// A service account as the token endpoint needs it to authenticate a client.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub account: ServiceAccount,
    pub org_slug: Slug,
    pub org_plan: Plan,
    /// Every live secret's stored hash: `(hash, how it was hashed, expires_at)`.
    pub secret_hashes: Vec<(String, HashKind, Option<DateTime<Utc>>)>,
}

/// Tokens to issue for one grant.
#[derive(Clone, Debug)]
pub struct NewTokens {
    pub org_id: OrgId,
    pub principal: Principal,
    pub client_id: String,
    /// `None`: everything the principal holds.
    pub scopes: Option<PermissionSet>,
    pub access: NewToken,
    pub refresh: Option<NewToken>,
    /// The family to add to (refresh rotation); `None` starts a new one.
    pub family: Option<FamilyId>,
}

/// One token to store: only its hash.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub hash: SecretHash,
    pub prefix: DisplayPrefix,
    pub expires_at: DateTime<Utc>,
}

impl NewToken {
    /// What is stored of a generated token: its hash and display prefix.
    pub fn of(secret: &keyward_core::secret::PlainSecret, expires_at: DateTime<Utc>) -> Self {
        Self { hash: secret.hash(), prefix: secret.display_prefix(), expires_at }
    }
}

/// What was stored by [`crate::Store::issue_tokens`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_id: TokenId,
    pub refresh_id: Option<TokenId>,
    pub family: FamilyId,
}

/// A refresh token that was exchanged: what the new tokens are issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshedGrant {
    pub family: FamilyId,
    pub org_id: OrgId,
    pub principal: Principal,
    pub scopes: Option<PermissionSet>,
    /// The principal's role now; `None`: no longer a member, so nothing is issued.
    pub role: Option<String>,
}

/// The outcome of presenting a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Marked used; issue the next pair in `family`.
    Exchanged(RefreshedGrant),
    /// It had been exchanged already: a stolen copy, or a replay. The whole family
    /// has just been revoked.
    Reused(FamilyId),
    /// Unknown, expired, revoked, or issued to another client.
    Invalid,
}

/// A token as introspection reports it (RFC 7662).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: TokenId,
    /// `access` or `refresh`.
    pub kind: String,
    pub family: FamilyId,
    pub org_id: OrgId,
    pub org_slug: Slug,
    pub principal: Principal,
    pub principal_label: String,
    pub client_id: String,
    pub scopes: Option<PermissionSet>,
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub revoked: bool,
}

/// A code a device-flow client asked for, to store.
#[derive(Clone, Debug)]
pub struct NewDeviceAuthorization {
    pub code_hash: SecretHash,
    pub user_code: UserCode,
    pub client_id: String,
    /// `None`: everything the approving person holds.
    pub scopes: Option<PermissionSet>,
    pub interval: chrono::Duration,
    pub expires_at: DateTime<Utc>,
}

/// Where a device authorization stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    Redeemed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Redeemed => "redeemed",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        Ok(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "redeemed" => DeviceStatus::Redeemed,
            _ => return Err(crate::StoreError::Corrupt(format!("device status {s:?}"))),
        })
    }
}

/// A device authorization as the approval page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub id: DeviceId,
    pub user_code: UserCode,
    pub client_id: String,
    pub scopes: Option<PermissionSet>,
    pub status: DeviceStatus,
    pub expires_at: DateTime<Utc>,
}

/// An approved code being redeemed: whom the tokens are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovedDevice {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub client_id: String,
    pub scopes: Option<PermissionSet>,
    /// The person's role in the organization now; `None`: no longer a member.
    pub role: Option<String>,
}

/// What a poll of the token endpoint with a device code finds (RFC 8628 §3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicePoll {
    /// Not decided yet.
    Pending,
    /// Polled sooner than the code's interval; the interval has grown by 5 s.
    SlowDown,
    Denied,
    Expired,
    /// Unknown, another client's, or redeemed already.
    Invalid,
    /// Redeemed now: the tokens were stored in the same transaction.
    Redeemed(ApprovedDevice),
}

/// A person's signed-in device: one device-flow grant, across its refreshes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSession {
    pub family: FamilyId,
    pub client_id: String,
    pub org_id: OrgId,
    pub org_slug: Slug,
    pub scopes: Option<PermissionSet>,
    pub created_at: DateTime<Utc>,
    pub last_refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What kind of actor did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// A person, with their credential.
    User,
    /// A service account, with its credential.
    ServiceAccount,
    /// An OAuth client named by its client id (a refresh token's reuse).
    Client,
    /// An admin command.
    Cli,
    /// keyward itself (a key revoked with the token that made it).
    System,
    /// Nobody authenticated (a failed authentication).
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ServiceAccount => "service_account",
            ActorKind::Client => "client",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        [
            ActorKind::User,
            ActorKind::ServiceAccount,
            ActorKind::Client,
            ActorKind::Cli,
            ActorKind::System,
            ActorKind::Anonymous,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("actor kind {s:?}")))
    }
}

impl From<PrincipalKind> for ActorKind {
    fn from(k: PrincipalKind) -> Self {
        match k {
            PrincipalKind::User => ActorKind::User,
            PrincipalKind::ServiceAccount => ActorKind::ServiceAccount,
        }
    }
}

/// Who did something, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
    /// The credential used, as `api_key:key_…` — never a secret.
    pub credential: Option<String>,
}

impl Actor {
    pub fn cli() -> Self {
        Self { kind: ActorKind::Cli, id: None, credential: None }
    }

    pub fn system() -> Self {
        Self { kind: ActorKind::System, id: None, credential: None }
    }

    pub fn anonymous() -> Self {
        Self { kind: ActorKind::Anonymous, id: None, credential: None }
    }

    /// An OAuth client, by its client id.
    pub fn client(client_id: &str) -> Self {
        Self { kind: ActorKind::Client, id: Some(client_id.to_owned()), credential: None }
    }

    /// A principal acting with the credential `credential` (`api_key:key_…`, never a secret).
    pub fn principal(principal: &Principal, credential: Option<String>) -> Self {
        Self { kind: principal.kind.into(), id: Some(principal.id.clone()), credential }
    }
}

/// What keyward records in the audit log. Events read back keep the stored text
/// ([`AuditEvent::action`]), so actions written by a product or a newer version still list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    ApiKeyCreated,
    ApiKeyImported,
    ApiKeyRevoked,
    ApiKeyRolled,
    AuthFailed,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    OAuthRefreshTokenReused,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountKeyAdded,
    ServiceAccountKeyRemoved,
    ServiceAccountSecretRotated,
}

impl AuditAction {
    /// Every action keyward records (the audit page offers them as filters).
    pub const ALL: [AuditAction; 14] = [
        AuditAction::ApiKeyCreated,
        AuditAction::ApiKeyImported,
        AuditAction::ApiKeyRevoked,
        AuditAction::ApiKeyRolled,
        AuditAction::AuthFailed,
        AuditAction::MemberAdded,
        AuditAction::MemberRemoved,
        AuditAction::MemberRoleChanged,
        AuditAction::OAuthRefreshTokenReused,
        AuditAction::ServiceAccountCreated,
        AuditAction::ServiceAccountDeleted,
        AuditAction::ServiceAccountKeyAdded,
        AuditAction::ServiceAccountKeyRemoved,
        AuditAction::ServiceAccountSecretRotated,
    ];

    /// The stored and displayed name, `subject.verb`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ApiKeyCreated => "api_key.created",
            AuditAction::ApiKeyImported => "api_key.imported",
            AuditAction::ApiKeyRevoked => "api_key.revoked",
            AuditAction::ApiKeyRolled => "api_key.rolled",
            AuditAction::AuthFailed => "auth.failed",
            AuditAction::MemberAdded => "member.added",
            AuditAction::MemberRemoved => "member.removed",
            AuditAction::MemberRoleChanged => "member.role_changed",
            AuditAction::OAuthRefreshTokenReused => "oauth.refresh_token_reused",
            AuditAction::ServiceAccountCreated => "service_account.created",
            AuditAction::ServiceAccountDeleted => "service_account.deleted",
            AuditAction::ServiceAccountKeyAdded => "service_account.key_added",
            AuditAction::ServiceAccountKeyRemoved => "service_account.key_removed",
            AuditAction::ServiceAccountSecretRotated => "service_account.secret_rotated",
        }
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
    pub fn new(org_id: Option<&OrgId>, actor: &Actor, action: AuditAction) -> Self {
        Self {
            id: EventId::generate(),
            org_id: org_id.cloned(),
            at: crate::time::now(),
            actor: actor.clone(),
            action: action.as_str().to_owned(),
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
    /// One token family's tokens: revoked (by a client, or on refresh-token reuse).
    Tokens(FamilyId),
}
