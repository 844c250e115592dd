//! `/admin/service-accounts…`: the organization's service accounts — list, create (with a
//! client secret shown once, or a public key uploaded as a file or pasted as PEM/JWK),
//! rotate the secret with a grace period (the new one shown once), and delete after a
//! confirmation.
//!
//! The rules are [`crate::service_accounts`]' — the API's and the CLI's: name, role,
//! the plan limit (`service_accounts.min_plan`, refused with `403` naming the plan), and
//! nobody gives an account a role holding permissions they lack.
//!
//! The create form is `multipart/form-data` (for the file); a urlencoded one is read
//! too. Either is read whole (at most the router's body limit, 64 KiB) before the CSRF
//! check, which, as on every form, comes before anything else is done.

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Duration, Utc};
use keyward_core::ids::ServiceAccountId;
use keyward_store::{ServiceAccount, StoreError};

use super::super::app::{Nav, Person, SignedIn};
use super::super::keys::{ConfirmPage, When};
use super::super::{check_csrf, html, query_param, read_form, redirect, CsrfForm, WebError};
use super::{givable_roles, member_refusal};
use crate::http::oauth::params::Params;
use crate::members::{self, MemberRuleError};
use crate::service_accounts::{self as rules, AccountRequest, AccountRuleError, OrgRef, DEFAULT_ROLE};
use crate::state::AppState;

/// The page's own permission, on top of [`super::ADMIN`].
const PAGE: &str = "service_accounts:write";

/// The grace periods offered when rotating: none, an hour, a day.
pub const GRACE_CHOICES: [(i64, &str); 3] =
    [(0, "none: the old secret stops now"), (3_600, "1 hour"), (86_400, "1 day")];

struct SecretRow {
    prefix: String,
    created_at: When,
    /// While a rotation's grace period runs.
    expires_at: Option<When>,
}

struct PublicKeyRow {
    kid: String,
    alg: String,
}

struct AccountRow {
    id: String,
    name: String,
    client_id: String,
    role: String,
    created_at: When,
    secrets: Vec<SecretRow>,
    public_keys: Vec<PublicKeyRow>,
}

impl AccountRow {
    fn new(a: ServiceAccount, now: chrono::DateTime<Utc>) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name,
            client_id: a.client_id,
            role: a.role,
            created_at: When::of(a.created_at, now),
            secrets: a
                .secrets
                .into_iter()
                .map(|s| SecretRow {
                    prefix: s.prefix.as_str().to_owned(),
                    created_at: When::of(s.created_at, now),
                    expires_at: s.expires_at.map(|t| When::of(t, now)),
                })
                .collect(),
            public_keys: a
                .public_keys
                .iter()
                .map(|k| PublicKeyRow { kid: k.kid().to_owned(), alg: k.alg().as_str().to_owned() })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_service_accounts.html")]
struct AccountsPage<'a> {
    nav: Nav,
    accounts: Vec<AccountRow>,
    /// The roles the person may give an account: the role select.
    roles: Vec<String>,
    default_role: &'a str,
    grace_choices: &'a [(i64, &'a str)],
    /// The name typed, when the form comes back with an error.
    name: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "admin_service_account_secret.html")]
struct SecretPage<'a> {
    nav: Nav,
    heading: &'a str,
    name: &'a str,
    client_id: &'a str,
    /// The client secret, this once (`None`: an account with public keys only).
    secret: Option<&'a str>,
    /// The registered public keys, `kid (alg)`.
    public_keys: Vec<String>,
    /// After a rotation with grace: until when the old secrets keep working.
    grace_until: Option<When>,
    base: &'a str,
}

struct Form<'a> {
    status: StatusCode,
    name: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

async fn accounts_page(state: &AppState, p: &Person, form: Form<'_>) -> Result<Response, WebError> {
    let now = Utc::now();
    let accounts =
        state.store.service_accounts(&p.org.id).await?.into_iter().map(|a| AccountRow::new(a, now)).collect();
    let roles = givable_roles(&state.settings.roles, p);
    let default_role =
        if roles.iter().any(|r| r == DEFAULT_ROLE) { DEFAULT_ROLE } else { roles.first().map_or("", String::as_str) };
    let page = AccountsPage {
        nav: p.nav("service-accounts"),
        accounts,
        default_role,
        roles: roles.clone(),
        grace_choices: &GRACE_CHOICES,
        name: form.name,
        notice: form.notice,
        error: form.error,
    };
    Ok(html(form.status, &page, &p.cookies))
}

