//! The web pages: sign-in (`/login`, `/logout`), the device approval page (`/device`),
//! a small home page, and the one stylesheet.
//!
//! Pages are rendered on the server from `templates/` (askama: compiled, escaped by
//! default) with no script and no external asset. Every answer carries a strict
//! Content-Security-Policy (`default-src 'self'`, no frames) and `Cache-Control:
//! no-store`.
//!
//! **CSRF.** Every form carries a `csrf` field holding a synchronizer token bound to the
//! browser's session (or, before signing in, to the `keyward_csrf` pre-session cookie)
//! with a key the instances share ([`csrf`]); it is checked in constant time, and a form
//! without it, or with any other value, is refused (`403`) before anything else. The
//! session cookie is `SameSite=Lax` on top.
//!
//! **Sessions.** `keyward_session` holds a typed random secret (`{P}ss_…`); only its
//! SHA-256 is stored, with the person and an expiry.
//!
//! # Layout
//!
//! - [`api_session`] — the session cookie as a credential on the management API.
//! - [`csrf`] — the CSRF tokens and their key.
//! - [`app`] — the signed-in person, the current organization and its switcher, the
//!   navigation.
//! - [`login`] — `/login`, `/logout`, `/`.
//! - [`device`] — `/device`.
//! - [`keys`] — `/settings/api-keys…`.
//! - [`admin`] — `/admin/members…`, `/admin/service-accounts…`, `/admin/audit`: the
//!   organization admin's pages.

pub mod admin;
pub mod api_session;
pub mod app;
pub mod csrf;
pub mod device;
pub mod keys;
pub mod login;

use askama::Template;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use keyward_core::secret::{SecretHash, SecretKind};
use keyward_store::User;

use super::oauth::params::Params;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "keyward_session";
pub const CSRF_COOKIE: &str = "keyward_csrf";

/// The largest form body read. Sign-in and code forms are a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The copy button's script: the only script keyward serves.
pub async fn copy_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../../assets/copy.js"),
    )
        .into_response()
}

/// The stylesheet, served by keyward itself.
pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../../assets/keyward.css"),
    )
        .into_response()
}

/// Why a page could not do what was asked; rendered as a page with the status.
#[derive(Debug)]
pub enum WebError {
    /// Nobody is signed in: `303` to `/login`, coming back to this path afterwards.
    SignIn(String),
    /// 400: the form cannot be read.
    BadRequest(&'static str),
    /// 403: no or wrong CSRF token, or not allowed.
    Forbidden(&'static str),
    /// 404: absent, or another person's or organization's.
    NotFound,
    /// 413.
    TooLarge,
    /// 415: not a form.
    NotAForm,
    /// 409: another request changed the same thing at the same time and won.
    Conflict,
    /// 503: the database cannot be reached.
    Unavailable,
    /// 500: logged, never echoed.
    Internal(String),
}

impl From<keyward_store::StoreError> for WebError {
    fn from(e: keyward_store::StoreError) -> Self {
        match e {
            e if e.is_unavailable() => WebError::Unavailable,
            keyward_store::StoreError::Concurrent(_) => WebError::Conflict,
            other => WebError::Internal(other.to_string()),
        }
    }
}

/// A page that shows one message.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub signed_in: Option<&'a str>,
    pub csrf: &'a str,
    pub heading: &'a str,
    pub text: &'a str,
    /// `ok`, `error` or `muted`: how the text is shown.
    pub tone: &'a str,
    pub link_href: Option<&'a str>,
    pub link_label: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, text) = match &self {
            WebError::SignIn(back) => return to_login(back),
            WebError::BadRequest(t) => (StatusCode::BAD_REQUEST, "Bad request", *t),
            WebError::Forbidden(t) => (StatusCode::FORBIDDEN, "Forbidden", *t),
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found", "there is nothing here, or it is not yours"),
            WebError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", "the form is too large"),
            WebError::NotAForm => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Bad request",
                "send the form as application/x-www-form-urlencoded",
            ),
            WebError::Conflict => (
                StatusCode::CONFLICT,
                "Changed meanwhile",
                "this was changed by another request at the same time; reload the page and try again",
            ),
            WebError::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "the service is unavailable; try again shortly")
            }
            WebError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error on a web page");
                (StatusCode::INTERNAL_SERVER_ERROR, "Error", "something went wrong")
            }
        };
        let page = MessagePage {
            signed_in: None,
            csrf: "",
            heading,
            text,
            tone: "error",
            link_href: Some("/"),
            link_label: "Back",
        };
        html(status, &page, &[])
    }
}

/// Renders a page with the security headers, and any cookies to set.
pub fn html(status: StatusCode, page: &impl Template, cookies: &[String]) -> Response {
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "a template failed to render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    secure_headers(response.headers_mut(), cookies);
    response
}

/// `303` to `/login`, which comes back to `back` after signing in.
pub fn to_login(back: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    redirect(&format!("/login?next={next}"), &[])
}

