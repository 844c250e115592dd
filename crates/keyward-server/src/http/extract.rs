//! Extractors whose failures are [`ApiError`]s: a caller, a JSON body, a path, a query string.
//! axum's own rejections answer in plain text; these answer in the JSON error shape,
//! and never echo a submitted value (it could be a secret pasted into the wrong field).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::auth::{Identity, Rejection};
use crate::http::error::ApiError;
use crate::state::AppState;

/// The authenticated caller. Rejects with 401 (absent or invalid credential), 429 (too
/// many failures from the address, or the credential's plan limit) or 503 (the database
/// cannot be asked) — never lets a request through anonymously.
pub struct Caller(pub Identity);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match state.auth.authenticate_from(&parts.headers, client_ip(parts)).await {
            // No credential at all: the web UI's session cookie may stand in for one
            // on the management API (never on /auth/check or the gateway).
            Err(Rejection::Missing) => match crate::http::web::api_session::identity(state, parts).await? {
                Some(identity) => Ok(Caller(identity)),
                None => Err(ApiError::MissingCredential),
            },
            Ok(identity) => {
                use crate::ratelimit::credential::Verdict;
                match state.limits.credentials.check(identity.grant()).await {
                    Verdict::Over(quota) => return Err(ApiError::RateLimited(Box::new(quota))),
                    Verdict::Within(quota) => crate::ratelimit::quota::remember(quota),
                    Verdict::Unlimited => {}
                }
                Ok(Caller(identity))
            }
            Err(rejection) => Err(ApiError::from(rejection)),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Missing => ApiError::MissingCredential,
            Rejection::Malformed(_) => ApiError::InvalidCredential("the credential is malformed"),
            Rejection::Expired(_) => ApiError::InvalidCredential("the credential has expired"),
            Rejection::Unknown | Rejection::Revoked(_) | Rejection::NotMember(_) => {
                ApiError::InvalidCredential("the credential is not valid")
            }
            Rejection::Unavailable(e) => {
                tracing::error!(error = %e, "credential lookup failed");
                ApiError::Unavailable
            }
            Rejection::Throttled(quota) => ApiError::RateLimited(Box::new(quota)),
        }
    }
}

/// The request's client address ([`crate::ratelimit::address`]), when known.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<crate::ratelimit::address::ClientAddress>().map(|c| c.0)
}

/// Removes double-quoted values from a deserializer's message (field names are in
/// backticks and stay).
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push('…');
            }
            ('"', true) => quoted = false,
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// A JSON body. Broken JSON → 400, wrong types, unknown fields or a list → 422, too large → 413,
/// not `application/json` → 415. An empty body deserializes as `null`, so
/// `ApiJson<Option<T>>` makes a body optional.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("the request body cannot be read".into())
            }
        })?;
        if bytes.is_empty() {
            return serde_json::from_value(serde_json::Value::Null)
                .map(ApiJson)
                .map_err(|_| ApiError::BadRequest("a JSON body is required".into()));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Every body of this API is an object. serde's derive would also read a struct
        // from a list of its fields in order (`[]` as "all defaults"), so refuse lists.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::Validation("the body must be a JSON object".into()));
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::Validation(without_values(&e.to_string())),
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {}", without_values(&e.to_string()))),
        })
    }
}

/// A path parameter. One that cannot be read (e.g. percent-encoded bytes that are not
/// UTF-8) names nothing: 404 in the JSON error shape, not axum's plain-text 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(p)| ApiPath(p)).map_err(|_| ApiError::NotFound)
    }
}

/// A query string; anything it cannot read → 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(without_values(&e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_removed_from_messages() {
        assert_eq!(
            super::without_values("invalid type: string \"kw_secret\", expected a sequence at line 1"),
            "invalid type: string …, expected a sequence at line 1"
        );
        assert_eq!(super::without_values("unknown field `x`"), "unknown field `x`");
    }
}
