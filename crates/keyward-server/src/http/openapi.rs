//! The OpenAPI 3.1 document served at `GET /api/v1/openapi.json`.
//!
//! It covers every JSON route of the main listener: the management API (`/api/v1/…`),
//! `/auth/check` (on every method it answers), the OAuth endpoints (form or JSON
//! bodies), the two metadata documents and the operations routes. The HTML pages are
//! not in it. The document is checked against the running server by Schemathesis
//! (`tests/schemathesis.rs`): every answer must be one the document declares, in the
//! shape it declares.
//!
//! # How it is built
//!
//! - Each management handler's `#[utoipa::path]` declares its success answer and the
//!   answers only it gives (a permission's `403`, a `404` for an id, rule `422`s, …); the
//!   OAuth and operations routes, whose handlers read raw bodies, are declared here.
//! - [`SharedAnswers`] then adds, from how each route reads its request, the answers
//!   every such route can give (see its table), as references to the shared response
//!   components, and sets each route's security.
//! - [`AuthCheckMethods`] copies `/auth/check` to every method it answers.
//! - [`document`] names the API-key header this deployment reads and marks every
//!   declared response header `required` (each one is always sent), which utoipa's
//!   types cannot say.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use keyward_core::permission::Roles;

use super::views::ErrorBody;

/// The document for a deployment whose API-key header is `api_key_header` and whose
/// roles are `roles`, as JSON.
pub fn document(api_key_header: &str, roles: &Roles) -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut() {
        components
            .add_security_scheme(API_KEY, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(api_key_header))));
    }
    let mut value = serde_json::to_value(&doc).expect("the document serialises");
    require_headers(&mut value);
    // A service account's role is one of this deployment's roles (or left out: `null`).
    if let Some(role) = value.pointer_mut("/components/schemas/CreateAccountBody/properties/role") {
        let names = roles.names().map(serde_json::Value::from).chain([serde_json::Value::Null]);
        role["enum"] = serde_json::Value::Array(names.collect());
    }
    value
}

/// Marks every response header `required`: each header the document names is sent
/// with every answer of that status (utoipa's `Header` has no `required` field).
fn require_headers(value: &mut serde_json::Value) {
    fn in_response(response: &mut serde_json::Value) {
        if let Some(headers) = response.get_mut("headers").and_then(|h| h.as_object_mut()) {
            for header in headers.values_mut() {
                if let Some(h) = header.as_object_mut() {
                    h.insert("required".into(), serde_json::Value::Bool(true));
                }
            }
        }
    }
    if let Some(responses) = value.pointer_mut("/components/responses").and_then(|r| r.as_object_mut()) {
        responses.values_mut().for_each(in_response);
    }
    if let Some(paths) = value.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for operation in item.values_mut() {
                if let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) {
                    responses.values_mut().for_each(in_response);
                }
            }
        }
    }
}

