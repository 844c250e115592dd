//! People and their memberships (with roles) in organizations.
//!
//! Role changes and removals lock the organization's row first and hand the member's
//! [`Standing`] to a check supplied by the caller (the server's rules in
//! `keyward_server::members`), so "only an owner gives or takes `owner`" and "an
//! organization keeps at least one owner" are decided inside the transaction that
//! writes, race-free on both backends. A removal revokes the member's keys and tokens
//! in that organization in the same transaction: removal is final.

use keyward_core::domain::Email;
use keyward_core::ids::{OrgId, UserId};
use keyward_core::permission::OWNER_ROLE;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::audit::insert_event;
use crate::time::{from_ms, to_ms};
use crate::{
    conflict_as, Actor, AuditAction, AuditEvent, Change, Member, Principal, PrincipalKind, Result, Store, StoreError,
    User,
};

fn user_from_row(row: &AnyRow) -> Result<User> {
    let id: String = row.try_get("id")?;
    let email: String = row.try_get("email")?;
    Ok(User {
        id: UserId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("user id {id:?}")))?,
        email: Email::from_stored(email),
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

/// A member as a membership change sees it, read inside the change's transaction after
/// the organization's row is locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub kind: PrincipalKind,
    pub role: String,
    /// People in the organization holding [`OWNER_ROLE`], this member aside.
    pub other_owners: i64,
}

/// Locks the organization's row, then reads the member's standing (`NotFound` when it
/// is not a member).
///
/// Every change of a role or a membership takes this lock first, so two changes in one
/// organization run one after the other and each sees the other's outcome: two owners
/// removing each other at the same time cannot both succeed. On PostgreSQL the row lock
/// makes the second wait, and its next statement reads what the first committed (READ
/// COMMITTED takes a snapshot per statement); on SQLite the write takes the database's
/// one write lock. Writing before reading also keeps SQLite from failing a
/// read-then-write transaction with "database is locked" when another connection
/// committed in between.
pub(crate) async fn lock_and_read(tx: &mut Transaction<'_, Any>, org: &OrgId, principal_id: &str) -> Result<Standing> {
    let locked = sqlx::query("UPDATE orgs SET slug = slug WHERE id = $1").bind(org.as_str()).execute(&mut **tx).await?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    let row = sqlx::query("SELECT principal_kind, role FROM memberships WHERE org_id = $1 AND principal_id = $2")
        .bind(org.as_str())
        .bind(principal_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let kind: String = row.try_get("principal_kind")?;
    let other_owners: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = $2 AND principal_kind = 'user' \
         AND principal_id <> $3",
    )
    .bind(org.as_str())
    .bind(OWNER_ROLE)
    .bind(principal_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Standing { kind: PrincipalKind::parse(&kind)?, role: row.try_get("role")?, other_owners })
}

/// Revokes every live API key and OAuth token `principal_id` holds in `org`; returns how
/// many of each. The caller records the `member` change that makes every cache drop them.
pub(crate) async fn revoke_credentials_in(
    tx: &mut Transaction<'_, Any>,
    org: &OrgId,
    principal_id: &str,
) -> Result<(u64, u64)> {
    let now = to_ms(crate::time::now());
    let keys = sqlx::query(
        "UPDATE api_keys SET revoked_at = $3, updated_at = $3 WHERE org_id = $1 AND principal_id = $2 \
         AND revoked_at IS NULL",
    )
    .bind(org.as_str())
    .bind(principal_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let tokens = sqlx::query(
        "UPDATE oauth_tokens SET revoked_at = $3 WHERE org_id = $1 AND principal_id = $2 AND revoked_at IS NULL",
    )
    .bind(org.as_str())
    .bind(principal_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok((keys.rows_affected(), tokens.rows_affected()))
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
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO memberships (org_id, principal_id, principal_kind, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org.as_str())
        .bind(&principal.id)
        .bind(principal.kind.as_str())
        .bind(role)
        .bind(to_ms(crate::time::now()))
        .execute(&mut **tx)
        .await
        .map_err(conflict_as("this membership"))?;
        // A principal removed earlier may be cached as "not a member": re-adding must
        // reach every cache too, not only removals.
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: principal.id.clone() })
            .await?;
        let event = AuditEvent::new(Some(org), actor, AuditAction::MemberAdded)
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

    /// Changes a member's role with no rule applied (tests, tools): see
    /// [`Store::set_role_checked`], which the server and the admin commands use.
    pub async fn set_role(&self, org: &OrgId, principal_id: &str, role: &str, actor: &Actor) -> Result<()> {
        self.set_role_checked(org, principal_id, role, actor, |_| Ok::<(), StoreError>(())).await.map(drop)
    }

    /// Removes a member with no rule applied (tests, tools): see
    /// [`Store::remove_member_checked`].
    pub async fn remove_member(&self, org: &OrgId, principal_id: &str, actor: &Actor) -> Result<()> {
        self.remove_member_checked(org, principal_id, actor, |_| Ok::<(), StoreError>(())).await.map(drop)
    }

    /// Changes a member's role; the change reaches every cache through the change log.
    ///
    /// `check` sees the member's [`Standing`] read inside the transaction, with the
    /// organization locked, and may refuse: rules that depend on the current role or on
    /// the organization's other owners are decided on what is committed, not on an
    /// earlier read. Returns the standing before the change.
    pub async fn set_role_checked<E: From<StoreError>>(
        &self,
        org: &OrgId,
        principal_id: &str,
        role: &str,
        actor: &Actor,
        check: impl FnOnce(&Standing) -> std::result::Result<(), E>,
    ) -> std::result::Result<Standing, E> {
        let mut tx = self.begin_write().await?;
        let before = lock_and_read(&mut tx, org, principal_id).await?;
        check(&before)?;
        sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND principal_id = $3")
            .bind(role)
            .bind(org.as_str())
            .bind(principal_id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from)?;
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: principal_id.to_owned() })
            .await?;
        let event = AuditEvent::new(Some(org), actor, AuditAction::MemberRoleChanged)
            .target("principal", principal_id)
            .detail(serde_json::json!({ "from": before.role, "to": role }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Removes a member for good: the membership goes, and every API key and OAuth token
    /// the principal holds in `org` is revoked in the same transaction, so adding it back
    /// later revives nothing. `check` decides as for [`Store::set_role_checked`]. Returns the
    /// standing before the removal.
    pub async fn remove_member_checked<E: From<StoreError>>(
        &self,
        org: &OrgId,
        principal_id: &str,
        actor: &Actor,
        check: impl FnOnce(&Standing) -> std::result::Result<(), E>,
    ) -> std::result::Result<Standing, E> {
        let mut tx = self.begin_write().await?;
        let before = lock_and_read(&mut tx, org, principal_id).await?;
        check(&before)?;
        sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal_id = $2")
            .bind(org.as_str())
            .bind(principal_id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from)?;
        let (keys, tokens) = revoke_credentials_in(&mut tx, org, principal_id).await?;
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: principal_id.to_owned() })
            .await?;
        let event = AuditEvent::new(Some(org), actor, AuditAction::MemberRemoved)
            .target("principal", principal_id)
            .detail(serde_json::json!({ "role": before.role, "api_keys_revoked": keys, "tokens_revoked": tokens }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(before)
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
