//! `/settings/api-keys…`: Settings > API keys for the signed-in person in the current
//! organization — list, generate (the secret shown once, with ready-to-paste examples),
//! a key's page with its requests per day and recent events, roll, and revoke after a
//! confirmation.
//!
//! The rules are the API's own ([`crate::keys`]): a person can give a key only
//! permissions their role holds, and a key of theirs is found only in their own scope
//! (another person's or organization's key id is `404`).

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use keyward_core::ids::KeyId;
use keyward_core::permission::PermissionSet;
use keyward_store::{ApiKey, AuditFilter, KeyScope, StoreError};

use super::app::{person, Nav, Person, SignedIn};
use super::{check_csrf, html, read_form_with_lists, redirect, CsrfForm, WebError};
use crate::keys::{self, Creator, KeyRequest, KeyRuleError};
use crate::state::AppState;

/// A time as pages show it: relative, with the exact time on hover.
pub struct When {
    pub iso: String,
    pub exact: String,
    pub relative: String,
}

impl When {
    pub fn of(t: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self { iso: t.to_rfc3339(), exact: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(), relative: relative(t, now) }
    }
}

/// "3 minutes ago", "in 30 days", "just now".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let (n, unit) = match secs.abs() {
        0..=44 => return "just now".to_owned(),
        45..=3_599 => ((secs.abs() + 30) / 60, "minute"),
        3_600..=86_399 => ((secs.abs() + 1_800) / 3_600, "hour"),
        _ => ((secs.abs() + 43_200) / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if secs < 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    permissions: String,
    created_at: When,
    last_used_at: Option<When>,
    expires_at: Option<When>,
}

impl KeyRow {
    fn new(key: &ApiKey, person: &Person, state: &AppState, now: DateTime<Utc>) -> Self {
        let effective = PermissionSet::effective(key.permissions.as_ref(), &person.holds);
        let permissions = if key.permissions.is_none() {
            format!("all you hold ({})", effective.to_strings().join(", "))
        } else {
            effective.to_strings().join(", ")
        };
        // A use this instance has not written yet counts too.
        let last_used = key.last_used_at.max(state.usage.last_used(&key.id));
        Self {
            id: key.id.to_string(),
            name: key.name.clone(),
            prefix: key.prefix.as_str().to_owned(),
            permissions,
            created_at: When::of(key.created_at, now),
            last_used_at: last_used.map(|t| When::of(t, now)),
            expires_at: key.expires_at.map(|t| When::of(t, now)),
        }
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage<'a> {
    nav: Nav,
    keys: Vec<KeyRow>,
    /// The catalogued permissions the person holds: the checkboxes.
    permissions: Vec<String>,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "key_secret.html")]
struct SecretPage<'a> {
    nav: Nav,
    heading: &'a str,
    name: &'a str,
    secret: &'a str,
    base: &'a str,
}

/// One bar of the usage chart.
struct Bar {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    label: String,
}

/// Requests per day over 30 days, as SVG geometry.
struct Chart {
    width: u32,
    height: u32,
    base: u32,
    bars: Vec<Bar>,
    max: i64,
    total: i64,
    /// "1 request", "12 requests".
    total_label: String,
    first_day: String,
    last_day: String,
}

pub const CHART_DAYS: i64 = 30;

impl Chart {
    /// `counts`: `(day since epoch, requests)`; `today`: the last day shown.
    fn new(counts: &[(i64, i64)], today: i64) -> Self {
        let (width, height, top, bottom) = (600u32, 160u32, 14u32, 14u32);
        let base = height - bottom;
        let first = today - (CHART_DAYS - 1);
        let per_day: Vec<i64> =
            (first..=today).map(|d| counts.iter().filter(|(day, _)| *day == d).map(|(_, n)| *n).sum()).collect();
        let max = per_day.iter().copied().max().unwrap_or(0);
        let slot = width / CHART_DAYS as u32;
        let date = |d: i64| (DateTime::<Utc>::UNIX_EPOCH + Duration::days(d)).format("%b %-d").to_string();
        let bars = per_day
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let h = if max == 0 { 0 } else { ((*n as f64 / max as f64) * f64::from(base - top)).round() as u32 };
                // A day with requests is always visible, however small against the max.
                let h = if *n > 0 { h.max(1) } else { 0 };
                let plural = if *n == 1 { "" } else { "s" };
                Bar {
                    x: i as u32 * slot + 1,
                    y: base - h,
                    w: slot.saturating_sub(2),
                    h,
                    label: format!("{}: {n} request{plural}", date(first + i as i64)),
                }
            })
            .collect();
        let total: i64 = per_day.iter().sum();
        let total_label = format!("{total} request{}", if total == 1 { "" } else { "s" });
        Self { width, height, base, bars, max, total, total_label, first_day: date(first), last_day: date(today) }
    }
}

