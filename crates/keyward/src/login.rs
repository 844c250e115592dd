//! `login`, `whoami`, `logout`: the CLI as an OAuth 2.0 device-flow client of a keyward
//! server (docs/device.md, "keyward login, whoami, logout").
//!
//! These three commands are HTTP clients: they never read the server configuration nor
//! open a database. What they keep between runs is one file, the credentials, at
//! `$XDG_CONFIG_HOME/keyward/credentials.json` (else `$HOME/.config/keyward/…`), written
//! with mode `0600` from its first byte (a temporary file in the same directory, renamed
//! over the old one) in a directory made `0700`.
//!
//! Nothing secret — access token, refresh token, device code — is ever printed, on stdout
//! or stderr; the user code and the verification address are, since the person needs them.
//!
//! # Layout
//!
//! - [`login`], [`whoami`], [`logout`]: the commands.
//! - [`poll_decision`]: what a token-endpoint error means for the polling loop (pure).
//! - [`needs_refresh`]: whether a stored access token is (about to be) expired (pure).
//! - [`credentials_path`], [`write_credentials`], [`read_credentials`]: the file.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::context::print_json;

/// The device-flow client id keyward's own CLI uses (a public client: no secret).
pub const CLIENT_ID: &str = "keyward-cli";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.5: `slow_down` adds 5 seconds to the polling interval, for good.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// RFC 8628 §3.2: the interval when the server names none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// An access token this close to its expiry is refreshed first, so it cannot run out
/// while the request is on its way.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(30);
/// Every request's own bound; the whole login is bounded by the code's `expires_in`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Polls that fail at the network level in a row before login gives up.
const MAX_NETWORK_FAILURES: u32 = 3;

const NOT_SIGNED_IN: &str = "not signed in; run keyward login --server URL";

/// What the credentials file holds. `Debug` hides the tokens.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct Credentials {
    /// The server's base URL, as given to `--server` (no trailing slash).
    pub server: String,
    pub access_token: String,
    /// Absent only when a server issued none; then an expired sign-in needs a new login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires (RFC 3339): the time it was issued + `expires_in`.
    pub expires_at: DateTime<Utc>,
    /// The scopes the server granted (space-separated), as it reported them.
    #[serde(default)]
    pub scope: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("access_token", &"<hidden>")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<hidden>"))
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// The credentials file.

/// Where the credentials live: `$XDG_CONFIG_HOME/keyward/credentials.json` when that
/// variable is set to an absolute path (the XDG spec says to ignore a relative one), else
/// `$HOME/.config/keyward/credentials.json`.
pub fn credentials_path(xdg_config_home: Option<OsString>, home: Option<OsString>) -> anyhow::Result<PathBuf> {
    let base = match xdg_config_home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(xdg) => xdg,
        None => match home.filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("cannot tell where to keep the credentials: set XDG_CONFIG_HOME or HOME"),
        },
    };
    Ok(base.join("keyward").join("credentials.json"))
}

