//! Keeping a stored sign-in usable: the access token is refreshed 30 s before it expires
//! (or after a `401`), and the new pair stored. The refresh runs under the lock file, so
//! that two runs never present the same refresh token: the server takes a second use of a
//! rotated refresh token for theft and ends the whole sign-in.

use std::path::Path;

use anyhow::bail;
use chrono::{DateTime, SubsecRound, Utc};
use oauth2::basic::BasicTokenResponse;
use oauth2::TokenResponse;

use super::credentials::{read_credentials, write_credentials, Credentials, RefreshLock};
use super::oauth::Server;
use super::transport::http_client;

/// An access token this close to its expiry is refreshed first, so it cannot run out
/// while the request is on its way.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(30);
/// The lifetime assumed when a token response names none (the server's default); a `401`
/// triggers a refresh anyway.
const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// Longer lifetimes are cut to this (ten years), so the expiry stays a representable time.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Whether the stored access token must be refreshed before use: it has expired, or
/// expires within [`EXPIRY_MARGIN`].
pub fn needs_refresh(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now + EXPIRY_MARGIN >= expires_at
}

/// What to store after a token response from `server`. Without a new refresh token the
/// old one stays valid (RFC 6749 §6), and without a `scope` the previous one holds.
pub fn credentials_from(server: &str, token: &BasicTokenResponse, previous: Option<&Credentials>) -> Credentials {
    let lifetime = token.expires_in().map_or(DEFAULT_LIFETIME_SECONDS, |d| d.as_secs()).min(MAX_LIFETIME_SECONDS);
    let scope = token.scopes().map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
    Credentials {
        server: server.to_owned(),
        access_token: token.access_token().secret().clone(),
        refresh_token: token
            .refresh_token()
            .map(|t| t.secret().clone())
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        expires_at: (Utc::now() + chrono::Duration::seconds(lifetime as i64)).trunc_subsecs(0),
        scope: scope.or_else(|| previous.map(|p| p.scope.clone())).unwrap_or_default(),
    }
}

/// Exchanges the stored refresh token for a new pair, under the lock, and stores it.
/// `stale` is the access token that was found expired or refused: when the file already
/// holds another, still fresh one, a concurrent run refreshed first and that one is used.
pub async fn refresh(path: &Path, stale: &str) -> anyhow::Result<Credentials> {
    let _lock = RefreshLock::acquire(path)?;
    let current = read_credentials(path)?;
    if current.access_token != stale && !needs_refresh(current.expires_at, Utc::now()) {
        return Ok(current);
    }
    let Some(refresh_token) = current.refresh_token.as_deref() else {
        bail!("the sign-in to {} has expired; run keyward login --server {} again", current.server, current.server);
    };
    let server = Server::new(&current.server, http_client()?)?;
    match server.refresh(refresh_token).await? {
        Some(token) => {
            let next = credentials_from(&current.server, &token, Some(&current));
            write_credentials(path, &next)?;
            Ok(next)
        }
        None => bail!(
            "the sign-in to {} has ended (the refresh token was refused); run keyward login --server {} again",
            current.server,
            current.server
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_needed_when_expired_or_about_to() {
        let now: DateTime<Utc> = "2030-01-01T12:00:00Z".parse().unwrap();
        assert!(needs_refresh(now - chrono::Duration::seconds(1), now), "expired");
        assert!(needs_refresh(now, now), "expires now");
        assert!(needs_refresh(now + chrono::Duration::seconds(10), now), "within the margin");
        assert!(!needs_refresh(now + chrono::Duration::minutes(5), now), "still good");
    }

    fn token(json: serde_json::Value) -> BasicTokenResponse {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_token_response_becomes_what_is_stored() {
        let first = credentials_from(
            "https://k",
            &token(serde_json::json!({
                "access_token": "kwat_a", "token_type": "Bearer", "expires_in": 600,
                "refresh_token": "kwrt_a", "scope": "projects:read api_keys:read"
            })),
            None,
        );
        assert_eq!(first.access_token, "kwat_a");
        assert_eq!(first.refresh_token.as_deref(), Some("kwrt_a"));
        assert_eq!(first.scope, "projects:read api_keys:read");
        let left = first.expires_at - Utc::now();
        assert!(left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600), "{left}");

        // No new refresh token and no scope: the previous ones hold (RFC 6749 §6).
        let next = credentials_from(
            "https://k",
            &token(serde_json::json!({"access_token": "kwat_b", "token_type": "bearer"})),
            Some(&first),
        );
        assert_eq!(next.access_token, "kwat_b");
        assert_eq!(next.refresh_token.as_deref(), Some("kwrt_a"));
        assert_eq!(next.scope, first.scope);
        assert!(next.expires_at - Utc::now() > chrono::Duration::minutes(59), "an hour when unnamed");
    }
}
