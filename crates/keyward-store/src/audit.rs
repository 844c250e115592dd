//! The audit log: append-only, per organization, newest first, paginated by id
//! (ids are time-ordered). Detail objects carry display prefixes at most, never secrets.

use keyward_core::ids::{EventId, OrgId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::time::{from_ms, to_ms};
use crate::{Actor, ActorKind, AuditEvent, Result, Store, StoreError};

const INSERT: &str = "INSERT INTO audit_events (id, org_id, at, actor_kind, actor_id, credential, action, target_kind, target_id, detail) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

fn bind_event<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    e: &'q AuditEvent,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    q.bind(e.id.as_str())
        .bind(e.org_id.as_ref().map(|o| o.as_str()))
        .bind(to_ms(e.at))
        .bind(e.actor.kind.as_str())
        .bind(e.actor.id.as_deref())
        .bind(e.actor.credential.as_deref())
        .bind(e.action.as_str())
        .bind(e.target_kind.as_deref())
        .bind(e.target_id.as_deref())
        .bind(e.detail.to_string())
}

pub(crate) async fn insert_event(tx: &mut Transaction<'_, Any>, event: &AuditEvent) -> Result<()> {
    bind_event(sqlx::query(INSERT), event).execute(&mut **tx).await?;
    Ok(())
}

fn event_from_row(row: &AnyRow) -> Result<AuditEvent> {
    let id: String = row.try_get("id")?;
    let org: Option<String> = row.try_get("org_id")?;
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        id: EventId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("event id {id:?}")))?,
        org_id: org.as_deref().and_then(OrgId::parse),
        at: from_ms(row.try_get("at")?),
        actor: Actor {
            kind: ActorKind::parse(&row.try_get::<String, _>("actor_kind")?)?,
            id: row.try_get("actor_id")?,
            credential: row.try_get("credential")?,
        },
        action: row.try_get("action")?,
        target_kind: row.try_get("target_kind")?,
        target_id: row.try_get("target_id")?,
        detail: serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// Which events to keep: each set field must match exactly.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
}

impl Store {
    /// Appends events in one transaction (the batched writer's path).
    pub async fn append_events(&self, events: &[AuditEvent]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            insert_event(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One page of an organization's events, newest first, strictly older than `before`.
    pub async fn audit_events(&self, org: &OrgId, before: Option<&EventId>, limit: u32) -> Result<Vec<AuditEvent>> {
        self.audit_events_where(org, &AuditFilter::default(), before, limit).await
    }

    /// Like [`Store::audit_events`], keeping only events that match `filter`.
    pub async fn audit_events_where(
        &self,
        org: &OrgId,
        filter: &AuditFilter,
        before: Option<&EventId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        const COLS: &str = "id, org_id, at, actor_kind, actor_id, credential, action, target_kind, target_id, detail";
        let mut sql = format!("SELECT {COLS} FROM audit_events WHERE org_id = $1");
        let mut binds: Vec<&str> = vec![org.as_str()];
        // Only fixed column names and operators enter the SQL; values are bound.
        let conditions = [
            ("action =", filter.action.as_deref()),
            ("actor_id =", filter.actor_id.as_deref()),
            ("target_id =", filter.target_id.as_deref()),
            ("id <", before.map(|b| b.as_str())),
        ];
        for (condition, value) in conditions {
            if let Some(v) = value {
                binds.push(v);
                sql.push_str(&format!(" AND {condition} ${}", binds.len()));
            }
        }
        let sql = format!("{sql} ORDER BY id DESC LIMIT {limit}");
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }
}
