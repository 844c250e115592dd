//! `keyward login`, `whoami`, `logout` end to end: the real binary as a device-flow
//! client of a real `keyward serve`, and a person approving (or denying) the code over
//! HTTP as a browser would — sign in at `/login`, then `/device`.
//!
//! SQLite only: the client does not care which database the server uses, and the
//! server's device flow is tested on both backends in keyward-server's own tests.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Kw, BIN};
use keyward_store::testing::TestDb;
use reqwest::blocking::Client;
use reqwest::cookie::{CookieStore, Jar};

const PASSWORD: &str = "correct horse battery";

/// `keyward serve` with a known public URL (so the printed verification address is the
/// real one) and a 1 s polling interval. Killed when dropped, so a failing test leaves
/// no server behind.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(kw: &Kw, env: &[(&str, &str)]) -> Self {
        // The public URL must be known before the start: take a free port, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = kw
            .command(&["serve"])
            .env("KEYWARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("KEYWARD_PUBLIC_URL", &base)
            .env("KEYWARD_DEVICE__INTERVAL", "1s")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("keyward listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => assert_eq!(addr, base, "the server listens where it was told"),
            Err(_) => panic!("the server did not start: {}", log.lock().unwrap()),
        }
        Self { child, base, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `keyward` client command: only the client's own environment. The server
/// configuration points nowhere usable, so a client command that loaded it (or opened
/// a database) would fail.
fn client_command(config_home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(config_home)
        .env("XDG_CONFIG_HOME", config_home)
        .env("KEYWARD_CONFIG", config_home.join("no-such-keyward.toml"))
        .env("KEYWARD_DATABASE_URL", "sqlite:///nonexistent-dir/keyward.db")
        .env("KEYWARD_LISTEN", "nowhere")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// A running `keyward login`: its stderr lines arrive on a channel and are kept.
struct Login {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Login {
    fn start(config_home: &Path, server: &str) -> Self {
        let mut child = client_command(config_home, &["login", "--server", server, "--no-browser"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Self { child, lines, stderr }
    }

    /// The verification address and the user code from "Open {uri} and enter {code}".
    fn prompt(&self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((uri, code)) =
                        line.strip_prefix("Open ").and_then(|rest| rest.split_once(" and enter "))
                    {
                        return (uri.to_owned(), code.trim().to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("login printed no code; its stderr: {}", self.stderr.lock().unwrap())
                }
            }
        }
    }

    /// Waits (at most `within`) for the process to end: its exit code, stdout, stderr.
    fn finish(mut self, within: Duration) -> (i32, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("login still runs after {within:?}; its stderr: {}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        // The reader thread sees the pipe close when the process has exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok() {}
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), stdout, stderr)
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the `<input … name="csrf" …>` on an HTML page.
fn csrf_field(page: &str) -> String {
    for tag in page.split('<').filter(|t| t.starts_with("input")) {
        let tag = tag.split('>').next().unwrap();
        if tag.contains("name=\"csrf\"") {
            let value =
                tag.split("value=\"").nth(1).and_then(|v| v.split('"').next()).expect("the csrf input has a value");
            return value.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'");
        }
    }
    panic!("no csrf field on the page: {page}")
}

fn cookie_names(jar: &Jar, base: &str) -> String {
    jar.cookies(&base.parse().unwrap()).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// A person in a browser: signs in as `email` at `/login`, opens `/device` for the
/// code, and decides. Returns the final page's status and body.
fn person_decides(base: &str, email: &str, user_code: &str, decision: &str) -> (u16, String) {
    let jar = Arc::new(Jar::default());
    let browser =
        Client::builder().cookie_provider(jar.clone()).redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Not signed in: /device sends the person to /login, and back afterwards.
    let res = browser.get(format!("{base}/device?user_code={user_code}")).send().unwrap();
    assert_eq!(res.status().as_u16(), 303, "/device without a session");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login?next=") || location.starts_with(&format!("{base}/login?next=")), "{location}");

    let res = browser.get(format!("{base}/login?next=/device")).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let page = res.text().unwrap();
    assert!(cookie_names(&jar, base).contains("keyward_csrf="), "GET /login sets keyward_csrf");
    let csrf = csrf_field(&page);
    let res = browser
        .post(format!("{base}/login"))
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", PASSWORD), ("next", "/device")])
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "signed in: {}", res.text().unwrap_or_default());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location == "/device" || location == format!("{base}/device"), "{location}");
    assert!(cookie_names(&jar, base).contains("keyward_session="), "POST /login sets keyward_session");

    // The approval page for the code, as verification_uri_complete opens it.
    let res = browser.get(format!("{base}/device?user_code={user_code}")).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let page = res.text().unwrap();
    assert!(page.contains("keyward CLI") && page.contains("keyward-cli"), "the page names the client: {page}");
    let csrf = csrf_field(&page);

    // The code typed as a person might: lower case, no dash.
    let typed = user_code.replace('-', "").to_lowercase();
    let res = browser
        .post(format!("{base}/device"))
        .form(&[("csrf", csrf.as_str()), ("user_code", typed.as_str()), ("decision", decision), ("org", "acme")])
        .send()
        .unwrap();
    (res.status().as_u16(), res.text().unwrap())
}

fn setup() -> (TestDb, Kw, Server) {
    setup_with(&[])
}

fn setup_with(env: &[(&str, &str)]) -> (TestDb, Kw, Server) {
    let db = TestDb::sqlite();
    let kw = Kw::new(&db);
    kw.ok(&["org", "create", "acme"]);
    let out = kw.run_with_stdin(
        &["user", "create", "ada@example.com", "--org", "acme", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&kw, env);
    (db, kw, server)
}

fn credentials_file(config_home: &Path) -> PathBuf {
    config_home.join("keyward").join("credentials.json")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn me_status(base: &str, token: &str) -> u16 {
    Client::new().get(format!("{base}/api/v1/me")).bearer_auth(token).send().unwrap().status().as_u16()
}

fn run_client(config_home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = client_command(config_home, args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn login_whoami_refresh_logout() {
    let (_db, _kw, server) = setup();
    let home = tempfile::tempdir().unwrap();
    let base = server.base.clone();

    let login = Login::start(home.path(), &base);
    let (uri, code) = login.prompt();
    assert_eq!(uri, format!("{base}/device"), "verification_uri is {{public_url}}/device");
    assert!(
        code.len() == 9
            && code.as_bytes()[4] == b'-'
            && code.chars().filter(|c| *c != '-').all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "a user code shown XXXX-XXXX: {code:?}"
    );

    let (status, page) = person_decides(&base, "ada@example.com", &code, "approve");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Approved"), "{page}");

    let (exit, stdout, stderr) = login.finish(Duration::from_secs(30));
    assert_eq!(exit, 0, "login succeeds: {stderr}");
    assert!(stderr.contains(&format!("{base}/device?user_code=")), "verification_uri_complete is shown: {stderr}");
    assert!(stderr.contains("signed in as ada@example.com in acme"), "{stderr}");

    let path = credentials_file(home.path());
    assert_eq!(mode(&path), 0o600, "the credentials are the owner's alone");
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let creds = read_json(&path);
    let access = creds["access_token"].as_str().unwrap().to_owned();
    let refresh = creds["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("kwat_"), "{access:.5}…");
    assert!(refresh.starts_with("kwrt_"), "{refresh:.5}…");
    assert_eq!(creds["server"], base.as_str());
    let expires_at = chrono::DateTime::parse_from_rfc3339(creds["expires_at"].as_str().unwrap()).expect("RFC 3339");
    assert!(expires_at > chrono::Utc::now(), "expires in the future");
    for secret in [&access, &refresh] {
        assert!(!stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()), "a token was printed");
    }

    // whoami: the person and the organization on stdout.
    let (exit, stdout, stderr) = run_client(home.path(), &["whoami"]);
    assert_eq!(exit, 0, "{stderr}");
    assert_eq!(stdout.trim(), "ada@example.com in acme");
    let (exit, stdout, _) = run_client(home.path(), &["whoami", "--json"]);
    assert_eq!(exit, 0);
    let me: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(me["principal"]["email"], "ada@example.com");
    assert_eq!(me["org"]["slug"], "acme");
    assert_eq!(me["credential"]["kind"], "access_token");

    // An expired access token is refreshed first; the new pair is stored (0600 again).
    let mut stale = read_json(&path);
    stale["expires_at"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(&path, serde_json::to_string(&stale).unwrap()).unwrap();
    let (exit, stdout, stderr) = run_client(home.path(), &["whoami"]);
    assert_eq!(exit, 0, "{stderr}");
    assert_eq!(stdout.trim(), "ada@example.com in acme");
    let renewed = read_json(&path);
    assert_ne!(renewed["access_token"], access.as_str(), "a new access token");
    assert_ne!(renewed["refresh_token"], refresh.as_str(), "the refresh token rotated");
    assert_eq!(mode(&path), 0o600);
    assert!(
        chrono::DateTime::parse_from_rfc3339(renewed["expires_at"].as_str().unwrap()).unwrap() > chrono::Utc::now()
    );

    // A token the server refuses (401) is refreshed once, then the call is retried.
    let mut refused = renewed.clone();
    refused["access_token"] = "kwat_thisisnotatokenatall".into();
    std::fs::write(&path, serde_json::to_string(&refused).unwrap()).unwrap();
    let (exit, stdout, stderr) = run_client(home.path(), &["whoami"]);
    assert_eq!(exit, 0, "{stderr}");
    assert_eq!(stdout.trim(), "ada@example.com in acme");
    let current = read_json(&path);
    let access = current["access_token"].as_str().unwrap().to_owned();
    assert_ne!(current["refresh_token"], renewed["refresh_token"]);
    assert_eq!(me_status(&base, &access), 200);

    // logout: the refresh token's family is revoked (its access token too), the file is gone.
    let (exit, _, stderr) = run_client(home.path(), &["logout"]);
    assert_eq!(exit, 0, "{stderr}");
    assert!(stderr.contains("signed out"), "{stderr}");
    assert!(!path.exists(), "the credentials are deleted");
    assert_eq!(me_status(&base, &access), 401, "revoking the refresh token revokes its family");

    let (exit, _, stderr) = run_client(home.path(), &["whoami"]);
    assert_eq!(exit, 1);
    assert!(stderr.contains("error: not signed in; run keyward login --server URL"), "{stderr}");

    let log = server.log();
    for secret in [&access, &refresh] {
        assert!(!log.contains(secret.as_str()), "a token reached the server log");
    }
}

#[test]
fn a_denied_code_ends_login_with_an_error() {
    let (_db, _kw, server) = setup();
    let home = tempfile::tempdir().unwrap();
    let login = Login::start(home.path(), &server.base);
    let (_, code) = login.prompt();
    let (status, page) = person_decides(&server.base, "ada@example.com", &code, "deny");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Denied"), "{page}");
    let (exit, _, stderr) = login.finish(Duration::from_secs(30));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("error:") && stderr.contains("denied"), "{stderr}");
    assert!(!credentials_file(home.path()).exists(), "nothing stored");
}

#[test]
fn login_gives_up_when_the_code_expires() {
    let (_db, _kw, server) = setup_with(&[("KEYWARD_DEVICE__CODE_LIFETIME", "3s")]);
    let home = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let login = Login::start(home.path(), &server.base);
    login.prompt();
    let (exit, _, stderr) = login.finish(Duration::from_secs(20));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("error:") && stderr.contains("expired"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10), "the wait is bounded by expires_in: {:?}", start.elapsed());
    assert!(!credentials_file(home.path()).exists());
}

#[test]
fn whoami_and_logout_without_a_sign_in() {
    let home = tempfile::tempdir().unwrap();
    let (exit, stdout, stderr) = run_client(home.path(), &["whoami"]);
    assert_eq!(exit, 1);
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim(), "error: not signed in; run keyward login --server URL");
    let (exit, _, stderr) = run_client(home.path(), &["logout"]);
    assert_eq!(exit, 0, "nothing to do is not an error: {stderr}");
}

#[test]
fn login_to_a_server_that_is_not_there_fails_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (exit, stdout, stderr) =
        run_client(home.path(), &["login", "--server", &format!("http://127.0.0.1:{port}"), "--no-browser"]);
    assert_eq!(exit, 1);
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("error: cannot reach"), "{stderr}");
    assert!(!credentials_file(home.path()).exists());
}

/// Whether `email` can sign in with `password` (`303` from `POST /login`).
fn signs_in(base: &str, email: &str, password: &str) -> bool {
    let jar = Arc::new(Jar::default());
    let browser = Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(format!("{base}/login")).send().unwrap().text().unwrap();
    let csrf = csrf_field(&page);
    let res = browser
        .post(format!("{base}/login"))
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", password), ("next", "/")])
        .send()
        .unwrap();
    res.status().as_u16() == 303
}

#[test]
fn user_set_password_lets_a_person_sign_in() {
    let (_db, kw, server) = setup();
    kw.ok(&["user", "create", "bob@example.com", "--org", "acme"]);
    assert!(!signs_in(&server.base, "bob@example.com", PASSWORD), "no password yet");
    let out = kw.run_with_stdin(&["user", "set-password", "bob@example.com"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(signs_in(&server.base, "bob@example.com", PASSWORD));
    // A `user create` that fails (already a member) leaves the password as it was.
    let out = kw.run_with_stdin(
        &["user", "create", "bob@example.com", "--org", "acme", "--password-stdin"],
        "another-password\n",
    );
    assert!(!out.status.success());
    assert!(signs_in(&server.base, "bob@example.com", PASSWORD), "the old password still works");
    assert!(!signs_in(&server.base, "bob@example.com", "another-password"));
    let out = kw.run_with_stdin(&["user", "set-password", "nobody@example.com"], &format!("{PASSWORD}\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"), "{}", String::from_utf8_lossy(&out.stderr));
}
