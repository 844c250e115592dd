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
    lists_of_organizations_people_and_members,
    key_roll_with_and_without_grace,
    serviceaccount_rotate_with_and_without_grace,
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

/// A `keyward` command in `dir` with no configuration at all: no `--config`, no
/// `KEYWARD_*` variable, so the default `sqlite://keyward.db` is relative to `dir`.
fn bare(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYWARD_") {
            c.env_remove(&name);
        }
    }
    c.output().unwrap()
}

#[test]
fn admin_commands_never_create_a_database() {
    // The server's directory: `keyward migrate` creates ./keyward.db, and an organization.
    let home = tempfile::tempdir().unwrap();
    let out = bare(home.path(), &["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bare(home.path(), &["org", "create", "acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = home.path().join("keyward.db");
    assert!(db.exists());

    // Another directory: every admin command refuses, names the file it looked for and
    // the ways to the right one, prints nothing on stdout, and creates nothing.
    let elsewhere = tempfile::tempdir().unwrap();
    let missing = elsewhere.path().canonicalize().unwrap().join("keyward.db");
    for args in [
        &["org", "list"][..],
        &["org", "create", "acme"][..],
        &["user", "create", "ada@example.com", "--org", "acme"][..],
        &["member", "list", "--org", "acme"][..],
        &["key", "list", "--org", "acme"][..],
        &["serviceaccount", "list", "--org", "acme"][..],
    ] {
        let out = bare(elsewhere.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with(&format!("error: no database at {} ", missing.display())), "{args:?}: {err}");
        for hint in ["--config FILE", "KEYWARD_DATABASE_URL", "keyward migrate"] {
            assert!(err.contains(hint), "{hint}: {err}");
        }
        assert!(!missing.exists(), "{args:?} created a database");
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing at all was created");

    // Pointed at the server's database, the same commands see its data.
    let url = format!("sqlite://{}", db.display());
    let out = Command::new(BIN)
        .args(["org", "list"])
        .current_dir(elsewhere.path())
        .env("KEYWARD_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme"));
    let config = elsewhere.path().join("server.toml");
    std::fs::write(&config, format!("database_url = {url:?}\n")).unwrap();
    let out = bare(elsewhere.path(), &["--config", config.to_str().unwrap(), "org", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["data"][0]["slug"], "acme");
    assert!(!missing.exists());

    // `keyward migrate` is how a new database is started.
    let out = bare(elsewhere.path(), &["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(missing.exists());
}

fn lists_of_organizations_people_and_members(db: &TestDb) {
    let kw = Kw::new(db);
    let out = kw.run(&["org", "list"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "only the header when empty");
    assert!(String::from_utf8_lossy(&out.stderr).contains("keyward org create"), "and a hint on stderr");

    kw.ok(&["org", "create", "bigco", "--name", "Big Co", "--plan", "pro"]);
    kw.ok(&["org", "create", "acme", "--name", "Acme Corp"]);
    let out = kw.run_with_stdin(
        &["user", "create", "ada@example.com", "--org", "acme", "--role", "admin", "--password-stdin"],
        "correct horse battery\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kw.ok(&["user", "create", "bo@example.com", "--org", "acme", "--name", "Bo"]);
    kw.ok(&["user", "create", "bo@example.com", "--org", "bigco", "--role", "viewer"]);
    kw.ok(&["serviceaccount", "add", "--org", "acme", "--name", "ci"]);

    // Organizations, by slug.
    let text = kw.ok(&["org", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("SLUG") && lines[0].contains("PLAN"), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].contains("acme") && lines[1].contains("free") && lines[1].ends_with("Acme Corp"), "{text}");
    assert!(lines[2].contains("bigco") && lines[2].contains("pro") && lines[2].ends_with("Big Co"), "{text}");
    assert_eq!(lines[0].find("PLAN"), lines[1].find("free"), "columns line up: {text}");
    assert_eq!(lines[0].find("NAME"), lines[2].find("Big Co"), "columns line up: {text}");
    let orgs: serde_json::Value = serde_json::from_str(&kw.ok(&["org", "list", "--json"])).unwrap();
    let data = orgs["data"].as_array().unwrap();
    assert_eq!(data.iter().map(|o| o["slug"].as_str().unwrap()).collect::<Vec<_>>(), ["acme", "bigco"]);
    assert_eq!(data[1]["plan"], "pro");
    assert_eq!(data[1]["name"], "Big Co");
    assert!(data[0]["id"].as_str().unwrap().starts_with("org_") && data[0]["created_at"].is_string(), "{orgs}");

    // People, by e-mail; a password only as whether one is set.
    let text = kw.ok(&["user", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].contains("ada@example.com") && lines[1].contains(" set "), "{text}");
    assert!(lines[2].contains("bo@example.com") && lines[2].ends_with("Bo"), "{text}");
    assert!(!lines[2].contains(" set "), "{text}");
    assert_eq!(lines[0].find("PASSWORD"), lines[1].find(" set ").map(|i| i + 1), "columns line up: {text}");
    assert_eq!(
        lines[0].find("NAME"),
        lines[2].find("Bo").filter(|_| lines[2].ends_with("Bo")).map(|_| lines[2].len() - 2)
    );
    let json_text = kw.ok(&["user", "list", "--json"]);
    assert!(!json_text.contains("argon2"), "no password hash is listed");
    let users: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let data = users["data"].as_array().unwrap();
    assert_eq!(
        data.iter().map(|u| u["email"].as_str().unwrap()).collect::<Vec<_>>(),
        ["ada@example.com", "bo@example.com"]
    );
    assert_eq!(data[0]["password_set"], true);
    assert_eq!(data[1]["password_set"], false);
    assert_eq!(data[1]["display_name"], "Bo");
    assert!(data[0]["id"].as_str().unwrap().starts_with("usr_"));

    // Members of one organization: people and service accounts, with roles.
    let text = kw.ok(&["member", "list", "--org", "acme"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].starts_with("user") && lines[1].contains("ada@example.com") && lines[1].contains("admin"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("user") && lines[2].contains("bo@example.com") && lines[2].contains("member"),
        "{text}"
    );
    assert!(lines[3].starts_with("service_account") && lines[3].contains("ci"), "{text}");
    let bigco: serde_json::Value =
        serde_json::from_str(&kw.ok(&["member", "list", "--org", "bigco", "--json"])).unwrap();
    assert_eq!(bigco["data"].as_array().unwrap().len(), 1);
    assert_eq!(bigco["data"][0]["role"], "viewer");
    let out = kw.run(&["member", "list", "--org", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no organization nope"));

    // `member list --json` is exactly what the API's GET /api/v1/members answers.
    let cli: serde_json::Value = serde_json::from_str(&kw.ok(&["member", "list", "--org", "acme", "--json"])).unwrap();
    let key = kw.ok(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "members",
        "--permission",
        "members:read",
    ]);
    let server = kw.serve();
    let (h, v) = bearer(&key);
    let (status, api) = server.get_json("/api/v1/members", (h, &v));
    assert_eq!(status, 200, "{api}");
    assert_eq!(cli, api, "the CLI's member list is the API's");
    server.stop();
}

/// The secret a command printed: stdout must be that one line and nothing else.
fn secret_alone(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line on stdout: {stdout:?}");
    let secret = stdout.trim_end_matches('\n').to_owned();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret), "the secret only on stdout");
    secret
}

fn key_roll_with_and_without_grace(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["user", "create", "ada@example.com", "--org", "acme"]);
    let first = kw.ok(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "ci",
        "--permission",
        "projects:read",
        "--permission",
        "api_keys:read",
    ]);
    let before: serde_json::Value = serde_json::from_str(&kw.ok(&["key", "list", "--org", "acme", "--json"])).unwrap();
    let id = before["data"][0]["id"].as_str().unwrap().to_owned();
    let server = kw.serve();
    let check =
        |secret: &str| server.status("/auth/check?permission=projects:read", (bearer(secret).0, &bearer(secret).1));
    assert_eq!(check(&first), 200);

    // No grace: the new secret alone on stdout; the old one is refused at once (within a
    // second on a running server), the new one works, and the key keeps its settings.
    let second = secret_alone(&kw.run(&["key", "roll", &id]));
    assert!(second.starts_with("kw_") && second != first, "{second}");
    let (h, v) = bearer(&first);
    server.until("/api/v1/me", (h, &v), 401, Duration::from_secs(1));
    assert_eq!(check(&second), 200);
    let after: serde_json::Value = serde_json::from_str(&kw.ok(&["key", "list", "--org", "acme", "--json"])).unwrap();
    let key = &after["data"][0];
    assert_eq!(after["data"].as_array().unwrap().len(), 1, "the same key, not a new one");
    assert_eq!(key["id"], id.as_str());
    assert_eq!(key["name"], "ci");
    assert_eq!(key["permissions"], serde_json::json!(["api_keys:read", "projects:read"]));
    assert_eq!(key["prefix"], &second[..12]);

    // With grace: the old secret keeps working, next to the new one.
    let rolled: serde_json::Value =
        serde_json::from_str(&kw.ok(&["key", "roll", &id, "--grace", "1h", "--json"])).unwrap();
    let third = rolled["key"].as_str().unwrap().to_owned();
    assert_eq!(rolled["id"], id.as_str());
    assert_ne!(third, second);
    // Through the second in which a running server learns of the roll, and after it,
    // both secrets work.
    let (h, v) = bearer(&second);
    server.holds("/api/v1/me", (h, &v), 200, Duration::from_millis(1200));
    assert_eq!(check(&second), 200, "within the grace period the old secret works");
    assert_eq!(check(&third), 200);

    // The API's own bound on grace_seconds, and its refusals, with nothing on stdout.
    for (args, says) in [
        (&["key", "roll", &id, "--grace", "8d"][..], "grace_seconds must lie between 0 and 604800"),
        (&["key", "roll", &id, "--grace", "soon"][..], "not a duration"),
        (&["key", "roll", "key_00000000000000000000000000000000"][..], "no live key"),
        (&["key", "roll", "nonsense"][..], "is not a key id"),
    ] {
        let out = kw.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error:") && err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(check(&third), 200, "a refused roll changes nothing");

    // The last use, as the API shows it (uses not yet written included), is what `key list`
    // shows once the server has written it (at the latest at its shutdown).
    let (h, v) = bearer(&third);
    let (status, api) = server.get_json("/api/v1/api-keys", (h, &v));
    assert_eq!(status, 200, "{api}");
    let api_used: chrono::DateTime<chrono::Utc> = api["data"][0]["last_used_at"].as_str().unwrap().parse().unwrap();
    let log = server.stop();
    let listed: serde_json::Value = serde_json::from_str(&kw.ok(&["key", "list", "--org", "acme", "--json"])).unwrap();
    let cli_used: chrono::DateTime<chrono::Utc> = listed["data"][0]["last_used_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(cli_used.timestamp(), api_used.timestamp(), "the same last use, to the second");
    let out = kw.run(&["key", "list", "--org", "acme"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().unwrap().contains("LAST USED"), "{table}");
    assert!(table.contains(&api_used.format("%Y-%m-%d %H:%M:%S").to_string()), "{table}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage_flush_interval"), "the lag is explained");

    // A revoked key cannot be rolled back to life.
    kw.ok(&["key", "revoke", &id]);
    let out = kw.run(&["key", "roll", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live key"));

    let dump = String::from_utf8_lossy(&db.dump()).into_owned();
    for secret in [&first, &second, &third] {
        assert!(!log.contains(secret.as_str()) && !dump.contains(secret.as_str()), "a secret leaked");
    }
}

fn serviceaccount_rotate_with_and_without_grace(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["org", "create", "other"]);
    let first = kw.ok(&["serviceaccount", "add", "--org", "acme", "--name", "ci"]);
    let listed: serde_json::Value =
        serde_json::from_str(&kw.ok(&["serviceaccount", "list", "--org", "acme", "--json"])).unwrap();
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let client = listed["data"][0]["client_id"].as_str().unwrap().to_owned();
    let server = kw.serve();
    let me = |secret: &str| {
        let (h, v) = basic(&client, secret);
        server.status("/api/v1/me", (h, &v))
    };
    assert_eq!(me(&first), 200);

    // No grace: the new secret alone on stdout; the old one stops within a second.
    let second = secret_alone(&kw.run(&["serviceaccount", "rotate", "--org", "acme", &id]));
    assert!(is_sa_secret(&second) && second != first, "{second}");
    let (h, v) = basic(&client, &first);
    server.until("/api/v1/me", (h, &v), 401, Duration::from_secs(1));
    assert_eq!(me(&second), 200);
    let (status, token) = server.post_form(
        "/oauth/token",
        (basic(&client, &second).0, &basic(&client, &second).1),
        "grant_type=client_credentials",
    );
    assert_eq!(status, 200, "the new secret gets tokens: {token}");

    // With grace: both secrets work; --json shows the old one's end.
    let rotated: serde_json::Value =
        serde_json::from_str(&kw.ok(&["serviceaccount", "rotate", "--org", "acme", &id, "--grace", "600", "--json"]))
            .unwrap();
    let third = rotated["client_secret"].as_str().unwrap().to_owned();
    assert!(is_sa_secret(&third) && third != second);
    assert_eq!(rotated["id"], id.as_str());
    let secrets = rotated["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "{rotated}");
    let old = secrets.iter().find(|s| s["prefix"] == second[..12]).expect("the old secret is listed");
    assert!(old["expires_at"].is_string(), "the old secret ends with the grace period: {rotated}");
    let (h, v) = basic(&client, &second);
    server.holds("/api/v1/me", (h, &v), 200, Duration::from_millis(1200));
    assert_eq!(me(&second), 200, "within the grace period the old secret works");
    assert_eq!(me(&third), 200);

    // Refused like the API refuses, with nothing on stdout.
    for (args, says) in [
        (&["serviceaccount", "rotate", "--org", "acme", &id, "--grace", "8d"][..], "between 0 and 604800"),
        (&["serviceaccount", "rotate", "--org", "other", &id][..], "no service account"),
        (
            &["serviceaccount", "rotate", "--org", "acme", "sa_00000000000000000000000000000000"][..],
            "no service account",
        ),
        (&["serviceaccount", "rotate", "--org", "acme", "nonsense"][..], "is not a service account id"),
    ] {
        let out = kw.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error:") && err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(me(&third), 200, "a refused rotation changes nothing");

    let log = server.stop();
    let dump = String::from_utf8_lossy(&db.dump()).into_owned();
    for secret in [&first, &second, &third] {
        assert!(!log.contains(secret.as_str()) && !dump.contains(secret.as_str()), "a secret leaked");
    }
}

/// `sh -c 'stty echo; exec …'` in a pseudo-terminal: rexpect starts its child with echo
/// off, so echo is switched back on first — a prompt that did not turn it off would then
/// show the typed password, and the test would see it.
fn in_terminal(kw: &Kw, script: &str, args: &[&str]) -> rexpect::session::PtySession {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("stty echo && {script}")).arg("sh").args(args);
    c.current_dir(kw.dir()).env("KEYWARD_DATABASE_URL", kw.db_url()).env_remove("RUST_LOG");
    rexpect::session::spawn_command(c, Some(30_000)).expect("a pseudo-terminal")
}

fn exit_code(session: &rexpect::session::PtySession) -> i32 {
    match session.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => code,
        other => panic!("not a normal exit: {other:?}"),
    }
}

#[test]
fn set_password_asks_on_the_terminal_without_echo() {
    let db = TestDb::sqlite();
    let kw = Kw::new(&db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["user", "create", "bo@example.com", "--org", "acme"]);

    // The control: with echo on, what is typed shows in the terminal.
    let mut shell = in_terminal(&kw, "echo ready && read line && echo done", &[]);
    // Typed before `stty echo` has run, the line would not show: wait for the shell.
    shell.exp_string("ready").unwrap();
    shell.send_line("typed-in-the-open").unwrap();
    let seen = shell.exp_string("done").unwrap();
    assert!(seen.contains("typed-in-the-open"), "the terminal echoes: {seen:?}");

    let password = "correct horse battery staple";
    let mut p = in_terminal(&kw, "exec \"$@\"", &[BIN, "user", "set-password", "bo@example.com"]);
    let mut seen = p.exp_string("New password: ").unwrap();
    p.send_line(password).unwrap();
    seen += &p.exp_string("Repeat the password: ").unwrap();
    p.send_line(password).unwrap();
    seen += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0, "{seen}");
    assert!(seen.contains("set the password of bo@example.com"), "{seen}");
    assert!(!seen.contains("horse"), "the password was echoed: {seen:?}");

    let stored = |email: &str| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = keyward_store::Store::connect(&db.url).await.unwrap();
            let email = keyward_core::domain::Email::parse(email).unwrap();
            store.user_by_email(&email).await.unwrap().password_hash.expect("a password is set")
        })
    };
    let phc = stored("bo@example.com");
    assert!(keyward_core::password::verify(password, &phc), "the typed password is the one stored");

    // Two different entries change nothing.
    let mut p = in_terminal(&kw, "exec \"$@\"", &[BIN, "user", "set-password", "bo@example.com"]);
    p.exp_string("New password: ").unwrap();
    p.send_line("another password 1").unwrap();
    p.exp_string("Repeat the password: ").unwrap();
    p.send_line("another password 2").unwrap();
    let seen = p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 1, "{seen}");
    assert!(seen.contains("error: the two passwords differ"), "{seen}");
    assert_eq!(stored("bo@example.com"), phc, "the password is unchanged");

    // Scripts keep --password-stdin (and a piped stdin), with no prompt at all.
    let out = kw.run_with_stdin(&["user", "set-password", "bo@example.com", "--password-stdin"], "from a script 1\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("password:"), "no prompt");
    assert!(keyward_core::password::verify("from a script 1", &stored("bo@example.com")));
    let out = kw.run_with_stdin(&["user", "set-password", "bo@example.com"], "short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
}
