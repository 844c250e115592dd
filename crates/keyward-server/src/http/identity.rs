//! Who the caller is: `GET /api/v1/me`, and `/auth/check` — the same facts as
//! headers, for nginx `auth_request`, Traefik `ForwardAuth` and Caddy `forward_auth`.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Response};
use keyward_core::permission::Permission;
use serde::Deserialize;

use crate::auth::Grant;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, Caller};
use crate::http::protected_resource;
use crate::http::views::CallerView;
use crate::state::AppState;
use axum::extract::State;
use axum::response::IntoResponse;

/// A grant's identity answer, rendered once: the JSON body and the four headers.
/// Cloning either is a reference-count increment, which keeps the hottest route free
/// of serialisation and allocation after the first request.
#[derive(Debug)]
pub struct Rendered {
    body: Bytes,
    headers: [(HeaderName, HeaderValue); 4],
}

impl Rendered {
    fn of(grant: &Grant) -> &Rendered {
        let slot = grant.rendered.get_or_init(|| {
            let view = CallerView::of(grant);
            let value = |s: String| {
                // Ids, slugs and permissions are ASCII by construction.
                HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
            };
            Box::new(Rendered {
                headers: [
                    (PRINCIPAL, value(view.principal.id.clone())),
                    (ORG, value(view.org.slug.clone())),
                    (PERMISSIONS, value(view.permissions.join(","))),
                    (CREDENTIAL, value(format!("{}:{}", view.credential.kind, view.credential.id))),
                ],
                body: Bytes::from(serde_json::to_vec(&view).expect("views serialise")),
            })
        });
        slot.downcast_ref().expect("only this function fills the slot, always with a Rendered")
    }

    /// The four `X-Keyward-*` headers for `grant`, as `/auth/check` sends them; the
    /// gateway forwards the same values.
    pub(crate) fn identity_headers(grant: &Grant) -> &[(HeaderName, HeaderValue); 4] {
        &Rendered::of(grant).headers
    }

    fn response(&self, with_headers: bool) -> Response<Body> {
        let mut builder = Response::builder().header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if with_headers {
            for (name, value) in &self.headers {
                builder = builder.header(name, value.clone());
            }
        }
        builder.body(Body::from(self.body.clone())).expect("static parts are valid")
    }
}

/// The caller: principal, organization, effective permissions, credential.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "get_me", tag = "identity",
    responses((status = 200, body = CallerView, description = "The caller.")))]
pub async fn me(caller: Caller) -> Response<Body> {
    Rendered::of(caller.0.grant()).response(false)
}

/// Unknown parameters are ignored: a proxy may forward the original query string.
#[derive(Deserialize)]
pub struct CheckQuery {
    /// A permission the request must carry (403 otherwise).
    permission: Option<String>,
}

pub const PRINCIPAL: HeaderName = HeaderName::from_static("x-keyward-principal");
pub const ORG: HeaderName = HeaderName::from_static("x-keyward-org");
pub const PERMISSIONS: HeaderName = HeaderName::from_static("x-keyward-permissions");
pub const CREDENTIAL: HeaderName = HeaderName::from_static("x-keyward-credential");

/// Authenticates the request's own credential (any method). `200` with the
/// `X-Keyward-*` headers and the same facts as JSON, or `401`/`403`.
///
/// The forward-auth endpoint: it answers every method the same way. Query parameters
/// other than `permission` are ignored (a proxy may forward the original query).
#[utoipa::path(get, path = "/auth/check", tag = "identity", operation_id = "check_get",
    params(("permission" = Option<super::views::PermissionName>, Query,
        description = "A permission the credential's effective permissions must allow (`403` otherwise).")),
    responses((status = 200, body = CallerView, description = "The caller, as JSON and as headers.",
        headers(("X-Keyward-Principal" = String, description = "The principal's id."),
                ("X-Keyward-Org" = String, description = "The organization's slug."),
                ("X-Keyward-Permissions" = String, description = "The effective permissions, comma-separated."),
                ("X-Keyward-Credential" = String, description = "`kind:id` of the credential."))),
        (status = 403, body = super::views::ErrorBody,
            description = "`insufficient_scope`: the credential does not carry `permission`.")))]
pub async fn check(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    query: ApiQuery<CheckQuery>,
) -> axum::response::Response {
    // A 401 here names the resource metadata document (DESIGN.md: MCP clients and
    // forward-auth proxies pass it on), so the rejection is answered here.
    let caller = match caller {
        Ok(caller) => caller,
        Err(e) => {
            let url =
                state.settings.oauth_metadata.then(|| protected_resource::metadata_url(&state.settings.public_url));
            return e.into_response_with_metadata(url.as_deref());
        }
    };
    check_permission(caller, query).unwrap_or_else(IntoResponse::into_response)
}

fn check_permission(caller: Caller, ApiQuery(q): ApiQuery<CheckQuery>) -> Result<Response<Body>, ApiError> {
    if let Some(p) = q.permission {
        let p = Permission::parse(&p).map_err(|e| ApiError::BadRequest(e.0))?;
        caller.0.require(&p)?;
    }
    Ok(Rendered::of(caller.0.grant()).response(true))
}
