//! `/device`: a signed-in person enters (or follows a link with) a user code, sees
//! which client asks, for which organization and permissions, and approves or denies.
//!
//! User codes have ~34.6 bits, so guessing must be slow (RFC 8628 §5.1): a wrong,
//! expired or used code counts as a failure for the person and for the client address,
//! and after 5 in 5 minutes (`rate_limits.user_codes`) the page answers `429` with
//! `Retry-After` until the window passes. Opening a link (`GET /device?user_code=…`) is
//! not an attempt; wrong links are counted apart, with the same limit.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use keyward_core::device::UserCode;
use keyward_store::{DeviceAuthorization, User};

use super::{client_address, csrf_token, html, query_param, signed_in, CsrfForm, MessagePage, WebError};
use crate::state::AppState;

const NOT_VALID: &str = "that code is not valid; check it and try again";
const TOO_MANY: &str = "too many attempts; try again in a few minutes";

#[derive(Template)]
#[template(path = "device_code.html")]
struct CodePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_approve.html")]
struct ApprovePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    user_code: &'a str,
    permissions: Vec<String>,
    /// The person's organizations, by slug.
    orgs: Vec<String>,
}

/// The rate-limit keys of one person at one address.
fn limit_keys(user: &User, extensions: &Extensions) -> [String; 2] {
    [format!("user:{}", user.id), format!("ip:{}", client_address(extensions))]
}

struct Visit<'a> {
    state: &'a AppState,
    user: &'a User,
    csrf: &'a str,
    keys: [String; 2],
}

impl Visit<'_> {
    fn limited(&self) -> Option<std::time::Duration> {
        self.keys.iter().filter_map(|k| self.state.limits.user_code.retry_after(k)).max()
    }

    fn code_page(&self, status: StatusCode, typed: &str, error: Option<&str>, cookies: &[String]) -> Response {
        let shown = if typed.len() <= 32 { typed } else { "" };
        let page = CodePage { signed_in: Some(self.user.email.as_str()), csrf: self.csrf, user_code: shown, error };
        html(status, &page, cookies)
    }

    /// The pending code a person typed, or the code page again (counting a failure).
    async fn find(&self, typed: &str, cookies: &[String]) -> Result<Result<DeviceAuthorization, Response>, WebError> {
        if let Some(wait) = self.limited() {
            let mut page = self.code_page(StatusCode::TOO_MANY_REQUESTS, typed, Some(TOO_MANY), cookies);
            let seconds = crate::ratelimit::seconds(wait);
            page.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
            return Ok(Err(page));
        }
        let found = match UserCode::parse(typed) {
            Some(code) => self.state.store.pending_device(&code).await?,
            None => None,
        };
        match found {
            Some(d) => Ok(Ok(d)),
            None => {
                for k in &self.keys {
                    self.state.limits.user_code.fail(k);
                }
                Ok(Err(self.code_page(StatusCode::BAD_REQUEST, typed, Some(NOT_VALID), cookies)))
            }
        }
    }

    async fn approval_page(&self, device: &DeviceAuthorization, cookies: &[String]) -> Result<Response, WebError> {
        let orgs = self.state.store.orgs_of_user(&self.user.id).await?;
        if orgs.is_empty() {
            return Err(WebError::Forbidden("you are not a member of any organization"));
        }
        let names = &self.state.settings.device_client_names;
        let page = ApprovePage {
            signed_in: Some(self.user.email.as_str()),
            csrf: self.csrf,
            client_name: names.get(&device.client_id).map_or(device.client_id.as_str(), String::as_str),
            client_id: &device.client_id,
            user_code: &device.user_code.display(),
            permissions: device.scopes.as_ref().map(|s| s.to_strings()).unwrap_or_default(),
            orgs: orgs.into_iter().map(|(o, _)| o.slug.to_string()).collect(),
        };
        Ok(html(StatusCode::OK, &page, cookies))
    }
}

/// The signed-in person, or a redirect to `/login` that comes back here.
async fn person(state: &AppState, headers: &HeaderMap, back: &str) -> Result<User, WebError> {
    signed_in(state, headers).await?.ok_or_else(|| WebError::SignIn(back.to_owned()))
}

