//! After a full lifecycle — create (CLI and API), use by every presentation, roll with
//! and without grace, verify, revoke, use after revocation, mistyped and expired keys,
//! imported legacy keys — neither the database (the SQLite file with its WAL, or a
//! `pg_dump` of the schema) nor the server's log holds any plain key.
//!
//! The log is captured by a global subscriber at DEBUG for keyward, tower_http and
//! sqlx, installed once for the whole test binary; other tests running at the same
//! time log into it too, which only widens what is checked.

use std::io::Write;
use std::sync::{Mutex, Once};

use keyward_core::legacy::{BcryptHash, ImportedHash};
use keyward_core::secret::SecretHash;
use keyward_server::keys::{self, Imported};
use keyward_store::testing::TestDb;
use keyward_store::Actor;
use reqwest::header::AUTHORIZATION;
use serde_json::json;

use crate::helpers::*;

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    INSTALL.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,keyward_server=debug,keyward_store=debug,keyward_core=debug,tower_http=debug,sqlx=debug",
        );
        let subscriber =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(|| Capture).finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}

fn captured() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Fails if `haystack` holds `secret`, or the part of it beyond the display prefix.
#[track_caller]
fn assert_absent(haystack: &[u8], secret: &str, place: &str) {
    let contains = |needle: &str| haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(secret), "a plain key in {place}: {}…", &secret[..12.min(secret.len())]);
    // keyward's own secrets (keys, client secrets, tokens): the part beyond the
    // display prefix must not appear either.
    if secret.starts_with("kw") && secret.len() > 20 {
        assert!(!contains(&secret[12..]), "the hidden part of a secret in {place}");
    }
}

const LEGACY_PLAIN: &str = "legacy-plain-secret-4f8a1c2e";
const LEGACY_SHA: &str = "legacy-sha-secret-7b3d9e0f11";
const LEGACY_BCRYPT: &str = "legacy-bcrypt-secret-5a6c8d2b";

async fn no_plain_key_in_the_database_or_the_log(db: &TestDb) {
    capture_logs();
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let boss = app.member(&org, "boss@acme.test", "admin").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let mut secrets: Vec<String> = Vec::new();

    // Keys made by the admin commands' path.
    let auditor = app.key(&boss, None).await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write", "projects:read"])).await;
    secrets.extend([auditor.secret.clone(), manager.secret.clone()]);

    // Made through the API, used by every presentation.
    let r = send(app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&json!({"name": "ci"}))).await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let first = r.body["key"].as_str().unwrap().to_owned();
    secrets.push(first.clone());
    for via in EVERY_VIA {
        assert_eq!(app.me_status(&first, via).await, 200);
        let r = send(via.apply(app.get("/auth/check"), &first)).await;
        assert_eq!(r.status, 200);
    }
    // Mistyped and truncated forms of it.
    for wrong in [mistyped(&first), first[..first.len() - 1].to_owned()] {
        for via in EVERY_VIA {
            assert_eq!(app.me_status(&wrong, via).await, 401);
        }
    }
    // A secret pasted into the wrong field is not echoed in the error either.
    let r = send(
        app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&json!({"name": "x", "permissions": first})),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_absent(r.text.as_bytes(), &first, "an error body");

    // Rolled with a grace period, then without.
    let r = send(
        app.post(&format!("/api/v1/api-keys/{id}/roll"))
            .bearer_auth(&manager.secret)
            .json(&json!({"grace_seconds": 60})),
    )
    .await;
    assert_eq!(r.status, 200);
    let second = r.body["key"].as_str().unwrap().to_owned();
    secrets.push(second.clone());
    assert_eq!(app.me_status(&first, Via::Bearer).await, 200);
    assert_eq!(app.me_status(&second, Via::BasicApikey).await, 200);
    let r = send(app.post(&format!("/api/v1/api-keys/{id}/roll")).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 200);
    let third = r.body["key"].as_str().unwrap().to_owned();
    secrets.push(third.clone());
    assert_eq!(app.me_status(&third, Via::Header).await, 200);

    // Verified by a backend.
    for key in [&third, &second, &manager.secret] {
        let r = send(app.post("/api/v1/keys/verify").bearer_auth(&auditor.secret).json(&json!({"key": key}))).await;
        assert_eq!(r.status, 200);
        assert_absent(r.text.as_bytes(), key, "a verify answer");
    }

    // Expired.
    let expired = app.expired_key(&ada, None).await;
    secrets.push(expired.secret.clone());
    assert_eq!(app.me_status(&expired.secret, Via::Bearer).await, 401);

    // Imported legacy keys.
    let import = |name: &'static str, imported: Imported| {
        let (store, org, principal) = (app.store.clone(), org.id.clone(), ada.principal());
        async move { keys::import(&store, &org, &principal, name, imported, &Actor::cli()).await.unwrap() }
    };
    import("plain", Imported::Plain(LEGACY_PLAIN.into())).await;
    import("sha", Imported::Hash(ImportedHash::Sha256(SecretHash::of(LEGACY_SHA)))).await;
    let hash = bcrypt::hash(LEGACY_BCRYPT, 4).unwrap();
    import("bcrypt", Imported::Hash(ImportedHash::Bcrypt(BcryptHash::parse(&hash).unwrap()))).await;
    for legacy in [LEGACY_PLAIN, LEGACY_SHA, LEGACY_BCRYPT] {
        secrets.push(legacy.to_owned());
        let r = send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("{legacy}:")))).await;
        assert_eq!(r.status, 200, "{legacy}: {}", r.text);
        let r = send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("apikey:{legacy}x")))).await;
        assert_eq!(r.status, 401);
    }

    // Revoked, then used: a failed authentication is audited and logged.
    let r = send(app.delete(&format!("/api/v1/api-keys/{id}")).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204);
    for via in EVERY_VIA {
        assert_eq!(app.me_status(&third, via).await, 401);
    }
    eventually("the failed authentication is written", PATIENCE, || async {
        let r = send(app.get("/api/v1/audit-events?limit=200").bearer_auth(&auditor.secret)).await;
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.failed" && e["target"]["id"] == id.as_str())
    })
    .await;
    // Everything in memory is written: usage, events.
    eventually("last used is written", PATIENCE, || async {
        app.store.api_key(None, &keyward_core::ids::KeyId::parse(&id).unwrap()).await.unwrap().last_used_at.is_some()
    })
    .await;

    // The database.
    let dump = db.dump();
    assert!(dump.len() > 1000, "the dump holds the database");
    let prefix_of_first = &first[..12];
    assert!(
        dump.windows(12).any(|w| w == prefix_of_first.as_bytes())
            || dump.windows(12).any(|w| w == &third.as_bytes()[..12]),
        "display prefixes are stored in clear, so the dump is readable"
    );
    for s in &secrets {
        assert_absent(&dump, s, &format!("the {:?} database", db.backend));
    }

    // The log.
    let log = captured();
    assert!(log.contains(&id), "the log holds this test's lines (the failed authentication of {id})");
    assert!(log.contains("authentication failed"), "rejections are logged");
    for s in &secrets {
        assert_absent(log.as_bytes(), s, "the log");
    }
}

