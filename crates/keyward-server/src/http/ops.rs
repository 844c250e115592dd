//! Operations: liveness, readiness, metrics, and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::state::AppState;

/// Liveness: answers without touching anything, so it is also the cheapest route (the
/// benchmark's baseline).
pub async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], "{\"status\":\"ok\"}")
}

/// Readiness: the database answers and every migration is applied.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.is_current().await {
        Ok(true) => (StatusCode::OK, Json(serde_json::json!({ "status": "ready" }))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({ "error": "unavailable", "error_description": "migrations are not current; run keyward migrate" }),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": "unavailable", "error_description": "the database is unreachable" })),
            )
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&crate::metrics::Gauges {
            cached_grants: state.auth.cache().len(),
            pool_size: state.store.pool_stats().0,
            pool_idle: state.store.pool_stats().1,
        }),
    )
}

/// The OpenAPI 3.1 document ([`super::openapi`]); the API-key scheme names the header
/// this deployment reads (`api_key_header`).
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    Json(super::openapi::document(state.settings.api_key_header.as_str(), &state.settings.roles))
}
