//! Configuration: a TOML file overridden by `KEYWARD_*` environment variables, parsed
//! once at start into [`Settings`], whose fields are already-checked types.
//!
//! Every key has a default, so `keyward serve` starts with no file. A bad value stops
//! the start with a message naming the key and how to fix it. Keys beyond DESIGN.md's
//! list (the `[cache]` table, `usage_flush_interval`, `change_poll_interval`,
//! `permissions`, `[roles]`, `log_format`) are documented in `docs/configuration.md`.

pub mod gateway;
pub mod rate_limits;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::HeaderName;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use keyward_core::domain::{ClientId, Plan};
use keyward_core::permission::{default_roles, Roles, DEFAULT_CATALOGUE};
use keyward_core::secret::SecretFormat;
use serde::{Deserialize, Deserializer};

/// The configuration as written, before checking. Field names are the TOML keys.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    listen: String,
    database_url: String,
    public_url: String,
    key_prefix: String,
    api_key_header: String,
    oauth: RawOAuth,
    device: RawDevice,
    service_accounts: RawServiceAccounts,
    gateway: Option<gateway::RawGateway>,
    #[serde(deserialize_with = "list")]
    permissions: Vec<String>,
    #[serde(deserialize_with = "list_map")]
    roles: BTreeMap<String, Vec<String>>,
    cache: RawCache,
    usage_flush_interval: String,
    change_poll_interval: String,
    log_format: String,
    session_lifetime: String,
    purge: RawPurge,
    rate_limits: rate_limits::RawRateLimits,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawPurge {
    enabled: bool,
    interval: String,
    retention: String,
    batch_size: u32,
    max_batches: u32,
}

impl Default for RawPurge {
    fn default() -> Self {
        Self { enabled: true, interval: "1m".into(), retention: "24h".into(), batch_size: 1000, max_batches: 10 }
    }
}

/// The `[purge]` table: what the background purge deletes and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeSettings {
    /// Off: this instance never purges (another one, or nobody, does).
    pub enabled: bool,
    /// Time between two passes.
    pub interval: Duration,
    /// How long ended tokens, device codes and browser sessions are kept.
    pub retention: Duration,
    /// Rows per delete statement.
    pub batch_size: u32,
    /// Statements per table and pass.
    pub max_batches: u32,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawOAuth {
    metadata: bool,
    access_token_ttl: String,
    refresh_token_ttl: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawDevice {
    #[serde(deserialize_with = "list")]
    client_ids: Vec<String>,
    /// Display names by client id, shown on the approval page.
    names: BTreeMap<String, String>,
    code_lifetime: String,
    interval: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawServiceAccounts {
    min_plan: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawCache {
    capacity: u64,
    ttl: String,
    negative_ttl: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            database_url: "sqlite://keyward.db".into(),
            public_url: "http://127.0.0.1:7070".into(),
            key_prefix: "kw".into(),
            api_key_header: "X-API-Key".into(),
            oauth: RawOAuth::default(),
            device: RawDevice::default(),
            service_accounts: RawServiceAccounts::default(),
            gateway: None,
            permissions: DEFAULT_CATALOGUE.iter().map(|s| s.to_string()).collect(),
            // Configured roles are merged over the defaults in `check`.
            roles: BTreeMap::new(),
            cache: RawCache::default(),
            usage_flush_interval: "60s".into(),
            change_poll_interval: "250ms".into(),
            log_format: "text".into(),
            session_lifetime: "12h".into(),
            purge: RawPurge::default(),
            rate_limits: Default::default(),
        }
    }
}

impl Default for RawOAuth {
    fn default() -> Self {
        Self { metadata: true, access_token_ttl: "1h".into(), refresh_token_ttl: "30d".into() }
    }
}

impl Default for RawDevice {
    fn default() -> Self {
        Self {
            client_ids: vec!["keyward-cli".into(), "keyward-mcp".into()],
            names: BTreeMap::new(),
            code_lifetime: "600s".into(),
            interval: "5s".into(),
        }
    }
}

impl Default for RawServiceAccounts {
    fn default() -> Self {
        Self { min_plan: "free".into() }
    }
}

impl Default for RawCache {
    fn default() -> Self {
        Self { capacity: 100_000, ttl: "5m".into(), negative_ttl: "30s".into() }
    }
}

/// A list given as a TOML array or, from an environment variable, as `a,b,c`.
pub(crate) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Text(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Text(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    })
}

