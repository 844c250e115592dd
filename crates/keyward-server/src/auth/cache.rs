//! The grant cache: bounded, with a short-lived negative side, and invalidation that a
//! concurrent fill cannot undo.
//!
//! The race it closes: a request misses, reads a grant from the database, and — before
//! it inserts — the key is revoked and the entry invalidated; the late insert would
//! bring the revoked grant back. So every fill remembers the generation it started in,
//! every invalidation bumps the generation under a write lock, and an insert happens
//! under the read lock only if the generation is unchanged. Fills that lose the race
//! are simply not cached; the next request reads the database again.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use keyward_core::secret::SecretHash;
use keyward_store::Change;
use moka::sync::Cache;

use super::Grant;

/// What a cached grant is found by. A key or a token is its secret alone; a client
/// secret is only ever presented with its client id, and two clients may hold equal
/// secrets (imported ones), so it is cached under both: the two kinds can never meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// An API key or an access token: the SHA-256 of the secret.
    Secret(SecretHash),
    /// A client secret: the SHA-256 of the client id and the secret's SHA-256.
    ClientSecret(SecretHash),
}

impl CacheKey {
    pub fn client_secret(client_id: &str, secret: &SecretHash) -> Self {
        // Length-prefixed, so no two (id, secret) pairs give the same input.
        CacheKey::ClientSecret(SecretHash::of(&format!("{}:{client_id}:{}", client_id.len(), secret.to_hex())))
    }
}

/// The result of a cache lookup.
pub enum Lookup {
    Hit(Arc<Grant>),
    /// Recently looked up and not found.
    KnownUnknown,
    /// Not cached; fill with this generation.
    Miss(u64),
}

pub struct GrantCache {
    positive: Cache<CacheKey, Arc<Grant>>,
    negative: Cache<CacheKey, ()>,
    generation: RwLock<u64>,
}

impl GrantCache {
    /// `capacity` bounds each side; `ttl` is a safety net (changes invalidate at once),
    /// `negative_ttl` bounds how long an unknown secret is answered from memory.
    pub fn new(capacity: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            positive: Cache::builder().max_capacity(capacity).time_to_live(ttl).support_invalidation_closures().build(),
            negative: Cache::builder().max_capacity(capacity).time_to_live(negative_ttl).build(),
            generation: RwLock::new(0),
        }
    }

    pub fn get(&self, hash: &CacheKey) -> Lookup {
        if let Some(grant) = self.positive.get(hash) {
            return Lookup::Hit(grant);
        }
        if self.negative.contains_key(hash) {
            return Lookup::KnownUnknown;
        }
        Lookup::Miss(*self.generation.read().expect("not poisoned"))
    }

    /// Whether `hash` was recently looked up and not found.
    pub fn is_known_unknown(&self, hash: &CacheKey) -> bool {
        self.negative.contains_key(hash)
    }

    pub fn insert(&self, generation: u64, hash: CacheKey, grant: Arc<Grant>) {
        let current = self.generation.read().expect("not poisoned");
        if *current == generation {
            self.positive.insert(hash, grant);
        }
    }

    pub fn insert_unknown(&self, generation: u64, hash: CacheKey) {
        let current = self.generation.read().expect("not poisoned");
        if *current == generation {
            self.negative.insert(hash, ());
        }
    }

    /// Drops every entry a change may have made stale.
    pub fn apply(&self, change: &Change) {
        let mut generation = self.generation.write().expect("not poisoned");
        *generation += 1;
        let result = match change.clone() {
            Change::Key(id) => self.positive.invalidate_entries_if(move |_, g| g.credential.api_key() == Some(&id)),
            // The family's access tokens, and the keys its tokens made (revoked with it).
            Change::Tokens(family) => self.positive.invalidate_entries_if(move |_, g| {
                matches!(&g.credential, keyward_store::CredentialRef::AccessToken { family: f, .. } if *f == family)
                    || g.key_origin.family.as_ref() == Some(&family)
            }),
            Change::Member { org_id, principal_id } => {
                self.positive.invalidate_entries_if(move |_, g| g.org_id == org_id && g.principal.id == principal_id)
            }
            Change::KeyCreated => {
                self.negative.invalidate_all();
                return;
            }
        };
        if result.is_err() {
            // Closures are enabled at build time; should that ever fail, drop everything.
            self.positive.invalidate_all();
        }
    }

    /// Drops everything (the change log could not be read: fail closed).
    pub fn clear(&self) {
        let mut generation = self.generation.write().expect("not poisoned");
        *generation += 1;
        self.positive.invalidate_all();
        self.negative.invalidate_all();
    }

    /// Entries held. The count is kept lazily, so pending work is settled first: call
    /// it when scraping, not on the request path.
    pub fn len(&self) -> u64 {
        self.positive.run_pending_tasks();
        self.positive.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
