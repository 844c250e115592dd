//! `/admin/audit`: the current organization's audit log, newest first, 50 events a page
//! with a link to the next (older) page (`?before=evt_…`), filtered by action and by
//! actor id with a GET form. Events never hold a secret (the store writes only
//! non-secret facts), so the page shows them whole.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use keyward_core::ids::EventId;
use keyward_store::{AuditAction, AuditEvent, AuditFilter};

use super::super::app::{Nav, SignedIn};
use super::super::keys::When;
use super::super::{html, query_param, WebError};
use crate::state::AppState;

/// The page's own permission, on top of [`super::ADMIN`].
const PAGE: &str = "audit:read";

/// Events per page.
pub const PER_PAGE: u32 = 50;

struct EventRow {
    at: When,
    action: String,
    actor_kind: &'static str,
    actor_id: Option<String>,
    /// The link that filters by this actor.
    actor_href: Option<String>,
    credential: Option<String>,
    target: Option<String>,
    /// The event's facts as compact JSON ("" when there are none).
    detail: String,
}

impl EventRow {
    fn new(e: AuditEvent, action: &str, now: chrono::DateTime<Utc>) -> Self {
        let detail = match &e.detail {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        Self {
            at: When::of(e.at, now),
            actor_href: e.actor.id.as_deref().map(|id| page_href(action, id, None)),
            action: e.action,
            actor_kind: e.actor.kind.as_str(),
            actor_id: e.actor.id,
            credential: e.actor.credential,
            target: e.target_kind.zip(e.target_id).map(|(kind, id)| format!("{kind} {id}")),
            detail,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    nav: Nav,
    events: Vec<EventRow>,
    action: &'a str,
    actor: &'a str,
    /// Offered as suggestions for the action filter (any text is accepted: a product
    /// may record its own).
    known_actions: Vec<&'static str>,
    /// The next (older) page, when there is one.
    next: Option<String>,
    /// Whether this is a later page (a link back to the newest).
    paged: bool,
    /// The first page with the same filters.
    newest: String,
}

/// `/admin/audit` with these filters and cursor, query-encoded.
fn page_href(action: &str, actor: &str, before: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if !action.is_empty() {
        q.append_pair("action", action);
    }
    if !actor.is_empty() {
        q.append_pair("actor", actor);
    }
    if let Some(b) = before {
        q.append_pair("before", b);
    }
    let q = q.finish();
    if q.is_empty() {
        "/admin/audit".to_owned()
    } else {
        format!("/admin/audit?{q}")
    }
}

/// A filter field from the query: trimmed, empty as absent, at most 200 characters.
fn filter_value(value: Option<String>) -> Result<String, WebError> {
    let v = value.unwrap_or_default().trim().to_owned();
    if v.chars().count() > 200 {
        return Err(WebError::BadRequest("a filter is at most 200 characters"));
    }
    Ok(v)
}

/// `GET /admin/audit?action=…&actor=…&before=evt_…`.
pub async fn list(State(state): State<AppState>, SignedIn(p): SignedIn, req: Request) -> Result<Response, WebError> {
    super::require_admin(&p, PAGE)?;
    let action = filter_value(query_param(req.uri(), "action"))?;
    let actor = filter_value(query_param(req.uri(), "actor"))?;
    let before = match query_param(req.uri(), "before").filter(|b| !b.is_empty()) {
        Some(b) => Some(
            EventId::parse(&b)
                .ok_or(WebError::BadRequest("the page link is not valid; start from the newest events"))?,
        ),
        None => None,
    };
    let filter = AuditFilter {
        action: (!action.is_empty()).then(|| action.clone()),
        actor_id: (!actor.is_empty()).then(|| actor.clone()),
        target_id: None,
    };
    // One more than a page: whether there is a next page, without an empty last one.
    let mut events = state.store.audit_events_where(&p.org.id, &filter, before.as_ref(), PER_PAGE + 1).await?;
    let more = events.len() > PER_PAGE as usize;
    events.truncate(PER_PAGE as usize);
    let next = more.then(|| events.last().map(|e| page_href(&action, &actor, Some(e.id.as_str())))).flatten();
    let now = Utc::now();
    let page = AuditPage {
        nav: p.nav("audit"),
        events: events.into_iter().map(|e| EventRow::new(e, &action, now)).collect(),
        action: &action,
        actor: &actor,
        known_actions: AuditAction::ALL.iter().map(|a| a.as_str()).collect(),
        next,
        paged: before.is_some(),
        newest: page_href(&action, &actor, None),
    };
    Ok(html(StatusCode::OK, &page, &p.cookies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_filters_and_encode_them() {
        assert_eq!(page_href("", "", None), "/admin/audit");
        assert_eq!(page_href("member.removed", "", Some("evt_1")), "/admin/audit?action=member.removed&before=evt_1");
        assert_eq!(page_href("a b&c", "usr_1", None), "/admin/audit?action=a+b%26c&actor=usr_1");
    }

    #[test]
    fn filters_are_trimmed_and_bounded() {
        assert_eq!(filter_value(Some("  member.added ".into())).unwrap(), "member.added");
        assert_eq!(filter_value(None).unwrap(), "");
        assert!(filter_value(Some("x".repeat(201))).is_err());
    }
}
