//! `POST /oauth/token` (RFC 6749 §3.2) and its grants.
//!
//! - `client_credentials` (§4.4): a service account authenticated by secret or
//!   `private_key_jwt` gets an access token for itself. No refresh token (§4.4.3): it
//!   can always authenticate again.
//! - `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): a JWT signed by the
//!   account's registered key is the grant; the answer carries an access token and a
//!   refresh token, so a holder of the private key need not sign one assertion per hour.
//! - `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628): see [`super::device`].
//! - `refresh_token` (§6): rotation — the presented token is used up and a new pair
//!   issued in the same family; a used token presented again revokes the family.
//!
//! A requested `scope` (space-separated permissions) is narrowed to what the principal
//! holds (RFC 6749 §3.3), and the answer's `scope` says what was granted: clients such
//! as the MCP SDK ask for every scope of `scopes_supported`. `invalid_scope` only when a
//! scope is not a permission of this deployment, or when nothing would remain. Without
//! one, the token follows the principal's permissions at every request. Tokens are
//! opaque, typed (`{P}at_`, `{P}rt_`) and stored hashed.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use keyward_core::ids::OrgId;
use keyward_core::permission::{PermissionSet, Roles};
use keyward_core::secret::{SecretHash, SecretKind};
use keyward_store::{Actor, AuditAction, AuditEvent, NewToken, NewTokens, Principal, RefreshOutcome};

use super::client::{self, is_device_client, AssertionFailure, Client};
use super::issue::{lifetimes, token_response};
use super::params::Params;
use super::OAuthError;
use crate::state::AppState;

pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grants this server answers, for the metadata document.
pub const GRANTS: &[&str] = &[CLIENT_CREDENTIALS, JWT_BEARER, REFRESH_TOKEN, DEVICE_CODE];

/// The token endpoint.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let (state, headers) = (&state, &headers);
    let params = Params::read(headers, body).await?;
    let client = client::authenticate(state, headers, &params, client::Endpoint::Token).await?;
    let grant_type = params.require("grant_type")?;
    match grant_type {
        CLIENT_CREDENTIALS => client_credentials(state, client, &params).await,
        JWT_BEARER => jwt_bearer(state, client, &params).await,
        REFRESH_TOKEN => refresh(state, client, &params).await,
        DEVICE_CODE => super::device::grant(state, client, &params).await,
        _ => Err(OAuthError::unsupported_grant_type("this grant type is not supported")),
    }
}

/// The `scope` parameter, narrowed to `holds`. `None`: not asked.
fn requested_scope(params: &Params, holds: &PermissionSet, roles: &Roles) -> Result<Option<PermissionSet>, OAuthError> {
    let Some(scope) = params.get("scope") else { return Ok(None) };
    let asked = PermissionSet::parse(scope.split(' ').filter(|s| !s.is_empty()))
        .map_err(|_| OAuthError::invalid_scope("scope must be space-separated permissions (resource:action)"))?;
    if let Some(unknown) = asked.iter().find(|p| !roles.is_catalogued(p)) {
        return Err(OAuthError::invalid_scope(format!("{unknown} is not a permission of this deployment")));
    }
    let granted = asked.intersect(holds);
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope("the principal holds none of the requested scopes"));
    }
    Ok(Some(granted))
}

/// A service account that proved itself, or the right refusal for any other client: a
/// known public client may not use this grant; anyone else failed to authenticate.
fn confidential(state: &AppState, client: Client) -> Result<client::ServiceClient, OAuthError> {
    match client {
        Client::Confidential(c) => Ok(c),
        Client::Public(id) if is_device_client(state, &id) => {
            Err(OAuthError::unauthorized_client("this client may not use this grant"))
        }
        // Named by client_id alone, and not a public client: 400 (docs/oauth.md).
        Client::Public(_) => Err(OAuthError::client_not_allowed("this client must authenticate", false)),
        Client::Anonymous => Err(OAuthError::invalid_client("client authentication is required")),
    }
}

async fn client_credentials(state: &AppState, client: Client, params: &Params) -> Result<Response, OAuthError> {
    let client = confidential(state, client)?;
    // RFC 6749 §4.4.3: no refresh token; the client can always authenticate again.
    issue_for(state, &client, params, false).await
}

async fn jwt_bearer(state: &AppState, client: Client, params: &Params) -> Result<Response, OAuthError> {
    // Client authentication is optional for this grant (RFC 7523 §3.1): the assertion
    // proves the account. A client that does authenticate must be that account.
    let expected = match client {
        Client::Anonymous => None,
        other => Some(confidential(state, other)?.client_id),
    };
    let assertion = params.require("assertion")?;
    let account = client::by_assertion(state, assertion, expected.as_deref(), client::Endpoint::Token).await.map_err(
        |e| match e {
            AssertionFailure::Store(e) => e.into(),
            AssertionFailure::Refused(why) => OAuthError::invalid_grant(format!("the assertion is refused: {why}")),
        },
    )?;
    issue_for(state, &account, params, true).await
}

