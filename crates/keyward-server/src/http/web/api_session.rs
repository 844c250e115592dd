//! The web UI's session cookie as a credential on the management API (DESIGN.md's
//! sixth presentation): read only under `/api/v1/`, only when the request presents no
//! other credential, and for unsafe methods only with an `X-CSRF-Token` header holding
//! the session's CSRF token (the `csrf` value of any signed-in page; see
//! [`super::csrf`]) — another site can make a browser send the cookie, but can neither
//! read nor compute the token.
//!
//! The caller is the person in their current organization (the `keyward_org` cookie,
//! else their first); the grant is built per request, not cached: the UI's traffic is
//! small, and a session ends by a row delete that no change log needs to carry.

use std::sync::Arc;

use axum::http::request::Parts;
use keyward_core::credential::Via;
use keyward_core::secret::{DisplayPrefix, SecretHash};
use keyward_store::{CredentialGrant, CredentialRef, Principal};

use super::app::memberships;
use super::{cookie_value, csrf_ok, signed_in, WebError, SESSION_COOKIE};
use crate::auth::{Grant, Identity};
use crate::http::error::ApiError;
use crate::state::AppState;

/// The header an unsafe request made with the session cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        match e {
            WebError::Unavailable => ApiError::Unavailable,
            other => ApiError::Internal(anyhow::anyhow!("{other:?}")),
        }
    }
}

/// The person signed in by the request's session cookie, as an API caller; `None`
/// when there is no live session (or the path is not the management API).
pub async fn identity(state: &AppState, parts: &Parts) -> Result<Option<Identity>, ApiError> {
    if !parts.uri.path().starts_with("/api/v1/") {
        return Ok(None);
    }
    let Some(user) = signed_in(state, &parts.headers).await? else { return Ok(None) };
    if !parts.method.is_safe() {
        let header = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !csrf_ok(state, &parts.headers, header) {
            return Err(ApiError::Forbidden(format!(
                "a request made with the session cookie needs the {CSRF_HEADER} header (the csrf token of a signed-in page)"
            )));
        }
    }
    let (memberships, current) = memberships(state, &parts.headers, &user.id).await?;
    let Some((org, role)) = current.and_then(|i| memberships.into_iter().nth(i)) else { return Ok(None) };
    let session = cookie_value(&parts.headers, SESSION_COOKIE).unwrap_or_default();
    let found = CredentialGrant {
        credential: CredentialRef::Session { user: user.id.clone() },
        prefix: DisplayPrefix::from_stored(String::new()),
        org_id: org.id,
        org_slug: org.slug,
        org_plan: org.plan,
        principal: Principal::user(&user.id),
        principal_label: user.email.to_string(),
        own_permissions: None,
        role: Some(role),
        secret_hash: SecretHash::of(&session),
        expires_at: None,
        revoked: false,
        key_origin: Default::default(),
    };
    Ok(Some(Identity::new(Arc::new(Grant::from_found(found, &state.settings.roles)), Via::SessionCookie)))
}
