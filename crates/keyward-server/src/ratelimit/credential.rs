//! Per-credential limits by organization plan (`[rate_limits.plans]`, e.g.
//! `free = "600/1m"`; a plan without an entry is unlimited).
//!
//! Every authenticated request on `/auth/check`, the gateway and the management API
//! counts against its credential (a key, an access token, a service account's secret),
//! and so does every check of a key by the verify API. Within the limit the answer
//! carries `RateLimit-Policy`/`RateLimit`; over it, `429` (verify: `RATE_LIMITED`).
//! Browser sessions are people at a keyboard and are not counted.

use std::collections::BTreeMap;

use keyward_core::domain::Plan;

use super::counters::Counters;
use super::quota::Quota;
use super::Rate;
use crate::auth::Grant;

/// The policy's name in the headers.
pub const POLICY: &str = "per-credential";

/// What a request's credential may still do.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its plan has no limit.
    Unlimited,
    Within(Quota),
    Over(Quota),
}

pub struct CredentialLimits {
    plans: BTreeMap<Plan, Rate>,
    counters: Counters,
}

impl CredentialLimits {
    pub fn new(plans: BTreeMap<Plan, Rate>, counters: Counters) -> Self {
        Self { plans, counters }
    }

    /// Counts one use of `grant`'s credential.
    pub async fn check(&self, grant: &Grant) -> Verdict {
        if matches!(grant.credential, keyward_store::CredentialRef::Session { .. }) {
            return Verdict::Unlimited;
        }
        let Some(rate) = self.plans.get(&grant.org_plan).copied() else { return Verdict::Unlimited };
        let key = format!("cred:{}:{}", grant.credential.kind(), grant.credential.id());
        // An outage of shared counters fails open here: a credential keeps working
        // (logged and counted by the counters).
        let Some((count, reset)) = self.counters.hit(&key, rate).await else { return Verdict::Unlimited };
        let quota = Quota { policy: POLICY, rate, remaining: rate.max.saturating_sub(count), reset };
        if count > rate.max {
            Verdict::Over(quota)
        } else {
            Verdict::Within(quota)
        }
    }
}
