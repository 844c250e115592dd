//! The OAuth 2.0 endpoints: the token endpoint (RFC 6749, RFC 7523), introspection
//! (RFC 7662), revocation (RFC 7009) and the authorization-server metadata (RFC 8414).
//!
//! They answer in the OAuth error shape of RFC 6749 §5.2 (`{"error", "error_description"}`
//! with the RFC's codes), not [`crate::http::error::ApiError`]'s codes, and every answer
//! carries `Cache-Control: no-store` and `Pragma: no-cache`. Bodies are form-encoded per
//! the RFCs; a JSON object of strings is accepted too.
//!
//! # Layout
//!
//! - [`error`]: [`OAuthError`], the endpoints' one error type, and its status mapping.
//! - [`params`]: the request's parameters, read once from the form or JSON body.
//! - [`client`]: client authentication: `client_secret_basic`, `client_secret_post`,
//!   `private_key_jwt`, or a public client that only names itself.
//! - [`token`]: `POST /oauth/token` and its grants.
//! - [`device`]: `POST /oauth/device_authorization` and the device-code grant (RFC 8628).
//! - [`introspect`]: `POST /oauth/introspect` and `POST /oauth/revoke`.
//! - [`metadata`]: `GET /.well-known/oauth-authorization-server`.
//! - [`post_only`]: any other method than POST at the POST endpoints: `405`, no-store.

pub mod client;
pub mod device;
pub mod error;
pub mod introspect;
pub mod issue;
pub mod metadata;
pub mod params;
pub mod token;

pub use error::OAuthError;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1): tokens and their
/// errors must never be cached.
pub fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON answer with the no-store headers.
pub fn json(status: axum::http::StatusCode, body: serde_json::Value) -> Response {
    no_store((status, axum::Json(body)).into_response())
}

/// Any other method than POST at an OAuth endpoint: `405` with `Allow: POST`, in the
/// endpoints' own error shape and with their no-store headers.
pub async fn post_only() -> Response {
    let mut response = OAuthError::method_not_allowed().into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
