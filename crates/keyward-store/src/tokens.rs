//! OAuth access and refresh tokens: stored as hashes, grouped in families.
//!
//! A family is every token descended from one grant. Refresh tokens rotate: exchanging
//! one marks it used and issues the next pair in the same family. A used refresh token
//! presented again means two parties hold it (RFC 6819 §5.2.2.3, OAuth 2.1 §4.3.1),
//! so the whole family is revoked. Revocation writes a `tokens` change, so every cache
//! drops the family's grants at once, and revokes in the same transaction the API keys
//! the revoked tokens made (each with a `key` change).

use chrono::{DateTime, Utc};
use keyward_core::ids::{FamilyId, OrgId, TokenId};
use keyward_core::secret::{DisplayPrefix, SecretHash};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::changes::WriteTx;
use crate::text::{corrupt, permissions_from_text, permissions_to_text};
use crate::time::{from_ms, to_ms};
use crate::{
    retrying, Backend, Change, CredentialGrant, CredentialRef, IssuedTokens, NewToken, NewTokens, Principal,
    PrincipalKind, RefreshOutcome, RefreshedGrant, Result, Store, StoreError, TokenInfo,
};

/// The token joined with its organization, the principal's role and label.
const TOKEN_SELECT: &str = "SELECT t.hash, t.id, t.kind, t.family_id, t.org_id, t.principal_kind, t.principal_id, \
       t.client_id, t.scopes, t.prefix, t.created_at, t.expires_at, t.used_at, t.revoked_at, \
       o.slug AS org_slug, o.plan AS org_plan, m.role AS role, COALESCE(u.email, sa.name) AS label \
     FROM oauth_tokens t \
     JOIN orgs o ON o.id = t.org_id \
     LEFT JOIN memberships m ON m.org_id = t.org_id AND m.principal_id = t.principal_id \
     LEFT JOIN users u ON u.id = t.principal_id \
     LEFT JOIN service_accounts sa ON sa.id = t.principal_id";

fn info_from_row(row: &AnyRow) -> Result<TokenInfo> {
    let id: String = row.try_get("id")?;
    let family: String = row.try_get("family_id")?;
    let org: String = row.try_get("org_id")?;
    let slug: String = row.try_get("org_slug")?;
    let kind: String = row.try_get("principal_kind")?;
    let used: Option<i64> = row.try_get("used_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    let label: Option<String> = row.try_get("label")?;
    Ok(TokenInfo {
        id: TokenId::parse(&id).ok_or_else(|| corrupt("token id", &id))?,
        kind: row.try_get("kind")?,
        family: FamilyId::parse(&family).ok_or_else(|| corrupt("family id", &family))?,
        org_id: OrgId::parse(&org).ok_or_else(|| corrupt("org id", &org))?,
        org_slug: keyward_core::domain::Slug::parse(&slug).map_err(|e| StoreError::Corrupt(e.0))?,
        principal: Principal { kind: PrincipalKind::parse(&kind)?, id: row.try_get("principal_id")? },
        principal_label: label.unwrap_or_default(),
        client_id: row.try_get("client_id")?,
        scopes: permissions_from_text(row.try_get("scopes")?)?,
        role: row.try_get("role")?,
        created_at: from_ms(row.try_get("created_at")?),
        expires_at: from_ms(row.try_get("expires_at")?),
        used: used.is_some(),
        revoked: revoked.is_some(),
    })
}

async fn insert_token<'e>(
    exec: impl sqlx::Executor<'e, Database = Any>,
    backend: Backend,
    new: &NewTokens,
    family: &FamilyId,
    kind: &str,
    token: &NewToken,
) -> Result<TokenId> {
    let id = TokenId::generate();
    // Only for a member, whose membership row is locked against removal until this
    // commits (PostgreSQL: `FOR KEY SHARE`, as a foreign key check does): a removal
    // (or an account's deletion) that deletes the row first makes this insert find
    // nothing, and one that comes second waits and then revokes this token too.
    let inserted = sqlx::query(&format!(
        "INSERT INTO oauth_tokens (hash, id, kind, family_id, org_id, principal_kind, principal_id, client_id, scopes, prefix, created_at, expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
         WHERE EXISTS (SELECT 1 FROM memberships WHERE org_id = $5 AND principal_id = $7{})",
        key_share(backend)
    ))
    .bind(token.hash.to_hex())
    .bind(id.as_str())
    .bind(kind)
    .bind(family.as_str())
    .bind(new.org_id.as_str())
    .bind(new.principal.kind.as_str())
    .bind(&new.principal.id)
    .bind(&new.client_id)
    .bind(permissions_to_text(&new.scopes))
    .bind(token.prefix.as_str())
    .bind(to_ms(crate::time::now()))
    .bind(to_ms(token.expires_at))
    .execute(exec)
    .await
    .map_err(crate::conflict_as("a token with this secret"))?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(id)
}

/// The locking clause that keeps a membership row from being deleted until the
/// transaction ends (PostgreSQL); SQLite's write lock already excludes every other writer.
pub(crate) fn key_share(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR KEY SHARE",
        Backend::Sqlite => "",
    }
}