// The names of the security schemes (the `security(...)` attributes spell them out).
const BEARER: &str = "bearer";
const BASIC: &str = "basic";
const API_KEY: &str = "api_key";
const SESSION: &str = "session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "API keys, service accounts and OAuth for your API. Every error answer is \
            `{\"error\": \"<code>\", \"error_description\": \"<text>\"}`.",
    ),
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
        oauth::token,
        oauth::introspect,
        oauth::revoke,
        oauth::device_authorization,
        oauth::authorization_server,
        oauth::protected_resource,
        operations::health,
        operations::ready,
        operations::metrics,
        operations::openapi,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SharedAnswers, &AuthCheckMethods),
    security(("bearer" = []), ("basic" = []), ("api_key" = []), ("session" = [])),
    tags(
        (name = "identity", description = "Who the caller is; the forward-auth endpoint"),
        (name = "api-keys", description = "The caller's own API keys"),
        (name = "verify", description = "Checking a key for a backend"),
        (name = "organization", description = "Members and the audit log"),
        (name = "service-accounts", description = "Non-human members: client secrets and public keys"),
        (name = "sessions", description = "A person's signed-in devices"),
        (name = "oauth", description = "OAuth 2.0: token, introspection, revocation, device authorization, metadata"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
pub struct ApiDoc;

/// How a route is reached, which decides the answers it shares with its family.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    /// `/api/v1/…`: a credential or the session cookie.
    Management,
    /// `/auth/check`: a credential (never the cookie).
    Check,
    /// `/oauth/…`: client authentication in the body or the `Authorization` header.
    OAuth,
    /// Operations and metadata documents: no credential.
    Public,
}

impl Family {
    fn of(path: &str) -> Family {
        if path == "/api/v1/openapi.json" {
            Family::Public
        } else if path.starts_with("/api/v1/") {
            Family::Management
        } else if path == "/auth/check" {
            Family::Check
        } else if path.starts_with("/oauth/") {
            Family::OAuth
        } else {
            Family::Public
        }
    }
}

/// Adds the answers a route gives because of how it reads its request, where its
/// handler did not declare them with its own description:
///
/// | route | answers added |
/// |---|---|
/// | management API, `/auth/check` | `401` (no or a bad credential), `429` (rate limit), `503` (database unreachable) |
/// | management API, unsafe method | `403` (the session cookie without `X-CSRF-Token`) |
/// | with a query parameter | `400` (a query string that does not parse, an unknown parameter, a value out of bounds) |
/// | with a path parameter (management API) | `404` (malformed, unknown, or not visible to the caller) |
/// | with a JSON body | `400` (not JSON), `413` (over 64 KiB), `415` (not `application/json`), `422` (wrong type, unknown field) |
/// | OAuth endpoints | `400` (RFC 6749 §5.2 errors), `413`, `429`, `503` |
///
/// It also sets each route's security: the global four presentations for the
/// management API, all but the cookie for `/auth/check`, none for public routes; the
/// OAuth routes declare their own.
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        add_security_schemes(components);
        for (name, response) in shared_responses() {
            components.responses.insert(name.to_owned(), RefOr::T(response));
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let family = Family::of(path);
            for (method, op) in operations(item) {
                add_shared_answers(family, method, op);
            }
        }
    }
}

fn add_security_schemes(components: &mut utoipa::openapi::Components) {
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key (`kw_…`) or an OAuth access token (`kwat_…`)."))
                .build(),
        ),
    );
    components.add_security_scheme(
        BASIC,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "An API key as the user name (any password), the user `apikey` with the key as the \
                     password, or a service account's client id and secret.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(API_KEY, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "keyward_session",
            "The web UI's session (management API only); unsafe methods also need the `X-CSRF-Token` \
             header holding the `keyward_csrf` cookie's value.",
        ))),
    );
}

/// The operations of a path item with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
}

fn add_shared_answers(family: Family, method: &str, op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let has_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let has_json = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    let unsafe_method = !matches!(method, "get" | "head" | "options" | "trace");
    let mut add = |status: &str, component: &str| {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| Ref::from_response_name(component).into());
    };
    match family {
        Family::Management | Family::Check => {
            add("401", "Unauthorized");
            add("429", "RateLimited");
            add("503", "Unavailable");
            if family == Family::Management && unsafe_method {
                add("403", "Forbidden");
            }
            if has_query || has_json {
                add("400", "BadRequest");
            }
            if family == Family::Management && has_path {
                add("404", "NotFound");
            }
            if has_json {
                add("413", "PayloadTooLarge");
                add("415", "UnsupportedMediaType");
                add("422", "ValidationFailed");
            }
        }
        Family::OAuth => {
            add("400", "OAuthError");
            add("401", "OAuthInvalidClient");
            add("413", "OAuthPayloadTooLarge");
            add("429", "RateLimited");
            add("503", "OAuthUnavailable");
        }
        Family::Public => {}
    }
    match family {
        Family::Management | Family::OAuth => {} // the global requirement, or the route's own
        Family::Check => {
            op.security = Some(vec![
                SecurityRequirement::new(BEARER, Vec::<String>::new()),
                SecurityRequirement::new(BASIC, Vec::<String>::new()),
                SecurityRequirement::new(API_KEY, Vec::<String>::new()),
            ])
        }
        Family::Public => op.security = Some(vec![]),
    }
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build()
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new().schema(Object::with_type(Type::String)).description(Some(description)).build()
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build())
        .description(Some(description))
        .build()
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content("application/json", error_content())
}

/// The no-store headers every OAuth answer carries (RFC 6749 §5.1).
fn oauth_error(description: &str) -> ResponseBuilder {
    error(description)
        .header("Cache-Control", string_header("`no-store`"))
        .header("Pragma", string_header("`no-cache`"))
}