/// `303 See Other` to a local path, with cookies.
pub fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(response.headers_mut(), cookies);
    response
}

fn secure_headers(h: &mut HeaderMap, cookies: &[String]) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
}

/// A cookie's value from the request.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: path `/`, `HttpOnly`, `Secure` when the public URL is https.
fn set_cookie(state: &AppState, name: &str, value: &str, same_site: SameSite, max_age: Option<i64>) -> String {
    let mut c = Cookie::build((name.to_owned(), value.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(same_site)
        .secure(state.settings.public_url.starts_with("https://"));
    if let Some(secs) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// The session cookie for a new session.
pub fn session_cookie(state: &AppState, value: &str) -> String {
    let secs = state.settings.session_lifetime.as_secs() as i64;
    set_cookie(state, SESSION_COOKIE, value, SameSite::Lax, Some(secs))
}

/// Clears the session cookie.
pub fn clear_session_cookie(state: &AppState) -> String {
    set_cookie(state, SESSION_COOKIE, "", SameSite::Lax, Some(0))
}

/// The request's CSRF token, and the pre-session cookie to set when the browser has no
/// session and no pre-session cookie yet.
pub fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    let session = cookie_value(headers, SESSION_COOKIE);
    let pre = cookie_value(headers, CSRF_COOKIE);
    if let Some(binding) = csrf::binding_of(&state.settings.secrets, session.as_deref(), pre.as_deref()) {
        return (state.csrf.token(binding), None);
    }
    let fresh = csrf::new_pre_session_value();
    let cookie = set_cookie(state, CSRF_COOKIE, &fresh, SameSite::Strict, None);
    (state.csrf.token(csrf::Binding::PreSession(&fresh)), Some(cookie))
}

/// Whether `presented` is the CSRF token of the browser that sent `headers`.
pub fn csrf_ok(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> bool {
    let session = cookie_value(headers, SESSION_COOKIE);
    let pre = cookie_value(headers, CSRF_COOKIE);
    match (csrf::binding_of(&state.settings.secrets, session.as_deref(), pre.as_deref()), presented) {
        (Some(binding), Some(token)) => state.csrf.verify(binding, token),
        _ => false,
    }
}

/// Refuses a form whose `csrf` field is not this browser's token.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, form: &Params) -> Result<(), WebError> {
    if csrf_ok(state, headers, form.get("csrf")) {
        Ok(())
    } else {
        Err(WebError::Forbidden("the form has expired or did not come from this site; reload the page and try again"))
    }
}

/// A form posted from one of keyward's pages, read ([`read_form`]) and its CSRF token
/// checked ([`check_csrf`]) before the handler runs: a handler that takes it cannot forget
/// either. The body is the last thing extracted, so a handler's other extractors (path,
/// request parts) come first.
pub struct CsrfForm(pub Params);

impl axum::extract::FromRequest<AppState> for CsrfForm {
    type Rejection = WebError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        let form = read_form(&parts.headers, body).await?;
        check_csrf(state, &parts.headers, &form)?;
        Ok(CsrfForm(form))
    }
}

/// Reads a form body: `application/x-www-form-urlencoded`, UTF-8, no repeated field.
pub async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, WebError> {
    read_form_with_lists(headers, body, &[]).await
}

/// [`read_form`], letting the fields in `lists` repeat (checkbox groups).
pub async fn read_form_with_lists(headers: &HeaderMap, body: Body, lists: &[&str]) -> Result<Params, WebError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(WebError::NotAForm);
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| WebError::TooLarge)?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(WebError::BadRequest("the form is not valid text"));
    }
    Params::from_form_with_lists(&bytes, lists).map_err(|_| WebError::BadRequest("the form cannot be read"))
}

/// The signed-in person, if the request carries a live session cookie.
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<User>, WebError> {
    let Some(value) = cookie_value(headers, SESSION_COOKIE) else { return Ok(None) };
    if state.settings.secrets.check(&value) != Ok(SecretKind::Session) {
        return Ok(None);
    }
    let hash = SecretHash::of(&value);
    Ok(state.store.web_session(&hash).await?.filter(|(_, stored)| stored.ct_eq(&hash)).map(|(user, _)| user))
}

/// The client's address, for rate limits ([`crate::ratelimit::address`]; `unknown` when
/// the server was not started with connection info, as in some tests).
pub fn client_address(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<crate::ratelimit::address::ClientAddress>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// One parameter of the request's query string (the last one, if repeated).
pub fn query_param(uri: &axum::http::Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name).map(|(_, v)| v.into_owned()).last()
}

/// `next` if it is a path on this site, else `/`: never an open redirect.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/device?user_code=BCDF-GHJK")), "/device?user_code=BCDF-GHJK");
        for evil in ["https://evil.example/", "//evil.example/", "/\\evil.example", "evil", "/a\nb"] {
            assert_eq!(local_path(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; keyward_csrf=abc".parse().unwrap());
        h.append(header::COOKIE, "keyward_session=xyz".parse().unwrap());
        assert_eq!(cookie_value(&h, CSRF_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }
}
