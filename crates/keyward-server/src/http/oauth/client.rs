//! Client authentication at the OAuth endpoints (RFC 6749 §2.3, RFC 7523 §2.2).
//!
//! A request authenticates its client in at most one way:
//!
//! - `client_secret_basic`: `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`
//!   — both halves are form-urlencoded before base64 (RFC 6749 §2.3.1), so a secret
//!   with `+`, `%` or `:` survives. Most client libraries do not encode, so when the
//!   decoded pair fails, the raw pair (split at the first `:`) is tried too;
//! - `client_secret_post`: `client_id` and `client_secret` in the body;
//! - `private_key_jwt`: `client_assertion_type` = `…:client-assertion-type:jwt-bearer`
//!   and `client_assertion`, a JWT with `iss` = `sub` = the client id, signed with one
//!   of the account's registered keys, whose `aud` is the issuer, the token endpoint or
//!   the [`Endpoint`] being called;
//! - none: only `client_id` (a public client: the device-flow clients).
//!
//! Two methods at once are `invalid_request`. A secret is checked by the same
//! [`crate::auth::Authenticator`] path as HTTP Basic on the API (cache first), so a
//! client asking for tokens in a loop costs no query per request.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::Engine;
use keyward_core::assertion::{self, PublicKey};
use keyward_core::domain::Slug;
use keyward_core::ids::{OrgId, ServiceAccountId};
use keyward_core::permission::PermissionSet;
use keyward_store::{CredentialRef, Principal};

use super::params::Params;
use super::OAuthError;
use crate::auth::Grant;
use crate::state::AppState;

/// The one value `client_assertion_type` may have (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The most an assertion's `exp` may lie ahead: 60 minutes, what client libraries
/// default to (authlib signs `exp` = now + 3600). Seen `jti`s are kept that long.
pub const MAX_ASSERTION_AHEAD_SECONDS: i64 = 3600;
/// Clock skew tolerated for `exp` (past, and beyond the hour), `nbf` and `iat`.
pub const ASSERTION_LEEWAY_SECONDS: i64 = 30;

/// The endpoint a request authenticates its client at: an assertion may name its URL as
/// `aud` (DESIGN.md), besides the issuer and the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Introspection,
    Revocation,
    DeviceAuthorization,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Token => "/oauth/token",
            Endpoint::Introspection => "/oauth/introspect",
            Endpoint::Revocation => "/oauth/revoke",
            Endpoint::DeviceAuthorization => "/oauth/device_authorization",
        }
    }
}

/// How the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SecretBasic,
    SecretPost,
    PrivateKeyJwt,
}

/// A service account that proved it is the client it names.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    pub client_id: String,
    pub account: ServiceAccountId,
    pub org_id: OrgId,
    pub org_slug: Slug,
    pub label: String,
    /// What the account's role holds now.
    pub permissions: PermissionSet,
    pub method: Method,
}

impl ServiceClient {
    pub fn principal(&self) -> Principal {
        Principal::service_account(&self.account)
    }

    fn from_grant(grant: &Arc<Grant>, method: Method) -> Option<Self> {
        let CredentialRef::ClientSecret { account, client_id } = &grant.credential else { return None };
        Some(Self {
            client_id: client_id.clone(),
            account: account.clone(),
            org_id: grant.org_id.clone(),
            org_slug: grant.org_slug.clone(),
            label: grant.principal_label.clone(),
            permissions: grant.effective.clone(),
            method,
        })
    }
}

/// Who the client of a request is.
#[derive(Clone, Debug)]
pub enum Client {
    Confidential(ServiceClient),
    /// Named by `client_id` alone, with no proof.
    Public(String),
    /// No client named at all.
    Anonymous,
}

impl Client {
    /// The client id, if any was named.
    pub fn id(&self) -> Option<&str> {
        match self {
            Client::Confidential(c) => Some(&c.client_id),
            Client::Public(id) => Some(id),
            Client::Anonymous => None,
        }
    }
}

/// An `Authorization: Basic` client id and secret: as RFC 6749 §2.3.1 says to read
/// them (each half form-urldecoded), and as sent (`raw`), for the many clients that do
/// not encode. `decoded` is `None` when the halves are not valid form encoding, or when
/// decoding changes nothing.
#[derive(Debug, PartialEq, Eq)]
struct BasicPair {
    decoded: Option<(String, String)>,
    raw: (String, String),
}

impl BasicPair {
    /// The pairs to try, RFC form first.
    fn candidates(&self) -> impl Iterator<Item = &(String, String)> {
        self.decoded.iter().chain(std::iter::once(&self.raw))
    }

    /// Whether `id` is this pair's client id, in either reading.
    fn names(&self, id: &str) -> bool {
        self.candidates().any(|(i, _)| i == id)
    }
}