fn default_credentials_path() -> anyhow::Result<PathBuf> {
    credentials_path(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME"))
}

/// Writes the credentials to `path`: the directory is made (mode `0700`) when missing, the
/// data goes to a new temporary file in that directory created with mode `0600` (so the
/// tokens are never readable by others, not even for a moment), which is then renamed
/// over `path` — a reader sees the old file or the new one, never half of one.
pub fn write_credentials(path: &Path, creds: &Credentials) -> anyhow::Result<()> {
    let dir = path.parent().ok_or_else(|| anyhow!("{} has no parent directory", path.display()))?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut body = serde_json::to_vec_pretty(creds).expect("credentials serialise");
    body.push(b'\n');
    let tmp = dir.join(format!(".credentials.json.{}.{}.tmp", std::process::id(), unique_suffix()));
    let written = (|| -> std::io::Result<()> {
        // create_new: never follow a symlink or reuse a file someone else prepared.
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced; best effort.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Distinguishes two temporary files of one process (login and a refresh never overlap,
/// but a clash must not be possible anyway).
fn unique_suffix() -> u128 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    nanos ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Reads the credentials; a missing file means "not signed in".
pub fn read_credentials(path: &Path) -> anyhow::Result<Credentials> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(NOT_SIGNED_IN),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!("warning: {} is readable by others; run chmod 600 on it", path.display());
        }
    }
    // serde_json's messages name a position, never the content: no token can leak here.
    serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged; run keyward login --server URL again", path.display()))
}

/// Holds an exclusive lock on `credentials.lock` next to the credentials while a refresh
/// runs: two `keyward whoami` at once would otherwise both present the same refresh
/// token, and the second use of a rotated refresh token revokes the whole sign-in.
struct RefreshLock(#[allow(dead_code)] File);

impl RefreshLock {
    fn acquire(credentials: &Path) -> anyhow::Result<Self> {
        let path = credentials.with_file_name("credentials.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Self(file))
    }
}

// ---------------------------------------------------------------------------------------
// Pure decisions.

/// What to do after the token endpoint refused a device-code poll.
#[derive(Debug, PartialEq, Eq)]
pub enum PollAction {
    /// Poll again after `interval` (which is also the interval from now on).
    Continue { interval: Duration },
    /// Give up with this message.
    Stop(String),
}

/// RFC 8628 §3.5 for an error answer of the token endpoint: `authorization_pending`
/// keeps the interval, `slow_down` grows it by 5 s (and it stays grown), anything else
/// ends the login.
pub fn poll_decision(error: &str, description: Option<&str>, interval: Duration) -> PollAction {
    match error {
        "authorization_pending" => PollAction::Continue { interval },
        "slow_down" => PollAction::Continue { interval: interval + SLOW_DOWN_STEP },
        "access_denied" => PollAction::Stop("the sign-in was denied on the approval page (access_denied)".into()),
        "expired_token" => {
            PollAction::Stop("the code expired before it was approved (expired_token); run keyward login again".into())
        }
        other => PollAction::Stop(match description {
            Some(d) if !d.is_empty() => {
                format!("the server refused the sign-in: {}: {}", printable(other), printable(d))
            }
            _ => format!("the server refused the sign-in: {}", printable(other)),
        }),
    }
}

/// Whether the stored access token must be refreshed before use: it has expired, or
/// expires within [`EXPIRY_MARGIN`].
pub fn needs_refresh(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now + EXPIRY_MARGIN >= expires_at
}

/// A server-supplied string made safe for a terminal: control characters (escape
/// sequences) dropped.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

// ---------------------------------------------------------------------------------------
// HTTP.

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Seconds; when absent, an hour (the server's default) is assumed and a `401`
    /// triggers a refresh anyway.
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// One answer of an OAuth endpoint: the parsed success, an OAuth error, or something
/// else (a status and no usable body).
enum Answer<T> {
    Ok(T),
    Error(OAuthError),
    Other(u16),
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("keyward-cli/", env!("CARGO_PKG_VERSION")))
        // A redirect would be followed with a POST turned GET, or to another host: refuse.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot set up the HTTP client")
}

/// The server URL as given, checked and without a trailing slash.
fn server_base(server: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(server)
        .map_err(|_| anyhow!("--server {server:?} is not a URL; write e.g. https://keys.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--server {server:?} is not an http(s) URL; write e.g. https://keys.example.com");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server {server:?}: give the server's base URL, without ?query or #fragment");
    }
    if url.scheme() == "http" && !is_loopback(url.host_str().unwrap_or_default()) {
        eprintln!("warning: {server} is plain http: the tokens cross the network unencrypted");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// POSTs a form to an OAuth endpoint (RFC 6749 §5: `200` with `T`, or a JSON error).
async fn post_oauth<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Answer<T>, reqwest::Error> {
    let res = http.post(url).header("Accept", "application/json").form(form).send().await?;
    let status = res.status();
    let body = res.bytes().await?;
    if status.is_success() {
        return Ok(serde_json::from_slice(&body).map_or(Answer::Other(status.as_u16()), Answer::Ok));
    }
    Ok(serde_json::from_slice::<OAuthError>(&body).map_or(Answer::Other(status.as_u16()), Answer::Error))
}

fn unreachable(url: &str, e: reqwest::Error) -> anyhow::Error {
    anyhow!("cannot reach {url}: {}", network_reason(&e))
}

/// Why a request failed, short: the innermost cause ("Connection refused (os error
/// 111)", "invalid peer certificate: …"). reqwest's messages name the URL, never a
/// form field or a header, so no secret is in them.
fn network_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

fn unexpected(url: &str, status: u16) -> anyhow::Error {
    if (300..400).contains(&status) {
        anyhow!("{url} answered {status} (a redirect); give --server the server's final address (https?)")
    } else {
        anyhow!("{url} answered {status} with no OAuth answer; is this a keyward server?")
    }
}

fn credentials_from(server: &str, token: TokenResponse, previous: Option<&Credentials>) -> Credentials {
    let lifetime = token.expires_in.unwrap_or(3600).max(0);
    Credentials {
        server: server.to_owned(),
        access_token: token.access_token,
        // RFC 6749 §6: without a new refresh token the old one stays valid.
        refresh_token: token.refresh_token.or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        expires_at: (Utc::now() + chrono::Duration::seconds(lifetime)).trunc_subsecs(0),
        scope: token.scope.or_else(|| previous.map(|p| p.scope.clone())).unwrap_or_default(),
    }
}

/// `GET /api/v1/me` with the access token: `Ok(None)` on `401`.
async fn me(http: &reqwest::Client, creds: &Credentials) -> anyhow::Result<Option<serde_json::Value>> {
    let url = format!("{}/api/v1/me", creds.server);
    let res = http.get(&url).bearer_auth(&creds.access_token).send().await.map_err(|e| unreachable(&url, e))?;
    match res.status().as_u16() {
        200 => Ok(Some(res.json().await.map_err(|_| anyhow!("{url} did not answer JSON"))?)),
        401 => Ok(None),
        status => {
            let detail =
                res.json::<OAuthError>().await.ok().map(|e| format!(" ({})", printable(&e.error))).unwrap_or_default();
            Err(anyhow!("{url} answered {status}{detail}"))
        }
    }
}

/// "ada@example.com in acme": the e-mail of a person, the name of a service account.
fn describe(me: &serde_json::Value) -> String {
    let p = &me["principal"];
    let who = p["email"].as_str().or_else(|| p["name"].as_str()).or_else(|| p["id"].as_str()).unwrap_or("?");
    let org = me["org"]["slug"].as_str().unwrap_or("?");
    format!("{} in {}", printable(who), printable(org))
}

// ---------------------------------------------------------------------------------------
// The commands.

/// `keyward login --server URL [--scope S] [--no-browser]`.
pub async fn login(server: &str, scope: Option<&str>, no_browser: bool) -> anyhow::Result<()> {
    let base = server_base(server)?;
    let path = default_credentials_path()?;
    let http = client()?;

    let url = format!("{base}/oauth/device_authorization");
    let mut form = vec![("client_id", CLIENT_ID)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let code: DeviceAuthorization = match post_oauth(&http, &url, &form).await.map_err(|e| unreachable(&url, e))? {
        Answer::Ok(code) => code,
        Answer::Error(e) => bail!(
            "the server refused to start the sign-in: {}{}",
            printable(&e.error),
            e.error_description.map(|d| format!(": {}", printable(&d))).unwrap_or_default()
        ),
        Answer::Other(status) => return Err(unexpected(&url, status)),
    };
    let deadline = Instant::now() + Duration::from_secs(code.expires_in);
    let mut interval = code.interval.map_or(DEFAULT_INTERVAL, Duration::from_secs).max(Duration::from_secs(1));

    eprintln!("Open {} and enter {}", printable(&code.verification_uri), printable(&code.user_code));
    if let Some(complete) = &code.verification_uri_complete {
        eprintln!("(or open {} to have the code filled in)", printable(complete));
    }
    if !no_browser {
        open_browser(code.verification_uri_complete.as_deref().unwrap_or(&code.verification_uri));
    }
    eprintln!("waiting for the approval (the code is valid for {} s)…", code.expires_in);

    let token_url = format!("{base}/oauth/token");
    let form =
        [("grant_type", DEVICE_CODE_GRANT), ("device_code", code.device_code.as_str()), ("client_id", CLIENT_ID)];
    let mut network_failures = 0;
    let token = loop {
        // A poll after the deadline could only hear expired_token (the server's clock
        // started first), and one sooner than the interval earns slow_down: stop here.
        if Instant::now() + interval > deadline {
            bail!("the code expired before it was approved; run keyward login again");
        }
        tokio::time::sleep(interval).await;
        match post_oauth::<TokenResponse>(&http, &token_url, &form).await {
            Ok(Answer::Ok(token)) => break token,
            Ok(Answer::Error(e)) => {
                network_failures = 0;
                match poll_decision(&e.error, e.error_description.as_deref(), interval) {
                    PollAction::Continue { interval: next } => interval = next,
                    PollAction::Stop(message) => bail!(message),
                }
            }
            Ok(Answer::Other(status)) => return Err(unexpected(&token_url, status)),
            Err(e) => {
                network_failures += 1;
                if network_failures >= MAX_NETWORK_FAILURES {
                    return Err(unreachable(&token_url, e));
                }
                eprintln!("warning: cannot reach {token_url} ({}); trying again", network_reason(&e));
            }
        }
    };

    let creds = credentials_from(&base, token, None);
    write_credentials(&path, &creds)?;
    match me(&http, &creds).await {
        Ok(Some(me)) => eprintln!("signed in as {}", describe(&me)),
        Ok(None) => eprintln!("warning: signed in to {base}, but {base}/api/v1/me refuses the new token"),
        Err(e) => eprintln!("warning: signed in to {base}, but cannot tell as whom: {e:#}"),
    }
    eprintln!("the tokens are in {}", path.display());
    Ok(())
}

/// Tries `$BROWSER`, `open` (macOS) or `xdg-open` (with a display); never fails the login.
fn open_browser(url: &str) {
    let (program, args): (String, Vec<String>) =
        if let Some(browser) = std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
            // $BROWSER may be a colon-separated list of commands, each with %s for the URL.
            let first = browser.split(':').next().unwrap_or_default().trim().to_owned();
            let mut words: Vec<String> = first.split_whitespace().map(str::to_owned).collect();
            if words.is_empty() {
                return;
            }
            let program = words.remove(0);
            if words.iter().any(|w| w.contains("%s")) {
                (program, words.into_iter().map(|w| w.replace("%s", url)).collect())
            } else {
                words.push(url.to_owned());
                (program, words)
            }
        } else if cfg!(target_os = "macos") {
            ("open".into(), vec![url.to_owned()])
        } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
            ("xdg-open".into(), vec![url.to_owned()])
        } else {
            return;
        };
    let spawned = std::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped in the background: no zombie, and no waiting on a browser that stays open.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(_) => eprintln!("(could not start {program}; open the address above yourself)"),
    }
}

/// Exchanges the refresh token for a new pair, under the refresh lock, and stores it.
/// `stale` is the access token that was found expired or refused: when the file already
/// holds another one, a concurrent command refreshed first and that one is used.
async fn refresh(http: &reqwest::Client, path: &Path, stale: &str) -> anyhow::Result<Credentials> {
    let _lock = RefreshLock::acquire(path)?;
    let current = read_credentials(path)?;
    if current.access_token != stale && !needs_refresh(current.expires_at, Utc::now()) {
        return Ok(current);
    }
    let Some(refresh_token) = current.refresh_token.as_deref() else {
        bail!("the sign-in to {} has expired; run keyward login --server {} again", current.server, current.server);
    };
    let url = format!("{}/oauth/token", current.server);
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", CLIENT_ID)];
    match post_oauth::<TokenResponse>(http, &url, &form).await.map_err(|e| unreachable(&url, e))? {
        Answer::Ok(token) => {
            let next = credentials_from(&current.server, token, Some(&current));
            write_credentials(path, &next)?;
            Ok(next)
        }
        Answer::Error(e) if e.error == "invalid_grant" => bail!(
            "the sign-in to {} has ended (the refresh token was refused); run keyward login --server {} again",
            current.server,
            current.server
        ),
        Answer::Error(e) => bail!("cannot refresh the sign-in: the server answered {}", printable(&e.error)),
        Answer::Other(status) => Err(unexpected(&url, status)),
    }
}

/// `keyward whoami [--json]`.
pub async fn whoami(json: bool) -> anyhow::Result<()> {
    let path = default_credentials_path()?;
    let mut creds = read_credentials(&path)?;
    let http = client()?;
    let mut refreshed = false;
    if needs_refresh(creds.expires_at, Utc::now()) {
        creds = refresh(&http, &path, &creds.access_token).await?;
        refreshed = true;
    }
    let me = match me(&http, &creds).await? {
        Some(me) => me,
        None if !refreshed => {
            // Revoked or expired early (a clock off, a server restarted with another TTL): once.
            creds = refresh(&http, &path, &creds.access_token).await?;
            me(&http, &creds).await?.ok_or_else(|| {
                anyhow!(
                    "{} refuses the stored sign-in; run keyward login --server {} again",
                    creds.server,
                    creds.server
                )
            })?
        }
        None => bail!("{} refuses the stored sign-in; run keyward login --server {} again", creds.server, creds.server),
    };
    if json {
        print_json(&me);
    } else {
        crate::out!("{}", describe(&me));
    }
    Ok(())
}

/// `keyward logout`: revokes the refresh token (and so its whole family: every access
/// token of this sign-in) and deletes the file. Network trouble only warns: the local
/// sign-in ends regardless. Not signed in is not an error (nothing to do).
pub async fn logout() -> anyhow::Result<()> {
    let path = default_credentials_path()?;
    let creds = match read_credentials(&path) {
        Ok(creds) => Some(creds),
        Err(_) if !path.exists() => {
            eprintln!("not signed in; nothing to do");
            return Ok(());
        }
        // A damaged file is deleted all the same.
        Err(e) => {
            eprintln!("warning: {e:#}");
            None
        }
    };
    if let Some(creds) = &creds {
        let (token, hint) = match &creds.refresh_token {
            Some(refresh) => (refresh.as_str(), "refresh_token"),
            None => (creds.access_token.as_str(), "access_token"),
        };
        let url = format!("{}/oauth/revoke", creds.server);
        let form = [("token", token), ("token_type_hint", hint), ("client_id", CLIENT_ID)];
        let warn = |why: String| {
            eprintln!("warning: could not revoke the sign-in at {url} ({why}); it stays valid until it expires");
        };
        match client()?.post(&url).form(&form).send().await {
            Ok(res) if res.status().is_success() => {}
            Ok(res) => {
                let status = res.status().as_u16();
                let code = res
                    .json::<OAuthError>()
                    .await
                    .ok()
                    .map(|e| format!(" {}", printable(&e.error)))
                    .unwrap_or_default();
                warn(format!("answered {status}{code}"));
            }
            Err(e) => warn(network_reason(&e)),
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
    eprintln!("signed out");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn the_path_is_under_xdg_config_home_else_home() {
        assert_eq!(
            credentials_path(os("/x/cfg"), os("/home/ada")).unwrap(),
            PathBuf::from("/x/cfg/keyward/credentials.json")
        );
        assert_eq!(
            credentials_path(None, os("/home/ada")).unwrap(),
            PathBuf::from("/home/ada/.config/keyward/credentials.json")
        );
        // The XDG spec: an empty or relative value is ignored.
        assert_eq!(
            credentials_path(os(""), os("/home/ada")).unwrap(),
            PathBuf::from("/home/ada/.config/keyward/credentials.json")
        );
        assert_eq!(
            credentials_path(os("relative/cfg"), os("/home/ada")).unwrap(),
            PathBuf::from("/home/ada/.config/keyward/credentials.json")
        );
        assert!(credentials_path(None, None).is_err());
        assert!(credentials_path(None, os("")).is_err());
    }

    fn sample() -> Credentials {
        Credentials {
            server: "https://keys.example.com".into(),
            access_token: "kwat_secretaccess".into(),
            refresh_token: Some("kwrt_secretrefresh".into()),
            expires_at: "2030-01-02T03:04:05Z".parse().unwrap(),
            scope: "projects:read".into(),
        }
    }

    #[test]
    fn the_file_is_0600_in_a_0700_directory_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cfg/keyward/credentials.json");
        write_credentials(&path, &sample()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(read_credentials(&path).unwrap(), sample());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"expires_at\": \"2030-01-02T03:04:05Z\""), "RFC 3339: {text}");

        // Overwriting a file someone made world-readable: the new one is 0600 again,
        // and no temporary file is left behind.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut next = sample();
        next.access_token = "kwat_next".into();
        write_credentials(&path, &next).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(read_credentials(&path).unwrap().access_token, "kwat_next");
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![OsString::from("credentials.json")]);
    }

    #[test]
    fn a_missing_file_means_not_signed_in() {
        let tmp = tempfile::tempdir().unwrap();
        let e = read_credentials(&tmp.path().join("credentials.json")).unwrap_err();
        assert_eq!(e.to_string(), NOT_SIGNED_IN);
    }

    #[test]
    fn debug_hides_the_tokens() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn pending_keeps_the_interval_and_slow_down_grows_it_for_good() {
        let five = Duration::from_secs(5);
        assert_eq!(poll_decision("authorization_pending", None, five), PollAction::Continue { interval: five });
        let grown = poll_decision("slow_down", None, five);
        assert_eq!(grown, PollAction::Continue { interval: Duration::from_secs(10) });
        // The grown interval is what the loop carries on with: a later pending keeps it,
        // a second slow_down grows it again.
        let ten = Duration::from_secs(10);
        assert_eq!(poll_decision("authorization_pending", None, ten), PollAction::Continue { interval: ten });
        assert_eq!(
            poll_decision("slow_down", Some("slow down"), ten),
            PollAction::Continue { interval: Duration::from_secs(15) }
        );
    }

    #[test]
    fn denied_expired_and_anything_else_stop() {
        let i = Duration::from_secs(5);
        let stop = |code: &str, d: Option<&str>| match poll_decision(code, d, i) {
            PollAction::Stop(m) => m,
            other => panic!("{code}: {other:?}"),
        };
        assert!(stop("access_denied", None).contains("denied"));
        assert!(stop("expired_token", None).contains("expired"));
        assert!(stop("invalid_grant", Some("the code was used")).contains("invalid_grant: the code was used"));
        assert!(stop("invalid_client", None).contains("invalid_client"));
        assert!(!stop("x\u{1b}[31m", Some("\u{7}bell")).contains(|c: char| c.is_control()), "no escape sequences");
    }

    #[test]
    fn refresh_is_needed_when_expired_or_about_to() {
        let now: DateTime<Utc> = "2030-01-01T12:00:00Z".parse().unwrap();
        assert!(needs_refresh(now - chrono::Duration::seconds(1), now), "expired");
        assert!(needs_refresh(now, now), "expires now");
        assert!(needs_refresh(now + chrono::Duration::seconds(10), now), "within the margin");
        assert!(!needs_refresh(now + chrono::Duration::minutes(5), now), "still good");
    }

    #[test]
    fn the_server_url_is_checked_and_trimmed() {
        assert_eq!(server_base("https://keys.example.com/").unwrap(), "https://keys.example.com");
        assert_eq!(server_base("http://127.0.0.1:7070").unwrap(), "http://127.0.0.1:7070");
        assert_eq!(server_base("https://example.com/keyward/").unwrap(), "https://example.com/keyward");
        assert!(server_base("keys.example.com").is_err());
        assert!(server_base("ftp://keys.example.com").is_err());
        assert!(server_base("https://keys.example.com/?a=b").is_err());
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("[::1]"));
        assert!(!is_loopback("keys.example.com"));
    }

    #[test]
    fn a_service_account_shows_its_name() {
        let person =
            serde_json::json!({"principal": {"kind": "user", "email": "ada@example.com"}, "org": {"slug": "acme"}});
        assert_eq!(describe(&person), "ada@example.com in acme");
        let machine =
            serde_json::json!({"principal": {"kind": "service_account", "name": "ci"}, "org": {"slug": "acme"}});
        assert_eq!(describe(&machine), "ci in acme");
    }
}
