//! `/login`, `/logout` and `/`: signing people in and out.
//!
//! A failed sign-in always answers the same thing — unknown e-mail, a person without a
//! password, a wrong password — and takes about as long: an unknown e-mail is checked
//! against a fixed argon2id hash, so timing does not tell which addresses exist.
//! argon2id runs on a blocking thread, never on the async runtime, a few at a time
//! ([`crate::ratelimit::passwords`]).
//!
//! Each attempt is counted before its password is checked, per (e-mail, address), per
//! e-mail and per address, and given back when it succeeds: concurrent guesses cannot
//! overrun a limit, and the small per-(e-mail, address) limit stops an attacker long
//! before the larger per-e-mail one would lock the real person out from elsewhere.

use std::sync::LazyLock;
use std::time::Duration;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keyward_core::domain::Email;
use keyward_core::password;
use keyward_core::secret::{SecretHash, SecretKind};
use keyward_store::StoreError;

use super::{csrf_token, html, local_path, redirect, signed_in, CsrfForm, MessagePage, WebError};
use crate::ratelimit::passwords::Busy;
use crate::ratelimit::signin::{Refused, SignInLimit};
use crate::state::AppState;

/// What an unknown e-mail is checked against, so it costs what a wrong password costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| password::hash("keyward: no such person"));

const WRONG: &str = "the e-mail or the password is wrong";
const TOO_MANY: &str = "too many attempts; try again later";
const BUSY: &str = "too many sign-ins at once; try again in a moment";

/// Counts one attempt on every counter, or on none: when one refuses, those already
/// counted are given back.
async fn take_all(counters: &[(&SignInLimit, &str)]) -> Result<(), Refused> {
    for (i, (limit, key)) in counters.iter().enumerate() {
        if let Err(refused) = limit.take(key).await {
            give_back_all(&counters[..i]).await;
            return Err(refused);
        }
    }
    Ok(())
}

async fn give_back_all(counters: &[(&SignInLimit, &str)]) {
    for (limit, key) in counters {
        limit.give_back(key).await;
    }
}

/// A `429` or `503` page with the wait in whole seconds.
fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::ratelimit::seconds(wait)));
    response
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

/// `GET /login`: the form (or straight on, for a person already signed in).
pub async fn form(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let next = local_path(super::query_param(req.uri(), "next").as_deref());
    if signed_in(&state, req.headers()).await?.is_some() {
        return Ok(redirect(&next, &[]));
    }
    let (csrf, set) = csrf_token(&state, req.headers());
    let page = LoginPage { signed_in: None, csrf: &csrf, next: &next, email: "", error: None };
    Ok(html(StatusCode::OK, &page, &set.into_iter().collect::<Vec<_>>()))
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let (csrf, _) = csrf_token(&state, &parts.headers);
    let next = local_path(form.get("next"));
    let typed = form.get("email").unwrap_or_default();
    let address_key = format!("ip:{}", super::client_address(&parts.extensions));
    // Normalised so that case or spaces do not give an attacker fresh attempts.
    let email = Email::parse(typed).ok();
    let email_key = format!("email:{}", email.as_ref().map_or(typed.trim().to_lowercase(), |e| e.as_str().to_owned()));
    let answer = |status, message| {
        let shown = if typed.len() <= 320 { typed } else { "" };
        let page = LoginPage { signed_in: None, csrf: &csrf, next: &next, email: shown, error: Some(message) };
        html(status, &page, &[])
    };
    let (pair_key, email_key, address_key) = (format!("{email_key}|{address_key}"), email_key, address_key);
    let counters = [
        (&state.limits.login_pair, pair_key.as_str()),
        (&state.limits.login_email, email_key.as_str()),
        (&state.limits.login_address, address_key.as_str()),
    ];
    // The attempt is counted before the password is checked, so concurrent guesses
    // cannot run past a limit; it is given back when it succeeds or checks nothing.
    match take_all(&counters).await {
        Ok(()) => {}
        Err(Refused::Limited(wait)) => {
            return Ok(with_retry_after(answer(StatusCode::TOO_MANY_REQUESTS, TOO_MANY), wait));
        }
        Err(Refused::Unavailable) => {
            // Shared counters that cannot be read fail closed: no uncounted guess.
            tracing::warn!("a sign-in was refused: the shared rate-limit counters cannot be reached");
            return Ok(with_retry_after(answer(StatusCode::SERVICE_UNAVAILABLE, BUSY), Duration::from_secs(1)));
        }
    }
    let give_back = || give_back_all(&counters);
    let user = match &email {
        Some(e) => match state.store.user_by_email(e).await {
            Ok(u) => Some(u),
            Err(StoreError::NotFound) => None,
            Err(e) => {
                give_back().await;
                return Err(e.into());
            }
        },
        None => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = form.get("password").unwrap_or_default().to_owned();
    // An unknown person is checked too (against the dummy), then refused.
    let phc = stored.clone().unwrap_or_else(|| DUMMY_HASH.clone());
    let matches = match state.limits.passwords.verify(password, phc).await {
        Ok(m) => m && stored.is_some(),
        Err(Busy) => {
            give_back().await;
            tracing::warn!("a sign-in was refused: no password check could start in time");
            let wait = std::time::Duration::from_secs(1);
            return Ok(with_retry_after(answer(StatusCode::SERVICE_UNAVAILABLE, BUSY), wait));
        }
    };
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!("a sign-in failed");
        return Ok(answer(StatusCode::UNAUTHORIZED, WRONG));
    };
    give_back().await;
    let session = state.settings.secrets.generate(SecretKind::Session);
    let expires =
        Utc::now() + chrono::Duration::from_std(state.settings.session_lifetime).unwrap_or(chrono::Duration::hours(12));
    state.store.create_web_session(&session.hash(), &user.id, expires).await?;
    tracing::info!(user = %user.id, "signed in");
    Ok(redirect(&next, &[super::session_cookie(&state, session.expose())]))
}

/// `POST /logout`: ends the session.
pub async fn logout(State(state): State<AppState>, parts: Parts, _: CsrfForm) -> Result<Response, WebError> {
    if let Some(value) = super::cookie_value(&parts.headers, super::SESSION_COOKIE) {
        state.store.delete_web_session(&SecretHash::of(&value)).await?;
    }
    Ok(redirect("/login", &[super::clear_session_cookie(&state)]))
}

/// `GET /`: who is signed in, and where to go.
pub async fn home(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let Some(user) = signed_in(&state, req.headers()).await? else { return Ok(redirect("/login", &[])) };
    let (csrf, set) = csrf_token(&state, req.headers());
    let orgs = state.store.orgs_of_user(&user.id).await?;
    let text = if orgs.is_empty() {
        "You are not a member of any organization yet.".to_owned()
    } else {
        let names: Vec<String> = orgs.iter().map(|(o, role)| format!("{} ({role})", o.slug)).collect();
        format!("Your organizations: {}.", names.join(", "))
    };
    let page = MessagePage {
        signed_in: Some(user.email.as_str()),
        csrf: &csrf,
        heading: "Signed in",
        text: &text,
        tone: "muted",
        link_href: Some("/device"),
        link_label: "Connect a device (CLI or MCP client)",
    };
    Ok(html(StatusCode::OK, &page, &set.into_iter().collect::<Vec<_>>()).into_response())
}
