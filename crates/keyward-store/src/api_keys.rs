//! API keys and their secrets.
//!
//! A key (`api_keys`) holds the settings people see; its secrets (`api_key_secrets`)
//! hold only hashes. A roll adds a secret and gives the old ones an expiry (the grace
//! period) or deletes them; a revocation stamps the key, and keeps the secrets so a
//! later attempt can be recognised (and audited) as the use of a revoked key.

use chrono::{DateTime, Duration, Utc};
use keyward_core::ids::{FamilyId, KeyId, OrgId, TokenId};
use keyward_core::legacy::ImportedHash;
use keyward_core::permission::PermissionSet;
use keyward_core::secret::{DisplayPrefix, SecretHash};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::audit::insert_event;
use crate::changes::WriteTx;
use crate::text::{corrupt, permissions_from_text, permissions_to_text};
use crate::time::{from_ms, opt_from_ms, opt_to_ms, to_ms};
use crate::{
    Actor, ApiKey, AuditAction, AuditEvent, Change, HashKind, KeyGrant, KeyOrigin, NewApiKey, Principal, PrincipalKind,
    Result, Store, StoreError,
};

const KEY_COLUMNS: &str = "k.id, k.org_id, k.principal_kind, k.principal_id, k.name, k.prefix, k.permissions, \
                           k.created_at, k.updated_at, k.last_used_at, k.expires_at, k.revoked_at, \
                           k.created_by, k.origin_token_id, k.origin_family_id";