/// Reads `Authorization: Basic` as a client id and secret.
fn basic_pair(headers: &HeaderMap) -> Result<Option<BasicPair>, OAuthError> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthError::invalid_client("the Basic credentials cannot be read");
    let text = raw.to_str().map_err(|_| bad())?.trim();
    let (scheme, rest) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request("authenticate the client with Basic, not another scheme"));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    // RFC 7617: the user-id cannot contain ':', so the first one separates.
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    if id.is_empty() || secret.is_empty() {
        return Err(bad());
    }
    let raw = (id.to_owned(), secret.to_owned());
    let decoded = match (urldecode(id), urldecode(secret)) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() && (i != raw.0 || s != raw.1) => Some((i, s)),
        _ => None,
    };
    Ok(Some(BasicPair { decoded, raw }))
}

/// `application/x-www-form-urlencoded` decoding of one value (`+` is a space); `None`
/// for a broken escape or bytes that are not UTF-8.
fn urldecode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    let bytes = spaced.as_bytes();
    // percent_decode passes a malformed escape through unchanged; refuse it instead.
    let broken = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if broken {
        return None;
    }
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|c| c.into_owned())
}

/// Authenticates the request's client at `endpoint`, if it names one.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    endpoint: Endpoint,
) -> Result<Client, OAuthError> {
    let basic = basic_pair(headers)?;
    let post = params.get("client_secret");
    let jwt = params.get("client_assertion").is_some() || params.get("client_assertion_type").is_some();
    if [basic.is_some(), post.is_some(), jwt].iter().filter(|b| **b).count() > 1 {
        return Err(OAuthError::invalid_request("use one client authentication method, not several"));
    }
    let named = params.get("client_id");
    if let Some(pair) = basic {
        if named.is_some_and(|n| !pair.names(n)) {
            return Err(OAuthError::invalid_request("client_id does not match the Basic credentials"));
        }
        let mut failure = None;
        for (id, secret) in pair.candidates() {
            match by_secret(state, id, secret, Method::SecretBasic).await {
                Ok(client) => return Ok(client),
                // The database being down is no reason to try another reading.
                Err(e) if e.status() == axum::http::StatusCode::UNAUTHORIZED => failure = Some(e),
                Err(e) => return Err(e),
            }
        }
        return Err(failure.unwrap_or_else(|| OAuthError::invalid_client("client authentication failed")));
    }
    if let Some(secret) = post {
        let id = params.require("client_id")?;
        return by_secret(state, id, secret, Method::SecretPost).await;
    }
    if jwt {
        if params.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!("client_assertion_type must be {ASSERTION_TYPE}")));
        }
        let token = params.require("client_assertion")?;
        let client = by_assertion(state, token, named, endpoint).await.map_err(|e| match e {
            AssertionFailure::Store(e) => e.into(),
            AssertionFailure::Refused(why) => {
                OAuthError::invalid_client(format!("the client assertion is refused: {why}"))
            }
        })?;
        return Ok(Client::Confidential(client));
    }
    if params.has("client_secret") {
        // An empty secret is an attempt at client_secret_post that failed, not a public
        // client naming itself.
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    Ok(match named {
        Some(id) => Client::Public(id.to_owned()),
        None => Client::Anonymous,
    })
}

async fn by_secret(state: &AppState, id: &str, secret: &str, method: Method) -> Result<Client, OAuthError> {
    let from = crate::ratelimit::address::current();
    let grant =
        state.auth.client_secret_grant_from(id, secret, from).await.map_err(OAuthError::from_client_rejection)?;
    let client = ServiceClient::from_grant(&grant, method)
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    Ok(Client::Confidential(client))
}

/// Why an assertion was not accepted.
pub enum AssertionFailure {
    /// Safe to tell the client.
    Refused(String),
    Store(keyward_store::StoreError),
}

impl From<keyward_store::StoreError> for AssertionFailure {
    fn from(e: keyward_store::StoreError) -> Self {
        AssertionFailure::Store(e)
    }
}

