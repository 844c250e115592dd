//! The HTTP surface: routes, layers, and the JSON answers for everything axum would
//! otherwise answer in plain text (unknown routes, wrong methods, panics).
//!
//! # Layout
//!
//! - [`error`] — [`error::ApiError`], the one error type, and its status mapping.
//! - [`extract`] — the caller, JSON bodies and query strings, failing as `ApiError`s.
//! - [`views`] — JSON shapes shared by routes.
//! - [`identity`] — `/api/v1/me`, `/auth/check`.
//! - [`api_keys`] — `/api/v1/api-keys…`.
//! - [`verify`] — `/api/v1/keys/verify`.
//! - [`org`] — `/api/v1/members`, `/api/v1/audit-events`.
//! - [`ops`] — `/health`, `/ready`, `/metrics`, `/api/v1/openapi.json`.
//! - [`openapi`] — the OpenAPI document of all of the above.
//! - [`protected_resource`] — `/.well-known/oauth-protected-resource` (RFC 9728).
//! - [`service_accounts`] — `/api/v1/service-accounts…`.
//! - [`oauth`] — `/oauth/token`, `/oauth/introspect`, `/oauth/revoke`,
//!   `/.well-known/oauth-authorization-server`, `/oauth/device_authorization`; their own
//!   error shape (RFC 6749 §5.2).
//! - [`sessions`] — `/api/v1/sessions…`, a person's signed-in devices.
//! - [`web`] — the HTML pages: `/login`, `/logout`, `/device`, `/`, `/settings/…`, `/admin/…`.

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
use tower_http::trace::{DefaultOnResponse, TraceLayer};
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
        .route("/oauth/token", post(oauth::token::token).fallback(oauth::post_only))
        .route("/oauth/introspect", post(oauth::introspect::introspect).fallback(oauth::post_only))
        .route("/oauth/revoke", post(oauth::introspect::revoke).fallback(oauth::post_only))
        .route(oauth::metadata::PATH, get(oauth::metadata::authorization_server))
        .route("/oauth/device_authorization", post(oauth::device::authorize).fallback(oauth::post_only))
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
        .layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::address::layer))
        .layer(CatchPanicLayer::custom(panic_response))
        // One log line per request at INFO: method, path, the names of the query's
        // parameters, status, latency. Never a header and never a query value: a key
        // pasted into a URL (`?api_key=…`) must not reach the log.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        .with_state(state)
}

/// The request log's span: the method, the path and the query's parameter names
/// ([`query_names`]), so the one line per request says what was asked without any value.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        query = %query_names(req.uri().query()),
        version = ?req.version(),
    )
}

/// The names of a query string's parameters, in order, comma-separated (`a,b`), each
/// decoded and shown with `{:?}` escaping; values are dropped. At most 16 names are
/// listed. A name longer than 24 characters is cut to its first 12 (`…` marks the cut):
/// a secret pasted as a name (`?kw_…`, 41 characters) is still a name, and a display
/// prefix is all of it the log may show.
pub fn query_names(query: Option<&str>) -> String {
    const MAX_NAMES: usize = 16;
    const LONG_NAME: usize = 24;
    const SHOWN_OF_LONG: usize = 12;
    let Some(query) = query.filter(|q| !q.is_empty()) else { return String::new() };
    let mut names: Vec<String> = Vec::new();
    let mut total = 0;
    for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
        total += 1;
        if names.len() == MAX_NAMES {
            continue;
        }
        let long = name.chars().count() > LONG_NAME;
        let shown: String = name.chars().take(if long { SHOWN_OF_LONG } else { LONG_NAME }).collect();
        let cut = if long { "…" } else { "" };
        let escaped = format!("{shown:?}");
        names.push(format!("{}{cut}", &escaped[1..escaped.len() - 1]));
    }
    if total > MAX_NAMES {
        names.push(format!("(+{} more)", total - MAX_NAMES));
    }
    names.join(",")
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

#[cfg(test)]
mod tests {
    use super::query_names;

    #[test]
    fn the_request_log_names_query_parameters_without_values() {
        assert_eq!(query_names(None), "");
        assert_eq!(query_names(Some("")), "");
        let key = "kw_4f8a1c2eABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
        assert_eq!(query_names(Some(&format!("api_key={key}&include_revoked=true"))), "api_key,include_revoked");
        assert_eq!(query_names(Some("flag&x=%20y")), "flag,x");
        // A secret pasted as a name shows no more than a display prefix.
        let shown = query_names(Some(key));
        assert_eq!(shown, "kw_4f8a1c2eA…");
        assert!(!shown.contains(&key[12..]));
        // Escaped, so a name cannot forge a log line.
        assert_eq!(query_names(Some("a%0Ab=1")), "a\\nb");
        let many: Vec<String> = (0..20).map(|i| format!("p{i}=v")).collect();
        let listed = query_names(Some(&many.join("&")));
        assert!(listed.ends_with(",(+4 more)") && !listed.contains("=v"), "{listed}");
    }
}
