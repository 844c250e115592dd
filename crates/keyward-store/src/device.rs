//! Device authorizations (RFC 8628) and the signed-in devices they become.
//!
//! A row is created when a client asks for a code, decided (approved or denied) by a
//! person on `/device`, and redeemed once by the client's poll, which stores the tokens
//! in the same transaction and records their family: that family *is* the signed-in
//! device a person sees in `/api/v1/sessions` and can end.

use chrono::{DateTime, Utc};
use keyward_core::device::UserCode;
use keyward_core::ids::{DeviceId, FamilyId, OrgId, UserId};
use keyward_core::secret::SecretHash;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::text::{corrupt, permissions_from_text, permissions_to_text};
use crate::time::{from_ms, opt_from_ms, to_ms};
use crate::{
    ApprovedDevice, DeviceAuthorization, DevicePoll, DeviceSession, DeviceStatus, IssuedTokens, NewDeviceAuthorization,
    NewTokens, Result, Store, StoreError,
};

/// How much `slow_down` adds to a code's interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_MS: i64 = 5_000;

fn authorization_from_row(row: &AnyRow) -> Result<DeviceAuthorization> {
    let id: String = row.try_get("id")?;
    let code: String = row.try_get("user_code")?;
    let status: String = row.try_get("status")?;
    Ok(DeviceAuthorization {
        id: DeviceId::parse(&id).ok_or_else(|| corrupt("device id", &id))?,
        user_code: UserCode::parse(&code).ok_or_else(|| corrupt("user code", &code))?,
        client_id: row.try_get("client_id")?,
        scopes: permissions_from_text(row.try_get("scopes")?)?,
        status: DeviceStatus::parse(&status)?,
        expires_at: from_ms(row.try_get("expires_at")?),
    })
}