/// Verifies a JWT signed by a service account's registered key — a client assertion
/// (RFC 7523 §2.2) or a JWT-bearer grant (§2.1); both are self-issued, `iss` = `sub` =
/// the account's client id. `expected`: a client id the request named, which must match.
/// The `jti` is recorded, so the same assertion is refused the second time. `aud` may
/// be the issuer, the token endpoint or `endpoint`'s URL.
pub async fn by_assertion(
    state: &AppState,
    token: &str,
    expected: Option<&str>,
    endpoint: Endpoint,
) -> Result<ServiceClient, AssertionFailure> {
    let refused = |why: &str| AssertionFailure::Refused(why.to_owned());
    let peeked = assertion::peek(token).map_err(|e| AssertionFailure::Refused(e.to_string()))?;
    let (Some(iss), Some(sub)) = (peeked.iss.as_deref(), peeked.sub.as_deref()) else {
        return Err(refused("iss and sub are required"));
    };
    if iss != sub {
        return Err(refused("iss and sub must both be the client id"));
    }
    if expected.is_some_and(|e| e != sub) {
        return Err(refused("the assertion names another client"));
    }
    let Some(record) = state.store.client_by_id(sub).await? else {
        return Err(refused("unknown client"));
    };
    if record.account.public_keys.is_empty() {
        return Err(refused("the client has no registered public key"));
    }
    let public = &state.settings.public_url;
    let token_endpoint = format!("{public}{}", Endpoint::Token.path());
    let called = format!("{public}{}", endpoint.path());
    let audiences = [token_endpoint.as_str(), public.as_str(), called.as_str()];
    let rules = assertion::Rules {
        audiences: &audiences,
        now: chrono::Utc::now().timestamp(),
        max_ahead: MAX_ASSERTION_AHEAD_SECONDS,
        leeway: ASSERTION_LEEWAY_SECONDS,
    };
    let keys: &[PublicKey] = &record.account.public_keys;
    let verified = assertion::verify(token, keys, &rules).map_err(|e| AssertionFailure::Refused(e.to_string()))?;
    if verified.iss != verified.sub || verified.sub != record.account.client_id {
        return Err(refused("iss and sub must both be the client id"));
    }
    // Remembered as long as the assertion could be accepted: its `exp` plus the leeway.
    let until = chrono::DateTime::from_timestamp(verified.exp.saturating_add(ASSERTION_LEEWAY_SECONDS), 0)
        .unwrap_or_else(chrono::Utc::now);
    if !state.store.use_jti(&record.account.client_id, &verified.jti, until).await? {
        return Err(refused("this jti was used before"));
    }
    let permissions = state.settings.roles.permissions_of(&record.account.role);
    Ok(ServiceClient {
        client_id: record.account.client_id.clone(),
        account: record.account.id.clone(),
        org_id: record.account.org_id.clone(),
        org_slug: record.org_slug,
        label: record.account.name.clone(),
        permissions,
        method: Method::PrivateKeyJwt,
    })
}

/// Whether `id` is one of the configured public (device-flow) clients.
pub(super) fn is_device_client(state: &AppState, id: &str) -> bool {
    state.settings.device_client_ids.iter().any(|d| d.as_str() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw));
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    fn pair(decoded: Option<(&str, &str)>, raw: (&str, &str)) -> BasicPair {
        let owned = |(a, b): (&str, &str)| (a.to_owned(), b.to_owned());
        BasicPair { decoded: decoded.map(owned), raw: owned(raw) }
    }

    #[test]
    fn basic_halves_are_form_urldecoded_and_kept_raw() {
        let read = basic_pair(&basic("my%20client:s3cr%2Bt%25%3Ax+y")).unwrap().unwrap();
        assert_eq!(read, pair(Some(("my client", "s3cr+t%:x y")), ("my%20client", "s3cr%2Bt%25%3Ax+y")));
        assert_eq!(read.candidates().next().unwrap().1, "s3cr+t%:x y", "the RFC reading first");
        assert!(read.names("my client") && read.names("my%20client") && !read.names("other"));
        // A raw secret that is not valid form encoding, or that decoding leaves alone.
        assert_eq!(basic_pair(&basic("id:%zz")).unwrap().unwrap(), pair(None, ("id", "%zz")));
        assert_eq!(basic_pair(&basic("id:50%")).unwrap().unwrap(), pair(None, ("id", "50%")));
        assert_eq!(basic_pair(&basic("id:plain")).unwrap().unwrap(), pair(None, ("id", "plain")));
        // `+` alone decodes to a space: both readings are tried.
        assert_eq!(basic_pair(&basic("id:a+b")).unwrap().unwrap(), pair(Some(("id", "a b")), ("id", "a+b")));
        // A secret of one encoded space would decode to... a space, not empty: kept.
        assert_eq!(basic_pair(&basic("id:+")).unwrap().unwrap(), pair(Some(("id", " ")), ("id", "+")));
        // A ':' in the raw secret stays in the secret.
        assert_eq!(basic_pair(&basic("id:a:b")).unwrap().unwrap(), pair(None, ("id", "a:b")));
    }

    #[test]
    fn unreadable_basic_is_invalid_client_with_a_challenge() {
        for raw in ["no-colon", ":secret", "id:"] {
            let err = basic_pair(&basic(raw)).unwrap_err();
            assert_eq!(err.code(), "invalid_client", "{raw}");
            assert_eq!(err.status(), axum::http::StatusCode::UNAUTHORIZED, "{raw}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_pair(&h).unwrap_err().code(), "invalid_client");
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_pair(&h).unwrap_err().code(), "invalid_request");
    }
}
