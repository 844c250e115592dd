//! The `[gateway]` table: what it may hold, its defaults, and its checks.
//!
//! ```toml
//! [gateway]
//! listen = "127.0.0.1:7080"            # default
//! upstream = "http://127.0.0.1:3000"   # required: the API keyward protects
//! public_url = "https://api.example.com" # default http://{listen}; names the gateway in
//!                                      # its RFC 9728 document and 401 challenges
//! public_paths = ["/health", "/docs/**"] # globs; no credential needed
//! pass_authorization = false           # true: the upstream also gets the credential
//! trust_forwarded_headers = false      # true: keep a front proxy's X-Forwarded-*
//! connect_timeout = "5s"               # to open a connection to the upstream (else 502)
//! response_timeout = "60s"             # until the upstream's response head (else 504)
//! max_body_size = "100MiB"             # largest request body forwarded (else 413)
//!
//! [[gateway.rules]]                    # every matching rule must be satisfied
//! method = "DELETE"                    # default "*"; also "GET,HEAD"
//! path = "/projects/**"                # glob: `*` stays within a segment, `**` crosses
//! permission = "projects:write"
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::Method;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use keyward_core::permission::{Permission, Roles};
use serde::Deserialize;

use crate::config::ConfigError;

/// The table as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGateway {
    listen: String,
    upstream: Option<String>,
    public_url: Option<String>,
    #[serde(deserialize_with = "crate::config::list")]
    public_paths: Vec<String>,
    rules: Vec<RawRule>,
    pass_authorization: bool,
    trust_forwarded_headers: bool,
    connect_timeout: String,
    response_timeout: String,
    max_body_size: ByteSize,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default = "any_method")]
    method: String,
    path: String,
    permission: String,
}

fn any_method() -> String {
    "*".into()
}

/// A size written as a number of bytes or as text with a unit (`"100MiB"`, `"20MB"`).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl Default for RawGateway {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7080".into(),
            upstream: None,
            public_url: None,
            public_paths: Vec::new(),
            rules: Vec::new(),
            pass_authorization: false,
            trust_forwarded_headers: false,
            connect_timeout: "5s".into(),
            response_timeout: "60s".into(),
            max_body_size: ByteSize::Text("100MiB".into()),
        }
    }
}

/// The checked `[gateway]` table.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    /// `scheme://host:port` of the upstream, no trailing slash; request paths are
    /// appended to it (a path prefix in `upstream` is kept in front of them).
    pub upstream: url::Url,
    /// The gateway's public URL, no trailing slash; `None` means `http://{bound address}`
    /// (resolved once bound, so port 0 works in tests).
    pub public_url: Option<String>,
    pub public_paths: GlobSet,
    pub rules: Vec<Rule>,
    pub pass_authorization: bool,
    pub trust_forwarded_headers: bool,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_body_size: u64,
}

/// One `[[gateway.rules]]` entry: requests it matches need `permission`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// `None` matches every method.
    pub methods: Option<Vec<Method>>,
    pub path: globset::GlobMatcher,
    pub permission: Permission,
}

impl Rule {
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        let method_matches = match &self.methods {
            Some(methods) => methods.contains(method),
            None => true,
        };
        method_matches && self.path.is_match(path)
    }
}

fn bad(key: &str, value: &str, fix: &str) -> ConfigError {
    ConfigError(format!("`gateway.{key}` = {value:?}: {fix}"))
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| bad(key, value, "not a positive duration; write e.g. \"5s\" or \"2m\""))
}

/// A path glob: `*` and `?` stay within one segment, `**` crosses segments.
fn glob(key: &str, pattern: &str) -> Result<Glob, ConfigError> {
    if !pattern.starts_with('/') {
        return Err(bad(key, pattern, "a path glob starts with `/`, e.g. \"/public/**\""));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| bad(key, pattern, &format!("not a glob ({}); write e.g. \"/v1/*/items/**\"", e.kind())))
}

fn byte_size(size: &ByteSize) -> Result<u64, ConfigError> {
    let text = match size {
        ByteSize::Bytes(n) => return Ok(*n),
        ByteSize::Text(t) => t.trim(),
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => 0,
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|_| factor > 0)
        .ok_or_else(|| bad("max_body_size", text, "write a size such as 1048576, \"20MB\" or \"100MiB\""))
}

