//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use keyward_store::Store;

use crate::auth::Authenticator;
use crate::config::rate_limits::RateLimitSettings;
use crate::config::Settings;
use crate::deployment::Deployment;
use crate::metrics::Metrics;
use crate::ratelimit::counters::Counters;
use crate::ratelimit::credential::CredentialLimits;
use crate::ratelimit::passwords::PasswordChecks;
use crate::ratelimit::redis::RedisCounters;
use crate::ratelimit::signin::SignInLimit;
use crate::ratelimit::{FailureLimit, Rate};
use crate::usage::UsageRecorder;

/// Cheap to clone: one `Arc` around [`Shared`].
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub settings: Settings,
    pub store: Store,
    pub auth: Authenticator,
    pub usage: Arc<UsageRecorder>,
    pub metrics: Arc<Metrics>,
    /// Failure counters of the sign-in and device pages.
    pub limits: Limits,
    /// The key of the web UI's CSRF tokens, shared by every instance (stored once).
    pub csrf: crate::http::web::csrf::CsrfKey,
}

/// How fast people may get things wrong (per process; `[rate_limits]`).
pub struct Limits {
    /// Failed sign-ins of one e-mail from one client address.
    pub login_pair: SignInLimit,
    /// Failed sign-ins per e-mail address, from anywhere.
    pub login_email: SignInLimit,
    /// Failed sign-ins per client address.
    pub login_address: SignInLimit,
    /// Wrong user codes per person and per client address (RFC 8628 §5.1).
    pub user_code: FailureLimit,
    /// Links (`GET /device?user_code=…`) naming no pending code, counted apart from typed
    /// codes so that a stale link spends none of the person's tries.
    pub user_code_links: FailureLimit,
    /// The bound on password hashes running at once.
    pub passwords: PasswordChecks,
    /// Per-credential limits by plan.
    pub credentials: CredentialLimits,
    /// `POST /oauth/device_authorization`, per client address and per client id.
    pub device_authorizations: Counters,
    pub device_per_address: Rate,
    pub device_per_client: Rate,
}

impl Limits {
    /// `redis`: the shared counters, when `rate_limits.redis_url` is set.
    pub fn new(settings: &RateLimitSettings, metrics: Arc<Metrics>, redis: Option<Arc<RedisCounters>>) -> Self {
        let counters = || match &redis {
            Some(r) => Counters::Redis(r.clone()),
            None => Counters::Local(Default::default()),
        };
        Self {
            login_pair: SignInLimit::new(settings.sign_in_per_email_and_address, redis.clone()),
            login_email: SignInLimit::new(settings.sign_in_per_email, redis.clone()),
            login_address: SignInLimit::new(settings.sign_in_per_address, redis.clone()),
            user_code: FailureLimit::of(settings.user_codes),
            user_code_links: FailureLimit::of(settings.user_codes),
            passwords: PasswordChecks::new(settings.password_hashes, settings.password_hash_wait, metrics),
            credentials: CredentialLimits::new(settings.plans.clone(), counters()),
            device_authorizations: counters(),
            device_per_address: settings.device_authorizations_per_address,
            device_per_client: settings.device_authorizations_per_client,
        }
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// What the rule modules need, from this server's store and settings.
    pub fn deployment(&self) -> Deployment<'_> {
        Deployment::new(&self.store, &self.settings)
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
