//! Organizations.

use keyward_core::domain::{Plan, Slug};
use keyward_core::ids::OrgId;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_ms, to_ms};
use crate::{conflict_as, Org, Result, Store, StoreError};

const COLUMNS: &str = "id, slug, name, plan, created_at";

pub(crate) fn org_from_row(row: &AnyRow) -> Result<Org> {
    let id: String = row.try_get("id")?;
    let slug: String = row.try_get("slug")?;
    let plan: String = row.try_get("plan")?;
    Ok(Org {
        id: OrgId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("org id {id:?}")))?,
        slug: Slug::parse(&slug).map_err(|e| StoreError::Corrupt(e.0))?,
        name: row.try_get("name")?,
        plan: plan.parse().map_err(|e: keyward_core::domain::Invalid| StoreError::Corrupt(e.0))?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

impl Store {
    pub async fn create_org(&self, slug: &Slug, name: &str, plan: Plan) -> Result<Org> {
        let org = Org {
            id: OrgId::generate(),
            slug: slug.clone(),
            name: name.to_owned(),
            plan,
            created_at: crate::time::now(),
        };
        sqlx::query("INSERT INTO orgs (id, slug, name, plan, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(org.id.as_str())
            .bind(org.slug.as_str())
            .bind(&org.name)
            .bind(plan.as_str())
            .bind(to_ms(org.created_at))
            .execute(&self.pool)
            .await
            .map_err(conflict_as("an organization with this slug"))?;
        Ok(org)
    }

    pub async fn org_by_slug(&self, slug: &Slug) -> Result<Org> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orgs WHERE slug = $1"))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        org_from_row(&row)
    }

    pub async fn org_by_id(&self, id: &OrgId) -> Result<Org> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        org_from_row(&row)
    }

    /// Every organization, by slug (the admin command `org list`).
    pub async fn orgs(&self) -> Result<Vec<Org>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM orgs ORDER BY slug")).fetch_all(&self.pool).await?;
        rows.iter().map(org_from_row).collect()
    }
}
