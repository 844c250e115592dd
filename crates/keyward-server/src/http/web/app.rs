//! What every signed-in page needs: the person, their organizations and the current one
//! (the `keyward_org` cookie, switched with `POST /settings/org`), their permissions
//! there, the CSRF token, and the navigation.
//!
//! Every page acts on the current organization only: it is resolved from the person's
//! memberships on each request, so a cookie naming an organization the person has left
//! (or never joined) falls back to their first one.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;
use cookie::SameSite;
use keyward_core::ids::UserId;
use keyward_core::permission::{Permission, PermissionSet};
use keyward_store::{Org, Principal, StoreError, User};

use super::{cookie_value, csrf_token, local_path, redirect, set_cookie, signed_in, CsrfForm, WebError};
use crate::state::AppState;

/// What makes someone an organization admin: every admin page needs it, and the
/// navigation shows the admin links by it.
pub const ADMIN: &str = "members:write";

pub const ORG_COOKIE: &str = "keyward_org";

/// The navigation bar's facts, shared by every app page.
pub struct Nav {
    pub email: String,
    pub csrf: String,
    /// The person's organizations, by slug.
    pub orgs: Vec<String>,
    /// The current organization's slug.
    pub org: String,
    /// Whether the admin pages are shown: by the rule the pages themselves apply
    /// ([`ADMIN`], `members:write`).
    pub admin: bool,
    /// Which section the page belongs to (`keys`, `members`, …).
    pub section: &'static str,
}

/// A signed-in person on an app page.
pub struct Person {
    pub user: User,
    pub org: Org,
    pub role: String,
    /// What the person's role in the current organization holds.
    pub holds: PermissionSet,
    pub csrf: String,
    /// Cookies the response must set (a new CSRF token).
    pub cookies: Vec<String>,
    orgs: Vec<String>,
}

impl Person {
    pub fn principal(&self) -> Principal {
        Principal::user(&self.user.id)
    }

    pub fn allows(&self, p: &str) -> bool {
        Permission::parse(p).is_ok_and(|p| self.holds.allows(&p))
    }

    /// The person as the membership rules see them ([`crate::members`]).
    pub fn acting(&self) -> crate::members::Acting<'_> {
        crate::members::Acting::Member { role: Some(&self.role), holds: &self.holds }
    }

    /// The audit actor: the person, through the web UI.
    pub fn actor(&self) -> keyward_store::Actor {
        keyward_store::Actor::principal(&self.principal(), Some("web_session".into()))
    }

    pub fn nav(&self, section: &'static str) -> Nav {
        Nav {
            email: self.user.email.to_string(),
            csrf: self.csrf.clone(),
            orgs: self.orgs.clone(),
            org: self.org.slug.to_string(),
            admin: self.allows(ADMIN),
            section,
        }
    }

    /// `403` unless the person's role allows `p` in the current organization.
    pub fn require(&self, p: &str) -> Result<(), WebError> {
        if self.allows(p) {
            Ok(())
        } else {
            Err(WebError::Forbidden("your role in this organization does not allow this page"))
        }
    }
}

/// A person's organizations with their role in each, and which one is current: the one
/// the `keyward_org` cookie names if they belong to it, else their first (`None`: they
/// belong to none). The pages and the session cookie on the API both decide it here.
pub async fn memberships(
    state: &AppState,
    headers: &HeaderMap,
    user: &UserId,
) -> Result<(Vec<(Org, String)>, Option<usize>), StoreError> {
    let memberships = state.store.orgs_of_user(user).await?;
    let wanted = cookie_value(headers, ORG_COOKIE);
    let current = memberships
        .iter()
        .position(|(o, _)| wanted.as_deref() == Some(o.slug.as_str()))
        .or(if memberships.is_empty() { None } else { Some(0) });
    Ok((memberships, current))
}

/// The signed-in person with their current organization, or a redirect to `/login`
/// that comes back to `back`.
pub async fn person(state: &AppState, headers: &HeaderMap, back: &str) -> Result<Person, WebError> {
    let Some(user) = signed_in(state, headers).await? else { return Err(WebError::SignIn(back.to_owned())) };
    let (memberships, current) = memberships(state, headers, &user.id).await?;
    let Some(current) = current else {
        return Err(WebError::Forbidden("you are not a member of any organization yet"));
    };
    let (csrf, set) = csrf_token(state, headers);
    let orgs = memberships.iter().map(|(o, _)| o.slug.to_string()).collect();
    let (org, role) = memberships.into_iter().nth(current).expect("the position is in range");
    Ok(Person {
        holds: state.settings.roles.permissions_of(&role),
        user,
        org,
        role,
        csrf,
        cookies: set.into_iter().collect(),
        orgs,
    })
}

/// The signed-in person in their current organization, for a page shown by `GET`;
/// nobody signed in: [`WebError::SignIn`], back to this page afterwards. (A form's
/// `POST` handler calls [`person`] with the page to come back to instead: after signing
/// in, the browser can only `GET`.)
pub struct SignedIn(pub Person);

impl axum::extract::FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, WebError> {
        let back = parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
        Ok(SignedIn(person(state, &parts.headers, &back).await?))
    }
}

/// `POST /settings/org`: switches the current organization (form: `csrf`, `org`, `next`).
pub async fn switch_org(
    State(state): State<AppState>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let person = person(&state, &parts.headers, "/settings/api-keys").await?;
    let slug = form.get("org").unwrap_or_default();
    if !person.orgs.iter().any(|o| o == slug) {
        return Err(WebError::Forbidden("you are not a member of that organization"));
    }
    let cookie = set_cookie(&state, ORG_COOKIE, slug, SameSite::Lax, None);
    Ok(redirect(&local_path(form.get("next").or(Some("/settings/api-keys"))), &[cookie]))
}