/// Which keys an operation may touch: one organization's, and optionally only one
/// principal's. `None` (admin commands) touches any key.
#[derive(Clone, Debug)]
pub struct KeyScope {
    pub org_id: OrgId,
    pub principal_id: Option<String>,
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey> {
    let id: String = row.try_get("id")?;
    let org: String = row.try_get("org_id")?;
    let kind: String = row.try_get("principal_kind")?;
    let permissions = permissions_from_text(row.try_get("permissions")?)?;
    Ok(ApiKey {
        id: KeyId::parse(&id).ok_or_else(|| corrupt("key id", &id))?,
        org_id: OrgId::parse(&org).ok_or_else(|| corrupt("org id", &org))?,
        principal: Principal { kind: PrincipalKind::parse(&kind)?, id: row.try_get("principal_id")? },
        name: row.try_get("name")?,
        prefix: DisplayPrefix::from_stored(row.try_get("prefix")?),
        permissions,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        last_used_at: opt_from_ms(row.try_get("last_used_at")?),
        expires_at: opt_from_ms(row.try_get("expires_at")?),
        revoked_at: opt_from_ms(row.try_get("revoked_at")?),
        origin: origin_from_row(row)?,
    })
}

fn origin_from_row(row: &AnyRow) -> Result<KeyOrigin> {
    let token: Option<String> = row.try_get("origin_token_id")?;
    let family: Option<String> = row.try_get("origin_family_id")?;
    Ok(KeyOrigin {
        created_by: row.try_get("created_by")?,
        token: token.map(|t| TokenId::parse(&t).ok_or_else(|| corrupt("token id", &t))).transpose()?,
        family: family.map(|f| FamilyId::parse(&f).ok_or_else(|| corrupt("family id", &f))).transpose()?,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<KeyGrant> {
    let slug: String = row.try_get("org_slug")?;
    let plan: String = row.try_get("org_plan")?;
    let email: Option<String> = row.try_get("email")?;
    let stored: String = row.try_get("secret_hash")?;
    Ok(KeyGrant {
        key: key_from_row(row)?,
        secret_hash: SecretHash::from_hex(&stored).ok_or_else(|| corrupt("secret hash", "…"))?,
        secret_expires_at: opt_from_ms(row.try_get("secret_expires_at")?),
        org_slug: keyward_core::domain::Slug::parse(&slug).map_err(|e| StoreError::Corrupt(e.0))?,
        org_plan: plan.parse().map_err(|e: keyward_core::domain::Invalid| StoreError::Corrupt(e.0))?,
        role: row.try_get("role")?,
        principal_label: email.unwrap_or_default(),
    })
}

/// The grant query: a key by one of its secrets, with what authentication needs.
const GRANT_SELECT: &str = "SELECT k.id, k.org_id, k.principal_kind, k.principal_id, k.name, k.prefix, k.permissions, \
       k.created_at, k.updated_at, k.last_used_at, k.expires_at, k.revoked_at, \
       k.created_by, k.origin_token_id, k.origin_family_id, \
       s.hash AS secret_hash, s.expires_at AS secret_expires_at, o.slug AS org_slug, o.plan AS org_plan, m.role AS role, COALESCE(u.email, sa.name) AS email \
     FROM api_key_secrets s \
     JOIN api_keys k ON k.id = s.key_id \
     JOIN orgs o ON o.id = k.org_id \
     LEFT JOIN memberships m ON m.org_id = k.org_id AND m.principal_id = k.principal_id \
     LEFT JOIN users u ON u.id = k.principal_id \
     LEFT JOIN service_accounts sa ON sa.id = k.principal_id";

async fn insert_key(tx: &mut Transaction<'_, Any>, key: &ApiKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, principal_kind, principal_id, name, prefix, permissions, created_at, updated_at, expires_at, \
         created_by, origin_token_id, origin_family_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(key.id.as_str())
    .bind(key.org_id.as_str())
    .bind(key.principal.kind.as_str())
    .bind(&key.principal.id)
    .bind(&key.name)
    .bind(key.prefix.as_str())
    .bind(permissions_to_text(&key.permissions))
    .bind(to_ms(key.created_at))
    .bind(to_ms(key.updated_at))
    .bind(opt_to_ms(key.expires_at))
    .bind(key.origin.created_by.as_deref())
    .bind(key.origin.token.as_ref().map(|t| t.as_str()))
    .bind(key.origin.family.as_ref().map(|f| f.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_secret(tx: &mut Transaction<'_, Any>, key: &KeyId, hash: &str, kind: HashKind) -> Result<()> {
    sqlx::query("INSERT INTO api_key_secrets (hash, hash_kind, key_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(kind.as_str())
        .bind(key.as_str())
        .bind(to_ms(crate::time::now()))
        .execute(&mut **tx)
        .await
        .map_err(crate::conflict_as("a key with this secret"))?;
    Ok(())
}

impl ApiKey {
    fn from_new(new: &NewApiKey, origin: &KeyOrigin) -> Self {
        let now = crate::time::now();
        ApiKey {
            id: KeyId::generate(),
            org_id: new.org_id.clone(),
            principal: new.principal.clone(),
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            permissions: new.permissions.clone(),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            expires_at: new.expires_at.map(crate::time::truncate),
            revoked_at: None,
            origin: origin.clone(),
        }
    }

    fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "prefix": self.prefix.as_str(),
            "permissions": self.permissions.as_ref().map(PermissionSet::to_strings),
            "expires_at": self.expires_at,
            "created_by": self.origin.created_by,
        })
    }
}

impl Store {
    /// Stores a new key with the hash of its one secret.
    pub async fn create_api_key(&self, new: &NewApiKey, hash: &SecretHash, actor: &Actor) -> Result<ApiKey> {
        self.create_api_key_from(new, hash, &KeyOrigin::default(), actor).await
    }

    /// Stores a new key made by the credential `origin` names (its line is recorded, so
    /// revoking the access token at its root revokes the key).
    pub async fn create_api_key_from(
        &self,
        new: &NewApiKey,
        hash: &SecretHash,
        origin: &KeyOrigin,
        actor: &Actor,
    ) -> Result<ApiKey> {
        let rows = [(new, hash.to_hex(), HashKind::Sha256)];
        let mut made = self.insert_api_keys(&rows, origin, AuditAction::ApiKeyCreated, actor).await?;
        Ok(made.pop().expect("one in, one out"))
    }

    /// Stores many new keys in one transaction (bulk provisioning; the benchmarks
    /// seed a million keys this way). Each gets its audit event.
    pub async fn create_api_keys(&self, batch: &[(NewApiKey, SecretHash)], actor: &Actor) -> Result<Vec<ApiKey>> {
        let rows: Vec<_> = batch.iter().map(|(new, hash)| (new, hash.to_hex(), HashKind::Sha256)).collect();
        self.insert_api_keys(&rows, &KeyOrigin::default(), AuditAction::ApiKeyCreated, actor).await
    }

    /// Stores a key imported from a previous system, keeping its hash format.
    pub async fn import_api_key(&self, new: &NewApiKey, imported: &ImportedHash, actor: &Actor) -> Result<ApiKey> {
        let (hash, kind) = match imported {
            ImportedHash::Sha256(h) => (h.to_hex(), HashKind::Sha256),
            ImportedHash::Bcrypt(b) => (b.as_str().to_owned(), HashKind::Bcrypt),
        };
        let mut made = self
            .insert_api_keys(&[(new, hash, kind)], &KeyOrigin::default(), AuditAction::ApiKeyImported, actor)
            .await?;
        Ok(made.pop().expect("one in, one out"))
    }

    /// Inserts keys with one secret each: `(key, stored hash, hash kind)`.
    async fn insert_api_keys(
        &self,
        rows: &[(&NewApiKey, String, HashKind)],
        origin: &KeyOrigin,
        action: AuditAction,
        actor: &Actor,
    ) -> Result<Vec<ApiKey>> {
        let mut tx = self.begin_write().await?;
        let mut made = Vec::with_capacity(rows.len());
        for (new, hash, hash_kind) in rows {
            let key = ApiKey::from_new(new, origin);
            insert_key(&mut tx, &key).await?;
            insert_secret(&mut tx, &key.id, hash, *hash_kind).await?;
            let event =
                AuditEvent::new(Some(&key.org_id), actor, action).target("api_key", &key.id).detail(key.audit_detail());
            insert_event(&mut tx, &event).await?;
            made.push(key);
        }
        self.record_change(&mut tx, &Change::KeyCreated).await?;
        tx.commit().await?;
        Ok(made)
    }

    /// Keys of an organization (optionally of one principal), newest first.
    pub async fn list_api_keys(&self, scope: &KeyScope, include_revoked: bool) -> Result<Vec<ApiKey>> {
        let mut sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.org_id = $1");
        if scope.principal_id.is_some() {
            sql.push_str(" AND k.principal_id = $2");
        }
        if !include_revoked {
            sql.push_str(" AND k.revoked_at IS NULL");
        }
        sql.push_str(" ORDER BY k.created_at DESC, k.id DESC");
        let mut q = sqlx::query(&sql).bind(scope.org_id.as_str());
        if let Some(p) = &scope.principal_id {
            q = q.bind(p.as_str());
        }
        q.fetch_all(&self.pool).await?.iter().map(key_from_row).collect()
    }

    /// One key within `scope` (revoked or not).
    pub async fn api_key(&self, scope: Option<&KeyScope>, id: &KeyId) -> Result<ApiKey> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let key = key_from_row(&row)?;
        match scope {
            Some(s) if key.org_id != s.org_id || s.principal_id.as_ref().is_some_and(|p| *p != key.principal.id) => {
                Err(StoreError::NotFound)
            }
            _ => Ok(key),
        }
    }

    /// Revokes a live key within `scope`: final, and announced through the change log.
    /// A key that is already revoked is `NotFound`, as it is absent from lists.
    pub async fn revoke_api_key(&self, scope: Option<&KeyScope>, id: &KeyId, actor: &Actor) -> Result<ApiKey> {
        let mut key = self.api_key(scope, id).await?;
        if key.revoked_at.is_some() {
            return Err(StoreError::NotFound);
        }
        let now = crate::time::now();
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_ms(now))
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // The row is locked now: read what was revoked (a roll may have committed since
        // the read above), so the answer and the audit event name the last prefix.
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1"))
            .bind(id.as_str())
            .fetch_one(&mut **tx)
            .await?;
        key = key_from_row(&row)?;
        self.record_change(&mut tx, &Change::Key(id.clone())).await?;
        let event = AuditEvent::new(Some(&key.org_id), actor, AuditAction::ApiKeyRevoked)
            .target("api_key", id)
            .detail(key.audit_detail());
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Gives a live key a new secret. The old secrets keep working for `grace` (none
    /// when zero) and are then useless; the key's other settings do not change.
    ///
    /// A roll is a compare-and-set on the key as read at its start: of several rolls
    /// that read the same key at once, exactly one wins and the others are
    /// [`StoreError::Concurrent`] (a revocation that won is `NotFound`). Without it, two
    /// concurrent rolls on PostgreSQL each deleted only the secrets their statement's
    /// snapshot saw, so both new secrets (and more) stayed valid.
    pub async fn roll_api_key(
        &self,
        scope: Option<&KeyScope>,
        id: &KeyId,
        new_hash: &SecretHash,
        new_prefix: &DisplayPrefix,
        grace: Duration,
        actor: &Actor,
    ) -> Result<ApiKey> {
        let mut key = self.api_key(scope, id).await?;
        if key.revoked_at.is_some() {
            return Err(StoreError::NotFound);
        }
        let now = crate::time::now();
        let mut tx = self.begin_write().await?;
        // Write first: the compare-and-set takes the key's row lock (SQLite: the write
        // lock), so the secrets below are changed by the winner alone, and a later
        // statement of this transaction sees every secret committed before it.
        let won = sqlx::query(
            "UPDATE api_keys SET prefix = $1, updated_at = $2 \
             WHERE id = $3 AND revoked_at IS NULL AND prefix = $4 AND updated_at = $5",
        )
        .bind(new_prefix.as_str())
        .bind(to_ms(now))
        .bind(id.as_str())
        .bind(key.prefix.as_str())
        .bind(to_ms(key.updated_at))
        .execute(&mut **tx)
        .await?;
        if won.rows_affected() == 0 {
            tx.rollback().await?;
            return match self.api_key(scope, id).await?.revoked_at {
                Some(_) => Err(StoreError::NotFound),
                None => Err(StoreError::Concurrent("this key")),
            };
        }
        if grace > Duration::zero() {
            let until = to_ms(now + grace);
            sqlx::query(
                "UPDATE api_key_secrets SET expires_at = $1 WHERE key_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
            )
            .bind(until)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM api_key_secrets WHERE key_id = $1").bind(id.as_str()).execute(&mut **tx).await?;
        }
        insert_secret(&mut tx, id, &new_hash.to_hex(), HashKind::Sha256).await?;
        self.record_change(&mut tx, &Change::Key(id.clone())).await?;
        key.prefix = new_prefix.clone();
        key.updated_at = now;
        let event = AuditEvent::new(Some(&key.org_id), actor, AuditAction::ApiKeyRolled)
            .target("api_key", id)
            .detail(serde_json::json!({ "prefix": new_prefix.as_str(), "grace_seconds": grace.num_seconds() }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The key one of whose fast-hashed secrets is `hash`, with what authentication needs.
    pub async fn key_grant_by_hash(&self, hash: &SecretHash) -> Result<Option<KeyGrant>> {
        let row = sqlx::query(&format!("{GRANT_SELECT} WHERE s.hash = $1 AND s.hash_kind = 'sha256'"))
            .bind(hash.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// Imported keys still held as bcrypt: `(bcrypt hash, key id)`. They are checked one
    /// by one (there is no way to look a bcrypt hash up), which is why each is replaced
    /// by the fast form on first use.
    pub async fn bcrypt_key_secrets(&self) -> Result<Vec<(String, KeyId)>> {
        let rows = sqlx::query("SELECT hash, key_id FROM api_key_secrets WHERE hash_kind = 'bcrypt'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("key_id")?;
                Ok((r.try_get("hash")?, KeyId::parse(&id).ok_or_else(|| corrupt("key id", &id))?))
            })
            .collect()
    }

    /// Replaces an imported bcrypt secret by its fast hash, after a successful check,
    /// keeping the secret's expiry (a rolled key's old secret keeps only its grace).
    /// Returns whether this call did it (another request may have been first, or a roll
    /// may have removed the secret meanwhile).
    pub async fn upgrade_bcrypt_secret(&self, bcrypt: &str, hash: &SecretHash) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Lock the key first, as a roll does: otherwise a roll running at the same time
        // deletes the bcrypt row but not the fast one inserted here (its statement's
        // snapshot predates it), and the old secret would outlive the roll.
        let locked = sqlx::query(
            "UPDATE api_keys SET updated_at = updated_at WHERE id = \
             (SELECT key_id FROM api_key_secrets WHERE hash = $1 AND hash_kind = 'bcrypt')",
        )
        .bind(bcrypt)
        .execute(&mut **tx)
        .await?;
        if locked.rows_affected() == 0 {
            return Ok(false);
        }
        let done = sqlx::query(
            "DELETE FROM api_key_secrets WHERE hash = $1 AND hash_kind = 'bcrypt' RETURNING key_id, created_at, expires_at",
        )
        .bind(bcrypt)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = done else { return Ok(false) };
        let key_id: String = row.try_get("key_id")?;
        let created: i64 = row.try_get("created_at")?;
        let expires: Option<i64> = row.try_get("expires_at")?;
        sqlx::query(
            "INSERT INTO api_key_secrets (hash, hash_kind, key_id, created_at, expires_at) VALUES ($1, 'sha256', $2, $3, $4)",
        )
        .bind(hash.to_hex())
        .bind(&key_id)
        .bind(created)
        .bind(expires)
        .execute(&mut **tx)
        .await
        .map_err(crate::conflict_as("a key with this secret"))?;
        // Other processes may have negative-cached the fast hash on their own attempt.
        self.record_change(&mut tx, &Change::KeyCreated).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Last-used times and per-day request counts, in one transaction (the coalesced
    /// batch written by the server's usage recorder).
    pub async fn record_key_usage(&self, batch: &[KeyUsage]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for u in batch {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(to_ms(u.last_used_at))
            .bind(u.key_id.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO key_usage (key_id, day, requests) VALUES ($1, $2, $3) \
                 ON CONFLICT (key_id, day) DO UPDATE SET requests = key_usage.requests + excluded.requests",
            )
            .bind(u.key_id.as_str())
            .bind(u.day)
            .bind(u.requests)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Which keys a token revocation reaches: those made (directly, or through keys made by
/// keys) by one access token, or by any token of a family.
pub(crate) enum MadeBy<'a> {
    Token(&'a TokenId),
    Family(&'a FamilyId),
}

/// Revokes, inside `tx`, the live keys whose line starts at the revoked token or family:
/// each gets a `key` change (every process drops it) and an `api_key.revoked` event
/// saying why. Returns their ids.
pub(crate) async fn revoke_keys_made_by(
    store: &Store,
    tx: &mut WriteTx<'_>,
    by: MadeBy<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<KeyId>> {
    let (column, id, reason) = match by {
        MadeBy::Token(t) => ("origin_token_id", t.as_str(), "the access token that made it was revoked"),
        MadeBy::Family(f) => ("origin_family_id", f.as_str(), "the token family that made it was revoked"),
    };
    let rows = sqlx::query(&format!(
        "UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE {column} = $2 AND revoked_at IS NULL \
         RETURNING id, org_id"
    ))
    .bind(to_ms(now))
    .bind(id)
    .fetch_all(&mut ***tx)
    .await?;
    let mut revoked = Vec::with_capacity(rows.len());
    for row in rows {
        let key: String = row.try_get("id")?;
        let org: String = row.try_get("org_id")?;
        let key = KeyId::parse(&key).ok_or_else(|| corrupt("key id", &key))?;
        let org = OrgId::parse(&org).ok_or_else(|| corrupt("org id", &org))?;
        store.record_change(tx, &Change::Key(key.clone())).await?;
        let actor = Actor::system();
        let event = AuditEvent::new(Some(&org), &actor, AuditAction::ApiKeyRevoked)
            .target("api_key", &key)
            .detail(serde_json::json!({ "reason": reason, "origin": id }));
        insert_event(tx, &event).await?;
        revoked.push(key);
    }
    Ok(revoked)
}

/// One key's use since the last batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: KeyId,
    pub last_used_at: DateTime<Utc>,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub requests: i64,
}