/// The shared response components, by name.
fn shared_responses() -> Vec<(&'static str, Response)> {
    vec![
        (
            "BadRequest",
            error(
                "`invalid_request`: the request cannot be read — broken JSON, an empty body where one is \
                 required, a query string that does not parse, an unknown query parameter, or a value out of \
                 its bounds.",
            )
            .build(),
        ),
        (
            "Unauthorized",
            error(
                "`unauthorized` (no credential) or `invalid_token` (a credential that is malformed, unknown, \
                 revoked, expired, or whose holder left the organization).",
            )
            .header(
                "WWW-Authenticate",
                string_header(
                    "Two challenges: `Bearer realm=\"keyward\"` (with `error=\"invalid_token\"` for a bad \
                     credential; on `/auth/check` also `resource_metadata`) and `Basic realm=\"keyward\"`.",
                ),
            )
            .build(),
        ),
        (
            "Forbidden",
            error(
                "`insufficient_scope`: the credential lacks a permission the route needs, or a request made \
                 with the session cookie has no matching `X-CSRF-Token` header.",
            )
            .build(),
        ),
        ("NotFound", error("`not_found`: the id is malformed, unknown, or not visible to the caller.").build()),
        ("PayloadTooLarge", error("`payload_too_large`: the body is over 64 KiB.").build()),
        (
            "UnsupportedMediaType",
            error("`unsupported_media_type`: a non-empty body whose `Content-Type` is not `application/json`.").build(),
        ),
        (
            "ValidationFailed",
            error("`validation_failed`: well-formed JSON that breaks a rule (wrong type, unknown field, bad value).")
                .build(),
        ),
        (
            "RateLimited",
            error("`rate_limited` (OAuth endpoints: `rate_limited` too): a rate limit was reached.")
                .header("Retry-After", integer_header("Seconds until a request may succeed."))
                .header("RateLimit-Policy", string_header("The limit that applies (IETF httpapi ratelimit headers)."))
                .header("RateLimit", string_header("What is left of the limit and when it resets."))
                .build(),
        ),
        (
            "Unavailable",
            error("`unavailable`: the database cannot be reached (after waiting up to 3 s for a connection).").build(),
        ),
        (
            "OAuthError",
            oauth_error(
                "An RFC 6749 §5.2 error: `invalid_request` (a missing, repeated or unreadable parameter, a body \
                 that is neither a form nor a JSON object of strings, two client authentication methods), \
                 `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, \
                 `unsupported_token_type`, `invalid_client` (a client id that is not a device-flow client, named \
                 without authentication), or the device grant's `authorization_pending`, `slow_down`, \
                 `access_denied` and `expired_token` (RFC 8628 §3.5).",
            )
            .build(),
        ),
        ("OAuthPayloadTooLarge", oauth_error("`invalid_request`: the body is over 64 KiB.").build()),
        (
            "OAuthInvalidClient",
            oauth_error("`invalid_client`: client authentication failed or is required.")
                .header("WWW-Authenticate", string_header("`Basic realm=\"keyward\"`"))
                .build(),
        ),
        ("OAuthUnavailable", oauth_error("`temporarily_unavailable`: the database cannot be reached.").build()),
    ]
}

/// `/auth/check` answers every method the same way (forward-auth proxies send the
/// original request's method): the `get` operation the handler declares is copied to
/// the other seven methods OpenAPI knows, each with its own operation id. `HEAD`
/// answers carry the headers without a body.
struct AuthCheckMethods;

impl Modify for AuthCheckMethods {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(item) = openapi.paths.paths.get_mut("/auth/check") else { return };
        let Some(get) = item.get.clone() else { return };
        let copy = |method: &str| {
            let mut op = get.clone();
            op.operation_id = Some(format!("check_{method}"));
            op
        };
        item.put = Some(copy("put"));
        item.post = Some(copy("post"));
        item.delete = Some(copy("delete"));
        item.options = Some(copy("options"));
        item.patch = Some(copy("patch"));
        item.trace = Some(copy("trace"));
        let mut head = copy("head");
        for response in head.responses.responses.values_mut() {
            match response {
                RefOr::T(r) => r.content.clear(),
                RefOr::Ref(reference) => {
                    // A HEAD answer has the referenced answer's headers but no body.
                    let name = reference.ref_location.rsplit('/').next().unwrap_or_default().to_owned();
                    let headers = shared_responses()
                        .into_iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, r)| r.headers)
                        .unwrap_or_default();
                    let mut bodiless = Response::new(reference.description.clone());
                    if bodiless.description.is_empty() {
                        bodiless.description = format!("As {name}, without a body.");
                    }
                    bodiless.headers = headers;
                    *response = RefOr::T(bodiless);
                }
            }
        }
        item.head = Some(head);
    }
}

