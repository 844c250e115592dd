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
//! ```
//!
//! Each limit is `COUNT/WINDOW`. Why each default is what it is: docs/decisions.md.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::address::TrustedProxies;
use super::Rate;
use crate::config::ConfigError;

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
    Ok(RateLimitSettings {
        trusted_proxies: TrustedProxies::new(trusted),
        failed_authentications: rate("failed_authentications", &raw.failed_authentications)?,
        sign_in_per_email_and_address: rate("sign_in_per_email_and_address", &raw.sign_in_per_email_and_address)?,
        sign_in_per_address: rate("sign_in_per_address", &raw.sign_in_per_address)?,
        sign_in_per_email: rate("sign_in_per_email", &raw.sign_in_per_email)?,
        user_codes: rate("user_codes", &raw.user_codes)?,
        password_hashes,
        password_hash_wait,
    })
}
