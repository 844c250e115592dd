//! End-to-end runs of the real `keyward` binary: admin commands on the database, the
//! server started on port 0, and revocation by the CLI reaching the running server.
//! Each case runs on SQLite and on PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bearer, Kw, BIN};
use keyward_store::testing::TestDb;

both_backends!(admin_lifecycle_against_a_running_server, imported_keys_work_via_basic, json_output);

fn admin_lifecycle_against_a_running_server(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["migrate"]);
    let org_id = kw.ok(&["org", "create", "acme", "--name", "Acme", "--plan", "pro"]);
    assert!(org_id.starts_with("org_"), "{org_id}");
    let out = kw.run_with_stdin(&["user", "create", "ada@example.com", "--org", "acme", "--role", "member", "--password-stdin"], "correct horse battery\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The secret alone on stdout, messages on stderr.
    let key = kw.ok(&["key", "create", "--org", "acme", "--user", "ada@example.com", "--name", "ci", "--permission", "projects:write"]);
    assert!(key.starts_with("kw_") && key.len() == 41 && !key.contains(char::is_whitespace), "{key:?}");
    let inherit = kw.ok(&["key", "create", "--org", "acme", "--user", "ada@example.com", "--name", "all"]);

    // A permission the user lacks is refused, with nothing on stdout.
    let out = kw.run(&["key", "create", "--org", "acme", "--user", "ada@example.com", "--name", "x", "--permission", "audit:read"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not hold audit:read"));

    let listed: serde_json::Value = serde_json::from_str(&kw.ok(&["key", "list", "--org", "acme", "--json"])).unwrap();
    let ci = listed["data"].as_array().unwrap().iter().find(|k| k["name"] == "ci").expect("listed").clone();
    let ci_id = ci["id"].as_str().unwrap().to_owned();
    assert_eq!(ci["prefix"], &key[..12]);
    assert!(!listed.to_string().contains(&key), "lists never show a secret");

    let server = kw.serve();
    let (h, v) = bearer(&key);
    assert_eq!(server.status("/api/v1/me", (h, &v)), 200);
    assert_eq!(server.status("/auth/check?permission=projects:write", (h, &v)), 200);

    // A role change through the CLI shrinks the key at the next request (within 1 s).
    kw.ok(&["member", "set-role", "--org", "acme", "--user", "ada@example.com", "--role", "viewer"]);
    server.until("/auth/check?permission=projects:write", (h, &v), 403, Duration::from_secs(1));

    // Revocation through the CLI while the server runs: refused within one second.
    kw.ok(&["key", "revoke", &ci_id]);
    let took = server.until("/api/v1/me", (h, &v), 401, Duration::from_secs(1));
    eprintln!("revocation by the CLI reached the server in {took:?}");

    // Removing the member kills their other keys.
    let (ih, iv) = bearer(&inherit);
    assert_eq!(server.status("/api/v1/me", (ih, &iv)), 200);
    kw.ok(&["member", "remove", "--org", "acme", "--user", "ada@example.com"]);
    server.until("/api/v1/me", (ih, &iv), 401, Duration::from_secs(1));

    let log = server.stop();
    assert!(log.contains("keyward stopped"), "{log}");
    for secret in [&key, &inherit] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
        assert!(!String::from_utf8_lossy(&db.dump()).contains(secret.as_str()), "a secret is stored in plain");
    }
}

fn imported_keys_work_via_basic(db: &TestDb) {
    use base64::Engine;
    use sha2::Digest;
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["user", "create", "ops@example.com", "--org", "acme", "--role", "admin"]);
    let plain = "legacy-plain-0123456789abcdef";
    let sha = "legacy-sha256-0123456789abcdef";
    let bcrypted = "legacy-bcrypt-0123456789abcdef";
    let base = ["key", "import", "--org", "acme", "--user", "ops@example.com", "--name"];
    let out = kw.run_with_stdin(&[&base[..], &["plain", "--plain-stdin"]].concat(), plain);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kw.ok(&[&base[..], &["sha", "--sha256", &hex::encode(sha2::Sha256::digest(sha))]].concat());
    let hash = bcrypt::hash(bcrypted, 4).unwrap();
    kw.ok(&[&base[..], &["bcrypt", "--bcrypt", &hash]].concat());
    let out = kw.run(&[&base[..], &["bad", "--bcrypt", "$2b$10$short"]].concat());
    assert!(!out.status.success(), "a malformed bcrypt hash is refused");

    let server = kw.serve();
    let b64 = |s: String| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
    for secret in [plain, sha, bcrypted] {
        assert_eq!(server.status("/api/v1/me", ("Authorization", &b64(format!("{secret}:")))), 200, "{secret} as username");
        assert_eq!(server.status("/api/v1/me", ("Authorization", &b64(format!("apikey:{secret}")))), 200, "{secret} as apikey password");
    }
    assert_eq!(server.status("/api/v1/me", ("Authorization", &b64("legacy-wrong-0123456789abcdef:".into()))), 401);
    let log = server.stop();
    for secret in [plain, sha, bcrypted] {
        assert!(!log.contains(secret));
        assert!(!String::from_utf8_lossy(&db.dump()).contains(secret), "{secret} stored in plain");
    }
}

fn json_output(db: &TestDb) {
    let kw = Kw::new(db);
    let org: serde_json::Value = serde_json::from_str(&kw.ok(&["org", "create", "acme", "--plan", "enterprise", "--json"])).unwrap();
    assert_eq!(org["slug"], "acme");
    assert_eq!(org["plan"], "enterprise");
    kw.ok(&["user", "create", "bo@example.com", "--org", "acme", "--role", "viewer"]);
    let key: serde_json::Value = serde_json::from_str(&kw.ok(&[
        "key", "create", "--org", "acme", "--user", "bo@example.com", "--name", "n", "--expires-in", "30d", "--json",
    ]))
    .unwrap();
    assert!(key["key"].as_str().unwrap().starts_with("kw_"));
    assert_eq!(key["permissions"], serde_json::Value::Null, "no list: inherits");
    assert!(key["expires_at"].is_string());
    let out = kw.run(&["key", "revoke", "key_00000000000000000000000000000000"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no live key"));
}

#[test]
fn bad_configuration_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("serve").current_dir(dir.path()).env("KEYWARD_LISTEN", "nowhere").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`listen`") && err.contains("host:port"), "{err}");
    let out = Command::new(BIN).args(["--config", "missing.toml", "migrate"]).current_dir(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!dir.path().join("keyward.db").exists(), "nothing was created");
}

#[test]
fn serve_starts_with_no_configuration_at_all() {
    // The default database is ./keyward.db, created on first start.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines.find_map(|l| l.ok()?.strip_prefix("keyward listening on ").map(str::to_owned)).expect("listening");
    let health = reqwest::blocking::get(format!("{addr}/health")).unwrap().text().unwrap();
    assert_eq!(health, "{\"status\":\"ok\"}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
    assert!(dir.path().join("keyward.db").exists());
}