/// `GET /admin/service-accounts`.
pub async fn list(State(state): State<AppState>, SignedIn(p): SignedIn, req: Request) -> Result<Response, WebError> {
    super::require_admin(&p, PAGE)?;
    let notice = match query_param(req.uri(), "done").as_deref() {
        Some("deleted") => Some("The service account was deleted. Its secrets, keys and tokens no longer work."),
        _ => None,
    };
    accounts_page(&state, &p, Form { status: StatusCode::OK, name: "", notice, error: None }).await
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// Reads a `multipart/form-data` body into [`Params`], with the same rule as a
/// urlencoded form: text only, no field twice. A file's content is the field's value.
async fn read_multipart(headers: HeaderMap, body: Body) -> Result<Params, WebError> {
    let mut req = Request::new(body);
    *req.headers_mut() = headers;
    let mut multipart =
        Multipart::from_request(req, &()).await.map_err(|_| WebError::BadRequest("the form cannot be read"))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(WebError::TooLarge),
            Err(_) => return Err(WebError::BadRequest("the form cannot be read")),
        };
        let Some(name) = field.name().map(str::to_owned) else { continue };
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(WebError::TooLarge),
            Err(_) => return Err(WebError::BadRequest("the form cannot be read")),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            WebError::BadRequest("the form or the uploaded file is not text (a public key is PEM or JWK)")
        })?;
        pairs.push((name, text.to_owned()));
    }
    // Encoded after the last await: the serializer is not `Send`.
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
    Params::from_form(encoded.as_bytes()).map_err(|_| WebError::BadRequest("the form cannot be read"))
}

/// The account asked for by the create form. `credential` is `secret` or `public_key`;
/// a key comes from the uploaded file, the pasted text, or both.
fn account_request(form: &Params) -> Result<AccountRequest, &'static str> {
    let name = form.get("name").unwrap_or_default().to_owned();
    let role = form.get("role").map(str::to_owned);
    match form.get("credential").unwrap_or("secret") {
        "secret" => Ok(AccountRequest { name, role, public_keys: Vec::new(), secret: Some(true) }),
        "public_key" => {
            let public_keys: Vec<String> = [form.get("public_key_file"), form.get("public_key")]
                .into_iter()
                .flatten()
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned)
                .collect();
            if public_keys.is_empty() {
                return Err("upload the public key file, or paste the key (PEM or JWK)");
            }
            Ok(AccountRequest { name, role, public_keys, secret: Some(false) })
        }
        _ => Err("choose a client secret or a public key"),
    }
}

/// The status and message of a refused account request.
fn refusal(e: AccountRuleError) -> Result<(StatusCode, String), WebError> {
    match e {
        AccountRuleError::Invalid(m) => Ok((StatusCode::UNPROCESSABLE_ENTITY, m)),
        e @ (AccountRuleError::PlanTooLow { .. } | AccountRuleError::RoleNotHeld(_) | AccountRuleError::OwnerOnly) => {
            Ok((StatusCode::FORBIDDEN, e.to_string()))
        }
        AccountRuleError::Store(StoreError::NotFound) => Err(WebError::NotFound),
        AccountRuleError::Store(e) => Err(e.into()),
    }
}

/// `POST /admin/service-accounts`: makes an account; its secret is shown on this page only.
pub async fn create(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (parts, body) = req.into_parts();
    let form = if is_multipart(&parts.headers) {
        read_multipart(parts.headers.clone(), body).await?
    } else {
        read_form(&parts.headers, body).await?
    };
    check_csrf(&state, &parts.headers, &form)?;
    let p = super::admin(&state, &parts.headers, "/admin/service-accounts", PAGE).await?;
    let name = form.get("name").unwrap_or_default();
    let made = match account_request(&form) {
        Ok(account) => rules::create(&state.deployment(), OrgRef::from(&p.org), p.acting(), &account, &p.actor())
            .await
            .map_err(refusal),
        Err(message) => Err(Ok((StatusCode::UNPROCESSABLE_ENTITY, message.to_owned()))),
    };
    let (account, secret) = match made {
        Ok(made) => made,
        Err(refused) => {
            let (status, message) = refused?;
            return accounts_page(&state, &p, Form { status, name, notice: None, error: Some(&message) }).await;
        }
    };
    let page = SecretPage {
        nav: p.nav("service-accounts"),
        heading: "Your new service account",
        name: &account.name,
        client_id: &account.client_id,
        secret: secret.as_ref().map(|s| s.expose()),
        public_keys: key_labels(&account),
        grace_until: None,
        base: &state.settings.public_url,
    };
    Ok(html(StatusCode::CREATED, &page, &p.cookies))
}

fn key_labels(a: &ServiceAccount) -> Vec<String> {
    a.public_keys.iter().map(|k| format!("{} ({})", k.kid(), k.alg().as_str())).collect()
}

/// An account of the current organization by a path id; anything else is `404`.
async fn own_account(state: &AppState, p: &Person, id: &str) -> Result<ServiceAccount, WebError> {
    let id = ServiceAccountId::parse(id).ok_or(WebError::NotFound)?;
    match state.store.service_account(&p.org.id, &id).await {
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        other => Ok(other?),
    }
}

/// The grace period chosen on the rotate form, in seconds (absent: none).
fn grace_seconds(value: Option<&str>) -> Result<i64, WebError> {
    match value {
        None => Ok(0),
        Some(v) => v.trim().parse().map_err(|_| WebError::BadRequest("choose how long the old secret keeps working")),
    }
}

