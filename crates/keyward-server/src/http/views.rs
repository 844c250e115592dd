//! JSON shapes shared by several routes.

use keyward_store::{Principal, PrincipalKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Grant;

/// The error body of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code, e.g. `invalid_token`, `insufficient_scope`, `not_found`.
    pub error: String,
    pub error_description: String,
}

/// Who holds a credential.
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct PrincipalView {
    /// `user` or `service_account`.
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl PrincipalView {
    pub fn new(principal: &Principal, label: &str) -> Self {
        let (email, name) = match principal.kind {
            PrincipalKind::User => (Some(label.to_owned()), None),
            PrincipalKind::ServiceAccount => (None, Some(label.to_owned())),
        };
        Self { kind: principal.kind.as_str(), id: principal.id.clone(), email, name }
    }
}

#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct OrgView {
    pub id: String,
    pub slug: String,
}

/// The credential a request was made with (never the secret).
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct CredentialView {
    /// `api_key`, `access_token` or `client_secret`.
    pub kind: &'static str,
    pub id: String,
}

/// The facts `/api/v1/me` and `/auth/check` report about a caller.
#[derive(Serialize, ToSchema)]
pub struct CallerView {
    pub principal: PrincipalView,
    pub org: OrgView,
    pub permissions: Vec<String>,
    pub credential: CredentialView,
}

impl CallerView {
    pub fn of(grant: &Grant) -> Self {
        Self {
            principal: PrincipalView::new(&grant.principal, &grant.principal_label),
            org: OrgView { id: grant.org_id.to_string(), slug: grant.org_slug.to_string() },
            permissions: grant.effective.to_strings(),
            credential: CredentialView { kind: grant.credential.kind(), id: grant.credential.id().to_owned() },
        }
    }
}

/// A permission as a request names it: `resource:action`, `resource:*` or `*` (a-z,
/// 0-9, `_`, `-`, `.`; each part 1–64 characters), the syntax `Permission::parse`
/// accepts. Whether it is in this deployment's catalogue is the route's check. Only a
/// schema: bodies hold plain strings.
pub struct PermissionName;

impl utoipa::PartialSchema for PermissionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^(\*|[a-z0-9_.-]{1,64}:(\*|[a-z0-9_.-]{1,64}))$"))
            .description(Some(
                "`resource:action`, `resource:*` or `*`; each part 1–64 characters of a-z, 0-9, `_`, `-`, `.`.",
            ))
            .examples(["projects:read"])
            .into()
    }
}

impl ToSchema for PermissionName {}
