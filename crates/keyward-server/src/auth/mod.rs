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
pub mod reason;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderName};
use chrono::Utc;
use keyward_core::credential::{self, Malformed, Presented, Via};
use keyward_core::permission::Roles;
use keyward_core::secret::{SecretError, SecretFormat, SecretHash, SecretKind};
use keyward_store::{CredentialGrant, CredentialRef, Store, StoreError};

pub use cache::{CacheKey, GrantCache};
pub use grant::{Denied, Grant, Identity};
pub use reason::Reason;

use crate::metrics::Metrics;
use crate::ratelimit::FailureLimit;
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
    /// Not looked up: the client address has had too many failed authentications
    /// (`rate_limits.failed_authentications`) and the credential was not in the cache.
    /// The address's quota (nothing left, and when it resets).
    Throttled(crate::ratelimit::quota::Quota),
}

impl Rejection {
    /// Why, as metrics, logs and audit events name it.
    pub fn reason(&self) -> Reason {
        match self {
            Rejection::Missing => Reason::Missing,
            Rejection::Malformed(_) => Reason::Malformed,
            Rejection::Unknown => Reason::Unknown,
            Rejection::Revoked(_) => Reason::Revoked,
            Rejection::Expired(_) => Reason::Expired,
            Rejection::NotMember(_) => Reason::NotMember,
            Rejection::Unavailable(_) => Reason::Unavailable,
            Rejection::Throttled(_) => Reason::RateLimited,
        }
    }

