//! `GET /.well-known/oauth-authorization-server`: the authorization-server metadata of
//! RFC 8414. With `oauth.metadata = false` (API keys only) it does not exist (404).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keyward_core::assertion::KeyAlg;

use super::client::ASSERTION_TYPE;
use crate::http::error::ApiError;
use crate::state::AppState;

/// The well-known path (RFC 8414 §3).
pub const PATH: &str = "/.well-known/oauth-authorization-server";

pub async fn authorization_server(State(state): State<AppState>) -> Response {
    if !state.settings.oauth_metadata {
        return ApiError::NotFound.into_response();
    }
    let issuer = &state.settings.public_url;
    let algs = KeyAlg::HEADER_NAMES;
    let scopes: Vec<&str> = state.settings.roles.catalogue().iter().map(|p| p.as_str()).collect();
    let client_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
    // The device-flow clients are public: they name themselves at the token endpoint
    // (device code and refresh grants) and at revocation with client_id alone.
    let with_public = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
    let body = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "grant_types_supported": super::token::GRANTS,
        // No authorization endpoint, so no response type: `response_types_supported` is
        // left out rather than `[]`, which validators (authlib's) refuse.
        "token_endpoint_auth_methods_supported": with_public,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        // Public (device-flow) clients revoke their own tokens with client_id alone.
        "revocation_endpoint_auth_methods_supported": with_public,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "scopes_supported": scopes,
        "client_assertion_types_supported": [ASSERTION_TYPE],
    });
    ([(header::CACHE_CONTROL, "public, max-age=3600")], axum::Json(body)).into_response()
}