/// The default roles with the configured ones added or replacing them by name, so a
/// deployment can add a role (also from one `KEYWARD_ROLES__NAME` variable) without
/// restating the defaults; a default role is disabled by configuring it as `[]`.
fn roles_over_defaults(configured: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut roles = default_roles();
    roles.extend(configured);
    roles
}

/// A table of lists (`[roles]`), each given as an array or as `a,b,c` text.
fn list_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    struct List(#[serde(deserialize_with = "list")] Vec<String>);
    Ok(BTreeMap::<String, List>::deserialize(d)?.into_iter().map(|(k, List(v))| (k, v)).collect())
}

/// Top-level keys an environment variable may set; other `KEYWARD_*` variables (such
/// as `KEYWARD_CONFIG` or test settings) are not configuration.
const ENV_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "public_url",
    "key_prefix",
    "api_key_header",
    "oauth",
    "device",
    "service_accounts",
    "gateway",
    "permissions",
    "roles",
    "cache",
    "usage_flush_interval",
    "change_poll_interval",
    "log_format",
    "session_lifetime",
    "purge",
    "rate_limits",
];

/// Output format of the server's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The checked configuration.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    /// The URL people and clients reach this server at; no trailing slash.
    pub public_url: String,
    pub secrets: SecretFormat,
    pub api_key_header: HeaderName,
    pub oauth_metadata: bool,
    pub access_token_ttl: Duration,
    /// How long a refresh token may wait to be exchanged (each exchange issues a new one).
    pub refresh_token_ttl: Duration,
    pub device_client_ids: Vec<ClientId>,
    /// Display names of the device clients (every configured id has one).
    pub device_client_names: BTreeMap<String, String>,
    /// How long a device code lives.
    pub device_code_lifetime: Duration,
    /// The initial polling interval of a device code.
    pub device_interval: Duration,
    /// How long a browser session lasts.
    pub session_lifetime: Duration,
    pub service_accounts_min_plan: Plan,
    pub roles: Roles,
    pub cache_capacity: u64,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    /// How often last-used times, usage counts and failed-authentication audit events
    /// are written: at most one write per key per interval.
    pub usage_flush_interval: Duration,
    /// How often the change log is read for revocations made by other processes.
    pub change_poll_interval: Duration,
    pub log_format: LogFormat,
    /// The `[gateway]` table, when the gateway is on (see [`gateway`]).
    pub gateway: Option<gateway::GatewaySettings>,
    pub purge: PurgeSettings,
    /// The `[rate_limits]` table (see [`rate_limits`]).
    pub rate_limits: rate_limits::RateLimitSettings,
}

/// Hides the database URL, which may carry a password.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database", &keyward_store::Backend::of_url(&self.database_url))
            .field("public_url", &self.public_url)
            .field("key_prefix", &self.secrets.prefix())
            .finish_non_exhaustive()
    }
}

/// A configuration error; the message names the key and the fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub(crate) String);

fn bad(key: &str, value: &str, fix: &str) -> ConfigError {
    ConfigError(format!("`{key}` = {value:?}: {fix}"))
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value)
        .map_err(|_| bad(key, value, "not a duration; write e.g. \"250ms\", \"60s\", \"1h\" or \"30d\""))
}

