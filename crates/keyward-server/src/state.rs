//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use keyward_store::Store;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::deployment::Deployment;
use crate::metrics::Metrics;
use crate::ratelimit::FailureLimit;
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

/// How fast people may get things wrong on the web pages (per process).
pub struct Limits {
    /// Failed sign-ins per e-mail address: 5 in 15 minutes.
    pub login_email: FailureLimit,
    /// Failed sign-ins per client address: 20 in 15 minutes.
    pub login_address: FailureLimit,
    /// Wrong user codes per person and per client address: 5 in 5 minutes (RFC 8628 §5.1).
    pub user_code: FailureLimit,
}

impl Default for Limits {
    fn default() -> Self {
        let minutes = |m: u64| std::time::Duration::from_secs(60 * m);
        Self {
            login_email: FailureLimit::new(5, minutes(15)),
            login_address: FailureLimit::new(20, minutes(15)),
            user_code: FailureLimit::new(5, minutes(5)),
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
