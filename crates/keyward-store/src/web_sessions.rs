//! Browser sessions: the `keyward_session` cookie's hash, whose person, until when.

use chrono::{DateTime, Utc};
use keyward_core::domain::Email;
use keyward_core::ids::UserId;
use keyward_core::secret::SecretHash;
use sqlx::Row;

use crate::time::{from_ms, to_ms};
use crate::{Org, Result, Store, StoreError, User};

impl Store {
    /// Starts a session for `user`; expired sessions of that person are pruned.
    pub async fn create_web_session(&self, hash: &SecretHash, user: &UserId, expires_at: DateTime<Utc>) -> Result<()> {
        let now = to_ms(crate::time::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(user.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO web_sessions (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash.to_hex())
            .bind(user.as_str())
            .bind(now)
            .bind(to_ms(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(crate::conflict_as("this session"))?;
        tx.commit().await?;
        Ok(())
    }

    /// The person a live session belongs to, and the session's stored hash (for a
    /// constant-time comparison by the caller).
    pub async fn web_session(&self, hash: &SecretHash) -> Result<Option<(User, SecretHash)>> {
        let row = sqlx::query(
            "SELECT s.hash, u.id, u.email, u.display_name, u.created_at FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.hash = $1 AND s.expires_at > $2",
        )
        .bind(hash.to_hex())
        .bind(to_ms(crate::time::now()))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let email: String = row.try_get("email")?;
        let stored: String = row.try_get("hash")?;
        let user = User {
            id: UserId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("user id {id:?}")))?,
            email: Email::from_stored(email),
            display_name: row.try_get("display_name")?,
            // Never needed once signed in, so never read.
            password_hash: None,
            created_at: from_ms(row.try_get("created_at")?),
        };
        let stored = SecretHash::from_hex(&stored).ok_or_else(|| StoreError::Corrupt("session hash".into()))?;
        Ok(Some((user, stored)))
    }

    /// Ends a session (sign-out).
    pub async fn delete_web_session(&self, hash: &SecretHash) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE hash = $1").bind(hash.to_hex()).execute(&self.pool).await?;
        Ok(())
    }

    /// The organizations a person belongs to, by slug, with the role in each.
    pub async fn orgs_of_user(&self, user: &UserId) -> Result<Vec<(Org, String)>> {
        let rows = sqlx::query(
            "SELECT o.id, o.slug, o.name, o.plan, o.created_at, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id \
             WHERE m.principal_id = $1 ORDER BY o.slug",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((crate::orgs::org_from_row(row)?, row.try_get("role")?))).collect()
    }
}
