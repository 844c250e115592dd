//! `/api/v1/api-keys`: the caller's own keys in the caller's organization.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keyward_core::ids::KeyId;
use keyward_core::permission::{Permission, PermissionSet};
use keyward_store::{ApiKey, KeyScope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::keys::{self, Creator, KeyRequest, Lineage};
use crate::state::AppState;

static READ: LazyLock<Permission> = LazyLock::new(|| Permission::parse("api_keys:read").expect("valid"));
static WRITE: LazyLock<Permission> = LazyLock::new(|| Permission::parse("api_keys:write").expect("valid"));

/// A key as listed. `permissions` are what the key may do now: its own list
/// intersected with what its owner holds (everything the owner holds when it inherits).
#[derive(Serialize, ToSchema, Debug)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The first 12 characters of the secret (for an imported key: a quarter of the
    /// plain key at most, or empty when only its hash was imported).
    pub prefix: String,
    pub permissions: Vec<String>,
    /// True when the key has no list of its own and follows its owner's permissions.
    pub inherits: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Present only with `?include_revoked=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Option<DateTime<Utc>>>,
}

impl KeyView {
    /// `owner_holds`: the owner's current permissions; `pending_use`: a use this
    /// instance has not written yet.
    pub fn new(
        key: ApiKey,
        owner_holds: &PermissionSet,
        pending_use: Option<DateTime<Utc>>,
        with_revoked: bool,
    ) -> Self {
        let permissions = PermissionSet::effective(key.permissions.as_ref(), owner_holds);
        Self {
            id: key.id.to_string(),
            name: key.name,
            prefix: key.prefix.as_str().to_owned(),
            permissions: permissions.to_strings(),
            inherits: key.permissions.is_none(),
            created_at: key.created_at,
            updated_at: key.updated_at,
            last_used_at: key.last_used_at.max(pending_use),
            expires_at: key.expires_at,
            revoked_at: with_revoked.then_some(key.revoked_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyView>,
}

/// A key with its secret: only in the response that created or rolled it.
#[derive(Serialize, ToSchema)]
pub struct KeyWithSecret {
    #[serde(flatten)]
    pub view: KeyView,
    /// The plain secret. Shown this once; keyward keeps only its hash.
    pub key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// 1–100 characters after trimming, no control characters.
    #[schema(min_length = 1)]
    pub name: String,
    /// A subset of the caller's permissions; left out, the key inherits the owner's
    /// (for a caller that is itself an API key: the caller's own).
    #[schema(value_type = Option<Vec<super::views::PermissionName>>)]
    pub permissions: Option<Vec<String>>,
    /// RFC 3339; must lie in the future. A caller that itself expires (an API key with
    /// an expiry, an OAuth access token) cannot go past its own expiry (`422`); left
    /// out, the new key gets the caller's expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RollBody {
    /// How long the old secret keeps working (0–604800 s, default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800, default = 0)]
    pub grace_seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    include_revoked: bool,
}

// The document's shared texts for these routes.
const READ_403: &str = "`insufficient_scope`: the key's own list does not name `api_keys:read`.";
const WRITE_403: &str = "`insufficient_scope`: the key's own list does not name `api_keys:write`, or the session \
    cookie without `X-CSRF-Token`.";
const KEY_404: &str = "`not_found`: a malformed id, another organization's or principal's key, or a revoked one.";

fn own_scope(caller: &Caller) -> KeyScope {
    let grant = caller.0.grant();
    KeyScope { org_id: grant.org_id.clone(), principal_id: Some(grant.principal.id.clone()) }
}

fn parse_id(id: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(id).ok_or(ApiError::NotFound)
}

/// The caller's keys, newest first.
#[utoipa::path(get, path = "/api/v1/api-keys", operation_id = "list_api_keys", tag = "api-keys",
    params(("include_revoked" = Option<bool>, Query,
        description = "Also list revoked keys, each with `revoked_at` (default `false`).")),
    responses((status = 200, body = KeyList, description = "The caller's keys."),
        (status = 403, body = super::views::ErrorBody, description = READ_403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<KeyList>, ApiError> {
    caller.0.require_explicit(&READ)?;
    let keys = state.store.list_api_keys(&own_scope(&caller), q.include_revoked).await?;
    let holds = &caller.0.grant().role_permissions;
    let data = keys
        .into_iter()
        .map(|k| {
            let pending = state.usage.last_used(&k.id);
            KeyView::new(k, holds, pending, q.include_revoked)
        })
        .collect();
    Ok(Json(KeyList { data }))
}

/// Makes a key for the caller; the secret is in this response only.
#[utoipa::path(post, path = "/api/v1/api-keys", operation_id = "create_api_key", tag = "api-keys", request_body = CreateKeyBody,
    responses((status = 201, body = KeyWithSecret, description = "The key, with its secret in `key`."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the key's own list does not \
            name `api_keys:write`; a permission the caller does not hold; or the session cookie without `X-CSRF-Token`."),
        (status = 422, body = super::views::ErrorBody, description = "`validation_failed`: a bad name, a malformed or \
            unknown permission, an expiry not in the future or later than the creating credential's own, a wrong type \
            or an unknown field.")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<(StatusCode, Json<KeyWithSecret>), ApiError> {
    caller.0.require_explicit(&WRITE)?;
    let grant = caller.0.grant();
    let req = KeyRequest { name: body.name, permissions: body.permissions, expires_at: body.expires_at };
    // The caller is an API key: it is restricted to its own effective permissions.
    let creator = Creator { holds: &grant.effective, restricted: true };
    // And the new key lives no longer than the credential making it.
    let (key, secret) = keys::create_from(
        &state.deployment(),
        &grant.org_id,
        &grant.principal,
        &creator,
        &Lineage::of(grant),
        &req,
        &caller.0.actor(),
    )
    .await?;
    let view = KeyView::new(key, &grant.role_permissions, None, false);
    Ok((StatusCode::CREATED, Json(KeyWithSecret { view, key: secret.expose().to_owned() })))
}

/// Revokes one of the caller's keys, at once and for good.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", operation_id = "revoke_api_key", tag = "api-keys", params(("id" = String, Path, pattern = r"^key_[0-9a-f]{32}$", description = "The key's id.")),
    responses((status = 204, description = "Revoked."),
        (status = 403, body = super::views::ErrorBody, description = WRITE_403),
        (status = 404, body = super::views::ErrorBody, description = KEY_404)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.0.require_explicit(&WRITE)?;
    let id = parse_id(&id)?;
    state.store.revoke_api_key(Some(&own_scope(&caller)), &id, &caller.0.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for the same key; the old one works for `grace_seconds` more. Of
/// simultaneous rolls of one key one wins; the others answer `409 conflict`.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/roll", operation_id = "roll_api_key", tag = "api-keys", params(("id" = String, Path, pattern = r"^key_[0-9a-f]{32}$", description = "The key's id.")),
    request_body(content = Option<RollBody>, description = "Optional: no body is the same as `{}`."),
    responses((status = 200, body = KeyWithSecret, description = "The key, with its new secret in `key`."),
        (status = 403, body = super::views::ErrorBody, description = WRITE_403),
        (status = 404, body = super::views::ErrorBody, description = KEY_404),
        (status = 409, body = super::views::ErrorBody,
            description = "`conflict`: the key was rolled or revoked by another request at the same time."),
        (status = 422, body = super::views::ErrorBody,
            description = "`validation_failed`: `grace_seconds` out of range, a wrong type or an unknown field.")))]
pub async fn roll(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Option<RollBody>>,
) -> Result<Json<KeyWithSecret>, ApiError> {
    caller.0.require_explicit(&WRITE)?;
    let id = parse_id(&id)?;
    let grace = body.unwrap_or_default().grace_seconds;
    let (key, secret) =
        keys::roll(&state.deployment(), Some(&own_scope(&caller)), &id, grace, &caller.0.actor()).await?;
    let pending = state.usage.last_used(&key.id);
    let view = KeyView::new(key, &caller.0.grant().role_permissions, pending, false);
    Ok(Json(KeyWithSecret { view, key: secret.expose().to_owned() }))
}