/// Checks the table; `roles` holds the permission catalogue rules must come from.
pub(crate) fn check(raw: RawGateway, roles: &Roles) -> Result<GatewaySettings, ConfigError> {
    let listen = raw
        .listen
        .parse()
        .map_err(|_| bad("listen", &raw.listen, "not an address; write host:port, e.g. \"127.0.0.1:7080\""))?;
    let upstream_text = raw.upstream.ok_or_else(|| {
        ConfigError(
            "`gateway.upstream` is missing: set it to the API to protect, e.g. \"http://127.0.0.1:3000\"".into(),
        )
    })?;
    let upstream = url::Url::parse(&upstream_text)
        .ok()
        .filter(|u| u.host().is_some() && u.query().is_none() && u.fragment().is_none())
        .ok_or_else(|| bad("upstream", &upstream_text, "not a URL; write e.g. \"http://127.0.0.1:3000\""))?;
    if upstream.scheme() != "http" {
        return Err(bad(
            "upstream",
            &upstream_text,
            "only http:// upstreams are supported; reach the API over plain HTTP on a private network",
        ));
    }
    let public_url = match raw.public_url {
        None => None,
        Some(text) => Some(
            url::Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .map(|u| u.as_str().trim_end_matches('/').to_owned())
                .ok_or_else(|| {
                    bad("public_url", &text, "not an http(s) URL; write e.g. \"https://api.example.com\"")
                })?,
        ),
    };
    let mut public = GlobSetBuilder::new();
    for pattern in &raw.public_paths {
        public.add(glob("public_paths", pattern)?);
    }
    let public_paths =
        public.build().map_err(|e| ConfigError(format!("`gateway.public_paths`: {e}; fix the globs")))?;
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rule) in raw.rules.iter().enumerate() {
        let key = format!("rules[{i}]");
        let methods = match rule.method.trim() {
            "*" | "" => None,
            list => Some(
                list.split(',')
                    .map(|m| {
                        Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
                            bad(
                                &format!("{key}.method"),
                                m,
                                "write an HTTP method such as \"GET\", a list \"GET,HEAD\", or \"*\"",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let permission =
            Permission::parse(&rule.permission).ok().filter(|p| roles.is_catalogued(p)).ok_or_else(|| {
                bad(
                    &format!("{key}.permission"),
                    &rule.permission,
                    "not a permission of the catalogue; fix the spelling or add it to `permissions`",
                )
            })?;
        rules.push(Rule { methods, path: glob(&format!("{key}.path"), &rule.path)?.compile_matcher(), permission });
    }
    Ok(GatewaySettings {
        listen,
        upstream,
        public_url,
        public_paths,
        rules,
        pass_authorization: raw.pass_authorization,
        trust_forwarded_headers: raw.trust_forwarded_headers,
        connect_timeout: duration("connect_timeout", &raw.connect_timeout)?,
        response_timeout: duration("response_timeout", &raw.response_timeout)?,
        max_body_size: byte_size(&raw.max_body_size)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn a_full_table_parses() {
        let s = Settings::from_toml(
            r#"
            [gateway]
            listen = "127.0.0.1:7081"
            upstream = "http://127.0.0.1:3000"
            public_paths = ["/health", "/docs/**"]
            max_body_size = "20MB"
            [[gateway.rules]]
            method = "delete, post"
            path = "/projects/*"
            permission = "projects:write"
            "#,
        )
        .unwrap();
        let g = s.gateway.expect("a gateway");
        assert_eq!(g.listen.port(), 7081);
        assert_eq!(g.max_body_size, 20_000_000);
        assert!(g.public_paths.is_match("/docs/a/b"));
        assert!(g.public_paths.is_match("/health"));
        assert!(!g.public_paths.is_match("/healthz"));
        let rule = &g.rules[0];
        assert!(rule.matches(&axum::http::Method::DELETE, "/projects/1"));
        assert!(!rule.matches(&axum::http::Method::GET, "/projects/1"));
        assert!(!rule.matches(&axum::http::Method::POST, "/projects/1/items"), "`*` stays within a segment");
        assert_eq!(g.connect_timeout, std::time::Duration::from_secs(5));
        assert!(g.public_url.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        for (table, key) in [
            ("pass_authorization = true", "`gateway.upstream`"),
            ("upstream = \"https://api\"", "`gateway.upstream`"),
            ("upstream = \"nope\"", "`gateway.upstream`"),
            ("upstream = \"http://a\"\nlisten = \"x\"", "`gateway.listen`"),
            ("upstream = \"http://a\"\npublic_paths = [\"health\"]", "`gateway.public_paths`"),
            ("upstream = \"http://a\"\nresponse_timeout = \"0s\"", "`gateway.response_timeout`"),
            ("upstream = \"http://a\"\nmax_body_size = \"lots\"", "`gateway.max_body_size`"),
            ("upstream = \"http://a\"\npublic_url = \"ftp://x\"", "`gateway.public_url`"),
            ("upstream = \"http://a\"\n[[gateway.rules]]\npath = \"/a\"\npermission = \"nope:read\"", "`gateway.rules[0].permission`"),
            ("upstream = \"http://a\"\n[[gateway.rules]]\nmethod = \"G T\"\npath = \"/a\"\npermission = \"projects:read\"", "`gateway.rules[0].method`"),
            ("upstream = \"http://a\"\n[[gateway.rules]]\npath = \"/a[\"\npermission = \"projects:read\"", "`gateway.rules[0].path`"),
        ] {
            let err = Settings::from_toml(&format!("[gateway]\n{table}")).unwrap_err().to_string();
            assert!(err.contains(key), "{table}: {err}");
        }
    }
}
