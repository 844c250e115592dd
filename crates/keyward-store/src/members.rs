//! People and their memberships (with roles) in organizations.

use keyward_core::domain::Email;
use keyward_core::ids::{OrgId, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::audit::insert_event;
use crate::time::{from_ms, to_ms};
use crate::{
    conflict_as, Actor, AuditEvent, Change, Member, Principal, PrincipalKind, Result, Store, StoreError, User,
};

fn user_from_row(row: &AnyRow) -> Result<User> {
    let id: String = row.try_get("id")?;
    let email: String = row.try_get("email")?;
    Ok(User {
        id: UserId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("user id {id:?}")))?,
        email: Email::parse(&email).map_err(|e| StoreError::Corrupt(e.0))?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

impl Store {
    pub async fn create_user(&self, email: &Email, display_name: &str, password_hash: Option<&str>) -> Result<User> {
        let user = User {
            id: UserId::generate(),
            email: email.clone(),
            display_name: display_name.to_owned(),
            password_hash: password_hash.map(str::to_owned),
            created_at: crate::time::now(),
        };
        sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(&user.display_name)
        .bind(user.password_hash.as_deref())
        .bind(to_ms(user.created_at))
        .execute(&self.pool)
        .await
        .map_err(conflict_as("a user with this e-mail"))?;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<User> {
        let row = sqlx::query("SELECT id, email, display_name, password_hash, created_at FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    /// Every person, by e-mail address (the admin command `user list`).
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT id, email, display_name, password_hash, created_at FROM users ORDER BY email")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Sets a person's password (argon2id PHC string).
    pub async fn set_password_hash(&self, user: &UserId, phc: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(phc)
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Makes `principal` a member of `org` with `role`.
    pub async fn add_member(&self, org: &OrgId, principal: &Principal, role: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO memberships (org_id, principal_id, principal_kind, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org.as_str())
        .bind(&principal.id)
        .bind(principal.kind.as_str())
        .bind(role)
        .bind(to_ms(crate::time::now()))
        .execute(&mut *tx)
        .await
        .map_err(conflict_as("this membership"))?;
        // A principal removed earlier may be cached as "not a member": re-adding must
        // reach every cache too, not only removals.
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: principal.id.clone() })
            .await?;
        let event = AuditEvent::new(Some(org), actor, "member.added")
            .target(principal.kind.as_str(), &principal.id)
            .detail(serde_json::json!({ "role": role }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The principal's role in `org`, or `None` when it is not a member.
    pub async fn role_of(&self, org: &OrgId, principal_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND principal_id = $2")
            .bind(org.as_str())
            .bind(principal_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Changes a member's role; the change reaches every cache through the change log.
    pub async fn set_role(&self, org: &OrgId, principal_id: &str, role: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Write before reading. On SQLite a transaction that reads and then writes fails
        // at once with "database is locked" (no busy wait) when another connection — the
        // server's usage batch — committed in between; a write first takes the write lock
        // (and on PostgreSQL the row lock), so the old role read next is the one replaced.
        let locked = sqlx::query("UPDATE memberships SET role = role WHERE org_id = $1 AND principal_id = $2")
            .bind(org.as_str())
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let old: String = sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND principal_id = $2")
            .bind(org.as_str())
            .bind(principal_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND principal_id = $3")
            .bind(role)
            .bind(org.as_str())
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: principal_id.to_owned() })
            .await?;
        let event = AuditEvent::new(Some(org), actor, "member.role_changed")
            .target("principal", principal_id)
            .detail(serde_json::json!({ "from": old, "to": role }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member; all its keys in `org` stop working at once.
    pub async fn remove_member(&self, org: &OrgId, principal_id: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal_id = $2")
            .bind(org.as_str())
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: principal_id.to_owned() })
            .await?;
        let event = AuditEvent::new(Some(org), actor, "member.removed").target("principal", principal_id);
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The organization's members, people first by e-mail.
    pub async fn members(&self, org: &OrgId) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT m.principal_id, m.principal_kind, m.role, m.created_at, COALESCE(u.email, sa.name) AS email, \
             COALESCE(u.display_name, sa.name) AS display_name \
             FROM memberships m LEFT JOIN users u ON u.id = m.principal_id \
             LEFT JOIN service_accounts sa ON sa.id = m.principal_id \
             WHERE m.org_id = $1 ORDER BY m.principal_kind DESC, u.email, m.principal_id",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("principal_kind")?;
                let email: Option<String> = row.try_get("email")?;
                let display_name: Option<String> = row.try_get("display_name")?;
                Ok(Member {
                    principal: Principal { kind: PrincipalKind::parse(&kind)?, id: row.try_get("principal_id")? },
                    label: email.unwrap_or_default(),
                    display_name: display_name.unwrap_or_default(),
                    role: row.try_get("role")?,
                    joined_at: from_ms(row.try_get("created_at")?),
                })
            })
            .collect()
    }
}
