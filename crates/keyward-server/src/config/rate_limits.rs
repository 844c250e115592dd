//! The `[rate_limits]` table: what it may hold, its defaults, and its checks.
//!
//! ```toml
//! [rate_limits]
//! trusted_proxies = ["10.0.0.0/8"]        # CIDRs whose X-Forwarded-For is believed; default none
//! failed_authentications = "100/1m"       # wrong credentials per client address
//! sign_in_per_email_and_address = "5/15m" # failed sign-ins of one e-mail from one address
//! sign_in_per_address = "20/15m"          # failed sign-ins from one address
//! sign_in_per_email = "50/15m"            # failed sign-ins of one e-mail, from anywhere
//! user_codes = "5/5m"                     # wrong device user codes, per person and per address
//! password_hashes = 2                     # password checks at once (default: CPUs, at most 4)
//! password_hash_wait = "2s"               # longest wait for one to start (then 503)
//! device_authorizations_per_address = "30/1m"  # POST /oauth/device_authorization
//! device_authorizations_per_client = "300/1m"
//!
//! redis_url = "redis://127.0.0.1:6379/"   # shared counters; default: in the process
//! redis_namespace = "keyward"             # key prefix in Redis
//!
//! [rate_limits.plans]                     # per credential, by organization plan
//! free = "600/1m"                         # a plan not listed is unlimited (the default)
//! ```
//!
//! Each limit is `COUNT/WINDOW`. Why each default is what it is: docs/decisions.md.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;
use keyward_core::domain::Plan;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::ratelimit::proxies::TrustedProxies;
use crate::ratelimit::rate::Rate;

/// The table as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimits {
    #[serde(deserialize_with = "crate::config::list")]
    trusted_proxies: Vec<String>,
    failed_authentications: String,
    sign_in_per_email_and_address: String,
    sign_in_per_address: String,
    sign_in_per_email: String,
    user_codes: String,
    password_hashes: Option<usize>,
    password_hash_wait: String,
    device_authorizations_per_address: String,
    device_authorizations_per_client: String,
    plans: BTreeMap<String, String>,
    redis_url: Option<String>,
    redis_namespace: String,
}

impl Default for RawRateLimits {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            failed_authentications: "100/1m".into(),
            sign_in_per_email_and_address: "5/15m".into(),
            sign_in_per_address: "20/15m".into(),
            sign_in_per_email: "50/15m".into(),
            user_codes: "5/5m".into(),
            password_hashes: None,
            password_hash_wait: "2s".into(),
            device_authorizations_per_address: "30/1m".into(),
            device_authorizations_per_client: "300/1m".into(),
            plans: BTreeMap::new(),
            redis_url: None,
            redis_namespace: "keyward".into(),
        }
    }
}

/// The checked table.
#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    pub trusted_proxies: TrustedProxies,
    /// Wrong credentials per client address.
    pub failed_authentications: Rate,
    pub sign_in_per_email_and_address: Rate,
    pub sign_in_per_address: Rate,
    pub sign_in_per_email: Rate,
    /// Wrong device user codes, per person and per client address (RFC 8628 §5.1).
    pub user_codes: Rate,
    /// Password checks that may run at once.
    pub password_hashes: usize,
    /// How long a password check may wait to start.
    pub password_hash_wait: Duration,
    /// `POST /oauth/device_authorization` per client address and per client id.
    pub device_authorizations_per_address: Rate,
    pub device_authorizations_per_client: Rate,
    /// Per-credential limits by plan; a plan not here is unlimited.
    pub plans: BTreeMap<Plan, Rate>,
    /// Where shared counters live; `None`: in the process.
    pub redis_url: Option<String>,
    pub redis_namespace: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        check(RawRateLimits::default()).expect("the defaults are valid")
    }
}

fn rate(key: &str, value: &str) -> Result<Rate, ConfigError> {
    value.parse().map_err(|fix: String| ConfigError(format!("`rate_limits.{key}` = {value:?}: {fix}")))
}

