//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).
//!
//! Introspection needs an authenticated caller, in one of two ways: a service account
//! authenticating as an OAuth client (Basic, post or `private_key_jwt`), which learns
//! about tokens issued to itself; or a Bearer / `X-API-Key` credential holding
//! `keys:verify` (a backend), which learns about any token of its organization.
//! Anything else — unknown, expired, revoked, used, another organization's or another
//! client's — is `{"active": false}` and nothing more, so the answer never tells a
//! token that exists from one that does not.
//!
//! Revocation authenticates the client the same way as the token endpoint (a
//! device-flow client may name itself with `client_id` alone). It answers `200` for any
//! token, revoking only one issued to that client: an access token alone, a refresh
//! token with its whole family.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use keyward_core::ids::OrgId;
use keyward_core::permission::{Permission, PermissionSet};
use keyward_core::secret::{SecretHash, SecretKind};

use super::client::{self, Client};
use super::params::Params;
use super::OAuthError;
use crate::state::AppState;

static VERIFY: LazyLock<Permission> = LazyLock::new(|| Permission::parse("keys:verify").expect("valid"));

/// Who asks about a token.
enum Asker {
    /// A client: tokens issued to it.
    Client { client_id: String, org_id: OrgId },
    /// A backend holding `keys:verify`: any token of its organization.
    Backend { org_id: OrgId },
}

async fn asker(state: &AppState, headers: &HeaderMap, params: &Params) -> Result<Asker, OAuthError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")));
    if bearer || headers.contains_key(&state.settings.api_key_header) {
        let from = crate::ratelimit::address::current();
        let identity = state.auth.authenticate_from(headers, from).await.map_err(|r| match r {
            r @ (crate::auth::Rejection::Unavailable(_) | crate::auth::Rejection::Throttled(_)) => {
                OAuthError::from_client_rejection(r)
            }
            _ => OAuthError::invalid_client("the credential is not valid"),
        })?;
        if !identity.permissions().allows(&VERIFY) {
            return Err(OAuthError::invalid_client("introspection needs keys:verify or client authentication"));
        }
        return Ok(Asker::Backend { org_id: identity.grant().org_id.clone() });
    }
    match client::authenticate(state, headers, params, client::Endpoint::Introspection).await? {
        Client::Confidential(c) => Ok(Asker::Client { client_id: c.client_id, org_id: c.org_id }),
        Client::Public(_) => Err(OAuthError::client_not_allowed("introspection needs an authenticated client", false)),
        Client::Anonymous => Err(OAuthError::invalid_client("introspection needs an authenticated client")),
    }
}

fn inactive() -> Response {
    super::json(StatusCode::OK, serde_json::json!({ "active": false }))
}

pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let (state, headers) = (&state, &headers);
    let params = Params::read(headers, body).await?;
    let asker = asker(state, headers, &params).await?;
    let token = params.require("token")?;
    match state.settings.secrets.check(token) {
        Ok(SecretKind::AccessToken | SecretKind::RefreshToken) => {}
        _ => return Ok(inactive()),
    }
    let Some(info) = state.store.token_by_hash(&SecretHash::of(token)).await? else { return Ok(inactive()) };
    let visible = match &asker {
        Asker::Client { client_id, org_id } => info.client_id == *client_id && info.org_id == *org_id,
        Asker::Backend { org_id } => info.org_id == *org_id,
    };
    let now = Utc::now();
    let live = !info.revoked && !info.used && info.expires_at > now && info.role.is_some();
    if !visible || !live {
        return Ok(inactive());
    }
    let holds = state.settings.roles.permissions_of(info.role.as_deref().unwrap_or_default());
    let effective = PermissionSet::effective(info.scopes.as_ref(), &holds);
    let body = serde_json::json!({
        "active": true,
        "scope": effective.to_strings().join(" "),
        "client_id": info.client_id,
        "username": info.principal_label,
        "token_type": if info.kind == "refresh" { "refresh_token" } else { "Bearer" },
        "exp": info.expires_at.timestamp(),
        "iat": info.created_at.timestamp(),
        "sub": info.principal.id,
        "iss": state.settings.public_url,
        "jti": info.id,
        "org": { "id": info.org_id, "slug": info.org_slug },
        "principal_kind": info.principal.kind.as_str(),
    });
    Ok(super::json(StatusCode::OK, body))
}

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let (state, headers) = (&state, &headers);
    let params = Params::read(headers, body).await?;
    let client_id = match client::authenticate(state, headers, &params, client::Endpoint::Revocation).await? {
        Client::Confidential(c) => c.client_id,
        Client::Public(id) if client::is_device_client(state, &id) => id,
        Client::Public(_) => {
            return Err(OAuthError::client_not_allowed("this client must authenticate to revoke tokens", false))
        }
        Client::Anonymous => return Err(OAuthError::invalid_client("client authentication is required")),
    };
    let token = params.require("token")?;
    if matches!(state.settings.secrets.check(token), Ok(SecretKind::AccessToken | SecretKind::RefreshToken)) {
        state.store.revoke_token(&SecretHash::of(token), &client_id).await?;
    }
    // RFC 7009 §2.2: 200 whether or not there was anything to revoke.
    Ok(super::json(StatusCode::OK, serde_json::json!({})))
}
