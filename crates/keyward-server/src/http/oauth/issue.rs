//! What every grant shares once it has tokens to hand out: how long they live, and the
//! successful answer (RFC 6749 §5.1). Used by the token endpoint's grants and the device grant.

use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::permission::PermissionSet;
use keyward_core::secret::PlainSecret;

use crate::state::AppState;

/// How long access and refresh tokens live (configuration; checked at start to fit).
pub(super) fn lifetimes(state: &AppState) -> (chrono::Duration, chrono::Duration) {
    let of = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    (of(state.settings.access_token_ttl), of(state.settings.refresh_token_ttl))
}

/// The successful answer (RFC 6749 §5.1).
pub(super) fn token_response(
    access: &PlainSecret,
    refresh: Option<&PlainSecret>,
    state: &AppState,
    effective: &PermissionSet,
) -> Response {
    let mut body = serde_json::json!({
        "access_token": access.expose(),
        "token_type": "Bearer",
        "expires_in": state.settings.access_token_ttl.as_secs(),
        "scope": effective.to_strings().join(" "),
    });
    if let Some(r) = refresh {
        body["refresh_token"] = serde_json::Value::String(r.expose().to_owned());
    }
    super::json(StatusCode::OK, body)
}