/// The OAuth endpoints and the two metadata documents. Their handlers read raw bodies
/// (a form or a JSON object of strings, RFC 6749 §3.2), so they are declared here.
pub mod oauth {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// A grant the token endpoint answers.
    #[derive(Serialize, ToSchema)]
    pub enum GrantType {
        #[serde(rename = "client_credentials")]
        ClientCredentials,
        #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
        JwtBearer,
        #[serde(rename = "refresh_token")]
        RefreshToken,
        #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
        DeviceCode,
    }

    /// Client authentication in the body (RFC 6749 §2.3.1 `client_secret_post`, RFC 7523
    /// §2.2 `private_key_jwt`), or `client_id` alone for a device-flow client. At most
    /// one method per request, counting `Authorization: Basic`. Other parameters are
    /// ignored; a parameter sent twice is `invalid_request`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ClientParams {
        #[schema(nullable = false)]
        pub client_id: Option<String>,
        #[schema(nullable = false)]
        pub client_secret: Option<String>,
        /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
        #[schema(nullable = false)]
        pub client_assertion_type: Option<String>,
        /// A JWT signed with one of the account's registered keys.
        #[schema(nullable = false)]
        pub client_assertion: Option<String>,
    }

    /// A token request (RFC 6749 §4.4 and §6, RFC 7523 §2.1, RFC 8628 §3.4). Which
    /// parameters are needed depends on `grant_type`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct TokenRequest {
        pub grant_type: GrantType,
        /// Space-separated permissions, each held by the principal.
        #[schema(nullable = false)]
        pub scope: Option<String>,
        /// For `refresh_token`.
        #[schema(nullable = false)]
        pub refresh_token: Option<String>,
        /// For the jwt-bearer grant: the signed JWT.
        #[schema(nullable = false)]
        pub assertion: Option<String>,
        /// For the device-code grant.
        #[schema(nullable = false)]
        pub device_code: Option<String>,
        #[serde(flatten)]
        pub client: ClientParams,
    }

    /// RFC 6749 §5.1.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct TokenResponse {
        /// `kwat_…`
        pub access_token: String,
        /// Always `Bearer`.
        pub token_type: String,
        #[schema(minimum = 0)]
        pub expires_in: u64,
        /// The permissions granted, space-separated.
        pub scope: String,
        /// `kwrt_…`: for the jwt-bearer, device-code and refresh grants.
        #[schema(nullable = false)]
        pub refresh_token: Option<String>,
    }

    /// An introspection or revocation request (RFC 7662 §2.1, RFC 7009 §2.1).
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct TokenParam {
        /// The token asked about.
        pub token: String,
        /// A hint, ignored: the token's prefix tells its type.
        #[schema(nullable = false)]
        pub token_type_hint: Option<String>,
        #[serde(flatten)]
        pub client: ClientParams,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct OrgRef {
        pub id: String,
        pub slug: String,
    }

    /// RFC 7662 §2.2. An unknown, expired, revoked or invisible token is
    /// `{"active": false}` and nothing else.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Introspection {
        pub active: bool,
        #[schema(nullable = false)]
        pub scope: Option<String>,
        #[schema(nullable = false)]
        pub client_id: Option<String>,
        #[schema(nullable = false)]
        pub username: Option<String>,
        /// `Bearer` or `refresh_token`.
        #[schema(nullable = false)]
        pub token_type: Option<String>,
        #[schema(nullable = false)]
        pub exp: Option<i64>,
        #[schema(nullable = false)]
        pub iat: Option<i64>,
        #[schema(nullable = false)]
        pub sub: Option<String>,
        #[schema(nullable = false)]
        pub iss: Option<String>,
        #[schema(nullable = false)]
        pub jti: Option<String>,
        #[schema(nullable = false)]
        pub org: Option<OrgRef>,
        /// `user` or `service_account`.
        #[schema(nullable = false)]
        pub principal_kind: Option<String>,
    }

    /// RFC 7009 §2.2: always the empty object.
    pub struct Revoked;

    impl utoipa::PartialSchema for Revoked {
        fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::Object)
                .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
                .description(Some("Always `{}`."))
                .into()
        }
    }

    impl ToSchema for Revoked {}

    /// A device authorization request (RFC 8628 §3.1).
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct DeviceAuthorizationRequest {
        /// A configured device-flow client.
        pub client_id: String,
        /// Space-separated permissions of this deployment's catalogue.
        #[schema(nullable = false)]
        pub scope: Option<String>,
    }

    /// RFC 8628 §3.2.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct DeviceAuthorization {
        pub device_code: String,
        /// `XXXX-XXXX`
        pub user_code: String,
        pub verification_uri: String,
        pub verification_uri_complete: String,
        #[schema(minimum = 0)]
        pub expires_in: u64,
        #[schema(minimum = 1)]
        pub interval: u64,
    }

    /// RFC 8414 §2 (the fields keyward fills).
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct AuthorizationServerMetadata {
        pub issuer: String,
        pub token_endpoint: String,
        pub introspection_endpoint: String,
        pub revocation_endpoint: String,
        pub device_authorization_endpoint: String,
        pub grant_types_supported: Vec<String>,
        pub token_endpoint_auth_methods_supported: Vec<String>,
        pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
        pub introspection_endpoint_auth_methods_supported: Vec<String>,
        pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
        pub revocation_endpoint_auth_methods_supported: Vec<String>,
        pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
        pub scopes_supported: Vec<String>,
        pub client_assertion_types_supported: Vec<String>,
    }

    /// RFC 9728 §2.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ProtectedResourceMetadata {
        pub resource: String,
        pub authorization_servers: Vec<String>,
        pub bearer_methods_supported: Vec<String>,
        pub scopes_supported: Vec<String>,
    }

    /// Issues tokens (RFC 6749 §3.2). The client authenticates with
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`; device-flow
    /// clients name themselves with `client_id`; the jwt-bearer grant needs no client
    /// authentication.
    #[utoipa::path(post, path = "/oauth/token", operation_id = "oauth_token", tag = "oauth",
        request_body(content(
            (TokenRequest = "application/x-www-form-urlencoded"),
            (TokenRequest = "application/json"),
        )),
        security((), ("basic" = [])),
        responses(
            (status = 200, body = TokenResponse, description = "The tokens.",
                headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        ))]
    pub fn token() {}

    /// Tells whether a token is active (RFC 7662). The caller is a service account
    /// authenticating as a client (tokens issued to it), or a credential holding
    /// `keys:verify` as Bearer or the API-key header (any token of its organization).
    #[utoipa::path(post, path = "/oauth/introspect", operation_id = "oauth_introspect", tag = "oauth",
        request_body(content(
            (TokenParam = "application/x-www-form-urlencoded"),
            (TokenParam = "application/json"),
        )),
        security((), ("basic" = []), ("bearer" = []), ("api_key" = [])),
        responses(
            (status = 200, body = Introspection, description = "What the token is, or `{\"active\": false}`.",
                headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        ))]
    pub fn introspect() {}

    /// Revokes a token issued to the client (RFC 7009): an access token alone, a
    /// refresh token with its family. `200` for any token, known or not.
    #[utoipa::path(post, path = "/oauth/revoke", operation_id = "oauth_revoke", tag = "oauth",
        request_body(content(
            (TokenParam = "application/x-www-form-urlencoded"),
            (TokenParam = "application/json"),
        )),
        security((), ("basic" = [])),
        responses(
            (status = 200, body = Revoked, description = "Done (or nothing to do).",
                headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        ))]
    pub fn revoke() {}

    /// Starts the device flow for a device-flow client (RFC 8628 §3.1).
    #[utoipa::path(post, path = "/oauth/device_authorization", operation_id = "oauth_device_authorization", tag = "oauth",
        request_body(content(
            (DeviceAuthorizationRequest = "application/x-www-form-urlencoded"),
            (DeviceAuthorizationRequest = "application/json"),
        )),
        security((), ("basic" = [])),
        responses(
            (status = 200, body = DeviceAuthorization, description = "The codes.",
                headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        ))]
    pub fn device_authorization() {}

    /// The authorization-server metadata (RFC 8414).
    #[utoipa::path(get, path = "/.well-known/oauth-authorization-server", operation_id = "authorization_server_metadata", tag = "oauth",
        responses(
            (status = 200, body = AuthorizationServerMetadata, description = "The metadata.",
                headers(("Cache-Control" = String, description = "`public, max-age=3600`"))),
            (status = 404, body = crate::http::views::ErrorBody, description = "`not_found`: `oauth.metadata = false`."),
        ))]
    pub fn authorization_server() {}

    /// The protected-resource metadata (RFC 9728) that a `401`'s `resource_metadata` names.
    #[utoipa::path(get, path = "/.well-known/oauth-protected-resource", operation_id = "protected_resource_metadata", tag = "oauth",
        responses(
            (status = 200, body = ProtectedResourceMetadata, description = "The metadata.",
                headers(("Cache-Control" = String, description = "`public, max-age=3600`"))),
            (status = 404, body = crate::http::views::ErrorBody, description = "`not_found`: `oauth.metadata = false`."),
        ))]
    pub fn protected_resource() {}
}

