//! `/login`, `/logout` and `/`: signing people in and out.
//!
//! A failed sign-in always answers the same thing — unknown e-mail, a person without a
//! password, a wrong password — and takes about as long: an unknown e-mail is checked
//! against a fixed argon2id hash, so timing does not tell which addresses exist.
//! argon2id runs on a blocking thread, never on the async runtime.

use std::sync::LazyLock;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use keyward_core::domain::Email;
use keyward_core::password;
use keyward_core::secret::{SecretHash, SecretKind};
use keyward_store::StoreError;

use super::{check_csrf, csrf_token, html, local_path, read_form, redirect, signed_in, MessagePage, WebError};
use crate::state::AppState;

/// What an unknown e-mail is checked against, so it costs what a wrong password costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| password::hash("keyward: no such person"));

const WRONG: &str = "the e-mail or the password is wrong";
const TOO_MANY: &str = "too many attempts; try again later";

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
pub async fn submit(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (parts, body) = req.into_parts();
    let form = read_form(&parts.headers, body).await?;
    check_csrf(&state, &parts.headers, &form)?;
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
    let limits = &state.limits;
    if limits.login_email.is_limited(&email_key) || limits.login_address.is_limited(&address_key) {
        return Ok(answer(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    let user = match &email {
        Some(e) => match state.store.user_by_email(e).await {
            Ok(u) => Some(u),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = form.get("password").unwrap_or_default().to_owned();
    let matches = tokio::task::spawn_blocking(move || {
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH.as_str());
        // An unknown person is checked too (against the dummy), then refused.
        password::verify(&password, phc) && stored.is_some()
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(user) = user.filter(|_| matches) else {
        limits.login_email.fail(&email_key);
        limits.login_address.fail(&address_key);
        tracing::info!("a sign-in failed");
        return Ok(answer(StatusCode::UNAUTHORIZED, WRONG));
    };
    let session = state.settings.secrets.generate(SecretKind::Session);
    let expires =
        Utc::now() + chrono::Duration::from_std(state.settings.session_lifetime).unwrap_or(chrono::Duration::hours(12));
    state.store.create_web_session(&session.hash(), &user.id, expires).await?;
    tracing::info!(user = %user.id, "signed in");
    Ok(redirect(&next, &[super::session_cookie(&state, session.expose())]))
}

/// `POST /logout`: ends the session.
pub async fn logout(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (parts, body) = req.into_parts();
    let form = read_form(&parts.headers, body).await?;
    check_csrf(&state, &parts.headers, &form)?;
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