/// Serialises, on PostgreSQL, every transaction that adds to or revokes `family`
/// (a transaction-scoped advisory lock on the family's id): a reuse's revocation then
/// starts after a concurrent exchange committed, and sees — and revokes — the pair that
/// exchange issued. SQLite runs one writer at a time anyway.
async fn lock_family(tx: &mut Transaction<'_, Any>, backend: Backend, family: &str) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("keyward.token_family.{family}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// On PostgreSQL, before touching the token whose hash is `hash`: its family's lock,
/// then its principal's membership (the order removals lock in: membership, then
/// tokens). `false`: no such token. On SQLite nothing (a transaction there must write
/// first, and its write lock excludes everyone else).
async fn lock_token_family(tx: &mut Transaction<'_, Any>, backend: Backend, hash: &str) -> Result<bool> {
    if backend != Backend::Postgres {
        return Ok(true);
    }
    // A token's family, organization and principal never change.
    let row = sqlx::query("SELECT family_id, org_id, principal_id FROM oauth_tokens WHERE hash = $1")
        .bind(hash)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(false) };
    let family: String = row.try_get("family_id")?;
    lock_family(tx, backend, &family).await?;
    sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND principal_id = $2 FOR KEY SHARE")
        .bind(row.try_get::<String, _>("org_id")?)
        .bind(row.try_get::<String, _>("principal_id")?)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(true)
}

impl Store {
    /// Stores an access token (and a refresh token) for one grant.
    pub async fn issue_tokens(&self, new: &NewTokens) -> Result<IssuedTokens> {
        if new.refresh.is_none() {
            // One row: one statement, no transaction (client_credentials, the hot path
            // of the token endpoint: BEGIN and COMMIT would triple its round trips).
            let family = new.family.clone().unwrap_or_else(FamilyId::generate);
            let access_id = insert_token(&self.pool, self.backend(), new, &family, "access", &new.access).await?;
            return Ok(IssuedTokens { access_id, refresh_id: None, family });
        }
        let mut tx = self.pool.begin().await?;
        let issued = self.issue_in(&mut tx, new).await?;
        tx.commit().await?;
        Ok(issued)
    }

    pub(crate) async fn issue_in(&self, tx: &mut Transaction<'_, Any>, new: &NewTokens) -> Result<IssuedTokens> {
        let family = new.family.clone().unwrap_or_else(FamilyId::generate);
        let access_id = insert_token(&mut **tx, self.backend(), new, &family, "access", &new.access).await?;
        let refresh_id = match &new.refresh {
            Some(refresh) => Some(insert_token(&mut **tx, self.backend(), new, &family, "refresh", refresh).await?),
            None => None,
        };
        Ok(IssuedTokens { access_id, refresh_id, family })
    }

    /// What an access token grants, found by its hash.
    pub async fn token_grant_by_hash(&self, hash: &SecretHash) -> Result<Option<CredentialGrant>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.hash = $1 AND t.kind = 'access'"))
            .bind(hash.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("hash")?;
        let prefix: String = row.try_get("prefix")?;
        let plan: String = row.try_get("org_plan")?;
        let info = info_from_row(&row)?;
        Ok(Some(CredentialGrant {
            credential: CredentialRef::AccessToken { id: info.id, family: info.family, client_id: info.client_id },
            prefix: DisplayPrefix::from_stored(prefix),
            org_id: info.org_id,
            org_slug: info.org_slug,
            org_plan: plan.parse().map_err(|e: keyward_core::domain::Invalid| StoreError::Corrupt(e.0))?,
            principal: info.principal,
            principal_label: info.principal_label,
            own_permissions: info.scopes,
            role: info.role,
            secret_hash: SecretHash::from_hex(&stored).ok_or_else(|| corrupt("token hash", "…"))?,
            expires_at: Some(info.expires_at),
            revoked: info.revoked,
            key_origin: Default::default(),
        }))
    }

    /// Any token (access or refresh) by its hash, for introspection and revocation.
    pub async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenInfo>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.hash = $1"))
            .bind(hash.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(info_from_row).transpose()
    }

