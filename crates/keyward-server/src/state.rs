//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use keyward_store::Store;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::metrics::Metrics;
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
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