const LEGACY_CLIENT_SECRET: &str = "legacy-client-s3cr+t%:9";

/// The same for service accounts: client secrets (generated, rotated, imported) and the
/// access and refresh tokens issued for them, used, introspected and revoked.
async fn no_plain_client_secret_or_token_in_the_database_or_the_log(db: &TestDb) {
    capture_logs();
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let boss = app.member(&org, "boss@acme.test", "admin").await;
    let admin = app.key(&boss, None).await;
    let mut secrets: Vec<String> = vec![admin.secret.clone()];

    let r = send(
        app.post("/api/v1/service-accounts").bearer_auth(&admin.secret).json(&json!({"name": "ci", "role": "admin"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let client_id = r.body["client_id"].as_str().unwrap().to_owned();
    let account = r.body["id"].as_str().unwrap().to_owned();
    let first = r.body["client_secret"].as_str().unwrap().to_owned();
    secrets.push(first.clone());
    let r = send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("{client_id}:{first}")))).await;
    assert_eq!(r.status, 200);
    let r =
        send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("{client_id}:{}", mistyped(&first))))).await;
    assert_eq!(r.status, 401);

    // Tokens: issued by Basic and by post, used, introspected, revoked.
    let token = |form: Vec<(&'static str, String)>, with_basic: bool| {
        let mut rb = app.post("/oauth/token").form(&form);
        if with_basic {
            rb = rb.header(AUTHORIZATION, basic(&format!("{client_id}:{first}")));
        }
        async move { send(rb).await }
    };
    let r = token(vec![("grant_type", "client_credentials".into())], true).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let r = token(
        vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", client_id.clone()),
            ("client_secret", first.clone()),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, 200);
    let second_access = r.body["access_token"].as_str().unwrap().to_owned();
    secrets.extend([access.clone(), second_access.clone()]);
    assert_eq!(app.me_status(&access, Via::Bearer).await, 200);
    let r = send(
        app.post("/oauth/introspect")
            .header(AUTHORIZATION, basic(&format!("{client_id}:{first}")))
            .form(&[("token", &access)]),
    )
    .await;
    assert_eq!(r.body["active"], true);
    assert_absent(r.text.as_bytes(), &access, "an introspection answer");
    let r = send(
        app.post("/oauth/revoke")
            .header(AUTHORIZATION, basic(&format!("{client_id}:{first}")))
            .form(&[("token", &access)]),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.me_status(&access, Via::Bearer).await, 401);

    // Rotated; the old secret refused, which is audited.
    let r = send(app.post(&format!("/api/v1/service-accounts/{account}/secret")).bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 200);
    let rotated = r.body["client_secret"].as_str().unwrap().to_owned();
    secrets.push(rotated.clone());
    let r = send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("{client_id}:{first}")))).await;
    assert_eq!(r.status, 401);
    let r = send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("{client_id}:{rotated}")))).await;
    assert_eq!(r.status, 200);

    // An imported bcrypt client secret, used (and so re-hashed) at the token endpoint.
    let hash = bcrypt::hash(LEGACY_CLIENT_SECRET, 4).unwrap();
    let new = keyward_store::NewServiceAccount {
        org_id: org.id.clone(),
        name: "legacy".into(),
        role: "member".into(),
        client_id: Some("legacy-client".into()),
        secret: Some(keyward_store::NewClientSecret::Bcrypt(BcryptHash::parse(&hash).unwrap())),
        public_keys: vec![],
    };
    app.store.create_service_account(&new, &Actor::cli()).await.unwrap();
    secrets.push(LEGACY_CLIENT_SECRET.to_owned());
    let encoded: String = url::form_urlencoded::byte_serialize(LEGACY_CLIENT_SECRET.as_bytes()).collect();
    for _ in 0..2 {
        let r = send(
            app.post("/oauth/token")
                .header(AUTHORIZATION, basic(&format!("legacy-client:{encoded}")))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        secrets.push(r.body["access_token"].as_str().unwrap().to_owned());
    }

    // Deleted: everything refused.
    let r = send(app.delete(&format!("/api/v1/service-accounts/{account}")).bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 204);
    assert_eq!(app.me_status(&second_access, Via::Bearer).await, 401);
    eventually("the failed authentication is written", PATIENCE, || async {
        let r = send(app.get("/api/v1/audit-events?limit=200").bearer_auth(&admin.secret)).await;
        r.body["data"].as_array().unwrap().iter().any(|e| e["action"] == "auth.failed")
    })
    .await;

    let dump = db.dump();
    assert!(dump.windows(client_id.len()).any(|w| w == client_id.as_bytes()), "the dump holds the account");
    for s in &secrets {
        assert_absent(&dump, s, &format!("the {:?} database", db.backend));
    }
    let log = captured();
    assert!(log.contains("authentication failed"), "rejections are logged");
    for s in &secrets {
        assert_absent(log.as_bytes(), s, "the log");
    }
}

