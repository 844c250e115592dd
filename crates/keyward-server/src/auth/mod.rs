//! Authentication: a request's credential in, an [`Identity`] out.
//!
//! The warm path touches no database and writes nothing: parse the header, check the
//! secret's checksum, hash it, find the [`Grant`] in the [`cache::GrantCache`], check
//! expiry and membership, note the use in memory ([`crate::usage`]). A miss costs one
//! indexed query. A credential that is present but not valid is a [`Rejection`], never
//! an anonymous request.
//!
//! # Layout
//!
//! - [`grant`]: what a credential grants ([`Grant`]) and the caller ([`Identity`]).
//! - [`cache`]: the bounded grant cache and its race-free invalidation.
//! - [`follow`]: the task that reads the change log and invalidates.
//! - [`legacy`]: imported bcrypt keys, checked off the runtime and upgraded on first use.

pub mod cache;
pub mod follow;
pub mod grant;
mod legacy;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderName};
use chrono::Utc;
use keyward_core::credential::{self, Malformed, Presented, Via};
use keyward_core::permission::Roles;
use keyward_core::secret::{SecretError, SecretFormat, SecretHash, SecretKind};
use keyward_store::{Store, StoreError};

pub use cache::GrantCache;
pub use grant::{Grant, Identity};

use crate::metrics::Metrics;
use crate::usage::UsageRecorder;

/// Why a credential was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// No credential at all.
    Missing,
    /// A credential that cannot be read.
    Malformed(Malformed),
    /// Well formed but unknown (or a checksum mismatch: a typo).
    Unknown,
    Revoked(Arc<Grant>),
    Expired(Arc<Grant>),
    /// The principal is no longer a member of the key's organization.
    NotMember(Arc<Grant>),
    /// The database could not be asked: fail closed (503), never open.
    Unavailable(StoreError),
}

impl Rejection {
    /// The label used in metrics and audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed(_) => "malformed",
            Rejection::Unknown => "unknown",
            Rejection::Revoked(_) => "revoked",
            Rejection::Expired(_) => "expired",
            Rejection::NotMember(_) => "not_member",
            Rejection::Unavailable(_) => "unavailable",
        }
    }
}

/// Turns presented credentials into identities. One per server; shared by handlers.
pub struct Authenticator {
    store: Store,
    secrets: SecretFormat,
    roles: Roles,
    api_key_header: HeaderName,
    cache: Arc<GrantCache>,
    usage: Arc<UsageRecorder>,
    metrics: Arc<Metrics>,
    legacy: legacy::LegacyKeys,
    /// Bounds the database lookups cache misses may run at once: a flood of distinct
    /// well-formed wrong keys (the checksum is public, so they are easy to make) queues
    /// here instead of taking every database connection.
    miss_gate: tokio::sync::Semaphore,
}

/// Concurrent cache-miss lookups at most.
pub const MAX_CONCURRENT_MISSES: usize = 4;

impl Authenticator {
    pub fn new(
        store: Store,
        settings: &crate::config::Settings,
        cache: Arc<GrantCache>,
        usage: Arc<UsageRecorder>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            legacy: legacy::LegacyKeys::new(store.clone()),
            store,
            secrets: settings.secrets.clone(),
            roles: settings.roles.clone(),
            api_key_header: settings.api_key_header.clone(),
            cache,
            usage,
            metrics,
            miss_gate: tokio::sync::Semaphore::new(MAX_CONCURRENT_MISSES),
        }
    }

    pub fn cache(&self) -> &Arc<GrantCache> {
        &self.cache
    }

    /// Authenticates a request by its headers, in DESIGN.md's order of precedence.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Rejection> {
        let result = self.authenticate_inner(headers).await;
        match &result {
            Ok(identity) => {
                self.metrics.auth_ok.inc();
                self.usage.touch(&identity.grant().key_id);
            }
            Err(rejection) => {
                self.metrics.auth_rejected(rejection.reason());
                self.usage.record_rejection(rejection);
            }
        }
        result
    }

    async fn authenticate_inner(&self, headers: &HeaderMap) -> Result<Identity, Rejection> {
        let presented = credential::parse(
            headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
            headers.get(&self.api_key_header).map(|v| v.as_bytes()),
            &self.secrets,
        )
        .map_err(Rejection::Malformed)?
        .ok_or(Rejection::Missing)?;
        let (value, via) = match &presented {
            Presented::Secret { value, via } => (value.as_ref(), *via),
            // Until client credentials exist, a Basic pair can only be an imported key
            // given as the username with a (ignored) password.
            Presented::BasicPair { user, .. } => (user.as_str(), Via::BasicUsername),
        };
        let grant = self.grant_for_secret(value).await?;
        Ok(Identity::new(grant, via))
    }

    /// The grant a secret carries, checked for revocation, expiry and membership.
    /// Used by request authentication and by the verify API.
    pub async fn grant_for_secret(&self, value: &str) -> Result<Arc<Grant>, Rejection> {
        let grant = match self.secrets.check(value) {
            Ok(SecretKind::ApiKey) => self.lookup(&SecretHash::of(value)).await?,
            // Tokens and service-account secrets are not issued by this version.
            Ok(_) => return Err(Rejection::Unknown),
            Err(SecretError::Malformed | SecretError::Checksum) => return Err(Rejection::Unknown),
            Err(SecretError::Foreign) => {
                let hash = SecretHash::of(value);
                // Known to be unknown: skip the bcrypt candidates too, so a repeated
                // wrong legacy-looking secret costs no query and no bcrypt check.
                if self.cache.is_known_unknown(&hash) {
                    self.metrics.cache_hit.inc();
                    return Err(Rejection::Unknown);
                }
                match self.lookup(&hash).await {
                    Err(Rejection::Unknown) => self.legacy.find(value, self).await?,
                    other => other?,
                }
            }
        };
        check(grant, Utc::now())
    }

    /// The grant for a fast hash: cache first, then one query.
    async fn lookup(&self, hash: &SecretHash) -> Result<Arc<Grant>, Rejection> {
        let generation = match self.cache.get(hash) {
            cache::Lookup::Hit(grant) => {
                self.metrics.cache_hit.inc();
                return Ok(grant);
            }
            cache::Lookup::KnownUnknown => {
                self.metrics.cache_hit.inc();
                return Err(Rejection::Unknown);
            }
            cache::Lookup::Miss(generation) => generation,
        };
        self.metrics.cache_miss.inc();
        let _permit = self.miss_gate.acquire().await.expect("the gate is never closed");
        match self.store.key_grant_by_hash(hash).await {
            // The index found the row by equality; the comparison that decides is
            // still made in constant time, independent of the database's.
            Ok(Some(found)) if found.secret_hash.ct_eq(hash) => {
                let grant = Arc::new(Grant::from_key(found, &self.roles));
                self.cache.insert(generation, *hash, grant.clone());
                Ok(grant)
            }
            Ok(_) => {
                self.cache.insert_unknown(generation, *hash);
                Err(Rejection::Unknown)
            }
            Err(e) => Err(Rejection::Unavailable(e)),
        }
    }
}

/// Whether a grant is usable now.
fn check(grant: Arc<Grant>, now: chrono::DateTime<Utc>) -> Result<Arc<Grant>, Rejection> {
    if grant.revoked {
        Err(Rejection::Revoked(grant))
    } else if !grant.member {
        Err(Rejection::NotMember(grant))
    } else if grant.expires_at.is_some_and(|t| t <= now) {
        Err(Rejection::Expired(grant))
    } else {
        Ok(grant)
    }
}
