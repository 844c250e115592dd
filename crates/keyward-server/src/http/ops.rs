//! Operations: liveness, readiness, metrics, and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "keyward", description = "API keys, service accounts and OAuth for your API."),
    paths(
        super::identity::me,
        super::identity::check,
        super::api_keys::list,
        super::api_keys::create,
        super::api_keys::revoke,
        super::api_keys::roll,
        super::verify::verify,
        super::org::members,
        super::org::audit_events,
        super::service_accounts::list,
        super::service_accounts::create,
        super::service_accounts::delete,
        super::service_accounts::rotate,
        super::service_accounts::add_key,
        super::service_accounts::remove_key,
        super::sessions::list,
        super::sessions::end,
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("basic" = []), ("api_key" = [])),
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document, generated from the handlers' annotations; the API-key
/// scheme names the header this deployment reads (`api_key_header`).
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut() {
        let header = state.settings.api_key_header.as_str();
        components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(header))));
    }
    Json(doc)
}
