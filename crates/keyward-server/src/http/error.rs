//! The HTTP layer's one error type and its status mapping.
//!
//! Every error answer has the body `{"error": "<code>", "error_description": "<text>"}`.
//! Internal errors are logged with their cause and answered with a generic text: a
//! database error message never reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_store::StoreError;

use crate::auth::Denied;
use crate::keys::KeyRuleError;
use crate::ratelimit::quota::Quota;

/// The text of a `429`, by the limit that refused.
pub fn describe(quota: &Quota) -> &'static str {
    match quota.policy {
        "failed-auth" => "too many failed authentications from this address; try again later",
        "per-credential" => "this credential has made too many requests; try again later",
        _ => "too many requests; try again later",
    }
}
use crate::members::MemberRuleError;

/// An error answer. Each variant says its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401, both challenges, no `error` attribute: no credential was presented.
    #[error("a credential is required")]
    MissingCredential,
    /// 401 `invalid_token`: a credential was presented and is not valid (unknown,
    /// malformed, revoked, expired, or its holder left the organization).
    #[error("{0}")]
    InvalidCredential(&'static str),
    /// 403 `insufficient_scope`: the credential is valid but lacks `0`.
    #[error("this credential lacks the permission {0}")]
    InsufficientScope(String),
    /// 403 `insufficient_scope` with a specific explanation.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `plan_required`: the organization's plan does not include this (the text
    /// names the plan needed).
    #[error("{0}")]
    PlanRequired(String),
    /// 404 `not_found`: absent, or not visible to this credential (another
    /// organization's or principal's object looks exactly like a missing one).
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 400 `invalid_request`: the request cannot be read (broken JSON, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// 409 `conflict`: it already exists.
    #[error("{0}")]
    Conflict(String),
    /// 409 `last_owner`: the change would leave the organization without an owner.
    #[error("{0}")]
    LastOwner(String),
    /// 413 `payload_too_large`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// 422 `validation_failed`: well-formed, but a value breaks a rule.
    #[error("{0}")]
    Validation(String),
    /// 502 `bad_gateway`: the gateway's upstream cannot be reached or broke off.
    #[error("{0}")]
    BadGateway(&'static str),
    /// 504 `gateway_timeout`: the gateway's upstream did not answer in time.
    #[error("the upstream did not answer in time")]
    GatewayTimeout,
    /// 429 `rate_limited`, with `Retry-After` and the `RateLimit` headers: a limit of
    /// DESIGN.md's "Abuse controls".
    #[error("{}", describe(.0))]
    RateLimited(Box<Quota>),
    /// 503 `unavailable`: the database cannot be reached.
    #[error("the service is unavailable")]
    Unavailable,
    /// 500 `internal_error`: logged, never echoed.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingCredential | ApiError::InvalidCredential(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_) | ApiError::Forbidden(_) | ApiError::PlanRequired(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) | ApiError::LastOwner(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingCredential => "unauthorized",
            ApiError::InvalidCredential(_) => "invalid_token",
            ApiError::InsufficientScope(_) | ApiError::Forbidden(_) => "insufficient_scope",
            ApiError::PlanRequired(_) => "plan_required",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::LastOwner(_) => "last_owner",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadGateway(_) => "bad_gateway",
            ApiError::GatewayTimeout => "gateway_timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The `WWW-Authenticate` values (RFC 6750 §3, RFC 7617) for 401 and 403. A 401's
    /// Bearer challenge names `resource_metadata` (RFC 9728 §5.1) when given: MCP
    /// clients find the authorization server through it.
    fn challenges(&self, resource_metadata: Option<&str>) -> Vec<String> {
        const BASIC: &str = "Basic realm=\"keyward\"";
        let metadata = resource_metadata.map(|url| format!(", resource_metadata=\"{url}\"")).unwrap_or_default();
        match self {
            ApiError::MissingCredential => vec![format!("Bearer realm=\"keyward\"{metadata}"), BASIC.into()],
            ApiError::InvalidCredential(_) => {
                vec![format!("Bearer realm=\"keyward\", error=\"invalid_token\"{metadata}"), BASIC.into()]
            }
            ApiError::InsufficientScope(scope) => {
                vec![format!("Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"{scope}\"")]
            }
            ApiError::Forbidden(_) => vec!["Bearer realm=\"keyward\", error=\"insufficient_scope\"".into()],
            _ => vec![],
        }
    }

    /// The answer, with `resource_metadata` in a 401's Bearer challenge. Used where
    /// DESIGN.md asks for it (the gateway and `/auth/check`, when `oauth.metadata` is
    /// on); every other answer goes through [`IntoResponse`], which passes `None`.
    pub fn into_response_with_metadata(self, resource_metadata: Option<&str>) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let body = serde_json::json!({ "error": self.code(), "error_description": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited(quota) = &self {
            quota.apply_refused(response.headers_mut());
        }
        for challenge in self.challenges(resource_metadata) {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with_metadata(None)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            e @ StoreError::Concurrent(_) => ApiError::Conflict(e.to_string()),
            e if e.is_unavailable() => ApiError::Unavailable,
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(e: Denied) -> Self {
        match e {
            Denied::MissingScope(p) => ApiError::InsufficientScope(p),
            Denied::Refused(m) => ApiError::Forbidden(m),
        }
    }
}

impl From<KeyRuleError> for ApiError {
    fn from(e: KeyRuleError) -> Self {
        match e {
            KeyRuleError::Invalid(m) => ApiError::Validation(m),
            KeyRuleError::NotHeld(p) => {
                ApiError::Forbidden(format!("a key cannot be given {p}, which its creator does not hold"))
            }
            KeyRuleError::Store(s) => s.into(),
        }
    }
}

impl From<MemberRuleError> for ApiError {
    fn from(e: MemberRuleError) -> Self {
        match e {
            MemberRuleError::Invalid(m) => ApiError::Validation(m),
            MemberRuleError::Forbidden(m) => ApiError::Forbidden(m),
            e @ MemberRuleError::LastOwner => ApiError::LastOwner(e.to_string()),
            MemberRuleError::Store(s) => s.into(),
        }
    }
}