/// A key put in a query string (`?api_key=…`), or sent in a header, never reaches the
/// request log: its line holds the method, the path and the parameter names only.
async fn the_request_log_names_query_parameters_but_never_their_values(db: &TestDb) {
    capture_logs();
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, None).await;
    let header_key = app.key(&ada, None).await;
    // A name no other test uses, to find this request's line.
    let marker = format!("m{}", fresh_jti().replace('-', "_"));
    let marker = &marker[..marker.len().min(24)];
    let path = format!("/api/v1/me?api_key={}&{marker}=visible-value&flag", key.secret);
    let r = send(app.get(&path).header(AUTHORIZATION, format!("Bearer {}", header_key.secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A key pasted as a parameter name shows no more than its display prefix.
    let r = send(app.get(&format!("/auth/check?{}&{marker}", key.secret))).await;
    assert_eq!(r.status, 401);
    let expected = format!("query=api_key,{marker},flag");
    let mut log = String::new();
    eventually("the request's log line", PATIENCE, || {
        log = captured();
        let found = log.lines().any(|l| l.contains(&expected) && l.contains("finished processing"));
        async move { found }
    })
    .await;
    let line = log.lines().find(|l| l.contains(&expected) && l.contains("finished processing")).unwrap().to_owned();
    assert!(line.contains("method=GET") && line.contains("path=/api/v1/me") && line.contains("status=200"), "{line}");
    assert!(!line.contains("visible-value"), "a query value in the log: {line}");
    let cut = format!("query={}…,{marker}", &key.secret[..12]);
    eventually("the second request's log line", PATIENCE, || {
        let found = captured().contains(&cut);
        async move { found }
    })
    .await;
    let log = captured();
    for secret in [&key.secret, &header_key.secret] {
        assert_absent(log.as_bytes(), secret, "the request log");
    }
    assert!(!log.contains("visible-value"), "a query value in the log");
}

both_backends!(
    no_plain_key_in_the_database_or_the_log,
    no_plain_client_secret_or_token_in_the_database_or_the_log,
    the_request_log_names_query_parameters_but_never_their_values,
);