/// The operations routes.
pub mod operations {
    use utoipa::ToSchema;

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Status {
        /// `ok` (`/health`) or `ready` (`/ready`).
        pub status: String,
    }

    /// Liveness: answers without touching anything.
    #[utoipa::path(get, path = "/health", operation_id = "health", tag = "operations", responses((status = 200, body = Status, description = "`{\"status\": \"ok\"}`")))]
    pub fn health() {}

    /// Readiness: the database answers and every migration is applied.
    #[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "operations", responses(
        (status = 200, body = Status, description = "`{\"status\": \"ready\"}`"),
        (status = 503, body = crate::http::views::ErrorBody, description = "`unavailable`: the database is unreachable or migrations are not current."),
    ))]
    pub fn ready() {}

    /// Prometheus metrics.
    #[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", responses(
        (status = 200, body = String, content_type = "text/plain", description = "The Prometheus text format (version 0.0.4)."),
    ))]
    pub fn metrics() {}

    /// This document.
    #[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi_document", tag = "operations", responses(
        (status = 200, body = Object, description = "The OpenAPI 3.1 document."),
    ))]
    pub fn openapi() {}
}

#[cfg(test)]
mod tests {
    use keyward_core::permission::Roles;
    use serde_json::Value;

    use super::document;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    /// Every operation as (path, method, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    /// A response, following a `$ref` into the components.
    fn response<'a>(doc: &'a Value, op: &'a Value, status: &str) -> Option<&'a Value> {
        let r = op["responses"].get(status)?;
        match r.get("$ref").and_then(Value::as_str) {
            Some(reference) => doc.pointer(&reference[1..]),
            None => Some(r),
        }
    }

