//! The HTTP surface: routes, layers, and the JSON answers for everything axum would
//! otherwise answer in plain text (unknown routes, wrong methods, panics).
//!
//! # Layout
//!
//! - [`error`]: [`error::ApiError`], the one error type, and its status mapping.
//! - [`extract`]: the caller, JSON bodies and query strings, failing as `ApiError`s.
//! - [`views`]: JSON shapes shared by routes.
//! - [`identity`]: `/api/v1/me`, `/auth/check`.
//! - [`api_keys`]: `/api/v1/api-keys…`.
//! - [`verify`]: `/api/v1/keys/verify`.
//! - [`org`]: `/api/v1/members`, `/api/v1/audit-events`.
//! - [`ops`]: `/health`, `/ready`, `/metrics`, `/api/v1/openapi.json`.
//! - [`openapi`]: the OpenAPI document of all of the above.
//! - [`protected_resource`]: `/.well-known/oauth-protected-resource` (RFC 9728).
//! - [`service_accounts`]: `/api/v1/service-accounts…`.
//! - [`oauth`]: `/oauth/token`, `/oauth/introspect`, `/oauth/revoke`,
//!   `/.well-known/oauth-authorization-server`, `/oauth/device_authorization`; their own
//!   error shape (RFC 6749 §5.2).
//! - [`sessions`]: `/api/v1/sessions…`, a person's signed-in devices.
//! - [`web`]: the HTML pages: `/login`, `/logout`, `/device`, `/`, `/settings/…`, `/admin/…`.

pub mod api_keys;
pub mod error;
pub mod extract;
pub mod identity;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod org;
pub mod protected_resource;
pub mod service_accounts;
pub mod sessions;
pub mod verify;
pub mod views;
pub mod web;

use std::any::Any;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

use crate::state::AppState;
use error::ApiError;

/// The largest request body any route reads. The API's bodies are small JSON documents.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/api/v1/me", get(identity::me))
        .route("/auth/check", any(identity::check))
        .route(protected_resource::PATH, get(protected_resource::main_server))
        .route("/api/v1/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api/v1/api-keys/{id}", delete(api_keys::revoke))
        .route("/api/v1/api-keys/{id}/roll", post(api_keys::roll))
        .route("/api/v1/keys/verify", post(verify::verify))
        .route("/api/v1/members", get(org::members))
        .route("/api/v1/audit-events", get(org::audit_events))
        .route("/api/v1/service-accounts", get(service_accounts::list).post(service_accounts::create))
        .route("/api/v1/service-accounts/{id}", delete(service_accounts::delete))
        .route("/api/v1/service-accounts/{id}/secret", post(service_accounts::rotate))
        .route("/api/v1/service-accounts/{id}/public-keys", post(service_accounts::add_key))
        .route("/api/v1/service-accounts/{id}/public-keys/{kid}", delete(service_accounts::remove_key))
        .route("/oauth/token", post(oauth::token::token))
        .route("/oauth/introspect", post(oauth::introspect::introspect))
        .route("/oauth/revoke", post(oauth::introspect::revoke))
        .route(oauth::metadata::PATH, get(oauth::metadata::authorization_server))
        .route("/oauth/device_authorization", post(oauth::device::authorize))
        .route("/api/v1/sessions", get(sessions::list))
        .route("/api/v1/sessions/{id}", delete(sessions::end))
        .route("/", get(web::login::home))
        .route("/login", get(web::login::form).post(web::login::submit))
        .route("/logout", post(web::login::logout))
        .route("/device", get(web::device::page).post(web::device::submit))
        .route("/assets/keyward.css", get(web::stylesheet))
        .route("/assets/copy.js", get(web::copy_script))
        .route("/settings/org", post(web::app::switch_org))
        .route("/settings/api-keys", get(web::keys::list).post(web::keys::create))
        .route("/settings/api-keys/{id}", get(web::keys::detail))
        .route("/settings/api-keys/{id}/revoke", get(web::keys::confirm_revoke).post(web::keys::revoke))
        .route("/settings/api-keys/{id}/roll", post(web::keys::roll))
        .route("/admin/members", get(web::admin::members::list))
        .route("/admin/members/{id}/role", post(web::admin::members::set_role))
        .route("/admin/members/{id}/remove", get(web::admin::members::confirm_remove).post(web::admin::members::remove))
        .route(
            "/admin/service-accounts",
            get(web::admin::service_accounts::list).post(web::admin::service_accounts::create),
        )
        .route("/admin/service-accounts/{id}/rotate", post(web::admin::service_accounts::rotate))
        .route(
            "/admin/service-accounts/{id}/delete",
            get(web::admin::service_accounts::confirm_delete).post(web::admin::service_accounts::delete),
        )
        .route("/admin/audit", get(web::admin::audit::list))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), count_responses))
        .layer(CatchPanicLayer::custom(panic_response))
        // One log line per request at INFO (method, URI, status, latency; never
        // headers, so no credential). Query strings carry no secrets on any route.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        .with_state(state)
}

async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The route template, not the path: ids must not become label values.
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    state.metrics.response(route.as_deref().unwrap_or("unmatched"), response.status().as_u16());
    response
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message is not echoed: it could quote anything.
    ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
}