    /// Exchanges a refresh token issued to `client_id` for a new pair from `next`
    /// (whose `family` is ignored: the pair joins the presented token's family). One
    /// transaction: the old token is marked used only if the new pair is stored.
    ///
    /// A used token presented again revokes the family. On PostgreSQL the family's
    /// lock is taken first, so that revocation also covers a pair an exchange running
    /// at the same time issues; a revocation that still loses a deadlock to another
    /// statement locking the same rows is run again in a transaction of its own.
    pub async fn refresh_tokens(
        &self,
        hash: &SecretHash,
        client_id: &str,
        now: DateTime<Utc>,
        next: impl FnOnce(&RefreshedGrant) -> Option<NewTokens>,
    ) -> Result<(RefreshOutcome, Option<IssuedTokens>)> {
        let hex = hash.to_hex();
        let mut tx = self.begin_write().await?;
        if !lock_token_family(&mut tx, self.backend(), &hex).await? {
            return Ok((RefreshOutcome::Invalid, None));
        }
        // The conditional update is the single point where two concurrent exchanges of
        // the same token are told apart (only one matches). On SQLite it is also the
        // transaction's first statement, which takes the write lock.
        let marked = sqlx::query(
            "UPDATE oauth_tokens SET used_at = $1 WHERE hash = $2 AND kind = 'refresh' AND client_id = $3 \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
        )
        .bind(to_ms(now))
        .bind(&hex)
        .bind(client_id)
        .fetch_optional(&mut **tx)
        .await?;
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.hash = $1 AND t.kind = 'refresh'"))
            .bind(&hex)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok((RefreshOutcome::Invalid, None)) };
        let info = info_from_row(&row)?;
        if info.client_id != client_id {
            return Ok((RefreshOutcome::Invalid, None));
        }
        if marked.is_none() {
            if info.used && !info.revoked {
                // Reuse of an exchanged token: revoke everything it led to.
                match self.revoke_family_in(&mut tx, &info.family, now).await {
                    Ok(()) => tx.commit().await?,
                    Err(e) if crate::is_transient(&e) => {
                        drop(tx);
                        self.revoke_family(&info.family).await?;
                    }
                    Err(e) => return Err(e),
                }
                return Ok((RefreshOutcome::Reused(info.family), None));
            }
            return Ok((RefreshOutcome::Invalid, None));
        }
        let grant = RefreshedGrant {
            family: info.family.clone(),
            org_id: info.org_id,
            principal: info.principal,
            scopes: info.scopes,
            role: info.role,
        };
        let Some(mut new) = next(&grant) else {
            // Nothing to issue (the principal lost its membership): leave it unused.
            return Ok((RefreshOutcome::Invalid, None));
        };
        new.family = Some(info.family);
        let issued = match self.issue_in(&mut tx, &new).await {
            // Removed from the organization since the row was read (SQLite reads the
            // role in this transaction, so only a principal mismatch gets here).
            Err(StoreError::NotFound) => return Ok((RefreshOutcome::Invalid, None)),
            other => other?,
        };
        tx.commit().await?;
        Ok((RefreshOutcome::Exchanged(grant), Some(issued)))
    }

    /// Revokes a token (RFC 7009) if it was issued to `client_id`: an access token
    /// alone, a refresh token with its whole family. Returns the family revoked from,
    /// or `None` when nothing matched (unknown, another client's, already revoked).
    pub async fn revoke_token(&self, hash: &SecretHash, client_id: &str) -> Result<Option<FamilyId>> {
        if !crate::storable(client_id) {
            return Ok(None);
        }
        let hex = hash.to_hex();
        retrying(|| async {
            let now = crate::time::now();
            let mut tx = self.begin_write().await?;
            if !lock_token_family(&mut tx, self.backend(), &hex).await? {
                return Ok(None);
            }
            let row = sqlx::query(
                "UPDATE oauth_tokens SET revoked_at = $1 WHERE hash = $2 AND client_id = $3 AND revoked_at IS NULL \
                 RETURNING id, kind, family_id",
            )
            .bind(to_ms(now))
            .bind(&hex)
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let kind: String = row.try_get("kind")?;
            let token_id: String = row.try_get("id")?;
            let family: String = row.try_get("family_id")?;
            let family = FamilyId::parse(&family).ok_or_else(|| corrupt("family id", &family))?;
            if kind == "refresh" {
                self.revoke_family_in(&mut tx, &family, now).await?;
            } else {
                let token_id = TokenId::parse(&token_id).ok_or_else(|| corrupt("token id", &token_id))?;
                // No key outlives the token that made it (DESIGN.md).
                crate::api_keys::revoke_keys_made_by(self, &mut tx, crate::api_keys::MadeBy::Token(&token_id), now)
                    .await?;
                self.record_change(&mut tx, &Change::Tokens(family.clone())).await?;
            }
            tx.commit().await?;
            Ok(Some(family))
        })
        .await
    }

    /// Revokes a family (a signed-in device, or reuse detected elsewhere).
    pub async fn revoke_family(&self, family: &FamilyId) -> Result<()> {
        retrying(|| async {
            let mut tx = self.begin_write().await?;
            lock_family(&mut tx, self.backend(), family.as_str()).await?;
            self.revoke_family_in(&mut tx, family, crate::time::now()).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Revokes every token of `family` inside `tx` (whose first write this may be on
    /// SQLite: an `UPDATE` takes the write lock even when it matches nothing).
    async fn revoke_family_in(&self, tx: &mut WriteTx<'_>, family: &FamilyId, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(to_ms(now))
            .bind(family.as_str())
            .execute(&mut ***tx)
            .await?;
        // No key outlives the tokens that made it (DESIGN.md).
        crate::api_keys::revoke_keys_made_by(self, tx, crate::api_keys::MadeBy::Family(family), now).await?;
        self.record_change(tx, &Change::Tokens(family.clone())).await
    }
}
