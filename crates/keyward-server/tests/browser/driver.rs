//! Headless Chromium through ChromeDriver: the child process, the WebDriver session,
//! bounded waits, and screenshots under `target/screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The window of a desktop browser.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// Whether the browser tests can run here. Without ChromeDriver they are skipped with a
/// message, except under `CI=true`, where that is a failure (`.ci/run` installs it).
pub fn available() -> bool {
    if std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{CHROMEDRIVER} or {CHROMIUM} is missing under CI=true: .ci/run installs chromium and chromium-driver");
    }
    eprintln!("SKIPPED: chromedriver not installed");
    false
}

/// A ChromeDriver child process on a free port of 127.0.0.1, killed by its PID when
/// dropped, with the browser's fresh profile directory.
pub struct Driver {
    child: Child,
    pub url: String,
    _profile: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM first so ChromeDriver can stop its Chromium, then SIGKILL.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

impl Driver {
    /// Starts ChromeDriver and waits (at most [`WAIT`]) until it answers `/status`.
    pub async fn start() -> Self {
        let port = free_port();
        let profile = tempfile::tempdir().expect("a profile directory");
        let log = profile.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), _profile: profile, log };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not answer within {WAIT:?}; log:\n{}",
                driver.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new session in headless Chromium with a fresh profile.
    pub async fn session(&self) -> Client {
        let profile = self._profile.path().join("profile");
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
        let client = tokio::time::timeout(
            WAIT * 2,
            ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&self.url),
        )
        .await
        .unwrap_or_else(|_| panic!("no WebDriver session within {:?}; log:\n{}", WAIT * 2, self.log_text()))
        .unwrap_or_else(|e| panic!("a WebDriver session: {e}; log:\n{}", self.log_text()));
        client
            .update_timeouts(TimeoutConfiguration::new(Some(WAIT), Some(WAIT), Some(Duration::ZERO)))
            .await
            .expect("set the WebDriver timeouts");
        client
    }
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots`, else the workspace's
/// `target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// The browser, with the things a test does as a person.
pub struct Page<'a> {
    pub c: &'a Client,
    /// `http://127.0.0.1:PORT` of keyward.
    pub base: &'a str,
}

impl<'a> Page<'a> {
    pub async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the current page.
    pub async fn path(&self) -> String {
        self.c.current_url().await.expect("the current URL").path().to_owned()
    }

    /// The path and query of the current page.
    pub async fn path_and_query(&self) -> String {
        let u = self.c.current_url().await.expect("the current URL");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    /// Waits (at most [`WAIT`]) until the page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            if started.elapsed() > WAIT {
                panic!("still on {now:?} after {WAIT:?}, waiting for {path:?}; the page:\n{}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most [`WAIT`]) for an element.
    pub async fn find(&self, css: &str) -> Element {
        match self.c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => {
                panic!("no {css:?} on {} within {WAIT:?}: {e}; the page:\n{}", self.path().await, self.text().await)
            }
        }
    }

    /// Every element matching `css` now (no waiting: for absence checks).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.c.find_all(Locator::Css(css)).await.expect("find_all")
    }

    /// The element whose visible text is `text` among those matching `css`.
    pub async fn with_text(&self, css: &str, text: &str) -> Option<Element> {
        for e in self.all(css).await {
            if e.text().await.map(|t| t.trim() == text).unwrap_or(false) {
                return Some(e);
            }
        }
        None
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        match self.c.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn source(&self) -> String {
        self.c.source().await.expect("the page source")
    }

    /// Types into the field `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Saves a PNG of the whole page as `screenshots/{name}.png`: the window is grown
    /// to the page's height for the shot, then put back.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let (w, h) = self.c.get_window_size().await.expect("the window size");
        let measure = "return [document.documentElement.scrollHeight, window.innerHeight, window.outerHeight]";
        let m = self.c.execute(measure, vec![]).await.expect("measure the page");
        let (page, inner, outer) = (m[0].as_u64().unwrap_or(0), m[1].as_u64().unwrap_or(0), m[2].as_u64().unwrap_or(0));
        let grow = page > inner;
        if grow {
            // The window's frame (outer − inner) is not part of the page.
            let want = (page + outer.saturating_sub(inner)).min(6000) as u32;
            self.c.set_window_size(w as u32, want).await.expect("grow the window");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(2) {
                let now = self
                    .c
                    .execute("return window.innerHeight", vec![])
                    .await
                    .ok()
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                if now >= page {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let png = self.c.screenshot().await.expect("a screenshot");
        if grow {
            self.c.set_window_size(w as u32, h as u32).await.expect("restore the window");
        }
        assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// The page's cookie `name` (HttpOnly ones too: WebDriver sees them).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.c.get_named_cookie(name).await.ok().map(|c| c.value().to_owned())
    }
}
