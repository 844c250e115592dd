//! A real OAuth client library against the server: `authlib` (Python, PyPI) performs
//! `client_credentials` with client_secret_basic, client_secret_post and private_key_jwt
//! (RS256, ES256 and RFC 9864's `Ed25519`), with its own defaults — Basic credentials
//! not form-encoded, assertions that expire one hour ahead — and every token it gets is
//! checked on `/api/v1/me`.
//!
//! The interpreter is the one in the virtual environment `.ci/run` fills
//! (`target/ci-venv`, authlib pinned there), or `KEYWARD_TEST_PYTHON`. Without one that
//! can import authlib the test fails under `CI=true` and is skipped, with the reason
//! printed, otherwise.

use std::path::PathBuf;
use std::process::Stdio;

use keyward_store::testing::TestDb;
use keyward_store::{Actor, NewClientSecret, NewServiceAccount};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::helpers::*;

/// The Python that has authlib, or why there is none.
fn python() -> Result<PathBuf, String> {
    let candidate = match std::env::var_os("KEYWARD_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ci-venv/bin/python"),
    };
    if !candidate.exists() {
        return Err(format!("no Python at {} (run .ci/run, or set KEYWARD_TEST_PYTHON)", candidate.display()));
    }
    let probe = std::process::Command::new(&candidate).args(["-c", "import authlib, joserfc, requests"]).output();
    match probe {
        Ok(o) if o.status.success() => Ok(candidate),
        Ok(o) => Err(format!("{} cannot import authlib: {}", candidate.display(), String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("{} does not run: {e}", candidate.display())),
    }
}

/// Runs the client script with `config` on stdin; its JSON answer.
async fn run_authlib(python: &PathBuf, config: &Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/authlib_client.py");
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client script starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(config.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the client script finishes within 2 minutes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the authlib script failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {stderr}", String::from_utf8_lossy(&out.stdout)))
}

async fn authlib_gets_tokens_every_way(db: &TestDb) {
    let python = match python() {
        Ok(p) => p,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => panic!("the authlib client test needs {why}"),
        Err(why) => {
            eprintln!("SKIPPED: the authlib client test: {why}");
            return;
        }
    };
    let app = spawn_app(db).await;
    let (org, admin) = app.org_with_admin("acme").await;
    let with_secret = app.create_sa(&admin, json!({"name": "secret bot", "role": "member"})).await;
    let keys = [Signer::rsa().public_pem, Signer::ec().public_pem, Signer::ed25519().public_pem];
    let keyed = app.create_sa(&admin, json!({"name": "key bot", "public_keys": keys})).await;
    let imported_secret = "legacy+secret%with:colon";
    let imported = app
        .store
        .create_service_account(
            &NewServiceAccount {
                org_id: org.id.clone(),
                name: "legacy".into(),
                role: "member".into(),
                client_id: Some("legacy-client".into()),
                secret: Some(NewClientSecret::Bcrypt(
                    keyward_core::legacy::BcryptHash::parse(&bcrypt::hash(imported_secret, 4).unwrap()).unwrap(),
                )),
                public_keys: vec![],
            },
            &Actor::cli(),
        )
        .await
        .unwrap();
    let meta = send(app.get("/.well-known/oauth-authorization-server")).await;
    let config = json!({
        "token_endpoint": app.url("/oauth/token"),
        "audience": token_endpoint(),
        "every_scope": strings(&meta.body["scopes_supported"]).join(" "),
        "secret_client": {"id": with_secret.client_id, "secret": with_secret.secret()},
        "imported_client": {"id": "legacy-client", "secret": imported_secret},
        "keyed_client": {
            "id": keyed.client_id,
            "rsa_private_pem": testdata_text("rsa_private.pem"),
            "ec_private_pem": testdata_text("ec_private.pem"),
            "ed25519_private_pem": testdata_text("ed25519_private.pem"),
        },
    });
    let out = run_authlib(&python, &config).await;

    // authlib's default assertion lives an hour: the one the server had to accept.
    assert_eq!(out["default_assertion"]["exp_minus_iat"], 3600, "{out}");
    let cases = [
        ("client_secret_basic", &with_secret.id),
        ("client_secret_post", &with_secret.id),
        ("imported_client_secret_basic", &imported.id.to_string()),
        ("imported_client_secret_post", &imported.id.to_string()),
        ("every_scope", &with_secret.id),
        ("private_key_jwt_RS256", &keyed.id),
        ("private_key_jwt_ES256", &keyed.id),
        ("private_key_jwt_Ed25519", &keyed.id),
    ];
    for (case, principal) in cases {
        let token = out[case]["access_token"].as_str().unwrap_or_else(|| panic!("{case}: {}", out[case]));
        let me = send(app.get("/api/v1/me").bearer_auth(token)).await;
        assert_eq!(me.status, 200, "{case}: {}", me.text);
        assert_eq!(me.body["principal"]["id"].as_str(), Some(principal.as_str()), "{case}: {}", me.text);
    }
    // Every supported scope, asked by a member: what a member holds.
    let mut granted = strings(&json!(out["every_scope"]["scope"].as_str().unwrap().split(' ').collect::<Vec<_>>()));
    granted.sort();
    let mut holds = app.roles.permissions_of("member").to_strings();
    holds.sort();
    assert_eq!(granted, holds, "{out}");
}

both_backends!(authlib_gets_tokens_every_way);