    #[test]
    fn operation_ids_are_unique_and_path_parameters_declared() {
        let doc = document("X-API-Key", &Roles::default());
        let mut ids = std::collections::BTreeSet::new();
        for (path, method, op) in operations(&doc) {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "{method} {path}: operationId {id} twice");
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let in_path: Vec<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
        }
    }

    #[test]
    fn shared_answers_are_declared_where_they_can_happen() {
        let doc = document("X-API-Key", &Roles::default());
        for (path, method, op) in operations(&doc) {
            let has = |status: &str| response(&doc, &op, status).is_some();
            let what = format!("{method} {path}");
            let public = path.starts_with("/.well-known/")
                || ["/health", "/ready", "/metrics", "/api/v1/openapi.json"].contains(&path.as_str());
            if public {
                assert_eq!(op["security"], serde_json::json!([]), "{what}: no credential");
                assert!(!has("401") && !has("429"), "{what}");
                continue;
            }
            for status in ["401", "429", "503"] {
                assert!(has(status), "{what}: {status}");
            }
            let limited = response(&doc, &op, "429").unwrap();
            for header in ["Retry-After", "RateLimit-Policy", "RateLimit"] {
                assert_eq!(limited["headers"][header]["required"], true, "{what}: 429 {header}");
            }
            assert_eq!(response(&doc, &op, "401").unwrap()["headers"]["WWW-Authenticate"]["required"], true, "{what}");
            let json_body = op["requestBody"]["content"].get("application/json").is_some();
            if json_body {
                for status in ["400", "413"] {
                    assert!(has(status), "{what}: {status}");
                }
            }
            if path.starts_with("/api/v1/") && json_body {
                for status in ["415", "422"] {
                    assert!(has(status), "{what}: {status}");
                }
            }
            if path.starts_with("/api/v1/") && path.contains('{') {
                assert!(has("404"), "{what}: 404");
            }
            if path.starts_with("/api/v1/") && !["get", "head", "options", "trace"].contains(&method.as_str()) {
                assert!(has("403"), "{what}: 403 (CSRF)");
            }
            if path.starts_with("/oauth/") {
                for status in ["200", "400"] {
                    let r = response(&doc, &op, status).unwrap();
                    assert_eq!(r["headers"]["Cache-Control"]["required"], true, "{what}: {status} no-store");
                }
            }
            for r in op["responses"].as_object().unwrap().values() {
                let r = match r.get("$ref").and_then(Value::as_str) {
                    Some(reference) => doc.pointer(&reference[1..]).unwrap(),
                    None => r,
                };
                assert!(!r["description"].as_str().unwrap_or_default().is_empty(), "{what}: a response without text");
            }
        }
    }

    #[test]
    fn auth_check_answers_every_method() {
        let doc = document("X-API-Key", &Roles::default());
        let item = &doc["paths"]["/auth/check"];
        for method in METHODS {
            let op = &item[method];
            assert!(op.is_object(), "{method}");
            assert_eq!(op["security"].as_array().unwrap().len(), 3, "{method}: no session cookie");
            assert!(op["parameters"][0]["name"] == "permission", "{method}");
            let ok = &op["responses"]["200"];
            assert_eq!(ok["headers"]["X-Keyward-Principal"]["required"], true, "{method}");
            if method == "head" {
                for r in op["responses"].as_object().unwrap().values() {
                    assert!(r.get("$ref").is_none() && r.get("content").is_none(), "head: no body: {r}");
                }
                assert_eq!(op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"], true);
            } else {
                assert!(ok["content"]["application/json"].is_object(), "{method}");
            }
        }
    }

    #[test]
    fn bounds_and_optional_bodies_are_stated() {
        let doc = document("X-API-Key", &Roles::default());
        let audit = &doc["paths"]["/api/v1/audit-events"]["get"]["parameters"];
        let limit = audit.as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!((limit["schema"]["minimum"].as_u64(), limit["schema"]["maximum"].as_u64()), (Some(1), Some(200)));
        for body in ["RollBody", "RotateBody"] {
            let grace = &doc["components"]["schemas"][body]["properties"]["grace_seconds"];
            assert_eq!(grace["minimum"], 0, "{body}");
            assert_eq!(grace["maximum"], crate::keys::MAX_GRACE_SECONDS, "{body}");
            assert_eq!(grace["default"], 0, "{body}");
        }
        for (path, body) in [
            ("/api/v1/api-keys/{id}/roll", false),
            ("/api/v1/service-accounts/{id}/secret", false),
            ("/api/v1/api-keys", true),
            ("/api/v1/keys/verify", true),
            ("/oauth/token", true),
        ] {
            let required = doc["paths"][path]["post"]["requestBody"]["required"].as_bool().unwrap_or(false);
            assert_eq!(required, body, "{path}");
        }
    }

    #[test]
    fn the_api_key_scheme_names_the_configured_header() {
        let doc = document("X-Custom-Key", &Roles::default());
        let scheme = &doc["components"]["securitySchemes"]["api_key"];
        assert_eq!((scheme["in"].as_str(), scheme["name"].as_str()), (Some("header"), Some("X-Custom-Key")));
        for name in ["bearer", "basic", "session"] {
            assert!(doc["components"]["securitySchemes"][name].is_object(), "{name}");
        }
    }

    #[test]
    fn a_service_accounts_role_is_a_configured_one() {
        let roles = Roles::new(
            &["projects:read".to_owned()],
            &[("reader".to_owned(), vec!["projects:read".to_owned()])].into_iter().collect(),
        )
        .expect("valid roles");
        let doc = document("X-API-Key", &roles);
        let role = &doc["components"]["schemas"]["CreateAccountBody"]["properties"]["role"];
        let mut names: Vec<Value> = roles.names().map(Value::from).collect();
        names.push(Value::Null);
        assert_eq!(role["enum"], Value::Array(names));
        assert!(role["enum"].as_array().unwrap().contains(&Value::from("reader")));
    }
}
