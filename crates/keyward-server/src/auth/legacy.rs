//! Imported keys still held as bcrypt.
//!
//! A bcrypt hash cannot be looked up, so a secret that is not in keyward's format and
//! not found by its SHA-256 is checked against each remaining bcrypt hash, off the
//! async runtime, at most two checks at a time (bcrypt is built to be slow, and a flood
//! of wrong legacy-looking keys must not take every core). On a match the hash is
//! replaced by the fast form, so each imported key pays this once. A secret that fails
//! is negative-cached by its SHA-256 before it gets here, so repeats cost nothing.

use std::sync::Arc;

use keyward_core::legacy::BcryptHash;
use keyward_core::secret::SecretHash;
use keyward_store::Store;
use tokio::sync::Semaphore;

use super::{Authenticator, Grant, Rejection};

pub(super) struct LegacyKeys {
    store: Store,
    gate: Semaphore,
}

impl LegacyKeys {
    pub(super) fn new(store: Store) -> Self {
        Self { store, gate: Semaphore::new(2) }
    }

    pub(super) async fn find(&self, value: &str, auth: &Authenticator) -> Result<Arc<Grant>, Rejection> {
        let candidates = self.store.bcrypt_key_secrets().await.map_err(Rejection::Unavailable)?;
        let candidates = candidates.into_iter().map(|(hash, _)| hash).collect();
        let Some(bcrypt) = self.matching(candidates, value).await? else { return Err(Rejection::Unknown) };
        let fast = SecretHash::of(value);
        self.store.upgrade_bcrypt_secret(&bcrypt, &fast).await.map_err(Rejection::Unavailable)?;
        tracing::info!("an imported bcrypt key was used and re-hashed to the fast form");
        auth.lookup(&fast, super::Source::ApiKey, None).await
    }

    /// An imported client secret: checked against that one client's bcrypt hashes.
    pub(super) async fn find_client_secret(
        &self,
        client_id: &str,
        secret: &str,
        auth: &Authenticator,
    ) -> Result<Arc<Grant>, Rejection> {
        let Some(client) = self.store.client_by_id(client_id).await.map_err(Rejection::Unavailable)? else {
            return Err(Rejection::Unknown);
        };
        let candidates = client
            .secret_hashes
            .into_iter()
            .filter(|(_, kind, _)| *kind == keyward_store::HashKind::Bcrypt)
            .map(|(hash, _, _)| hash)
            .collect();
        let Some(bcrypt) = self.matching(candidates, secret).await? else { return Err(Rejection::Unknown) };
        let fast = SecretHash::of(secret);
        let account = &client.account.id;
        match self.store.upgrade_client_secret(account, &bcrypt, &fast).await {
            Ok(_) => {}
            // This client already holds the secret's fast hash (it was imported twice):
            // that row is found below, and this bcrypt row is never reached again.
            Err(keyward_store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(Rejection::Unavailable(e)),
        }
        tracing::info!(client_id, "an imported bcrypt client secret was used and re-hashed to the fast form");
        auth.lookup(&fast, super::Source::ClientSecret { client_id }, None).await
    }

    /// The bcrypt hash among `candidates` that `plain` matches, checked on a blocking
    /// thread with at most two checks running at once.
    async fn matching(&self, candidates: Vec<String>, plain: &str) -> Result<Option<String>, Rejection> {
        if candidates.is_empty() {
            return Ok(None);
        }
        let _permit = self.gate.acquire().await.expect("the semaphore is never closed");
        let plain = plain.to_owned();
        tokio::task::spawn_blocking(move || {
            candidates.into_iter().find(|hash| BcryptHash::parse(hash).is_ok_and(|b| b.verify(&plain)))
        })
        .await
        .map_err(|e| Rejection::Unavailable(keyward_store::StoreError::Corrupt(e.to_string())))
    }
}