/// Tokens for a service account itself, narrowed to the requested `scope`.
async fn issue_for(
    state: &AppState,
    account: &client::ServiceClient,
    params: &Params,
    refresh: bool,
) -> Result<Response, OAuthError> {
    let scopes = requested_scope(params, &account.permissions, &state.settings.roles)?;
    let effective = scopes.clone().unwrap_or_else(|| account.permissions.clone());
    let issued = Issue {
        org_id: account.org_id.clone(),
        principal: account.principal(),
        client_id: account.client_id.clone(),
        scopes,
        refresh,
    };
    issued.store(state, &effective).await
}

async fn refresh(state: &AppState, client: Client, params: &Params) -> Result<Response, OAuthError> {
    let client_id = match &client {
        Client::Confidential(c) => c.client_id.clone(),
        // Public clients (the device-flow clients) refresh with their id alone.
        Client::Public(id) if is_device_client(state, id) => id.clone(),
        Client::Public(_) => return Err(OAuthError::client_not_allowed("this client must authenticate", false)),
        Client::Anonymous => return Err(OAuthError::invalid_client("client authentication is required")),
    };
    let presented = params.require("refresh_token")?;
    if state.settings.secrets.check(presented) != Ok(SecretKind::RefreshToken) {
        return Err(OAuthError::invalid_grant("the refresh token is not valid"));
    }
    let hash = SecretHash::of(presented);
    let access = state.settings.secrets.generate(SecretKind::AccessToken);
    let refresh = state.settings.secrets.generate(SecretKind::RefreshToken);
    let now = Utc::now();
    let (access_ttl, refresh_ttl) = lifetimes(state);
    let roles = &state.settings.roles;
    // Filled by the closure: what the new access token may do, or why none is issued.
    let mut outcome: Result<PermissionSet, OAuthError> =
        Err(OAuthError::invalid_grant("the refresh token is not valid"));
    let (result, issued) = state
        .store
        .refresh_tokens(&hash, &client_id, now, |g| {
            let holds = roles.permissions_of(g.role.as_deref()?);
            // The grant never widens: what it had, narrowed to what the principal holds.
            let allowed = PermissionSet::effective(g.scopes.as_ref(), &holds);
            let scopes = match requested_scope(params, &allowed, roles) {
                Ok(asked) => asked.or_else(|| g.scopes.clone()),
                Err(e) => {
                    outcome = Err(e);
                    return None;
                }
            };
            outcome = Ok(scopes.clone().unwrap_or_else(|| allowed.clone()));
            Some(NewTokens {
                org_id: g.org_id.clone(),
                principal: g.principal.clone(),
                client_id: client_id.clone(),
                scopes,
                access: NewToken::of(&access, now + access_ttl),
                refresh: Some(NewToken::of(&refresh, now + refresh_ttl)),
                family: None,
            })
        })
        .await?;
    match result {
        RefreshOutcome::Exchanged(_) => {
            let effective = outcome?;
            let issued = issued.ok_or_else(|| OAuthError::internal("an exchanged refresh token issued nothing"))?;
            tracing::debug!(family = %issued.family, "refresh token exchanged");
            Ok(token_response(&access, Some(&refresh), state, &effective))
        }
        RefreshOutcome::Reused(family) => {
            tracing::warn!(%family, client_id, "a used refresh token was presented again; its family is revoked");
            audit_reuse(state, &hash, &client_id).await;
            Err(OAuthError::invalid_grant("the refresh token was already used; its tokens are revoked"))
        }
        RefreshOutcome::Invalid => {
            Err(outcome.err().unwrap_or_else(|| OAuthError::invalid_grant("the refresh token is not valid")))
        }
    }
}

/// Records a refresh-token reuse in the organization's audit log.
async fn audit_reuse(state: &AppState, hash: &SecretHash, client_id: &str) {
    let Ok(Some(info)) = state.store.token_by_hash(hash).await else { return };
    let actor = Actor::client(client_id);
    let event = AuditEvent::new(Some(&info.org_id), &actor, AuditAction::OAuthRefreshTokenReused)
        .target("token_family", &info.family)
        .detail(serde_json::json!({ "client_id": client_id }));
    if let Err(e) = state.store.append_events(&[event]).await {
        tracing::warn!(error = %e, "the refresh-token reuse could not be audited");
    }
}

/// Tokens to issue for a grant that is not a refresh.
struct Issue {
    org_id: OrgId,
    principal: Principal,
    client_id: String,
    scopes: Option<PermissionSet>,
    refresh: bool,
}

impl Issue {
    async fn store(self, state: &AppState, effective: &PermissionSet) -> Result<Response, OAuthError> {
        let now = Utc::now();
        let (access_ttl, refresh_ttl) = lifetimes(state);
        let access = state.settings.secrets.generate(SecretKind::AccessToken);
        let refresh = self.refresh.then(|| state.settings.secrets.generate(SecretKind::RefreshToken));
        let new = NewTokens {
            org_id: self.org_id,
            principal: self.principal,
            client_id: self.client_id,
            scopes: self.scopes,
            access: NewToken::of(&access, now + access_ttl),
            refresh: refresh.as_ref().map(|r| NewToken::of(r, now + refresh_ttl)),
            family: None,
        };
        state.store.issue_tokens(&new).await.map_err(|e| match e {
            // The account was deleted (or left the organization) after it authenticated.
            keyward_store::StoreError::NotFound => OAuthError::invalid_grant("the client is no longer a member"),
            other => other.into(),
        })?;
        Ok(token_response(&access, refresh.as_ref(), state, effective))
    }
}