struct EventRow {
    at: When,
    action: String,
    actor: String,
}

#[derive(Template)]
#[template(path = "key_detail.html")]
struct DetailPage {
    nav: Nav,
    key: KeyRow,
    revoked: bool,
    chart: Chart,
    events: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage<'a> {
    pub nav: Nav,
    pub heading: &'a str,
    pub text: &'a str,
    pub action: &'a str,
    pub button: &'a str,
    pub cancel: &'a str,
}

fn own_scope(p: &Person) -> KeyScope {
    KeyScope { org_id: p.org.id.clone(), principal_id: Some(p.user.id.to_string()) }
}

/// The checkboxes: the catalogue's permissions the person holds, in catalogue order.
fn held_permissions(state: &AppState, p: &Person) -> Vec<String> {
    state.settings.roles.catalogue().iter().filter(|c| p.holds.allows(c)).map(|c| c.to_string()).collect()
}

async fn list_page(
    state: &AppState,
    p: &Person,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, WebError> {
    p.require("api_keys:read")?;
    let now = Utc::now();
    let keys = state.store.list_api_keys(&own_scope(p), false).await?;
    let page = KeysPage {
        nav: p.nav("keys"),
        keys: keys.iter().map(|k| KeyRow::new(k, p, state, now)).collect(),
        permissions: held_permissions(state, p),
        notice,
        error,
    };
    Ok(html(status, &page, &p.cookies))
}

/// `GET /settings/api-keys`.
pub async fn list(State(state): State<AppState>, SignedIn(p): SignedIn, req: Request) -> Result<Response, WebError> {
    let notice = match super::query_param(req.uri(), "done").as_deref() {
        Some("revoked") => Some("The key was revoked. It no longer works anywhere."),
        _ => None,
    };
    list_page(&state, &p, StatusCode::OK, notice, None).await
}

/// The expiry chosen on the form: never, 7/30/90 days, or a date (the start of that
/// day, UTC).
fn expiry(choice: Option<&str>, date: Option<&str>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, &'static str> {
    match choice.unwrap_or("never") {
        "never" => Ok(None),
        "7" => Ok(Some(now + Duration::days(7))),
        "30" => Ok(Some(now + Duration::days(30))),
        "90" => Ok(Some(now + Duration::days(90))),
        "date" => {
            let day = date
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or("choose the date the key expires on")?;
            Ok(Some(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()))
        }
        _ => Err("choose an expiration"),
    }
}

/// `POST /settings/api-keys`: generates a key; the secret is shown on this page only.
pub async fn create(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (parts, body) = req.into_parts();
    let form = read_form_with_lists(&parts.headers, body, &["permission"]).await?;
    check_csrf(&state, &parts.headers, &form)?;
    let p = person(&state, &parts.headers, "/settings/api-keys").await?;
    p.require("api_keys:write")?;
    let now = Utc::now();
    let expires_at = match expiry(form.get("expires"), form.get("expires_on"), now) {
        Ok(e) => e,
        Err(message) => return list_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(message)).await,
    };
    let chosen: Vec<String> = form.get_all("permission").into_iter().map(str::to_owned).collect();
    if chosen.is_empty() {
        return list_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some("choose at least one permission"))
            .await;
    }
    let req =
        KeyRequest { name: form.get("name").unwrap_or_default().to_owned(), permissions: Some(chosen), expires_at };
    let creator = Creator { holds: &p.holds, restricted: false };
    let made = keys::create(&state.deployment(), &p.org.id, &p.principal(), &creator, &req, &p.actor()).await;
    let (key, secret) = match made {
        Ok(made) => made,
        Err(KeyRuleError::Store(e)) => return Err(e.into()),
        Err(e) => {
            let message = e.to_string();
            return list_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&message)).await;
        }
    };
    secret_page(&state, &p, "Your new API key", &key.name, secret.expose())
}

