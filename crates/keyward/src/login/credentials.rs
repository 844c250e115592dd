//! The credentials file: where a sign-in is kept between runs, and the lock that keeps two
//! runs from refreshing it at once.
//!
//! The file is `$XDG_CONFIG_HOME/keyward/credentials.json` (else
//! `$HOME/.config/keyward/credentials.json`), written with mode `0600` from its first byte —
//! a temporary file in the same directory, renamed over the old one — in a directory made
//! `0700`. It holds `{server, access_token, refresh_token, expires_at, scope}`; one sign-in
//! per file.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const NOT_SIGNED_IN: &str = "not signed in; run keyward login --server URL";

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

pub fn default_credentials_path() -> anyhow::Result<PathBuf> {
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
pub struct RefreshLock(#[allow(dead_code)] File);

impl RefreshLock {
    pub fn acquire(credentials: &Path) -> anyhow::Result<Self> {
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
    fn the_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credentials.json");
        let held = RefreshLock::acquire(&path).unwrap();
        let lock_file = tmp.path().join("credentials.lock");
        assert_eq!(std::fs::metadata(&lock_file).unwrap().permissions().mode() & 0o777, 0o600);
        let other = File::open(&lock_file).unwrap();
        assert!(other.try_lock().is_err(), "a second holder must wait");
        drop(held);
        assert!(other.try_lock().is_ok(), "free once the first is dropped");
    }
}
