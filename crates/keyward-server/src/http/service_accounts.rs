//! `/api/v1/service-accounts…`: the organization's non-human members, their client
//! secrets (shown once) and registered public keys.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keyward_core::ids::ServiceAccountId;
use keyward_core::permission::Permission;
use keyward_store::ServiceAccount;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, Caller};
use crate::members::{self, Acting};
use crate::service_accounts::{self as rules, AccountRequest, OrgRef};
use crate::state::AppState;

static READ: LazyLock<Permission> = LazyLock::new(|| Permission::parse("service_accounts:read").expect("valid"));
static WRITE: LazyLock<Permission> = LazyLock::new(|| Permission::parse("service_accounts:write").expect("valid"));

/// A client secret as listed: what identifies it, never the secret.
#[derive(Serialize, ToSchema, Debug)]
pub struct SecretView {
    /// The first 12 characters (empty for an imported secret).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Set while a rotation's grace period runs.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A registered public key.
#[derive(Serialize, ToSchema, Debug)]
pub struct PublicKeyView {
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
}

/// A service account as listed.
#[derive(Serialize, ToSchema, Debug)]
pub struct AccountView {
    pub id: String,
    /// Always `service_account`.
    pub kind: &'static str,
    /// The OAuth client id: the account's id, or the one it was imported with.
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub secrets: Vec<SecretView>,
    pub public_keys: Vec<PublicKeyView>,
    /// The plain client secret: only in the response that made it, this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl AccountView {
    fn new(a: ServiceAccount, client_secret: Option<String>) -> Self {
        Self {
            id: a.id.to_string(),
            kind: "service_account",
            client_id: a.client_id,
            name: a.name,
            role: a.role,
            created_at: a.created_at,
            secrets: a
                .secrets
                .into_iter()
                .map(|s| SecretView {
                    prefix: s.prefix.as_str().to_owned(),
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                })
                .collect(),
            public_keys: a
                .public_keys
                .iter()
                .map(|k| PublicKeyView { kid: k.kid().to_owned(), alg: k.alg().as_str().to_owned() })
                .collect(),
            client_secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub data: Vec<AccountView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountBody {
    /// 1–100 characters after trimming, no control characters.
    #[schema(min_length = 1)]
    pub name: String,
    /// Default `member`; the caller must hold every permission of the role.
    pub role: Option<String>,
    /// PEM or JWK texts (a JWKS gives several keys).
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// Make a client secret; default: yes unless public keys are given.
    pub secret: Option<bool>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secrets keep working (0–604800 s, default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800, default = 0)]
    pub grace_seconds: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKeyBody {
    /// PEM or JWK text.
    pub public_key: String,
    /// The key id; default: the JWK's `kid`, else its RFC 7638 thumbprint.
    pub kid: Option<String>,
}

impl From<rules::AccountRuleError> for ApiError {
    fn from(e: rules::AccountRuleError) -> Self {
        match e {
            rules::AccountRuleError::Invalid(m) => ApiError::Validation(m),
            e @ rules::AccountRuleError::PlanTooLow { .. } => ApiError::PlanRequired(e.to_string()),
            e @ (rules::AccountRuleError::RoleNotHeld(_) | rules::AccountRuleError::OwnerOnly) => {
                ApiError::Forbidden(e.to_string())
            }
            rules::AccountRuleError::Store(s) => s.into(),
        }
    }
}

fn parse_id(id: &str) -> Result<ServiceAccountId, ApiError> {
    ServiceAccountId::parse(id).ok_or(ApiError::NotFound)
}

/// The organization's service accounts.
#[utoipa::path(get, path = "/api/v1/service-accounts", operation_id = "list_service_accounts", tag = "service-accounts",
    responses((status = 200, body = AccountList, description = "The accounts."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `service_accounts:read`.")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<AccountList>, ApiError> {
    caller.0.require(&READ)?;
    let accounts = state.store.service_accounts(&caller.0.grant().org_id).await?;
    Ok(Json(AccountList { data: accounts.into_iter().map(|a| AccountView::new(a, None)).collect() }))
}

/// Makes a service account; its client secret is in this response only.
#[utoipa::path(post, path = "/api/v1/service-accounts", operation_id = "create_service_account", tag = "service-accounts", request_body = CreateAccountBody,
    responses((status = 201, body = AccountView, description = "The account, with its client secret (if it has one) in `client_secret`."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks \
            `service_accounts:write` or a permission of the account's role, or the session cookie without \
            `X-CSRF-Token`; `plan_required`: the organization's plan does not include service accounts."),
        (status = 409, body = super::views::ErrorBody, description = "`conflict`: two of the public keys have the same `kid`."),
        (status = 422, body = super::views::ErrorBody, description = "`validation_failed`: a bad name, an unknown role, \
            a public key that cannot be read, neither a secret nor a key, a wrong type or an unknown field.")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAccountBody>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    caller.0.require(&WRITE)?;
    let grant = caller.0.grant();
    let req = AccountRequest { name: body.name, role: body.role, public_keys: body.public_keys, secret: body.secret };
    let (account, secret) = rules::create(
        &state.deployment(),
        OrgRef { id: &grant.org_id, plan: grant.org_plan },
        Acting::Member { role: grant.role.as_deref(), holds: &grant.effective },
        &req,
        &caller.0.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(AccountView::new(account, secret.map(|s| s.expose().to_owned())))))
}

/// Deletes an account: its secrets, keys and tokens stop working at once. Only an owner
/// deletes an owner account.
#[utoipa::path(delete, path = "/api/v1/service-accounts/{id}", operation_id = "delete_service_account", tag = "service-accounts", params(("id" = String, Path, pattern = r"^sa_[0-9a-f]{32}$", description = "The service account's id.")),
    responses((status = 204, description = "Deleted."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `service_accounts:write`, or the session cookie without `X-CSRF-Token`."),
        (status = 404, body = super::views::ErrorBody, description = "`not_found`: a malformed id, or no such account in the caller's organization.")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.0.require(&WRITE)?;
    let id = parse_id(&id)?;
    let grant = caller.0.grant();
    let org = grant.org_id.clone();
    let acting = Acting::Member { role: grant.role.as_deref(), holds: &grant.effective };
    members::delete_service_account(&state.store, &org, acting, &id, &caller.0.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new client secret, shown once; the old ones keep working for `grace_seconds`.
#[utoipa::path(post, path = "/api/v1/service-accounts/{id}/secret", operation_id = "rotate_service_account_secret", tag = "service-accounts", params(("id" = String, Path, pattern = r"^sa_[0-9a-f]{32}$", description = "The service account's id.")),
    request_body(content = Option<RotateBody>, description = "Optional: no body is the same as `{}`."),
    responses((status = 200, body = AccountView, description = "The account, with its new secret in `client_secret`."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `service_accounts:write`, or the session cookie without `X-CSRF-Token`."),
        (status = 404, body = super::views::ErrorBody, description = "`not_found`: a malformed id, or no such account in the caller's organization."),
        (status = 409, body = super::views::ErrorBody,
            description = "`conflict`: the secret was rotated by another request at the same time."),
        (status = 422, body = super::views::ErrorBody,
            description = "`validation_failed`: `grace_seconds` out of range, a wrong type or an unknown field.")))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Option<RotateBody>>,
) -> Result<Json<AccountView>, ApiError> {
    caller.0.require(&WRITE)?;
    let id = parse_id(&id)?;
    let org = caller.0.grant().org_id.clone();
    let grace = body.unwrap_or_default().grace_seconds;
    let (account, secret) = rules::rotate(&state.deployment(), &org, &id, grace, &caller.0.actor()).await?;
    Ok(Json(AccountView::new(account, Some(secret.expose().to_owned()))))
}

/// Registers another public key for signed assertions.
#[utoipa::path(post, path = "/api/v1/service-accounts/{id}/public-keys", operation_id = "add_service_account_key", tag = "service-accounts", params(("id" = String, Path, pattern = r"^sa_[0-9a-f]{32}$", description = "The service account's id.")),
    request_body = AddKeyBody,
    responses((status = 201, body = AccountView, description = "The account with the new key."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `service_accounts:write`, or the session cookie without `X-CSRF-Token`."),
        (status = 404, body = super::views::ErrorBody, description = "`not_found`: a malformed id, or no such account in the caller's organization."),
        (status = 409, body = super::views::ErrorBody, description = "`conflict`: the account already has a key with this `kid`."),
        (status = 422, body = super::views::ErrorBody,
            description = "`validation_failed`: a public key that cannot be read, a wrong type or an unknown field.")))]
pub async fn add_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddKeyBody>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    caller.0.require(&WRITE)?;
    let id = parse_id(&id)?;
    let key = keyward_core::assertion::PublicKey::parse(&body.public_key, body.kid.as_deref())
        .map_err(|e| ApiError::Validation(format!("public key: {}", e.0)))?;
    let account = state.store.add_public_key(&caller.0.grant().org_id, &id, &key, &caller.0.actor()).await?;
    Ok((StatusCode::CREATED, Json(AccountView::new(account, None))))
}

/// Removes a registered public key: assertions signed with it are refused from now.
#[utoipa::path(delete, path = "/api/v1/service-accounts/{id}/public-keys/{kid}", operation_id = "remove_service_account_key", tag = "service-accounts",
    params(("id" = String, Path, pattern = r"^sa_[0-9a-f]{32}$", description = "The service account's id."), ("kid" = String, Path, description = "The key's id (`kid`).")),
    responses((status = 204, description = "Removed."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `service_accounts:write`, or the session cookie without `X-CSRF-Token`."),
        (status = 404, body = super::views::ErrorBody, description = "`not_found`: no such account or key.")))]
pub async fn remove_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, kid)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.0.require(&WRITE)?;
    let id = parse_id(&id)?;
    state.store.remove_public_key(&caller.0.grant().org_id, &id, &kid, &caller.0.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
