//! The caller's organization: `GET /api/v1/members` and `GET /api/v1/audit-events`.

use std::sync::LazyLock;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use keyward_core::ids::EventId;
use keyward_core::permission::Permission;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, Caller};
use crate::http::views::PrincipalView;
use crate::state::AppState;

static MEMBERS_READ: LazyLock<Permission> = LazyLock::new(|| Permission::parse("members:read").expect("valid"));
static AUDIT_READ: LazyLock<Permission> = LazyLock::new(|| Permission::parse("audit:read").expect("valid"));

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    #[serde(flatten)]
    pub principal: PrincipalView,
    pub display_name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub data: Vec<MemberView>,
}

/// The organization's people (and service accounts), with kind and role.
#[utoipa::path(get, path = "/api/v1/members", operation_id = "list_members", tag = "organization",
    responses((status = 200, body = MemberList, description = "The members, people ordered by e-mail."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `members:read`.")))]
pub async fn members(State(state): State<AppState>, caller: Caller) -> Result<Json<MemberList>, ApiError> {
    caller.0.require(&MEMBERS_READ)?;
    let data = state
        .store
        .members(&caller.0.grant().org_id)
        .await?
        .into_iter()
        .map(|m| MemberView {
            principal: PrincipalView::new(&m.principal, &m.label),
            display_name: m.display_name,
            role: m.role,
            joined_at: m.joined_at,
        })
        .collect();
    Ok(Json(MemberList { data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ActorView {
    /// `user`, `service_account`, `cli` or `anonymous`.
    pub kind: String,
    pub id: Option<String>,
    /// `api_key:key_…` when the actor used a key.
    pub credential: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TargetView {
    pub kind: String,
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor: ActorView,
    pub target: Option<TargetView>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<EventView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// The organization's audit log, newest first (needs `audit:read`).
#[utoipa::path(get, path = "/api/v1/audit-events", operation_id = "list_audit_events", tag = "organization",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Events per page (default 50)."),
        ("before" = Option<String>, Query, pattern = r"^evt_[0-9a-f]{32}$",
            description = "The `next_cursor` of the previous page: events older than this one.")),
    responses((status = 200, body = EventPage, description = "A page of events, newest first."),
        (status = 403, body = super::views::ErrorBody, description = "`insufficient_scope`: the credential lacks `audit:read`.")))]
pub async fn audit_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<EventPage>, ApiError> {
    caller.0.require(&AUDIT_READ)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must lie between 1 and {MAX_PAGE}")));
    }
    let before = match q.before.as_deref() {
        Some(c) => Some(EventId::parse(c).ok_or_else(|| ApiError::BadRequest("before is not a cursor".into()))?),
        None => None,
    };
    let events = state.store.audit_events(&caller.0.grant().org_id, before.as_ref(), limit).await?;
    let next_cursor = (events.len() == limit as usize).then(|| events.last().map(|e| e.id.to_string())).flatten();
    let data = events
        .into_iter()
        .map(|e| EventView {
            id: e.id.to_string(),
            at: e.at,
            action: e.action,
            actor: ActorView { kind: e.actor.kind.as_str().to_owned(), id: e.actor.id, credential: e.actor.credential },
            target: e.target_kind.zip(e.target_id).map(|(kind, id)| TargetView { kind, id }),
            detail: e.detail,
        })
        .collect();
    Ok(Json(EventPage { data, next_cursor }))
}
