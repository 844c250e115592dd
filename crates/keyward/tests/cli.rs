//! End-to-end runs of the real `keyward` binary: admin commands on the database, the
//! server started on port 0, and revocation by the CLI reaching the running server.
//! Each case runs on SQLite and on PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{basic, bearer, Kw, BIN};
use keyward_store::testing::TestDb;

both_backends!(
    member_rules_from_the_cli,
    names_and_emails_are_checked_by_every_command,
    admin_lifecycle_against_a_running_server,
    imported_keys_work_via_basic,
    json_output,
    service_accounts_from_the_cli,
    service_account_rules_refuse_with_nothing_on_stdout,
);

fn admin_lifecycle_against_a_running_server(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["migrate"]);
    let org_id = kw.ok(&["org", "create", "acme", "--name", "Acme", "--plan", "pro"]);
    assert!(org_id.starts_with("org_"), "{org_id}");
    let out = kw.run_with_stdin(
        &["user", "create", "ada@example.com", "--org", "acme", "--role", "member", "--password-stdin"],
        "correct horse battery\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The secret alone on stdout, messages on stderr.
    let key = kw.ok(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "ci",
        "--permission",
        "projects:write",
    ]);
    assert!(key.starts_with("kw_") && key.len() == 41 && !key.contains(char::is_whitespace), "{key:?}");
    let inherit = kw.ok(&["key", "create", "--org", "acme", "--user", "ada@example.com", "--name", "all"]);

    // A permission the user lacks is refused, with nothing on stdout.
    let out = kw.run(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "x",
        "--permission",
        "audit:read",
    ]);
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

/// Fails with one `error:` line on stderr holding `expected`, and nothing on stdout.
#[track_caller]
fn refused(out: &std::process::Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains(expected), "{expected:?} in {stderr}");
}