/// `POST /admin/service-accounts/{id}/rotate` (form: `csrf`, `grace_seconds`): a new
/// client secret, shown once; the old ones keep working for the grace period.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let p = super::admin(&state, &parts.headers, "/admin/service-accounts", PAGE).await?;
    let account = own_account(&state, &p, &id).await?;
    let grace = grace_seconds(form.get("grace_seconds"))?;
    let (account, secret) = match rules::rotate(&state.deployment(), &p.org.id, &account.id, grace, &p.actor()).await {
        Ok(r) => r,
        Err(e) => {
            let (status, message) = refusal(e)?;
            return accounts_page(&state, &p, Form { status, name: "", notice: None, error: Some(&message) }).await;
        }
    };
    let now = Utc::now();
    let page = SecretPage {
        nav: p.nav("service-accounts"),
        heading: "Rotated: the account's new client secret",
        name: &account.name,
        client_id: &account.client_id,
        secret: Some(secret.expose()),
        public_keys: key_labels(&account),
        grace_until: (grace > 0).then(|| When::of(now + Duration::seconds(grace), now)),
        base: &state.settings.public_url,
    };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

/// `GET /admin/service-accounts/{id}/delete`: the confirmation.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedIn(p): SignedIn,
) -> Result<Response, WebError> {
    super::require_admin(&p, PAGE)?;
    let account = own_account(&state, &p, &id).await?;
    let text = format!(
        "Deleting {} is immediate and cannot be undone: its client secrets, public keys, API keys and tokens stop working at once, everywhere.",
        account.name
    );
    let action = format!("/admin/service-accounts/{}/delete", account.id);
    let page = ConfirmPage {
        nav: p.nav("service-accounts"),
        heading: "Delete this service account?",
        text: &text,
        action: &action,
        button: "Delete service account",
        cancel: "/admin/service-accounts",
    };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

/// `POST /admin/service-accounts/{id}/delete` (form: `csrf`, `confirm=yes`).
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let p = super::admin(&state, &parts.headers, "/admin/service-accounts", PAGE).await?;
    if form.get("confirm") != Some("yes") {
        return Err(WebError::BadRequest("confirm the deletion on the confirmation page"));
    }
    let account = own_account(&state, &p, &id).await?;
    let deleted = members::delete_service_account(&state.store, &p.org.id, p.acting(), &account.id, &p.actor()).await;
    match deleted {
        Ok(()) | Err(MemberRuleError::Store(StoreError::NotFound)) => {}
        Err(e) => {
            let (status, message) = member_refusal(e)?;
            return accounts_page(&state, &p, Form { status, name: "", notice: None, error: Some(&message) }).await;
        }
    }
    Ok(redirect("/admin/service-accounts?done=deleted", &p.cookies))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Params {
        Params::from_form(body.as_bytes()).unwrap()
    }

    #[test]
    fn the_credential_choice_makes_a_secret_or_takes_keys() {
        let a = account_request(&form("name=ci&role=member&credential=secret&public_key=ignored")).unwrap();
        assert_eq!(a.secret, Some(true));
        assert!(a.public_keys.is_empty(), "a secret account ignores a pasted key");
        let a = account_request(&form("name=ci&credential=public_key&public_key=PEM1&public_key_file=PEM2")).unwrap();
        assert_eq!(a.secret, Some(false));
        assert_eq!(a.public_keys, vec!["PEM2", "PEM1"], "the file and the pasted text both count");
        let a = account_request(&form("name=ci&credential=public_key&public_key_file=PEM")).unwrap();
        assert_eq!(a.public_keys, vec!["PEM"]);
        assert!(account_request(&form("name=ci&credential=public_key&public_key=%20%0A")).is_err(), "a key is needed");
        assert!(account_request(&form("name=ci&credential=both")).is_err());
        assert_eq!(account_request(&form("name=ci")).unwrap().secret, Some(true), "a secret by default");
    }

    #[test]
    fn grace_is_a_number_of_seconds() {
        assert_eq!(grace_seconds(None).unwrap(), 0);
        assert_eq!(grace_seconds(Some("3600")).unwrap(), 3_600);
        assert!(grace_seconds(Some("an hour")).is_err());
        assert!(
            GRACE_CHOICES.iter().all(|(s, _)| (0..=crate::keys::MAX_GRACE_SECONDS).contains(s)),
            "every choice is allowed"
        );
    }

    #[test]
    fn plan_and_role_refusals_are_403_bad_values_422() {
        use keyward_core::domain::Plan;
        let (status, m) = refusal(AccountRuleError::PlanTooLow { required: Plan::Pro, plan: Plan::Free }).unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(m.contains("pro") && m.contains("free"), "{m}");
        assert_eq!(refusal(AccountRuleError::RoleNotHeld("admin".into())).unwrap().0, StatusCode::FORBIDDEN);
        assert_eq!(refusal(AccountRuleError::Invalid("no".into())).unwrap().0, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(matches!(refusal(AccountRuleError::Store(StoreError::NotFound)), Err(WebError::NotFound)));
    }
}
