//! `POST /api/v1/keys/verify`: a backend holding a `keys:verify` credential asks about
//! a key it was given. Always `200` with a `code`; only keys of the caller's own
//! organization are visible (another organization's key is `NOT_FOUND`).

use std::sync::LazyLock;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use keyward_core::permission::{Permission, PermissionSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Rejection;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Caller};
use crate::http::views::{OrgView, PrincipalView};
use crate::state::AppState;

static VERIFY: LazyLock<Permission> = LazyLock::new(|| Permission::parse("keys:verify").expect("valid"));

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key to check.
    pub key: String,
    /// Permissions the key must carry.
    #[schema(value_type = Option<Vec<super::views::PermissionName>>)]
    pub permissions: Option<Vec<String>>,
}

/// The outcome. `RATE_LIMITED`: the key is over its organization plan's limit
/// (`[rate_limits.plans]`); each verification counts as one use of the key.
#[derive(Serialize, ToSchema, Debug, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    NotFound,
    Expired,
    InsufficientPermissions,
    RateLimited,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: VerifyCode,
    pub key_id: Option<String>,
    pub principal: Option<PrincipalView>,
    pub org: Option<OrgView>,
    pub permissions: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl VerifyResponse {
    fn not_found() -> Self {
        Self {
            valid: false,
            code: VerifyCode::NotFound,
            key_id: None,
            principal: None,
            org: None,
            permissions: vec![],
            expires_at: None,
        }
    }
}

/// Checks a key for a backend holding `keys:verify`: always `200` with a `code` for
/// the verified key; error statuses are about the request itself.
#[utoipa::path(post, path = "/api/v1/keys/verify", operation_id = "verify_key", tag = "verify", request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse, description = "What the key is, or why it is not valid."),
        (status = 403, body = super::views::ErrorBody,
            description = "`insufficient_scope`: the credential lacks `keys:verify`, or the session cookie without `X-CSRF-Token`."),
        (status = 422, body = super::views::ErrorBody,
            description = "`validation_failed`: a malformed entry in `permissions`, a wrong type or an unknown field.")))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    caller.0.require(&VERIFY)?;
    let wanted = match &req.permissions {
        Some(list) => PermissionSet::parse(list).map_err(|e| ApiError::Validation(e.0))?,
        None => PermissionSet::default(),
    };
    let own_org = &caller.0.grant().org_id;
    let grant = match state.auth.grant_for_secret(req.key.trim()).await {
        Ok(g) => g,
        Err(Rejection::Expired(g)) if g.org_id == *own_org && g.credential.api_key().is_some() => {
            return Ok(Json(VerifyResponse {
                code: VerifyCode::Expired,
                key_id: Some(g.credential.id().to_owned()),
                expires_at: g.expires_at,
                ..VerifyResponse::not_found()
            }))
        }
        Err(Rejection::Unavailable(e)) => return Err(Rejection::Unavailable(e).into()),
        Err(_) => return Ok(Json(VerifyResponse::not_found())),
    };
    // The verify API answers for API keys: a token or client secret is not a key.
    let Some(key_id) = grant.credential.api_key().filter(|_| grant.org_id == *own_org) else {
        return Ok(Json(VerifyResponse::not_found()));
    };
    state.usage.touch(key_id);
    if let crate::ratelimit::credential::Verdict::Over(_) = state.limits.credentials.check(&grant).await {
        return Ok(Json(VerifyResponse {
            code: VerifyCode::RateLimited,
            key_id: Some(key_id.to_string()),
            ..VerifyResponse::not_found()
        }));
    }
    let valid = wanted.is_subset_of(&grant.effective);
    Ok(Json(VerifyResponse {
        valid,
        code: if valid { VerifyCode::Valid } else { VerifyCode::InsufficientPermissions },
        key_id: Some(key_id.to_string()),
        principal: Some(PrincipalView::new(&grant.principal, &grant.principal_label)),
        org: Some(OrgView { id: grant.org_id.to_string(), slug: grant.org_slug.to_string() }),
        permissions: grant.effective.to_strings(),
        expires_at: grant.expires_at,
    }))
}
