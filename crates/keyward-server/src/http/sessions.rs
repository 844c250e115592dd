//! `/api/v1/sessions…`: the caller's signed-in devices — device-flow grants, one per
//! approval, across refreshes — and ending one, which revokes its tokens at once.
//!
//! A person may always see and end their own sign-ins, so no permission is needed
//! beyond being that person; a service account has none to list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keyward_core::ids::{FamilyId, UserId};
use keyward_store::PrincipalKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Caller};
use crate::http::views::OrgView;
use crate::state::AppState;

/// A signed-in device.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The token family (`fam_…`).
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub org: OrgView,
    /// The approved scopes; `null`: everything the person holds.
    pub scopes: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub last_refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub data: Vec<SessionView>,
}

/// The caller as a person, or `None` for a service account.
fn person(caller: &Caller) -> Option<UserId> {
    let p = &caller.0.grant().principal;
    (p.kind == PrincipalKind::User).then(|| UserId::parse(&p.id)).flatten()
}

/// The caller's signed-in devices in the caller's organization, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", operation_id = "list_sessions", tag = "sessions",
    responses((status = 200, body = SessionList, description = "The signed-in devices (none for a service account).")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<SessionList>, ApiError> {
    let Some(user) = person(&caller) else { return Ok(Json(SessionList { data: vec![] })) };
    let org = &caller.0.grant().org_id;
    let names = &state.settings.device_client_names;
    let data = state
        .store
        .device_sessions(&user, org)
        .await?
        .into_iter()
        .map(|s| SessionView {
            id: s.family.to_string(),
            client_name: names.get(&s.client_id).cloned().unwrap_or_else(|| s.client_id.clone()),
            client_id: s.client_id,
            org: OrgView { id: s.org_id.to_string(), slug: s.org_slug.to_string() },
            scopes: s.scopes.map(|p| p.to_strings()),
            created_at: s.created_at,
            last_refreshed_at: s.last_refreshed_at,
            expires_at: s.expires_at,
        })
        .collect();
    Ok(Json(SessionList { data }))
}

/// Signs a device out: its access and refresh tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", operation_id = "end_session", tag = "sessions",
    params(("id" = String, Path, pattern = r"^fam_[0-9a-f]{32}$", description = "The session's id (its token family).")),
    responses((status = 204, description = "Signed out."),
        (status = 404, body = super::views::ErrorBody,
            description = "`not_found`: a malformed id, or no such session of the caller's in this organization.")))]
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let family = FamilyId::parse(&id).ok_or(ApiError::NotFound)?;
    let user = person(&caller).ok_or(ApiError::NotFound)?;
    state.store.end_device_session(&user, &caller.0.grant().org_id, &family).await?;
    Ok(StatusCode::NO_CONTENT)
}