impl Settings {
    /// Loads `path` (when given it must exist; otherwise `keyward.toml` is read if
    /// present), then `KEYWARD_*` variables, then checks everything.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError(format!(
                    "the configuration file {} does not exist; create it or leave out --config",
                    p.display()
                )))
            }
            Some(p) => figment = figment.merge(Toml::file(p)),
            None if Path::new("keyward.toml").exists() => figment = figment.merge(Toml::file("keyward.toml")),
            None => {}
        }
        Self::from_figment(figment.merge(Self::env()))
    }

    fn env() -> Env {
        Env::prefixed("KEYWARD_").split("__").filter(|k| {
            let top = k.as_str().split('.').next().unwrap_or_default().to_ascii_lowercase();
            ENV_KEYS.contains(&top.as_str())
        })
    }

    /// Parses TOML text with no environment (tests and examples).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| ConfigError(format!("{e}; fix it in the configuration file or the KEYWARD_* variable")))?;
        Self::check(raw)
    }

    fn check(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = raw
            .listen
            .parse()
            .map_err(|_| bad("listen", &raw.listen, "not an address; write host:port, e.g. \"127.0.0.1:7070\""))?;
        if keyward_store::Backend::of_url(&raw.database_url).is_none() {
            // The URL may hold a password: name only its scheme.
            let scheme = raw.database_url.split(':').next().unwrap_or_default();
            return Err(ConfigError(format!(
                "`database_url` has scheme {scheme:?}: use sqlite://FILE or postgres://USER@HOST/DB"
            )));
        }
        let public = url::Url::parse(&raw.public_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                bad("public_url", &raw.public_url, "not an http(s) URL; write e.g. \"https://keys.example.com\"")
            })?;
        let secrets = SecretFormat::new(&raw.key_prefix).map_err(|e| bad("key_prefix", &raw.key_prefix, &e.0))?;
        let api_key_header = HeaderName::try_from(raw.api_key_header.as_str())
            .ok()
            .filter(|h| *h != axum::http::header::AUTHORIZATION)
            .ok_or_else(|| bad("api_key_header", &raw.api_key_header, "not a header name (and not Authorization)"))?;
        let roles = Roles::new(&raw.permissions, &roles_over_defaults(raw.roles))
            .map_err(|e| ConfigError(format!("`permissions`/`roles`: {}", e.0)))?;
        let gateway = raw.gateway.map(|g| gateway::check(g, &roles)).transpose()?;
        let min_plan = raw.service_accounts.min_plan.parse().map_err(|e: keyward_core::domain::Invalid| {
            bad("service_accounts.min_plan", &raw.service_accounts.min_plan, &e.0)
        })?;
        let device_client_ids = raw
            .device
            .client_ids
            .iter()
            .map(|c| ClientId::parse(c).map_err(|e| bad("device.client_ids", c, &e.0)))
            .collect::<Result<Vec<_>, _>>()?;
        if raw.cache.capacity == 0 {
            return Err(bad("cache.capacity", "0", "must be at least 1"));
        }
        let log_format = match raw.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(bad("log_format", other, "use \"text\" or \"json\"")),
        };
        let usage_flush_interval = duration("usage_flush_interval", &raw.usage_flush_interval)?;
        let change_poll_interval = duration("change_poll_interval", &raw.change_poll_interval)?;
        if change_poll_interval > Duration::from_secs(1) || change_poll_interval.is_zero() {
            return Err(bad(
                "change_poll_interval",
                &raw.change_poll_interval,
                "must lie between 1ms and 1s: revocations reach other processes within one second",
            ));
        }
        if usage_flush_interval.is_zero() {
            return Err(bad("usage_flush_interval", &raw.usage_flush_interval, "must be positive"));
        }
        let token_ttl = |key: &str, value: &str| {
            let d = duration(key, value)?;
            // Tokens must expire, and their expiry must fit a timestamp.
            if d.is_zero() || d > Duration::from_secs(10 * 365 * 24 * 3600) {
                return Err(bad(key, value, "must lie between 1s and 10 years"));
            }
            Ok(d)
        };
        let access_token_ttl = token_ttl("oauth.access_token_ttl", &raw.oauth.access_token_ttl)?;
        let device_code_lifetime = token_ttl("device.code_lifetime", &raw.device.code_lifetime)?;
        let device_interval = duration("device.interval", &raw.device.interval)?;
        if device_interval.is_zero() || device_interval > Duration::from_secs(60) {
            return Err(bad("device.interval", &raw.device.interval, "must lie between 1ms and 60s"));
        }
        let session_lifetime = token_ttl("session_lifetime", &raw.session_lifetime)?;
        if let Some(unknown) = raw.device.names.keys().find(|k| !raw.device.client_ids.contains(k)) {
            return Err(ConfigError(format!(
                "`device.names` names {unknown:?}, which is not in `device.client_ids`; add it there or remove the name"
            )));
        }
        let device_client_names = raw
            .device
            .client_ids
            .iter()
            .map(|id| {
                let name = raw.device.names.get(id).cloned().unwrap_or_else(|| match id.as_str() {
                    "keyward-cli" => "keyward CLI".to_owned(),
                    "keyward-mcp" => "keyward MCP client".to_owned(),
                    other => other.to_owned(),
                });
                (id.clone(), name)
            })
            .collect();
        let refresh_token_ttl = token_ttl("oauth.refresh_token_ttl", &raw.oauth.refresh_token_ttl)?;
        let purge = check_purge(&raw.purge)?;
        let rate_limits = rate_limits::check(raw.rate_limits)?;
        Ok(Self {
            listen,
            database_url: raw.database_url,
            public_url: public.as_str().trim_end_matches('/').to_owned(),
            secrets,
            api_key_header,
            oauth_metadata: raw.oauth.metadata,
            access_token_ttl,
            refresh_token_ttl,
            device_client_ids,
            device_client_names,
            device_code_lifetime,
            device_interval,
            session_lifetime,
            service_accounts_min_plan: min_plan,
            roles,
            cache_capacity: raw.cache.capacity,
            cache_ttl: duration("cache.ttl", &raw.cache.ttl)?,
            negative_cache_ttl: duration("cache.negative_ttl", &raw.cache.negative_ttl)?,
            usage_flush_interval,
            change_poll_interval,
            log_format,
            gateway,
            purge,
            rate_limits,
        })
    }
}