pub(crate) fn check(raw: RawRateLimits) -> Result<RateLimitSettings, ConfigError> {
    let trusted = raw
        .trusted_proxies
        .iter()
        .map(|t| {
            // A bare address is a one-address network.
            t.parse::<IpNet>().or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                ConfigError(format!(
                    "`rate_limits.trusted_proxies` has {t:?}: not a CIDR; write e.g. \"10.0.0.0/8\" or \"127.0.0.1\""
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let password_hashes = raw.password_hashes.unwrap_or(cpus.min(4));
    if !(1..=64).contains(&password_hashes) {
        return Err(ConfigError(format!(
            "`rate_limits.password_hashes` = {password_hashes}: must lie between 1 and 64 (each takes 19 MiB while it runs)"
        )));
    }
    let password_hash_wait = humantime::parse_duration(&raw.password_hash_wait)
        .ok()
        .filter(|d| *d <= Duration::from_secs(30))
        .ok_or_else(|| {
            ConfigError(format!(
                "`rate_limits.password_hash_wait` = {:?}: write a duration up to 30s, e.g. \"2s\"",
                raw.password_hash_wait
            ))
        })?;
    let mut plans = BTreeMap::new();
    for (name, value) in &raw.plans {
        let plan: Plan = name.parse().map_err(|e: keyward_core::domain::Invalid| {
            ConfigError(format!("`rate_limits.plans` names {name:?}: {}", e.0))
        })?;
        plans.insert(plan, rate(&format!("plans.{name}"), value)?);
    }
    if let Some(url) = &raw.redis_url {
        // The URL may hold a password: name only its scheme.
        if redis::Client::open(url.as_str()).is_err() {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(ConfigError(format!(
                "`rate_limits.redis_url` (scheme {scheme:?}) is not a Redis URL; write e.g. \"redis://127.0.0.1:6379/\""
            )));
        }
    }
    if raw.redis_namespace.is_empty() || raw.redis_namespace.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError("`rate_limits.redis_namespace`: write a non-empty name without spaces".into()));
    }
    Ok(RateLimitSettings {
        trusted_proxies: TrustedProxies::new(trusted),
        failed_authentications: rate("failed_authentications", &raw.failed_authentications)?,
        sign_in_per_email_and_address: rate("sign_in_per_email_and_address", &raw.sign_in_per_email_and_address)?,
        sign_in_per_address: rate("sign_in_per_address", &raw.sign_in_per_address)?,
        sign_in_per_email: rate("sign_in_per_email", &raw.sign_in_per_email)?,
        user_codes: rate("user_codes", &raw.user_codes)?,
        password_hashes,
        password_hash_wait,
        device_authorizations_per_address: rate(
            "device_authorizations_per_address",
            &raw.device_authorizations_per_address,
        )?,
        device_authorizations_per_client: rate(
            "device_authorizations_per_client",
            &raw.device_authorizations_per_client,
        )?,
        plans,
        redis_url: raw.redis_url,
        redis_namespace: raw.redis_namespace,
    })
}

#[cfg(test)]
mod tests {
    use crate::Settings;

    #[test]
    fn defaults_and_written_values() {
        let d = Settings::from_toml("").unwrap().rate_limits;
        assert_eq!(d.failed_authentications.to_string(), "100/60s");
        assert_eq!(d.sign_in_per_email_and_address.to_string(), "5/900s");
        assert!(d.plans.is_empty(), "unlimited unless set");
        assert!((1..=4).contains(&d.password_hashes));
        let s = Settings::from_toml(
            "[rate_limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\npassword_hashes = 2\n\
             [rate_limits.plans]\nfree = \"600/1m\"\npro = \"6000/1m\"",
        )
        .unwrap()
        .rate_limits;
        assert_eq!(s.password_hashes, 2);
        assert_eq!(s.plans[&keyward_core::domain::Plan::Free].to_string(), "600/60s");
        let ip = "10.1.2.3".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", "192.0.2.1".parse().unwrap());
        assert_eq!(s.trusted_proxies.client(ip, &h).to_string(), "192.0.2.1");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (toml, key) in [
            ("[rate_limits]\ntrusted_proxies = [\"10.0.0.0/33\"]", "rate_limits.trusted_proxies"),
            ("[rate_limits]\nfailed_authentications = \"lots\"", "rate_limits.failed_authentications"),
            ("[rate_limits]\npassword_hashes = 0", "rate_limits.password_hashes"),
            ("[rate_limits]\npassword_hash_wait = \"1h\"", "rate_limits.password_hash_wait"),
            ("[rate_limits.plans]\ngold = \"1/1m\"", "rate_limits.plans"),
            ("[rate_limits.plans]\nfree = \"0/1m\"", "rate_limits.plans.free"),
        ] {
            let e = Settings::from_toml(toml).err().unwrap_or_else(|| panic!("{toml} is refused")).to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }
}