fn secret_page(state: &AppState, p: &Person, heading: &str, name: &str, secret: &str) -> Result<Response, WebError> {
    let page = SecretPage { nav: p.nav("keys"), heading, name, secret, base: &state.settings.public_url };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

/// The person's own key by a path id; anything else is `404`.
async fn own_key(state: &AppState, p: &Person, id: &str) -> Result<ApiKey, WebError> {
    let id = KeyId::parse(id).ok_or(WebError::NotFound)?;
    match state.store.api_key(Some(&own_scope(p)), &id).await {
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        other => Ok(other?),
    }
}

/// `GET /settings/api-keys/{id}`: the key, its requests per day, its recent events.
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedIn(p): SignedIn,
) -> Result<Response, WebError> {
    p.require("api_keys:read")?;
    let key = own_key(&state, &p, &id).await?;
    let now = Utc::now();
    let today = now.timestamp().div_euclid(86_400);
    let mut counts = state.store.key_usage_by_day(&key.id, today - (CHART_DAYS - 1)).await?;
    // Requests this instance has counted but not written yet.
    counts.extend(state.usage.pending_counts(&key.id));
    let filter = AuditFilter { target_id: Some(key.id.to_string()), ..Default::default() };
    let events = state
        .store
        .audit_events_where(&p.org.id, &filter, None, 20)
        .await?
        .into_iter()
        .map(|e| EventRow {
            at: When::of(e.at, now),
            action: e.action,
            actor: match (e.actor.kind.as_str(), &e.actor.id) {
                ("user", Some(id)) if *id == p.user.id.as_str() => "you".to_owned(),
                (kind, Some(id)) => format!("{kind} {id}"),
                (kind, None) => kind.to_owned(),
            },
        })
        .collect();
    let page = DetailPage {
        nav: p.nav("keys"),
        revoked: key.revoked_at.is_some(),
        key: KeyRow::new(&key, &p, &state, now),
        chart: Chart::new(&counts, today),
        events,
    };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

/// `GET /settings/api-keys/{id}/revoke`: the confirmation.
pub async fn confirm_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedIn(p): SignedIn,
) -> Result<Response, WebError> {
    p.require("api_keys:write")?;
    let key = own_key(&state, &p, &id).await?;
    let text = format!(
        "Revoking {} is immediate and cannot be undone: every request with it fails from now on, everywhere.",
        key.name
    );
    let action = format!("/settings/api-keys/{}/revoke", key.id);
    let cancel = format!("/settings/api-keys/{}", key.id);
    let page = ConfirmPage {
        nav: p.nav("keys"),
        heading: "Revoke this key?",
        text: &text,
        action: &action,
        button: "Revoke key",
        cancel: &cancel,
    };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

/// `POST /settings/api-keys/{id}/revoke` (form: `csrf`, `confirm=yes`).
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, WebError> {
    let p = person(&state, &parts.headers, "/settings/api-keys").await?;
    p.require("api_keys:write")?;
    if form.get("confirm") != Some("yes") {
        return Err(WebError::BadRequest("confirm the revocation on the confirmation page"));
    }
    let key = own_key(&state, &p, &id).await?;
    match state.store.revoke_api_key(Some(&own_scope(&p)), &key.id, &p.actor()).await {
        Ok(_) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(redirect("/settings/api-keys?done=revoked", &p.cookies))
}

/// `POST /settings/api-keys/{id}/roll`: a new secret, shown once; the old one stops now.
pub async fn roll(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
    _: CsrfForm,
) -> Result<Response, WebError> {
    let p = person(&state, &parts.headers, "/settings/api-keys").await?;
    p.require("api_keys:write")?;
    let key = own_key(&state, &p, &id).await?;
    let (key, secret) = match keys::roll(&state.deployment(), Some(&own_scope(&p)), &key.id, 0, &p.actor()).await {
        Ok(r) => r,
        Err(KeyRuleError::Store(StoreError::NotFound)) => return Err(WebError::NotFound),
        Err(KeyRuleError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(WebError::Internal(e.to_string())),
    };
    secret_page(&state, &p, "Rolled: the key's new secret", &key.name, secret.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - Duration::minutes(3), now), "3 minutes ago");
        assert_eq!(relative(now - Duration::minutes(1), now), "1 minute ago");
        assert_eq!(relative(now - Duration::hours(5), now), "5 hours ago");
        assert_eq!(relative(now + Duration::days(30), now), "in 30 days");
    }

    #[test]
    fn the_chart_has_one_bar_a_day_and_scales_to_the_busiest() {
        let today = 20_000;
        let chart = Chart::new(&[(today, 10), (today - 1, 5), (today - 29, 1), (today - 40, 99)], today);
        assert_eq!(chart.bars.len(), 30);
        assert_eq!(chart.max, 10);
        assert_eq!(chart.total, 16, "days before the window are not counted");
        let last = chart.bars.last().unwrap();
        assert_eq!(last.h, chart.base - 14, "the busiest day fills the height");
        assert!(chart.bars[0].h >= 1, "a day with one request is visible");
        assert_eq!(chart.bars[1].h, 0);
        assert!(last.label.ends_with("10 requests"));
        assert!(chart.bars[0].label.ends_with("1 request"));
    }

    #[test]
    fn expiry_choices() {
        let now = Utc::now();
        assert_eq!(expiry(Some("never"), None, now), Ok(None));
        assert_eq!(expiry(Some("30"), None, now), Ok(Some(now + Duration::days(30))));
        let d = expiry(Some("date"), Some("2030-01-02"), now).unwrap().unwrap();
        assert_eq!(d.to_rfc3339(), "2030-01-02T00:00:00+00:00");
        assert!(expiry(Some("date"), Some("soon"), now).is_err());
        assert!(expiry(Some("365"), None, now).is_err());
    }
}