    /// Whether this is a credential that does not exist, counted against the client
    /// address. Revoked and expired keys, and keys of people who left, are real: a
    /// client retrying a stale one is answered from the cache (no lookup to protect),
    /// and it must not lock its address's other, valid keys out; it is audited instead.
    fn is_failure(&self) -> bool {
        matches!(self, Rejection::Malformed(_) | Rejection::Unknown)
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
    /// Failed authentications per client address. Checked only when a credential is
    /// not in the cache, so the warm path takes no lock and a valid cached credential
    /// passes from any address; a throttled address's misses never reach the database.
    failures: FailureLimit,
}

/// Concurrent cache-miss lookups at most.
pub const MAX_CONCURRENT_MISSES: usize = 4;

/// How long a `429` for an address over its failed-authentication limit is held before
/// it is sent: a client that retries at once (a guessing script, one request per
/// connection at a time) is slowed to a few requests a second per connection, instead of
/// spinning through refusals as fast as the server answers them and taking CPU from
/// everyone else. It holds a sleeping task and a socket, nothing more.
pub const THROTTLED_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

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
            failures: FailureLimit::of(settings.rate_limits.failed_authentications),
        }
    }

    pub fn cache(&self) -> &Arc<GrantCache> {
        &self.cache
    }

    /// Authenticates a request by its headers, in DESIGN.md's order of precedence,
    /// with no client address (no per-address limit).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Rejection> {
        self.authenticate_from(headers, None).await
    }

    /// [`authenticate`](Self::authenticate) for a client at `from`: a wrong credential
    /// counts against the address, and an address over its limit gets only what the
    /// cache already knows ([`Rejection::Throttled`] instead of a database lookup).
    pub async fn authenticate_from(&self, headers: &HeaderMap, from: Option<IpAddr>) -> Result<Identity, Rejection> {
        let result = self.authenticate_inner(headers, from).await;
        self.note(&result, from).await;
        match &result {
            Ok(identity) => {
                self.metrics.auth_ok.inc();
                if let Some(key) = identity.grant().credential.api_key() {
                    self.usage.touch(key);
                }
            }
            Err(rejection) => {
                let reason = rejection.reason();
                self.metrics.auth_rejected(reason);
                match rejection {
                    // A credential we know: audited, counted per credential.
                    Rejection::Revoked(g) | Rejection::Expired(g) | Rejection::NotMember(g) => {
                        self.usage.record_failed_use(g, reason.as_str())
                    }
                    Rejection::Unknown | Rejection::Malformed(_) => {
                        tracing::info!(reason = reason.as_str(), "authentication failed")
                    }
                    Rejection::Missing | Rejection::Unavailable(_) | Rejection::Throttled(_) => {}
                }
            }
        }
        result
    }

    /// Counts a wrong credential against its client address, and holds a throttled
    /// address's answer for [`THROTTLED_DELAY`].
    async fn note<T>(&self, result: &Result<T, Rejection>, from: Option<IpAddr>) {
        match (result, from) {
            (Err(rejection), Some(ip)) if rejection.is_failure() => self.failures.fail(&ip.to_string()),
            (Err(Rejection::Throttled(_)), _) => tokio::time::sleep(THROTTLED_DELAY).await,
            _ => {}
        }
    }

    /// The per-address limit before a database lookup: how long `from` must wait.
    fn throttled(&self, from: Option<IpAddr>) -> Option<crate::ratelimit::quota::Quota> {
        let reset = from.and_then(|ip| self.failures.retry_after(&ip.to_string()))?;
        Some(crate::ratelimit::quota::Quota { policy: "failed-auth", rate: self.failures.rate(), remaining: 0, reset })
    }

    async fn authenticate_inner(&self, headers: &HeaderMap, from: Option<IpAddr>) -> Result<Identity, Rejection> {
        let presented = credential::parse(
            headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
            headers.get(&self.api_key_header).map(|v| v.as_bytes()),
            &self.secrets,
        )
        .map_err(Rejection::Malformed)?
        .ok_or(Rejection::Missing)?;
        let (value, via) = match &presented {
            Presented::Secret { value, via } => (value.as_ref(), *via),
            Presented::BasicPair { user, password } => {
                // A service account's own secret is recognised by its prefix; anything
                // else is first an imported key given as the username (precedence 2),
                // then a client id with an imported secret (precedence 4).
                if self.secrets.check(password) == Ok(SecretKind::ServiceAccountSecret) {
                    return Ok(Identity::new(self.client_secret_in(user, password, from).await?, Via::BasicClient));
                }
                match self.grant_in(user, from).await {
                    Err(Rejection::Unknown) => {
                        return Ok(Identity::new(self.client_secret_in(user, password, from).await?, Via::BasicClient))
                    }
                    other => return Ok(Identity::new(other?, Via::BasicUsername)),
                }
            }
        };
        let grant = self.grant_in(value, from).await?;
        Ok(Identity::new(grant, via))
    }

    /// The grant a secret carries, checked for revocation, expiry and membership: an
    /// API key (keyward's or imported) or an access token. Used by request
    /// authentication and by the verify API.
    pub async fn grant_for_secret(&self, value: &str) -> Result<Arc<Grant>, Rejection> {
        self.grant_in(value, None).await
    }

    async fn grant_in(&self, value: &str, from: Option<IpAddr>) -> Result<Arc<Grant>, Rejection> {
        let grant = match self.secrets.check(value) {
            Ok(SecretKind::ApiKey) => self.lookup(&SecretHash::of(value), Source::ApiKey, from).await?,
            Ok(SecretKind::AccessToken) => self.lookup(&SecretHash::of(value), Source::AccessToken, from).await?,
            // A refresh token or a client secret alone is not a credential for requests.
            Ok(_) => return Err(Rejection::Unknown),
            Err(SecretError::Malformed | SecretError::Checksum) => return Err(Rejection::Unknown),
            Err(SecretError::Foreign) => {
                let hash = SecretHash::of(value);
                // Known to be unknown: skip the bcrypt candidates too, so a repeated
                // wrong legacy-looking secret costs no query and no bcrypt check.
                if self.cache.is_known_unknown(&CacheKey::Secret(hash)) {
                    self.metrics.cache_hit.inc();
                    return Err(Rejection::Unknown);
                }
                match self.lookup(&hash, Source::ApiKey, from).await {
                    Err(Rejection::Unknown) => self.legacy.find(value, self).await?,
                    other => other?,
                }
            }
        };
        check(grant, Utc::now())
    }

    /// A service account's grant for its client id and secret (HTTP Basic on any
    /// route, and client authentication at the token endpoint), found by the client id
    /// *and* the secret's hash: a client id always names its client, even when another
    /// client's secret is equal. Any secret text is looked up, whatever it looks like: an
    /// imported secret may resemble a keyward secret (`kw_…`, `kwsa_…`) and must still
    /// work, so the checksum pre-check that spares the database for API keys is not
    /// applied here (the negative cache still answers repeats). An imported secret still
    /// held as bcrypt is checked against that client's bcrypt hashes once, then re-hashed
    /// to the fast form.
    pub async fn client_secret_grant(&self, client_id: &str, secret: &str) -> Result<Arc<Grant>, Rejection> {
        self.client_secret_in(client_id, secret, None).await
    }

    /// [`client_secret_grant`](Self::client_secret_grant) for a client at `from`, under
    /// the per-address limit of failed authentications (the token endpoint's client
    /// authentication).
    pub async fn client_secret_grant_from(
        &self,
        client_id: &str,
        secret: &str,
        from: Option<IpAddr>,
    ) -> Result<Arc<Grant>, Rejection> {
        let result = self.client_secret_in(client_id, secret, from).await;
        self.note(&result, from).await;
        result
    }

    async fn client_secret_in(
        &self,
        client_id: &str,
        secret: &str,
        from: Option<IpAddr>,
    ) -> Result<Arc<Grant>, Rejection> {
        let hash = SecretHash::of(secret);
        let source = Source::ClientSecret { client_id };
        if self.cache.is_known_unknown(&source.key(&hash)) {
            self.metrics.cache_hit.inc();
            return Err(Rejection::Unknown);
        }
        let grant = match self.lookup(&hash, source, from).await {
            Err(Rejection::Unknown) => self.legacy.find_client_secret(client_id, secret, self).await?,
            other => other?,
        };
        // The store found it by this client id; checked again so that a wrong row can
        // never authenticate another client.
        match &grant.credential {
            CredentialRef::ClientSecret { client_id: owner, .. } if owner == client_id => check(grant, Utc::now()),
            _ => Err(Rejection::Unknown),
        }
    }

    /// The grant for a fast hash: cache first, then one query to the table `source`
    /// names (the secret's prefix, or the presentation, already told which).
    /// A miss from an address over its failure limit is refused before the database.
    async fn lookup(
        &self,
        hash: &SecretHash,
        source: Source<'_>,
        from: Option<IpAddr>,
    ) -> Result<Arc<Grant>, Rejection> {
        let key = source.key(hash);
        let generation = match self.cache.get(&key) {
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
        if let Some(quota) = self.throttled(from) {
            return Err(Rejection::Throttled(quota));
        }
        self.metrics.cache_miss.inc();
        let _permit = self.miss_gate.acquire().await.expect("the gate is never closed");
        let found = match source {
            Source::ApiKey => self.store.key_grant_by_hash(hash).await.map(|f| f.map(CredentialGrant::from)),
            Source::AccessToken => self.store.token_grant_by_hash(hash).await,
            Source::ClientSecret { client_id } => self.store.client_secret_grant(client_id, hash).await,
        };
        match found {
            // The index found the row by equality; the comparison that decides is
            // still made in constant time, independent of the database's.
            Ok(Some(found)) if found.secret_hash.ct_eq(hash) => {
                let grant = Arc::new(Grant::from_found(found, &self.roles));
                self.cache.insert(generation, key, grant.clone());
                Ok(grant)
            }
            Ok(_) => {
                self.cache.insert_unknown(generation, key);
                Err(Rejection::Unknown)
            }
            Err(e) => Err(Rejection::Unavailable(e)),
        }
    }
}

/// Which table a secret's hash is looked up in.
#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    ApiKey,
    AccessToken,
    /// A client secret, presented with the client id it must belong to.
    ClientSecret {
        client_id: &'a str,
    },
}

impl Source<'_> {
    fn key(&self, hash: &SecretHash) -> CacheKey {
        match self {
            Source::ApiKey | Source::AccessToken => CacheKey::Secret(*hash),
            Source::ClientSecret { client_id } => CacheKey::client_secret(client_id, hash),
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
