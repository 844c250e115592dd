//! Service accounts: non-human members of one organization, their client secrets
//! (hashes only) and their registered public keys.
//!
//! An account is a row in `service_accounts` plus a membership of kind
//! `service_account`, so it is listed, given a role and removed like a person. Deleting
//! it removes the membership, its secrets and public keys, and revokes its API keys and
//! tokens, in one transaction that also writes a `member` change: every cache drops the
//! account's grants at once.

use chrono::{DateTime, Duration, Utc};
use keyward_core::assertion::PublicKey;
use keyward_core::ids::{OrgId, ServiceAccountId};
use keyward_core::secret::{DisplayPrefix, SecretHash};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::audit::insert_event;
use crate::text::corrupt;
use crate::time::{from_ms, opt_from_ms, to_ms};
use crate::{
    Actor, AuditAction, AuditEvent, Change, ClientRecord, ClientSecretInfo, CredentialGrant, CredentialRef, HashKind,
    NewClientSecret, NewServiceAccount, Principal, Result, ServiceAccount, Store, StoreError,
};

const ACCOUNT_SELECT: &str =
    "SELECT a.id, a.org_id, a.client_id, a.name, a.created_at, m.role, o.slug AS org_slug, o.plan AS org_plan \
     FROM service_accounts a JOIN orgs o ON o.id = a.org_id \
     JOIN memberships m ON m.org_id = a.org_id AND m.principal_id = a.id";

/// An account row without its secrets and keys (filled by `complete`).
fn account_from_row(row: &AnyRow) -> Result<ServiceAccount> {
    let id: String = row.try_get("id")?;
    let org: String = row.try_get("org_id")?;
    Ok(ServiceAccount {
        id: ServiceAccountId::parse(&id).ok_or_else(|| corrupt("service account id", &id))?,
        org_id: OrgId::parse(&org).ok_or_else(|| corrupt("org id", &org))?,
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        created_at: from_ms(row.try_get("created_at")?),
        secrets: Vec::new(),
        public_keys: Vec::new(),
    })
}