/// `member remove` is final (adding the person back revives no key), and the last owner
/// can be neither removed nor demoted by the admin commands.
fn member_rules_from_the_cli(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["user", "create", "boss@acme.test", "--org", "acme", "--role", "owner"]);
    kw.ok(&["user", "create", "ada@acme.test", "--org", "acme", "--role", "member"]);
    let key = kw.ok(&["key", "create", "--org", "acme", "--user", "ada@acme.test", "--name", "ci"]);
    let boss_key = kw.ok(&["key", "create", "--org", "acme", "--user", "boss@acme.test", "--name", "boss"]);

    // The last owner stays.
    let out = kw.run(&["member", "remove", "--org", "acme", "--user", "boss@acme.test"]);
    refused(&out, "boss@acme.test is the last owner of acme");
    let out = kw.run(&["member", "set-role", "--org", "acme", "--user", "boss@acme.test", "--role", "admin"]);
    refused(&out, "last owner");
    // With a second owner, the first may step down.
    kw.ok(&["member", "set-role", "--org", "acme", "--user", "ada@acme.test", "--role", "owner"]);
    kw.ok(&["member", "set-role", "--org", "acme", "--user", "boss@acme.test", "--role", "admin"]);
    // Now ada is the last owner.
    let out = kw.run(&["member", "set-role", "--org", "acme", "--user", "ada@acme.test", "--role", "member"]);
    refused(&out, "ada@acme.test is the last owner of acme");
    let json: serde_json::Value = serde_json::from_str(&kw.ok(&[
        "member",
        "set-role",
        "--org",
        "acme",
        "--user",
        "boss@acme.test",
        "--role",
        "owner",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["previous_role"], "admin", "{json}");
    kw.ok(&["member", "set-role", "--org", "acme", "--user", "ada@acme.test", "--role", "member"]);

    // Removal is final.
    let server = kw.serve();
    let (h, v) = bearer(&key);
    assert_eq!(server.status("/api/v1/me", (h, &v)), 200);
    kw.ok(&["member", "remove", "--org", "acme", "--user", "ada@acme.test"]);
    server.until("/api/v1/me", (h, &v), 401, Duration::from_secs(1));
    let out = kw.run(&["user", "create", "ada@acme.test", "--org", "acme", "--role", "member"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = kw.ok(&["key", "create", "--org", "acme", "--user", "ada@acme.test", "--name", "new"]);
    let (fh, fv) = bearer(&fresh);
    server.until("/api/v1/me", (fh, &fv), 200, Duration::from_secs(1));
    assert_eq!(server.status("/api/v1/me", (h, &v)), 401, "the old key stays revoked after re-adding");
    let (bh, bv) = bearer(&boss_key);
    assert_eq!(server.status("/api/v1/me", (bh, &bv)), 200);
    let out = kw.run(&["member", "remove", "--org", "acme", "--user", "nobody@acme.test"]);
    refused(&out, "no user nobody@acme.test");
    server.stop();
}

/// Every name and e-mail the admin commands store: no control or format characters;
/// an internationalized domain is kept in punycode.
fn names_and_emails_are_checked_by_every_command(db: &TestDb) {
    let kw = Kw::new(db);
    for c in ['\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}'] {
        refused(&kw.run(&["org", "create", "acme", "--name", &format!("Acme{c}")]), "control or format");
    }
    kw.ok(&["org", "create", "acme"]);
    for c in ['\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}'] {
        let email = format!("ow{c}ner@acme.test");
        refused(&kw.run(&["user", "create", &email, "--org", "acme"]), "control or format");
        let name = format!("Ow{c}ner");
        refused(&kw.run(&["user", "create", "owner@acme.test", "--org", "acme", "--name", &name]), "control or format");
    }
    kw.ok(&["user", "create", "owner@acme.test", "--org", "acme", "--role", "owner"]);
    for c in ['\u{202E}', '\u{FEFF}'] {
        let name = format!("ci{c}");
        refused(
            &kw.run(&["key", "create", "--org", "acme", "--user", "owner@acme.test", "--name", &name]),
            "control or format",
        );
        refused(&kw.run(&["serviceaccount", "add", "--org", "acme", "--name", &name]), "control or format");
    }
    // An internationalized domain: stored and shown in punycode, the same person however
    // it is typed.
    let out = kw.ok(&["user", "create", "Ada@Bücher.example", "--org", "acme", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["email"], "ada@xn--bcher-kva.example", "{json}");
    let out = kw.run(&["user", "create", "ada@xn--bcher-kva.example", "--org", "acme"]);
    refused(&out, "already a member");
    // `оwner@` with a Cyrillic о beside `owner@`: refused, a look-alike of another address.
    refused(&kw.run(&["user", "create", "\u{43e}wner@acme.test", "--org", "acme"]), "mixes scripts");
    // A Cyrillic а in the domain is visibly another domain.
    let out = kw.ok(&["user", "create", "owner@\u{430}cme.test", "--org", "acme", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(json["email"].as_str().unwrap().starts_with("owner@xn--"), "{json}");
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
        assert_eq!(
            server.status("/api/v1/me", ("Authorization", &b64(format!("{secret}:")))),
            200,
            "{secret} as username"
        );
        assert_eq!(
            server.status("/api/v1/me", ("Authorization", &b64(format!("apikey:{secret}")))),
            200,
            "{secret} as apikey password"
        );
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
    let org: serde_json::Value =
        serde_json::from_str(&kw.ok(&["org", "create", "acme", "--plan", "enterprise", "--json"])).unwrap();
    assert_eq!(org["slug"], "acme");
    assert_eq!(org["plan"], "enterprise");
    kw.ok(&["user", "create", "bo@example.com", "--org", "acme", "--role", "viewer"]);
    let key: serde_json::Value = serde_json::from_str(&kw.ok(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "bo@example.com",
        "--name",
        "n",
        "--expires-in",
        "30d",
        "--json",
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

const EC_PUBLIC_PEM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../keyward-core/testdata/ec_public.pem");

fn is_sa_secret(s: &str) -> bool {
    let format = keyward_core::secret::SecretFormat::new("kw").unwrap();
    s.starts_with("kwsa_") && format.check(s) == Ok(keyward_core::secret::SecretKind::ServiceAccountSecret)
}

fn service_accounts_from_the_cli(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);

    // A client secret, alone on one line of stdout; messages on stderr.
    let out = kw.run(&["serviceaccount", "add", "--org", "acme", "--name", "ci", "--role", "member"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stdout.lines().count(), 1, "exactly one line on stdout: {stdout:?}");
    let ci_secret = stdout.trim_end_matches('\n').to_owned();
    assert!(is_sa_secret(&ci_secret), "a kwsa_ secret: {ci_secret:?}");
    assert_eq!(stdout, format!("{ci_secret}\n"));
    assert!(!stderr.trim().is_empty(), "a message on stderr");
    assert!(!stderr.contains(&ci_secret), "the secret only on stdout");
    let listed: serde_json::Value =
        serde_json::from_str(&kw.ok(&["serviceaccount", "list", "--org", "acme", "--json"])).unwrap();
    let ci = listed["data"].as_array().unwrap().iter().find(|a| a["name"] == "ci").expect("listed").clone();
    let ci_id = ci["id"].as_str().unwrap().to_owned();
    let ci_client = ci["client_id"].as_str().unwrap().to_owned();
    assert_eq!(ci["role"], "member");
    assert_eq!(ci["secrets"][0]["prefix"], &ci_secret[..12]);
    assert!(!listed.to_string().contains(&ci_secret), "lists never show a secret");

    // --json: client id and client secret.
    let json: serde_json::Value =
        serde_json::from_str(&kw.ok(&["serviceaccount", "add", "--org", "acme", "--name", "deploy", "--json"]))
            .unwrap();
    let json_secret = json["client_secret"].as_str().expect("client_secret in --json").to_owned();
    assert!(is_sa_secret(&json_secret), "{json_secret}");
    assert!(json["client_id"].as_str().is_some_and(|c| c.starts_with("sa_")), "{json}");
    assert_eq!(json["kind"], "service_account");
    assert_eq!(json["role"], "member", "the default role");
    assert_eq!(json["secrets"][0]["prefix"], &json_secret[..12]);

    // A public key and no secret: the client id on stdout; no client_secret in --json.
    let out = kw.run(&["serviceaccount", "add", "--org", "acme", "--name", "signer", "--public-key", EC_PUBLIC_PEM]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let signer_client = stdout.trim().to_owned();
    assert!(
        signer_client.starts_with("sa_") && !signer_client.starts_with("kwsa_"),
        "the client id: {signer_client:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&kw.ok(&[
        "serviceaccount",
        "add",
        "--org",
        "acme",
        "--name",
        "signer2",
        "--public-key",
        EC_PUBLIC_PEM,
        "--json",
    ]))
    .unwrap();
    assert!(json.get("client_secret").is_none(), "no secret was made: {json}");
    assert_eq!(json["secrets"], serde_json::json!([]));
    assert_eq!(json["public_keys"][0]["alg"], "ES256");
    let listed: serde_json::Value =
        serde_json::from_str(&kw.ok(&["serviceaccount", "list", "--org", "acme", "--json"])).unwrap();
    let signer =
        listed["data"].as_array().unwrap().iter().find(|a| a["client_id"] == signer_client.as_str()).expect("listed");
    assert_eq!(signer["secrets"], serde_json::json!([]));
    assert_eq!(signer["public_keys"].as_array().unwrap().len(), 1);

    // An imported client with a bcrypt-hashed secret.
    let legacy_plain = "legacy-client-secret-0123456789";
    let hash = bcrypt::hash(legacy_plain, 4).unwrap();
    let legacy_id =
        kw.ok(&["serviceaccount", "import", "--org", "acme", "--client-id", "legacy", "--bcrypt-hash", &hash]);
    assert!(legacy_id.starts_with("sa_"), "{legacy_id}");

    let server = kw.serve();
    let legacy = basic("legacy", legacy_plain);
    let (status, me) = server.get_json("/api/v1/me", (legacy.0, &legacy.1));
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["principal"]["kind"], "service_account", "{me}");
    assert_eq!(me["principal"]["id"], legacy_id.as_str());
    assert_eq!(me["org"]["slug"], "acme");
    // Twice: the second use goes through the upgraded (fast) hash.
    assert_eq!(server.status("/api/v1/me", (legacy.0, &legacy.1)), 200);
    let wrong = basic("legacy", "legacy-client-secret-wrong");
    assert_eq!(server.status("/api/v1/me", (wrong.0, &wrong.1)), 401);
    let (status, token) = server.post_form("/oauth/token", (legacy.0, &legacy.1), "grant_type=client_credentials");
    assert_eq!(status, 200, "{token}");
    let legacy_access = token["access_token"].as_str().expect("an access token").to_owned();
    assert!(legacy_access.starts_with("kwat_"), "{legacy_access}");
    assert!(token.get("refresh_token").is_none(), "client credentials get no refresh token");
    let (h, v) = bearer(&legacy_access);
    assert_eq!(server.status("/api/v1/me", (h, &v)), 200);

    // The generated secret works as Basic client credentials and at the token endpoint.
    let ci_basic = basic(&ci_client, &ci_secret);
    let (status, me) = server.get_json("/api/v1/me", (ci_basic.0, &ci_basic.1));
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["principal"]["kind"], "service_account");
    assert_eq!(me["principal"]["id"], ci_id.as_str());
    let (status, token) = server.post_form("/oauth/token", (ci_basic.0, &ci_basic.1), "grant_type=client_credentials");
    assert_eq!(status, 200, "{token}");
    let ci_access = token["access_token"].as_str().unwrap().to_owned();
    let (ah, av) = bearer(&ci_access);
    assert_eq!(server.status("/api/v1/me", (ah, &av)), 200);

    // Deleting it through the CLI while the server runs: refused within one second.
    let out = kw.run(&["serviceaccount", "delete", "--org", "acme", &ci_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty() || String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let took = server.until("/api/v1/me", (ci_basic.0, &ci_basic.1), 401, Duration::from_secs(1));
    eprintln!("service account deletion by the CLI reached the server in {took:?}");
    server.until("/api/v1/me", (ah, &av), 401, Duration::from_secs(1));
    let (status, _) = server.post_form("/oauth/token", (ci_basic.0, &ci_basic.1), "grant_type=client_credentials");
    assert_eq!(status, 401, "no new tokens for a deleted account");
    assert_eq!(server.status("/api/v1/me", (legacy.0, &legacy.1)), 200, "other accounts keep working");
    let out = kw.run(&["serviceaccount", "delete", "--org", "acme", &ci_id]);
    assert_eq!(out.status.code(), Some(1), "deleting twice fails");
    assert!(out.stdout.is_empty());

    let log = server.stop();
    assert!(log.contains("keyward stopped"), "{log}");
    let dump = String::from_utf8_lossy(&db.dump()).into_owned();
    for secret in [ci_secret.as_str(), json_secret.as_str(), legacy_plain, legacy_access.as_str(), ci_access.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log: {}…", &secret[..8]);
        assert!(!dump.contains(secret), "a secret is stored in plain: {}…", &secret[..8]);
    }
}

fn service_account_rules_refuse_with_nothing_on_stdout(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["org", "create", "bigco", "--plan", "pro"]);

    // An unknown role.
    let out = kw.run(&["serviceaccount", "add", "--org", "acme", "--name", "x", "--role", "wizard"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && err.contains("wizard"), "{err}");

    // A minimum plan: acme (free) is refused with a message naming the plan; bigco (pro) is not.
    let pro = [("KEYWARD_SERVICE_ACCOUNTS__MIN_PLAN", "pro")];
    let out = kw.run_with_env(&["serviceaccount", "add", "--org", "acme", "--name", "ci"], &pro);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && err.contains("pro"), "{err}");
    let hash = bcrypt::hash("legacy-client-secret-0123456789", 4).unwrap();
    let out = kw.run_with_env(
        &["serviceaccount", "import", "--org", "acme", "--client-id", "legacy", "--bcrypt-hash", &hash],
        &pro,
    );
    assert_eq!(out.status.code(), Some(1), "imports obey the plan too");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pro"));
    let out = kw.run_with_env(&["serviceaccount", "add", "--org", "bigco", "--name", "ci"], &pro);
    assert!(out.status.success(), "a pro organization may: {}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value =
        serde_json::from_str(&kw.ok(&["serviceaccount", "list", "--org", "acme", "--json"])).unwrap();
    assert_eq!(listed["data"], serde_json::json!([]), "nothing was made in acme");

    // A malformed bcrypt hash, a missing key file, an unknown organization.
    for args in [
        &["serviceaccount", "import", "--org", "acme", "--client-id", "x", "--bcrypt-hash", "$2b$10$short"][..],
        &["serviceaccount", "add", "--org", "acme", "--public-key", "/nonexistent/key.pem"][..],
        &["serviceaccount", "add", "--org", "nope", "--name", "x"][..],
    ] {
        let out = kw.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"), "{args:?}");
    }
}
