//! The process harness shared by the end-to-end tests: run `keyward` commands against
//! a test database, and start `keyward serve` on port 0.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_store::testing::TestDb;

pub const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// Runs `keyward` against `db` in an empty directory (so no keyward.toml is read).
pub struct Kw {
    db_url: String,
    dir: tempfile::TempDir,
}

impl Kw {
    /// Creates the database with `keyward migrate`, as an operator would before the first
    /// admin command (admin commands never create a database).
    pub fn new(db: &TestDb) -> Self {
        let kw = Self { db_url: db.url.clone(), dir: tempfile::tempdir().unwrap() };
        kw.ok(&["migrate"]);
        kw
    }

    /// The empty working directory the commands run in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The database URL the commands are given.
    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env("KEYWARD_DATABASE_URL", &self.db_url)
            .env("KEYWARD_LISTEN", "127.0.0.1:0")
            .env("KEYWARD_USAGE_FLUSH_INTERVAL", "100ms")
            .env_remove("RUST_LOG");
        c
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs a command with extra environment variables (e.g. configuration overrides).
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).output().unwrap()
    }

    /// Runs a command that must succeed; returns stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "keyward {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn serve(&self) -> Served {
        self.serve_with(&[])
    }

    /// `keyward serve` with extra environment variables (configuration overrides).
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Served {
        let mut child = self
            .command(&["serve"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("keyward listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(30)).expect("the server announces its address");
        Served { child, base, log, reader }
    }
}

pub struct Served {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Served {
    /// The server's process id (to read `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn status(&self, path: &str, header: (&str, &str)) -> u16 {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.base))
            .header(header.0, header.1)
            .send()
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// GETs `path`; the status and the body as JSON (`Null` when it is not JSON).
    pub fn get_json(&self, path: &str, header: (&str, &str)) -> (u16, serde_json::Value) {
        let res = reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.base))
            .header(header.0, header.1)
            .send()
            .expect("the server answers");
        let status = res.status().as_u16();
        (status, serde_json::from_str(&res.text().unwrap()).unwrap_or(serde_json::Value::Null))
    }

    /// POSTs a form-encoded `body` to `path`; the status and the body as JSON.
    pub fn post_form(&self, path: &str, header: (&str, &str), body: &str) -> (u16, serde_json::Value) {
        let res = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.base))
            .header(header.0, header.1)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .expect("the server answers");
        let status = res.status().as_u16();
        (status, serde_json::from_str(&res.text().unwrap()).unwrap_or(serde_json::Value::Null))
    }

    /// Polls until `path` answers `want` (at most `within`); returns how long it took.
    pub fn until(&self, path: &str, header: (&str, &str), want: u16, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let got = self.status(path, header);
            if got == want {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "{path} still answers {got}, not {want}, after {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that `path` answers `want` at every poll for `during` (e.g. the second in
    /// which every server learns of a change that must not take a credential away).
    pub fn holds(&self, path: &str, header: (&str, &str), want: u16, during: Duration) {
        let start = Instant::now();
        while start.elapsed() < during {
            let got = self.status(path, header);
            assert_eq!(got, want, "{path} answered {got} after {:?}", start.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL: no shutdown path runs.
    pub fn kill9(self) {
        let Served { mut child, reader, .. } = self;
        let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
        let _ = child.wait();
        let _ = reader.join();
    }

    /// Stops the server with SIGTERM and returns its log.
    pub fn stop(self) -> String {
        let Served { mut child, log, reader, .. } = self;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
        // The pipe closes when the process exits: the reader has then seen every line.
        reader.join().unwrap();
        let text = log.lock().unwrap().clone();
        text
    }
}

pub fn bearer(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

/// HTTP Basic with `user:password` (both must be URL-safe: no form-encoding is done).
pub fn basic(user: &str, password: &str) -> (&'static str, String) {
    use base64::Engine;
    (
        "Authorization",
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))),
    )
}

/// Runs one case against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&keyward_store::testing::TestDb::sqlite()); })*
        }
        mod postgres {
            $(#[test] fn $name() {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let Some(db) = rt.block_on(keyward_store::testing::TestDb::postgres()) else { return };
                super::$name(&db);
            })*
        }
    };
}