async fn insert_secret(
    tx: &mut Transaction<'_, Any>,
    account: &ServiceAccountId,
    secret: &NewClientSecret,
) -> Result<()> {
    let (hash, kind, prefix) = match secret {
        NewClientSecret::Sha256 { hash, prefix } => (hash.to_hex(), HashKind::Sha256, prefix.as_str().to_owned()),
        NewClientSecret::Bcrypt(b) => (b.as_str().to_owned(), HashKind::Bcrypt, String::new()),
    };
    sqlx::query(
        "INSERT INTO service_account_secrets (hash, hash_kind, account_id, prefix, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash)
    .bind(kind.as_str())
    .bind(account.as_str())
    .bind(prefix)
    .bind(to_ms(crate::time::now()))
    .execute(&mut **tx)
    .await
    .map_err(crate::conflict_as("a client with this secret"))?;
    Ok(())
}

async fn insert_public_key(tx: &mut Transaction<'_, Any>, account: &ServiceAccountId, key: &PublicKey) -> Result<()> {
    sqlx::query("INSERT INTO service_account_keys (account_id, kid, alg, jwk, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(account.as_str())
        .bind(key.kid())
        .bind(key.alg().as_str())
        .bind(key.to_stored())
        .bind(to_ms(crate::time::now()))
        .execute(&mut **tx)
        .await
        .map_err(crate::conflict_as("a public key with this kid"))?;
    Ok(())
}

/// Takes the account's row lock (and, on SQLite, the write lock) inside `tx`, or
/// `NotFound` when `org` has no such live account. Writing first also keeps SQLite from
/// failing a read-then-write transaction with "database is locked".
async fn lock_live_account(tx: &mut Transaction<'_, Any>, org: &OrgId, id: &ServiceAccountId) -> Result<()> {
    let live =
        sqlx::query("UPDATE service_accounts SET name = name WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL")
            .bind(id.as_str())
            .bind(org.as_str())
            .execute(&mut **tx)
            .await?;
    if live.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

impl Store {
    /// Creates an account and its membership, with its secret and public keys.
    pub async fn create_service_account(&self, new: &NewServiceAccount, actor: &Actor) -> Result<ServiceAccount> {
        let id = ServiceAccountId::generate();
        let client_id = new.client_id.clone().unwrap_or_else(|| id.to_string());
        let now = crate::time::now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO service_accounts (id, org_id, client_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(new.org_id.as_str())
        .bind(&client_id)
        .bind(&new.name)
        .bind(to_ms(now))
        .execute(&mut **tx)
        .await
        .map_err(crate::conflict_as("a service account with this client id"))?;
        sqlx::query(
            "INSERT INTO memberships (org_id, principal_id, principal_kind, role, created_at) VALUES ($1, $2, 'service_account', $3, $4)",
        )
        .bind(new.org_id.as_str())
        .bind(id.as_str())
        .bind(&new.role)
        .bind(to_ms(now))
        .execute(&mut **tx)
        .await?;
        if let Some(secret) = &new.secret {
            insert_secret(&mut tx, &id, secret).await?;
        }
        for key in &new.public_keys {
            insert_public_key(&mut tx, &id, key).await?;
        }
        // A new secret's hash may sit in a negative cache.
        self.record_change(&mut tx, &Change::KeyCreated).await?;
        let event = AuditEvent::new(Some(&new.org_id), actor, AuditAction::ServiceAccountCreated)
            .target("service_account", &id)
            .detail(serde_json::json!({
                "name": new.name,
                "client_id": client_id,
                "role": new.role,
                "secret": new.secret.as_ref().map(|s| match s {
                    NewClientSecret::Sha256 { prefix, .. } => prefix.as_str().to_owned(),
                    NewClientSecret::Bcrypt(_) => "imported".to_owned(),
                }),
                "public_keys": new.public_keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
            }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        self.service_account(&new.org_id, &id).await
    }

    /// The organization's live service accounts, oldest first.
    pub async fn service_accounts(&self, org: &OrgId) -> Result<Vec<ServiceAccount>> {
        let rows = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE a.org_id = $1 AND a.deleted_at IS NULL ORDER BY a.id"))
            .bind(org.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.complete(account_from_row(row)?).await?);
        }
        Ok(out)
    }

    /// One live account of `org`; another organization's → `NotFound`.
    pub async fn service_account(&self, org: &OrgId, id: &ServiceAccountId) -> Result<ServiceAccount> {
        let row = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE a.org_id = $1 AND a.id = $2 AND a.deleted_at IS NULL"))
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.complete(account_from_row(&row)?).await
    }

    /// Adds the account's secrets (as shown) and public keys.
    async fn complete(&self, mut account: ServiceAccount) -> Result<ServiceAccount> {
        let now = to_ms(crate::time::now());
        let secrets = sqlx::query(
            "SELECT prefix, created_at, expires_at FROM service_account_secrets \
             WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at",
        )
        .bind(account.id.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        account.secrets = secrets
            .iter()
            .map(|r| {
                Ok(ClientSecretInfo {
                    prefix: DisplayPrefix::from_stored(r.try_get("prefix")?),
                    created_at: from_ms(r.try_get("created_at")?),
                    expires_at: opt_from_ms(r.try_get("expires_at")?),
                })
            })
            .collect::<Result<_>>()?;
        let keys = sqlx::query("SELECT jwk FROM service_account_keys WHERE account_id = $1 ORDER BY created_at, kid")
            .bind(account.id.as_str())
            .fetch_all(&self.pool)
            .await?;
        account.public_keys = keys
            .iter()
            .map(|r| {
                let jwk: String = r.try_get("jwk")?;
                PublicKey::from_stored(&jwk).map_err(|e| StoreError::Corrupt(e.0))
            })
            .collect::<Result<_>>()?;
        Ok(account)
    }

    /// A live account by its OAuth client id, with what client authentication needs.
    pub async fn client_by_id(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        if !crate::storable(client_id) {
            return Ok(None);
        }
        let Some(row) = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE a.client_id = $1 AND a.deleted_at IS NULL"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let slug: String = row.try_get("org_slug")?;
        let plan: String = row.try_get("org_plan")?;
        let account = self.complete(account_from_row(&row)?).await?;
        let now = to_ms(crate::time::now());
        let hashes = sqlx::query(
            "SELECT hash, hash_kind, expires_at FROM service_account_secrets \
             WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(account.id.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let kind = HashKind::parse(&r.try_get::<String, _>("hash_kind")?)?;
            Ok((r.try_get("hash")?, kind, opt_from_ms(r.try_get("expires_at")?)))
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(ClientRecord {
            account,
            org_slug: keyward_core::domain::Slug::parse(&slug).map_err(|e| StoreError::Corrupt(e.0))?,
            org_plan: plan.parse().map_err(|e: keyward_core::domain::Invalid| StoreError::Corrupt(e.0))?,
            secret_hashes: hashes,
        }))
    }

    /// What a client secret grants, found by the client id and the secret's SHA-256: a
    /// client id always names its client, so a secret equal to another client's never
    /// finds that one. Deleted accounts have no secrets left, so they are never found.
    pub async fn client_secret_grant(&self, client_id: &str, hash: &SecretHash) -> Result<Option<CredentialGrant>> {
        if !crate::storable(client_id) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT s.hash, s.prefix, s.expires_at, a.id, a.client_id, a.name, a.org_id, o.slug AS org_slug, o.plan AS org_plan, m.role \
             FROM service_account_secrets s \
             JOIN service_accounts a ON a.id = s.account_id \
             JOIN orgs o ON o.id = a.org_id \
             LEFT JOIN memberships m ON m.org_id = a.org_id AND m.principal_id = a.id \
             WHERE a.client_id = $1 AND s.hash = $2 AND s.hash_kind = 'sha256'",
        )
        .bind(client_id)
        .bind(hash.to_hex())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let account = ServiceAccountId::parse(&id).ok_or_else(|| corrupt("service account id", &id))?;
        let org: String = row.try_get("org_id")?;
        let slug: String = row.try_get("org_slug")?;
        let plan: String = row.try_get("org_plan")?;
        let stored: String = row.try_get("hash")?;
        Ok(Some(CredentialGrant {
            principal: Principal::service_account(&account),
            credential: CredentialRef::ClientSecret { account, client_id: row.try_get("client_id")? },
            prefix: DisplayPrefix::from_stored(row.try_get("prefix")?),
            org_id: OrgId::parse(&org).ok_or_else(|| corrupt("org id", &org))?,
            org_slug: keyward_core::domain::Slug::parse(&slug).map_err(|e| StoreError::Corrupt(e.0))?,
            org_plan: plan.parse().map_err(|e: keyward_core::domain::Invalid| StoreError::Corrupt(e.0))?,
            principal_label: row.try_get("name")?,
            own_permissions: None,
            role: row.try_get("role")?,
            secret_hash: SecretHash::from_hex(&stored).ok_or_else(|| corrupt("secret hash", "…"))?,
            expires_at: opt_from_ms(row.try_get("expires_at")?),
            revoked: false,
            key_origin: Default::default(),
        }))
    }

    /// Replaces an imported bcrypt client secret of `account` by its fast hash after a
    /// successful check. Returns whether this call did it (a concurrent request may have
    /// been first).
    pub async fn upgrade_client_secret(
        &self,
        account: &ServiceAccountId,
        bcrypt: &str,
        hash: &SecretHash,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM service_account_secrets WHERE account_id = $1 AND hash = $2 AND hash_kind = 'bcrypt' \
             RETURNING created_at, expires_at",
        )
        .bind(account.as_str())
        .bind(bcrypt)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = done else { return Ok(false) };
        let account = account.as_str();
        let created: i64 = row.try_get("created_at")?;
        let expires: Option<i64> = row.try_get("expires_at")?;
        sqlx::query(
            "INSERT INTO service_account_secrets (hash, hash_kind, account_id, prefix, created_at, expires_at) \
             VALUES ($1, 'sha256', $2, '', $3, $4)",
        )
        .bind(hash.to_hex())
        .bind(account)
        .bind(created)
        .bind(expires)
        .execute(&mut **tx)
        .await
        .map_err(crate::conflict_as("this secret for this client"))?;
        self.record_change(&mut tx, &Change::KeyCreated).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The deployment's secret `name`: the one stored, or `candidate` if none is yet (the
    /// first instance to ask stores it; every other one reads it).
    pub async fn server_secret(&self, name: &str, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(to_ms(crate::time::now()))
        .execute(&self.pool)
        .await?;
        let row =
            sqlx::query("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(row.try_get("value")?)
    }

    /// Adds a new secret; the old ones stay valid for `grace` (zero: they stop now).
    pub async fn rotate_client_secret(
        &self,
        org: &OrgId,
        id: &ServiceAccountId,
        secret: &NewClientSecret,
        grace: Duration,
        actor: &Actor,
    ) -> Result<ServiceAccount> {
        // A rotation is a compare-and-set on the secrets as read here: of several
        // rotations that read them at once, one wins and the others are `Concurrent`
        // (as for key rolls), rather than each answering a secret the next one removes.
        let before = self.secret_hashes(&self.pool, id).await?;
        let now = crate::time::now();
        let mut tx = self.begin_write().await?;
        lock_live_account(&mut tx, org, id).await?;
        if self.secret_hashes(&mut **tx, id).await? != before {
            return Err(StoreError::Concurrent("this service account's secrets"));
        }
        if grace > Duration::zero() {
            let until = to_ms(now + grace);
            sqlx::query(
                "UPDATE service_account_secrets SET expires_at = $1 WHERE account_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
            )
            .bind(until)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("DELETE FROM service_account_secrets WHERE account_id = $1")
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
        }
        insert_secret(&mut tx, id, secret).await?;
        // Cached grants of the old secrets carry their old expiry: drop them.
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: id.to_string() }).await?;
        self.record_change(&mut tx, &Change::KeyCreated).await?;
        let event = AuditEvent::new(Some(org), actor, AuditAction::ServiceAccountSecretRotated)
            .target("service_account", id)
            .detail(serde_json::json!({ "grace_seconds": grace.num_seconds() }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        self.service_account(org, id).await
    }

    /// Every stored secret hash of an account, sorted.
    async fn secret_hashes<'e>(
        &self,
        exec: impl sqlx::Executor<'e, Database = Any>,
        id: &ServiceAccountId,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT hash FROM service_account_secrets WHERE account_id = $1 ORDER BY hash")
            .bind(id.as_str())
            .fetch_all(exec)
            .await?)
    }

    /// Registers another public key.
    pub async fn add_public_key(
        &self,
        org: &OrgId,
        id: &ServiceAccountId,
        key: &PublicKey,
        actor: &Actor,
    ) -> Result<ServiceAccount> {
        let mut tx = self.pool.begin().await?;
        lock_live_account(&mut tx, org, id).await?;
        insert_public_key(&mut tx, id, key).await?;
        let event = AuditEvent::new(Some(org), actor, AuditAction::ServiceAccountKeyAdded)
            .target("service_account", id)
            .detail(serde_json::json!({ "kid": key.kid(), "alg": key.alg().as_str() }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        self.service_account(org, id).await
    }

    /// Removes a registered public key: assertions signed with it are refused from now.
    pub async fn remove_public_key(&self, org: &OrgId, id: &ServiceAccountId, kid: &str, actor: &Actor) -> Result<()> {
        if !crate::storable(kid) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM service_account_keys WHERE kid = $1 AND account_id = \
             (SELECT id FROM service_accounts WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL)",
        )
        .bind(kid)
        .bind(id.as_str())
        .bind(org.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let event = AuditEvent::new(Some(org), actor, AuditAction::ServiceAccountKeyRemoved)
            .target("service_account", id)
            .detail(serde_json::json!({ "kid": kid }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an account with no rule applied (tests, tools): see
    /// [`Store::delete_service_account_checked`].
    pub async fn delete_service_account(&self, org: &OrgId, id: &ServiceAccountId, actor: &Actor) -> Result<()> {
        self.delete_service_account_checked(org, id, actor, |_| Ok::<(), StoreError>(())).await
    }

    /// Deletes an account: its membership, secrets and public keys go, its API keys and
    /// tokens are revoked, and every cache drops its grants. `check` sees the account's
    /// standing read inside the transaction with the organization locked (as
    /// [`Store::remove_member_checked`]'s does) and may refuse.
    pub async fn delete_service_account_checked<E: From<StoreError>>(
        &self,
        org: &OrgId,
        id: &ServiceAccountId,
        actor: &Actor,
        check: impl Fn(&crate::members::Standing) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        // Its revocations lock every key and token of the account, in an order of
        // PostgreSQL's choosing, which can deadlock with a family being revoked: a
        // deadlock victim runs again (the check with it); a refusal does not.
        crate::retrying(|| self.delete_service_account_once(org, id, actor, &check)).await?
    }

    /// One attempt: a store error (retried when transient) outside, the check's
    /// refusal inside.
    async fn delete_service_account_once<E>(
        &self,
        org: &OrgId,
        id: &ServiceAccountId,
        actor: &Actor,
        check: &impl Fn(&crate::members::Standing) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let now = to_ms(crate::time::now());
        let mut tx = self.begin_write().await?;
        let before = crate::members::lock_and_read(&mut tx, org, id.as_str()).await?;
        if let Err(refused) = check(&before) {
            return Ok(Err(refused));
        }
        let done = sqlx::query(
            "UPDATE service_accounts SET deleted_at = $1 WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id.as_str())
        .bind(org.as_str())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // The membership goes first: a token or key being issued holds it (`FOR KEY
        // SHARE`) until it commits, so the revocations below, which start after this
        // delete, see every credential issued before it.
        for sql in [
            "DELETE FROM memberships WHERE principal_id = $1",
            "DELETE FROM service_account_secrets WHERE account_id = $1",
            "DELETE FROM service_account_keys WHERE account_id = $1",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut **tx).await?;
        }
        for sql in [
            "UPDATE api_keys SET revoked_at = $2, updated_at = $2 WHERE principal_id = $1 AND revoked_at IS NULL",
            "UPDATE oauth_tokens SET revoked_at = $2 WHERE principal_id = $1 AND revoked_at IS NULL",
        ] {
            sqlx::query(sql).bind(id.as_str()).bind(now).execute(&mut **tx).await?;
        }
        self.record_change(&mut tx, &Change::Member { org_id: org.clone(), principal_id: id.to_string() }).await?;
        let event = AuditEvent::new(Some(org), actor, AuditAction::ServiceAccountDeleted)
            .target("service_account", id)
            .detail(serde_json::json!({ "role": before.role }));
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Records a JWT id seen in an assertion from `issuer`, valid until `expires_at`.
    /// `false`: it was seen before — a replay. Expired ids of the same issuer are pruned.
    pub async fn use_jti(&self, issuer: &str, jti: &str, expires_at: DateTime<Utc>) -> Result<bool> {
        let now = to_ms(crate::time::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM assertion_jtis WHERE issuer = $1 AND expires_at < $2")
            .bind(issuer)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query("INSERT INTO assertion_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3)")
            .bind(issuer)
            .bind(jti)
            .bind(to_ms(expires_at))
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
