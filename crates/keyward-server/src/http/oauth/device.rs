//! The device authorization grant (RFC 8628): `POST /oauth/device_authorization` and
//! the `urn:ietf:params:oauth:grant-type:device_code` grant of the token endpoint.
//!
//! Only the public clients of `device.client_ids` may use it. A code is redeemed once,
//! for the person and organization chosen on `/device`; polling faster than the code's
//! interval answers `slow_down` and grows that code's interval by 5 s for good.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use keyward_core::device::UserCode;
use keyward_core::permission::PermissionSet;
use keyward_core::secret::{SecretHash, SecretKind};
use keyward_store::{DevicePoll, NewDeviceAuthorization, NewToken, NewTokens, Principal, StoreError};

use super::client::is_device_client;
use super::client::{self, Client};
use super::issue::{lifetimes, token_response};
use super::params::Params;
use super::OAuthError;
use crate::state::AppState;

/// Where people approve codes.
pub const VERIFICATION_PATH: &str = "/device";

/// The device-flow client a request names, or the right refusal.
fn device_client(state: &AppState, client: Client) -> Result<String, OAuthError> {
    match client {
        Client::Public(id) if is_device_client(state, &id) => Ok(id),
        Client::Public(_) => Err(OAuthError::client_not_allowed("this client may not use the device flow", false)),
        // Not a device-flow client (docs/device.md): invalid_client, 400 (401 after Basic).
        Client::Confidential(c) => Err(OAuthError::client_not_allowed(
            "service accounts use client_credentials, not the device flow",
            c.method == client::Method::SecretBasic,
        )),
        Client::Anonymous => Err(OAuthError::invalid_request("the parameter client_id is required")),
    }
}

/// Counts one device authorization against `key`: every one adds a row, so they are
/// limited per client address and per client id (`429 rate_limited` past the limit).
/// Counters that cannot be reached let the request through (logged by the counters).
async fn count_authorization(state: &AppState, key: &str, rate: crate::ratelimit::Rate) -> Result<(), OAuthError> {
    let Some((count, reset)) = state.limits.device_authorizations.hit(key, rate).await else { return Ok(()) };
    let quota = crate::ratelimit::quota::Quota {
        policy: "device-authorization",
        rate,
        remaining: rate.max.saturating_sub(count),
        reset,
    };
    if count > rate.max {
        return Err(OAuthError::rate_limited(quota));
    }
    crate::ratelimit::quota::remember(quota);
    Ok(())
}

/// `POST /oauth/device_authorization` (RFC 8628 §3.1–3.2).
pub async fn authorize(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let (state, headers) = (&state, &headers);
    if let Some(ip) = crate::ratelimit::address::current() {
        count_authorization(state, &format!("device:ip:{ip}"), state.limits.device_per_address).await?;
    }
    let params = Params::read(headers, body).await?;
    let client_id = device_client(
        state,
        client::authenticate(state, headers, &params, client::Endpoint::DeviceAuthorization).await?,
    )?;
    count_authorization(state, &format!("device:client:{client_id}"), state.limits.device_per_client).await?;
    let scopes = match params.get("scope") {
        None => None,
        Some(scope) => {
            let set = PermissionSet::parse(scope.split(' ').filter(|s| !s.is_empty())).map_err(|_| {
                OAuthError::invalid_scope("scope must be space-separated permissions (resource:action)")
            })?;
            if let Some(unknown) = set.iter().find(|p| !state.settings.roles.is_catalogued(p) && p.as_str() != "*") {
                return Err(OAuthError::invalid_scope(format!("{unknown} is not a permission of this deployment")));
            }
            Some(set)
        }
    };
    let device_code = state.settings.secrets.generate(SecretKind::DeviceCode);
    let lifetime = state.settings.device_code_lifetime;
    let interval = state.settings.device_interval;
    let expires_at = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::minutes(10));
    // A user code has ~34.6 bits; a clash with a live code is rare, so draw again.
    let mut attempts = 0;
    let user_code = loop {
        let user_code = UserCode::generate();
        let new = NewDeviceAuthorization {
            code_hash: device_code.hash(),
            user_code: user_code.clone(),
            client_id: client_id.clone(),
            scopes: scopes.clone(),
            interval: chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::seconds(5)),
            expires_at,
        };
        match state.store.create_device_authorization(&new).await {
            Ok(_) => break user_code,
            Err(StoreError::Conflict(_)) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let uri = format!("{}{VERIFICATION_PATH}", state.settings.public_url);
    let shown = user_code.display();
    let body = serde_json::json!({
        "device_code": device_code.expose(),
        "user_code": shown,
        "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?user_code={shown}"),
        "expires_in": lifetime.as_secs(),
        // Whole seconds (RFC 8628 §3.2); a sub-second configured interval shows as 1.
        "interval": interval.as_secs().max(1),
    });
    Ok(super::json(StatusCode::OK, body))
}

/// The device-code grant at the token endpoint (RFC 8628 §3.4–3.5).
pub async fn grant(state: &AppState, client: Client, params: &Params) -> Result<Response, OAuthError> {
    let client_id = device_client(state, client)?;
    let presented = params.require("device_code")?;
    if state.settings.secrets.check(presented) != Ok(SecretKind::DeviceCode) {
        return Err(OAuthError::invalid_grant("the device code is not valid"));
    }
    let access = state.settings.secrets.generate(SecretKind::AccessToken);
    let refresh = state.settings.secrets.generate(SecretKind::RefreshToken);
    let now = Utc::now();
    let (access_ttl, refresh_ttl) = lifetimes(state);
    let roles = &state.settings.roles;
    let mut effective = PermissionSet::default();
    let (poll, _) = state
        .store
        .poll_device(&SecretHash::of(presented), &client_id, now, |approved| {
            let holds = roles.permissions_of(approved.role.as_deref()?);
            effective = PermissionSet::effective(approved.scopes.as_ref(), &holds);
            Some(NewTokens {
                org_id: approved.org_id.clone(),
                principal: Principal::user(&approved.user_id),
                client_id: client_id.clone(),
                scopes: approved.scopes.clone(),
                access: NewToken::of(&access, now + access_ttl),
                refresh: Some(NewToken::of(&refresh, now + refresh_ttl)),
                family: None,
            })
        })
        .await?;
    match poll {
        DevicePoll::Redeemed(_) => Ok(token_response(&access, Some(&refresh), state, &effective)),
        DevicePoll::Pending => {
            Err(OAuthError::device("authorization_pending", "the person has not approved the code yet"))
        }
        DevicePoll::SlowDown => {
            Err(OAuthError::device("slow_down", "polling too fast; the interval for this code grew by 5 seconds"))
        }
        DevicePoll::Denied => Err(OAuthError::device("access_denied", "the person denied the request")),
        DevicePoll::Expired => Err(OAuthError::device("expired_token", "the device code has expired; start again")),
        DevicePoll::Invalid => Err(OAuthError::invalid_grant("the device code is not valid")),
    }
}