/// `GET /device[?user_code=…]`.
pub async fn page(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let back = req.uri().path_and_query().map_or("/device".to_owned(), |p| p.as_str().to_owned());
    let user = person(&state, req.headers(), &back).await?;
    let (csrf, set) = csrf_token(&state, req.headers());
    let cookies: Vec<String> = set.into_iter().collect();
    let visit = Visit { state: &state, user: &user, csrf: &csrf, keys: limit_keys(&user, req.extensions()) };
    let Some(typed) = query_param(req.uri(), "user_code") else {
        return Ok(visit.code_page(StatusCode::OK, "", None, &cookies));
    };
    // Following a link is not an attempt: a stale or mangled link must not spend the
    // person's tries. It still must not be a free oracle, so links that name no pending
    // code are counted apart; past that limit (or while typed codes are locked) the page
    // shows the code, unlooked-up, for the person to submit — which counts.
    let link_limits = &state.limits.user_code_links;
    if visit.limited().is_some() || visit.keys.iter().any(|k| link_limits.is_limited(k)) {
        return Ok(visit.code_page(StatusCode::OK, &typed, None, &cookies));
    }
    let found = match UserCode::parse(&typed) {
        Some(code) => state.store.pending_device(&code).await?,
        None => None,
    };
    match found {
        Some(device) => visit.approval_page(&device, &cookies).await,
        None => {
            visit.keys.iter().for_each(|k| link_limits.fail(k));
            Ok(visit.code_page(StatusCode::BAD_REQUEST, &typed, Some(NOT_VALID), &cookies))
        }
    }
}

/// `POST /device`: a typed code (no `decision`), or the approval or denial.
pub async fn submit(
    State(state): State<AppState>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let user = person(&state, &parts.headers, "/device").await?;
    let (csrf, _) = csrf_token(&state, &parts.headers);
    let visit = Visit { state: &state, user: &user, csrf: &csrf, keys: limit_keys(&user, &parts.extensions) };
    let typed = form.get("user_code").unwrap_or_default();
    let device = match visit.find(typed, &[]).await? {
        Ok(d) => d,
        Err(page) => return Ok(page),
    };
    let approve = match form.get("decision") {
        None => return visit.approval_page(&device, &[]).await,
        Some("approve") => true,
        Some("deny") => false,
        Some(_) => return Err(WebError::BadRequest("decision must be approve or deny")),
    };
    let orgs = state.store.orgs_of_user(&user.id).await?;
    let chosen = match form.get("org") {
        Some(slug) => orgs.iter().find(|(o, _)| o.slug.as_str() == slug),
        // A denial needs no choice; an approval does when there are several.
        None if !approve || orgs.len() == 1 => orgs.first(),
        None => return Err(WebError::BadRequest("choose an organization")),
    };
    let Some((org, role)) = chosen else {
        return Err(WebError::Forbidden("you are not a member of that organization"));
    };
    if approve {
        if let Some(asked) = &device.scopes {
            let holds = state.settings.roles.permissions_of(role);
            if asked.iter().any(|p| !holds.allows(p)) {
                return Err(WebError::Forbidden(
                    "the device asks for permissions you do not hold in that organization",
                ));
            }
        }
    }
    if !state.store.decide_device(&device.user_code, &user.id, &org.id, approve).await? {
        return Ok(visit.code_page(StatusCode::BAD_REQUEST, typed, Some(NOT_VALID), &[]));
    }
    tracing::info!(user = %user.id, client = %device.client_id, approve, "a device code was decided");
    let names = &state.settings.device_client_names;
    let client = names.get(&device.client_id).map_or(device.client_id.as_str(), String::as_str);
    let text = if approve {
        format!("{client} is now signed in as you in {}. You can close this page.", org.slug)
    } else {
        format!("{client} was not let in.")
    };
    let page = MessagePage {
        signed_in: Some(user.email.as_str()),
        csrf: &csrf,
        heading: if approve { "Approved" } else { "Denied" },
        text: &text,
        tone: if approve { "ok" } else { "muted" },
        link_href: None,
        link_label: "",
    };
    Ok(html(StatusCode::OK, &page, &[]))
}