fn check_purge(raw: &RawPurge) -> Result<PurgeSettings, ConfigError> {
    let interval = duration("purge.interval", &raw.interval)?;
    if interval.is_zero() || interval > Duration::from_secs(24 * 3600) {
        return Err(bad("purge.interval", &raw.interval, "must lie between 1ms and 24h"));
    }
    let retention = duration("purge.retention", &raw.retention)?;
    if retention > Duration::from_secs(10 * 365 * 24 * 3600) {
        return Err(bad("purge.retention", &raw.retention, "must be at most 10 years"));
    }
    if !(1..=100_000).contains(&raw.batch_size) {
        return Err(bad("purge.batch_size", &raw.batch_size.to_string(), "must lie between 1 and 100000"));
    }
    if !(1..=1000).contains(&raw.max_batches) {
        return Err(bad("purge.max_batches", &raw.max_batches.to_string(), "must lie between 1 and 1000"));
    }
    Ok(PurgeSettings {
        enabled: raw.enabled,
        interval,
        retention,
        batch_size: raw.batch_size,
        max_batches: raw.max_batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented "complete file with every default" parses, to the defaults.
    #[test]
    fn the_documented_complete_file_is_the_defaults() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = doc.split("## A complete file with every default").nth(1).expect("the section exists");
        let toml = section.split("```toml").nth(1).and_then(|s| s.split("```").next()).expect("a toml block");
        let written = Settings::from_toml(toml).unwrap();
        let defaults = Settings::from_toml("").unwrap();
        assert_eq!(written.access_token_ttl, defaults.access_token_ttl);
        assert_eq!(written.refresh_token_ttl, defaults.refresh_token_ttl);
        assert_eq!(written.session_lifetime, defaults.session_lifetime);
        assert_eq!(written.device_code_lifetime, defaults.device_code_lifetime);
        assert_eq!(written.device_interval, defaults.device_interval);
        assert_eq!(written.device_client_names, defaults.device_client_names);
        assert_eq!(written.service_accounts_min_plan, defaults.service_accounts_min_plan);
        assert_eq!(written.roles.catalogue(), defaults.roles.catalogue());
        assert_eq!(written.purge, defaults.purge);
    }

    #[test]
    fn purge_settings_are_checked() {
        let s = Settings::from_toml(
            "[purge]\nenabled = false\ninterval = \"5s\"\nretention = \"0s\"\nbatch_size = 10\nmax_batches = 3",
        )
        .unwrap();
        assert_eq!(
            s.purge,
            PurgeSettings {
                enabled: false,
                interval: Duration::from_secs(5),
                retention: Duration::ZERO,
                batch_size: 10,
                max_batches: 3
            }
        );
        let d = Settings::from_toml("").unwrap().purge;
        assert!(d.enabled);
        assert_eq!((d.interval, d.retention), (Duration::from_secs(60), Duration::from_secs(24 * 3600)));
        for (bad, key) in [
            ("[purge]\ninterval = \"0s\"", "purge.interval"),
            ("[purge]\nretention = \"soon\"", "purge.retention"),
            ("[purge]\nbatch_size = 0", "purge.batch_size"),
            ("[purge]\nmax_batches = 0", "purge.max_batches"),
        ] {
            let e = Settings::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn device_settings_are_checked() {
        let s = Settings::from_toml(
            "[device]\ninterval = \"1s\"\ncode_lifetime = \"2m\"\n[device.names]\nkeyward-cli = \"Our CLI\"",
        )
        .unwrap();
        assert_eq!(s.device_interval, Duration::from_secs(1));
        assert_eq!(s.device_code_lifetime, Duration::from_secs(120));
        assert_eq!(s.device_client_names["keyward-cli"], "Our CLI");
        assert_eq!(s.device_client_names["keyward-mcp"], "keyward MCP client");
        for (bad, key) in [
            ("[device]\ninterval = \"0s\"", "device.interval"),
            ("[device]\ninterval = \"2m\"", "device.interval"),
            ("[device.names]\nother = \"x\"", "device.names"),
            ("session_lifetime = \"0s\"", "session_lifetime"),
            ("[oauth]\nrefresh_token_ttl = \"soon\"", "oauth.refresh_token_ttl"),
        ] {
            let e = Settings::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_need_no_file() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(s.database_url, "sqlite://keyward.db");
        assert_eq!(s.public_url, "http://127.0.0.1:7070");
        assert_eq!(s.secrets.prefix(), "kw");
        assert_eq!(s.api_key_header.as_str(), "x-api-key");
        assert_eq!(
            s.device_client_ids.iter().map(ClientId::as_str).collect::<Vec<_>>(),
            ["keyward-cli", "keyward-mcp"]
        );
        assert_eq!(s.access_token_ttl, Duration::from_secs(3600));
        assert!(s.oauth_metadata);
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        for (toml, key) in [
            ("listen = \"nowhere\"", "`listen`"),
            ("public_url = \"ftp://x\"", "`public_url`"),
            ("key_prefix = \"KW\"", "`key_prefix`"),
            ("database_url = \"mysql://u:hunter2@h/db\"", "`database_url`"),
            ("usage_flush_interval = \"soon\"", "`usage_flush_interval`"),
            ("change_poll_interval = \"5s\"", "`change_poll_interval`"),
            ("[service_accounts]\nmin_plan = \"gold\"", "`service_accounts.min_plan`"),
            ("[roles]\nx = [\"nope:read\"]", "role \"x\""),
            ("lisen = \"x\"", "lisen"),
            ("[gateway]\nlisten = \"127.0.0.1:7080\"", "`gateway.upstream`"),
        ] {
            let err = Settings::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
            assert!(!err.contains("hunter2"), "a database password leaked: {err}");
        }
    }

    #[test]
    fn lists_may_be_comma_separated_text() {
        let s = Settings::from_toml("[device]\nclient_ids = \"a, b\"").unwrap();
        assert_eq!(s.device_client_ids.iter().map(ClientId::as_str).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    // figment's Jail closures return its own (large) error type; nothing to box here.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file_with_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("k.toml", "listen = \"127.0.0.1:1\"\n[oauth]\nmetadata = true")?;
            jail.set_env("KEYWARD_LISTEN", "127.0.0.1:2");
            jail.set_env("KEYWARD_OAUTH__METADATA", "false");
            jail.set_env("KEYWARD_DEVICE__CLIENT_IDS", "x,y");
            jail.set_env("KEYWARD_ROLES__AUDITOR", "audit:read,members:read");
            jail.set_env("KEYWARD_TEST_POSTGRES_URL", "not configuration");
            let s = Settings::load(Some(Path::new("k.toml"))).expect("loads");
            assert_eq!(s.listen.port(), 2);
            assert!(!s.oauth_metadata);
            assert_eq!(s.device_client_ids.iter().map(ClientId::as_str).collect::<Vec<_>>(), ["x", "y"]);
            assert_eq!(s.roles.permissions_of("auditor").to_strings(), ["audit:read", "members:read"]);
            assert!(s.roles.role("owner").is_some(), "the default roles stay");
            Ok(())
        });
    }
}