impl Store {
    /// Stores a new code. A user code still held by an expired row is freed first; one
    /// held by a live row is a `Conflict` (the caller draws another).
    pub async fn create_device_authorization(&self, new: &NewDeviceAuthorization) -> Result<DeviceId> {
        let id = DeviceId::generate();
        let now = to_ms(crate::time::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM device_authorizations WHERE user_code = $1 AND expires_at <= $2")
            .bind(new.user_code.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO device_authorizations (id, code_hash, user_code, client_id, scopes, status, interval_ms, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(new.code_hash.to_hex())
        .bind(new.user_code.as_str())
        .bind(&new.client_id)
        .bind(permissions_to_text(&new.scopes))
        .bind(new.interval.num_milliseconds())
        .bind(now)
        .bind(to_ms(new.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(crate::conflict_as("this user code"))?;
        tx.commit().await?;
        Ok(id)
    }

    /// A pending, unexpired code by its user code (the approval page).
    pub async fn pending_device(&self, code: &UserCode) -> Result<Option<DeviceAuthorization>> {
        let row = sqlx::query(
            "SELECT id, user_code, client_id, scopes, status, expires_at FROM device_authorizations \
             WHERE user_code = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(code.as_str())
        .bind(to_ms(crate::time::now()))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(authorization_from_row).transpose()
    }

    /// Approves (for `user` in `org`) or denies a pending, unexpired code. `false`: no
    /// such code (unknown, expired, decided already).
    pub async fn decide_device(&self, code: &UserCode, user: &UserId, org: &OrgId, approve: bool) -> Result<bool> {
        let now = to_ms(crate::time::now());
        let done = sqlx::query(
            "UPDATE device_authorizations SET status = $1, user_id = $2, org_id = $3, decided_at = $4 \
             WHERE user_code = $5 AND status = 'pending' AND expires_at > $4",
        )
        .bind(if approve { "approved" } else { "denied" })
        .bind(user.as_str())
        .bind(org.as_str())
        .bind(now)
        .bind(code.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One poll by `client_id` with the code whose hash is `code_hash`. An approved code
    /// is redeemed here: `issue` says which tokens to store (or `None` to refuse), and
    /// they are stored in the same transaction that marks the code redeemed, so a code
    /// yields tokens exactly once.
    pub async fn poll_device(
        &self,
        code_hash: &SecretHash,
        client_id: &str,
        now: DateTime<Utc>,
        issue: impl FnOnce(&ApprovedDevice) -> Option<NewTokens>,
    ) -> Result<(DevicePoll, Option<IssuedTokens>)> {
        let mut tx = self.pool.begin().await?;
        // Write first: takes the row lock (and SQLite's write lock) so concurrent polls
        // of one code are serialised and the interval check below is exact.
        let locked = sqlx::query("UPDATE device_authorizations SET status = status WHERE code_hash = $1")
            .bind(code_hash.to_hex())
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Ok((DevicePoll::Invalid, None));
        }
        let row = sqlx::query(
            "SELECT d.id, d.client_id, d.scopes, d.status, d.interval_ms, d.last_polled_at, d.user_id, d.org_id, d.expires_at, m.role \
             FROM device_authorizations d \
             LEFT JOIN memberships m ON m.org_id = d.org_id AND m.principal_id = d.user_id \
             WHERE d.code_hash = $1",
        )
        .bind(code_hash.to_hex())
        .fetch_one(&mut *tx)
        .await?;
        let id: String = row.try_get("id")?;
        let owner: String = row.try_get("client_id")?;
        if owner != client_id {
            return Ok((DevicePoll::Invalid, None));
        }
        let status = DeviceStatus::parse(&row.try_get::<String, _>("status")?)?;
        let now_ms = to_ms(now);
        if row.try_get::<i64, _>("expires_at")? <= now_ms && status != DeviceStatus::Redeemed {
            return Ok((DevicePoll::Expired, None));
        }
        match status {
            DeviceStatus::Redeemed => Ok((DevicePoll::Invalid, None)),
            DeviceStatus::Denied => Ok((DevicePoll::Denied, None)),
            DeviceStatus::Pending => {
                let interval: i64 = row.try_get("interval_ms")?;
                let last: Option<i64> = row.try_get("last_polled_at")?;
                let too_soon = last.is_some_and(|l| now_ms - l < interval);
                // A poll answered slow_down does not restart the clock: `last_polled_at` is
                // the last poll that was in time. Otherwise a client that missed one
                // slow_down, then backs off by 5 s per slow_down as RFC 8628 §3.5 says,
                // would stay 5 s short of the grown interval and get slow_down forever.
                let (last, interval) =
                    if too_soon { (last.unwrap_or(now_ms), interval + SLOW_DOWN_STEP_MS) } else { (now_ms, interval) };
                sqlx::query("UPDATE device_authorizations SET last_polled_at = $1, interval_ms = $2 WHERE id = $3")
                    .bind(last)
                    .bind(interval)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((if too_soon { DevicePoll::SlowDown } else { DevicePoll::Pending }, None))
            }
            DeviceStatus::Approved => {
                let user: String = row.try_get("user_id")?;
                let org: String = row.try_get::<Option<String>, _>("org_id")?.unwrap_or_default();
                let approved = ApprovedDevice {
                    user_id: UserId::parse(&user).ok_or_else(|| corrupt("user id", &user))?,
                    org_id: OrgId::parse(&org).ok_or_else(|| corrupt("org id", &org))?,
                    client_id: owner,
                    scopes: permissions_from_text(row.try_get("scopes")?)?,
                    role: row.try_get("role")?,
                };
                let Some(mut tokens) = issue(&approved) else { return Ok((DevicePoll::Denied, None)) };
                let family = FamilyId::generate();
                tokens.family = Some(family.clone());
                let issued = match self.issue_in(&mut tx, &tokens).await {
                    // The person left the organization while this poll ran.
                    Err(StoreError::NotFound) => return Ok((DevicePoll::Denied, None)),
                    other => other?,
                };
                sqlx::query("UPDATE device_authorizations SET status = 'redeemed', family_id = $1 WHERE id = $2")
                    .bind(family.as_str())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((DevicePoll::Redeemed(approved), Some(issued)))
            }
        }
    }

    /// A person's live signed-in devices in `org`, newest first.
    pub async fn device_sessions(&self, user: &UserId, org: &OrgId) -> Result<Vec<DeviceSession>> {
        let rows = sqlx::query(
            "SELECT d.family_id, d.client_id, d.scopes, d.decided_at, o.slug AS org_slug, \
                    MAX(t.created_at) AS last_refreshed_at, MAX(t.expires_at) AS expires_at \
             FROM device_authorizations d \
             JOIN orgs o ON o.id = d.org_id \
             JOIN oauth_tokens t ON t.family_id = d.family_id \
             WHERE d.user_id = $1 AND d.org_id = $2 AND d.status = 'redeemed' \
               AND t.kind = 'refresh' AND t.revoked_at IS NULL AND t.expires_at > $3 \
             GROUP BY d.family_id, d.client_id, d.scopes, d.decided_at, o.slug \
             ORDER BY d.decided_at DESC",
        )
        .bind(user.as_str())
        .bind(org.as_str())
        .bind(to_ms(crate::time::now()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let family: String = row.try_get("family_id")?;
                let slug: String = row.try_get("org_slug")?;
                Ok(DeviceSession {
                    family: FamilyId::parse(&family).ok_or_else(|| corrupt("family id", &family))?,
                    client_id: row.try_get("client_id")?,
                    org_id: org.clone(),
                    org_slug: keyward_core::domain::Slug::parse(&slug).map_err(|e| StoreError::Corrupt(e.0))?,
                    scopes: permissions_from_text(row.try_get("scopes")?)?,
                    created_at: opt_from_ms(row.try_get("decided_at")?).unwrap_or(DateTime::<Utc>::MIN_UTC),
                    last_refreshed_at: from_ms(row.try_get("last_refreshed_at")?),
                    expires_at: from_ms(row.try_get("expires_at")?),
                })
            })
            .collect()
    }

    /// Ends a person's signed-in device: revokes its token family. `NotFound` when the
    /// family is not that person's in that organization.
    pub async fn end_device_session(&self, user: &UserId, org: &OrgId, family: &FamilyId) -> Result<()> {
        let owned: Option<String> = sqlx::query_scalar(
            "SELECT id FROM device_authorizations WHERE family_id = $1 AND user_id = $2 AND org_id = $3",
        )
        .bind(family.as_str())
        .bind(user.as_str())
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound);
        }
        self.revoke_family(family).await
    }
}
