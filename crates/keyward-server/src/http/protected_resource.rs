//! `GET /.well-known/oauth-protected-resource`: the protected-resource metadata of
//! RFC 9728, which MCP clients read (from the `resource_metadata` of a 401's Bearer
//! challenge) to learn which authorization server issues tokens for this resource.
//!
//! The main server describes itself (`resource` = `public_url`); the gateway describes
//! the upstream it protects (`resource` = `gateway.public_url`). Both name keyward as
//! the authorization server. With `oauth.metadata = false` (API keys only) neither
//! document exists (404) and no challenge names one, so an MCP client keeps using the
//! static `Authorization` header it was configured with.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keyward_core::permission::Roles;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The well-known path of the document (RFC 9728 §3).
pub const PATH: &str = "/.well-known/oauth-protected-resource";

/// Where the document of the resource at `public_url` is served.
pub fn metadata_url(public_url: &str) -> String {
    format!("{public_url}{PATH}")
}

/// The document for `resource`, protected by the authorization server at `issuer`.
/// `scopes_supported` is the permission catalogue: the scopes a token can carry.
pub fn document(resource: &str, issuer: &str, roles: &Roles) -> Response {
    let scopes: Vec<&str> = roles.catalogue().iter().map(|p| p.as_str()).collect();
    let body = serde_json::json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes,
    });
    // Public and identical for everyone: caches may keep it for a while.
    ([(header::CACHE_CONTROL, "public, max-age=3600")], axum::Json(body)).into_response()
}

/// The main server's own document.
pub async fn main_server(State(state): State<AppState>) -> Response {
    if !state.settings.oauth_metadata {
        return ApiError::NotFound.into_response();
    }
    let url = &state.settings.public_url;
    document(url, url, &state.settings.roles)
}
