//! [`OAuthError`]: the error answer of every OAuth endpoint (RFC 6749 §5.2).
//!
//! | constructor | status | `error` |
//! |---|---|---|
//! | `invalid_request` | 400 | `invalid_request` — missing, repeated or unreadable parameter; two client authentication methods |
//! | `too_large` | 413 | `invalid_request` — the body is over the limit |
//! | `invalid_client` | 401 | `invalid_client` — no client authentication, or it failed; always with a `WWW-Authenticate: Basic` challenge (RFC 9110 §15.5.2), which RFC 6749 §5.2 requires when the client tried Basic |
//! | `client_not_allowed` | 400 | `invalid_client` — a client named by `client_id` alone that is not a public client allowed here, or a known client the endpoint does not serve (the device flow for a service account) |
//! | `method_not_allowed` | 405 | `invalid_request` — not a POST |
//! | `device` | 400 | `authorization_pending`, `slow_down`, `access_denied`, `expired_token` (RFC 8628 §3.5) |
//! | `invalid_grant` | 400 | `invalid_grant` — the grant (assertion, refresh token) is invalid, expired, revoked, reused or another client's |
//! | `unauthorized_client` | 400 | `unauthorized_client` — this client may not use this grant |
//! | `unsupported_grant_type` | 400 | `unsupported_grant_type` |
//! | `invalid_scope` | 400 | `invalid_scope` — a scope the principal does not hold, or not a permission |
//! | `unsupported_token_type` | 400 | `unsupported_token_type` (revocation) |
//! | `rate_limited` | 429 | `rate_limited` — too many failed authentications from the client address; with `Retry-After` |
//! | `unavailable` | 503 | `temporarily_unavailable` — the database cannot be reached |
//! | `internal` | 500 | `server_error` — logged, never echoed |
//!
//! Descriptions never quote a submitted value: it could be a secret.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_store::StoreError;

use crate::auth::Rejection;

/// An OAuth error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// The limit of a `429` (`Retry-After`, `RateLimit-Policy`, `RateLimit`).
    quota: Option<Box<crate::ratelimit::quota::Quota>>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self { status, code, description: description.into(), quota: None }
    }

    /// 429 `rate_limited` with `Retry-After` and the `RateLimit` headers: a limit of
    /// DESIGN.md's "Abuse controls".
    pub fn rate_limited(quota: crate::ratelimit::quota::Quota) -> Self {
        let d = crate::http::error::describe(&quota);
        Self { quota: Some(Box::new(quota)), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", d) }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large")
    }

    /// Client authentication failed or is missing. Every 401 carries the Basic
    /// challenge (see `into_response`), which RFC 6749 §5.2 requires after Basic.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }

    /// A client that is not allowed here though nothing about its credentials failed: a
    /// `client_id` named alone (the public-client way) that is not a public client of this
    /// endpoint, or a service account at the device flow. `400` (RFC 6749 §5.2's status
    /// for every error it does not say otherwise of), except that a client that used
    /// `Authorization: Basic` must get `401` and a Basic challenge.
    pub fn client_not_allowed(d: impl Into<String>, tried_basic: bool) -> Self {
        if tried_basic {
            return Self::invalid_client(d);
        }
        Self::new(StatusCode::BAD_REQUEST, "invalid_client", d)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "this endpoint accepts POST only")
    }

    /// The device grant's answers while a code is not redeemable (RFC 8628 §3.5).
    pub fn device(code: &'static str, d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }

    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    pub fn unsupported_token_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_token_type", d)
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "the service is unavailable")
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error at an OAuth endpoint");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut response = super::json(self.status, body);
        if let Some(quota) = &self.quota {
            quota.apply_refused(response.headers_mut());
        }
        // RFC 9110 §15.5.2: a 401 names a scheme the client can use, also when the client
        // authenticated in the body or not at all; Basic is the one these endpoints read.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keyward\""));
        }
        response
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_unavailable() => OAuthError::unavailable(),
            other => OAuthError::internal(other),
        }
    }
}

impl OAuthError {
    /// A failed client authentication: the database being down is not the client's fault.
    pub fn from_client_rejection(r: Rejection) -> Self {
        match r {
            Rejection::Unavailable(e) => e.into(),
            Rejection::Throttled(quota) => OAuthError::rate_limited(quota),
            _ => OAuthError::invalid_client("client authentication failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_for_credentials_and_400_for_a_client_id_alone() {
        // Every 401 names the scheme (RFC 9110 §15.5.2), whichever way the client tried.
        let failed = OAuthError::invalid_client("x").into_response();
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(failed.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"keyward\"");
        let alone = OAuthError::client_not_allowed("x", false);
        assert_eq!((alone.status(), alone.code()), (StatusCode::BAD_REQUEST, "invalid_client"));
        let alone = alone.into_response();
        assert!(alone.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(alone.headers()[header::CACHE_CONTROL], "no-store");
        // After Basic, RFC 6749 §5.2 requires 401 and the challenge.
        let basic = OAuthError::client_not_allowed("x", true).into_response();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(basic.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"keyward\"");
        assert_eq!(OAuthError::method_not_allowed().status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
