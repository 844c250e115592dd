//! `POST /api/v1/keys/verify`: for a `keys:verify` caller, always 200 with a code.

use chrono::{Duration, Utc};
use keyward_core::ids::KeyId;
use keyward_store::testing::TestDb;
use keyward_store::Actor;
use serde_json::{json, Value};

use crate::helpers::*;

async fn verify(app: &TestApp, caller: &Key, body: Value) -> Reply {
    let r = send(app.post("/api/v1/keys/verify").bearer_auth(&caller.secret).json(&body)).await;
    assert_eq!(r.status, 200, "verify {body}: {}", r.text);
    r
}

#[track_caller]
fn assert_refused(r: &Reply, code: &str) {
    assert_eq!(r.body["valid"], false, "{}", r.text);
    assert_eq!(r.body["code"], code, "{}", r.text);
}

async fn verify_reports_each_outcome(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let boss = app.member(&acme, "boss@acme.test", "admin").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let vic = app.member(&acme, "vic@acme.test", "viewer").await;
    let olga = app.member(&other, "olga@other.test", "owner").await;
    let backend = app.key(&boss, Some(&["keys:verify"])).await;

    // Valid, with everything the backend needs.
    let expires = Utc::now() + Duration::days(7);
    let adas = app.key_expiring(&ada, Some(&["projects:read", "projects:write"]), expires).await;
    let r = verify(&app, &backend, json!({"key": adas.secret})).await;
    let b = &r.body;
    assert_eq!(b["valid"], true, "{}", r.text);
    assert_eq!(b["code"], "VALID");
    assert_eq!(b["key_id"], adas.id);
    assert_eq!(b["principal"]["kind"], "user");
    assert_eq!(b["principal"]["id"], ada.user_id());
    assert_eq!(b["principal"]["email"], "ada@acme.test");
    assert_eq!(b["org"]["id"], acme.id.to_string());
    assert_eq!(b["org"]["slug"], "acme");
    assert_eq!(strings(&b["permissions"]), ["projects:read", "projects:write"]);
    let echoed: chrono::DateTime<Utc> = b["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((echoed - expires).num_milliseconds().abs() < 1000);
    assert!(!r.text.contains(&adas.secret), "the key is not echoed");
    let r = verify(&app, &backend, json!({"key": adas.secret, "permissions": ["projects:write"]})).await;
    assert_eq!(r.body["code"], "VALID");
    assert_eq!(r.body["valid"], true);
    let r = verify(&app, &backend, json!({"key": adas.secret, "permissions": []})).await;
    assert_eq!(r.body["code"], "VALID");

    // A viewer's key asked for more than it carries.
    let vics = app.key(&vic, None).await;
    let r = verify(&app, &backend, json!({"key": vics.secret, "permissions": ["projects:write"]})).await;
    assert_refused(&r, "INSUFFICIENT_PERMISSIONS");
    assert_eq!(r.body["key_id"], vics.id);
    let r =
        verify(&app, &backend, json!({"key": vics.secret, "permissions": ["projects:read", "projects:write"]})).await;
    assert_refused(&r, "INSUFFICIENT_PERMISSIONS");
    let r = verify(&app, &backend, json!({"key": vics.secret, "permissions": ["projects:read"]})).await;
    assert_eq!(r.body["code"], "VALID");

    // Unknown, malformed, mistyped.
    let unknown = app.secrets.generate(keyward_core::secret::SecretKind::ApiKey).expose().to_owned();
    for key in [unknown.as_str(), "hello", "", &mistyped(&adas.secret), &adas.secret[..20]] {
        let r = verify(&app, &backend, json!({"key": key})).await;
        assert_refused(&r, "NOT_FOUND");
        assert!(r.body["key_id"].is_null());
        assert!(r.body["principal"].is_null() && r.body["org"].is_null());
    }

    // Expired.
    let expired = app.expired_key(&ada, None).await;
    let r = verify(&app, &backend, json!({"key": expired.secret})).await;
    assert_refused(&r, "EXPIRED");
    assert_eq!(r.body["key_id"], expired.id);

    // Revoked, and the key of someone no longer a member: not found.
    let revoked = app.key(&ada, None).await;
    app.store.revoke_api_key(None, &KeyId::parse(&revoked.id).unwrap(), &Actor::cli()).await.unwrap();
    let r = verify(&app, &backend, json!({"key": revoked.secret})).await;
    assert_refused(&r, "NOT_FOUND");
    let gone = app.member(&acme, "gone@acme.test", "member").await;
    let gones = app.key(&gone, None).await;
    app.store.remove_member(&acme.id, &gone.user_id(), &Actor::cli()).await.unwrap();
    eventually("the removal reaches the verify API", PATIENCE, || async {
        verify(&app, &backend, json!({"key": gones.secret})).await.body["valid"] == false
    })
    .await;

    // Another organization's keys do not exist for this backend, expired or not.
    let olgas = app.key(&olga, None).await;
    let r = verify(&app, &backend, json!({"key": olgas.secret})).await;
    assert_refused(&r, "NOT_FOUND");
    assert!(r.body["key_id"].is_null() && r.body["org"].is_null(), "nothing about the other org: {}", r.text);
    let olgas_expired = app.expired_key(&olga, None).await;
    let r = verify(&app, &backend, json!({"key": olgas_expired.secret})).await;
    assert_refused(&r, "NOT_FOUND");
    assert!(r.body["key_id"].is_null());

    // Imported legacy keys are verified too.
    let legacy = keyward_server::keys::import(
        &app.store,
        &acme.id,
        &ada.principal(),
        "legacy",
        keyward_server::keys::Imported::Plain("legacy-key-for-verify-0123".into()),
        &Actor::cli(),
    )
    .await
    .unwrap();
    let r = verify(&app, &backend, json!({"key": "legacy-key-for-verify-0123"})).await;
    assert_eq!(r.body["code"], "VALID", "{}", r.text);
    assert_eq!(r.body["key_id"], legacy.id.to_string());
}

async fn verify_needs_keys_verify(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let boss = app.member(&acme, "boss@acme.test", "admin").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let target = app.key(&ada, None).await;
    for (what, caller) in [
        ("a member's key", app.key(&ada, None).await),
        ("a member's narrow key", app.key(&ada, Some(&["projects:read"])).await),
        ("an admin's key without keys:verify", app.key(&boss, Some(&["projects:read", "audit:read"])).await),
    ] {
        let r = send(app.post("/api/v1/keys/verify").bearer_auth(&caller.secret).json(&json!({"key": target.secret})))
            .await;
        assert_eq!(r.status, 403, "{what}: {}", r.text);
        r.assert_insufficient_scope();
        assert!(r.body.get("valid").is_none(), "{what} learned nothing");
    }
    // An admin's inheriting key holds keys:verify through `*`.
    let all = app.key(&boss, None).await;
    let r = verify(&app, &all, json!({"key": target.secret})).await;
    assert_eq!(r.body["code"], "VALID");
    // Malformed permission names are a request error, not an answer.
    let r = send(
        app.post("/api/v1/keys/verify")
            .bearer_auth(&all.secret)
            .json(&json!({"key": target.secret, "permissions": ["Not A Permission"]})),
    )
    .await;
    r.assert_error(422, "validation_failed");
}

both_backends!(verify_reports_each_outcome, verify_needs_keys_verify);
