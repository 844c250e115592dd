//! What the rule modules ([`crate::keys`], [`crate::service_accounts`]) need from the
//! running deployment: the store, the secret format, the roles and the plan rule. The
//! server builds it from its state, the CLI from its settings, tests by hand: every caller
//! goes through the same rule functions.

use keyward_core::domain::Plan;
use keyward_core::permission::Roles;
use keyward_core::secret::SecretFormat;
use keyward_store::Store;

use crate::config::Settings;

#[derive(Clone, Copy)]
pub struct Deployment<'a> {
    pub store: &'a Store,
    pub secrets: &'a SecretFormat,
    pub roles: &'a Roles,
    /// The lowest plan whose organizations may have service accounts.
    pub min_plan: Plan,
}

impl<'a> Deployment<'a> {
    /// The deployment `settings` describe, writing to `store`.
    pub fn new(store: &'a Store, settings: &'a Settings) -> Self {
        Self { store, secrets: &settings.secrets, roles: &settings.roles, min_plan: settings.service_accounts_min_plan }
    }
}
