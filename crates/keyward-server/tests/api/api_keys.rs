//! `/api/v1/api-keys`: create, list, revoke, roll, and the rules for keys
//! (DESIGN.md "HTTP API", "Rules for keys").

use chrono::{Duration, Utc};
use keyward_store::testing::TestDb;
use serde_json::{json, Value};

use crate::helpers::*;

const KEY_FIELDS: [&str; 8] =
    ["id", "name", "prefix", "permissions", "created_at", "updated_at", "last_used_at", "expires_at"];

/// A key that may manage keys: `api_keys:read` and `api_keys:write` in its own list.
const MANAGER: &[&str] = &["api_keys:read", "api_keys:write", "projects:read"];

async fn create(app: &TestApp, manager: &Key, body: Value) -> Reply {
    send(app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&body)).await
}

#[track_caller]
fn assert_key_view(v: &Value) {
    let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    for f in KEY_FIELDS {
        assert!(obj.contains_key(f), "{f} missing in {v}");
    }
    assert!(v["id"].as_str().unwrap().starts_with("key_"));
    assert!(v["created_at"].is_string() && v["updated_at"].is_string());
}

async fn created_keys_are_shown_once_and_work(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(MANAGER)).await;

    let r = create(&app, &manager, json!({"name": "ci", "permissions": ["projects:read"]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = &r.body;
    assert_key_view(b);
    let secret = b["key"].as_str().expect("the plain key").to_owned();
    assert!(secret.starts_with("kw_"), "{secret}");
    assert_eq!(secret.len(), 3 + 32 + 6);
    assert_eq!(b["prefix"], secret[..12]);
    assert_eq!(b["name"], "ci");
    assert_eq!(strings(&b["permissions"]), ["projects:read"]);
    assert!(b["last_used_at"].is_null());
    assert!(b["expires_at"].is_null());
    let id = b["id"].as_str().unwrap().to_owned();

    // The new key works, with what it was given.
    for via in EVERY_VIA {
        let me = send(via.apply(app.get("/api/v1/me"), &secret)).await;
        assert_eq!(me.status, 200, "{via:?}: {}", me.text);
        assert_eq!(me.body["credential"]["id"], id);
        assert_eq!(strings(&me.body["permissions"]), ["projects:read"]);
    }
    send(app.get("/auth/check?permission=projects:write").bearer_auth(&secret)).await.assert_insufficient_scope();

    // With an expiry, which is echoed back.
    let at = (Utc::now() + Duration::days(30)).to_rfc3339();
    let r = create(&app, &manager, json!({"name": "monthly", "expires_at": at})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let echoed: chrono::DateTime<Utc> = r.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((echoed - at.parse::<chrono::DateTime<Utc>>().unwrap()).num_milliseconds().abs() < 1000);

    // Without a list, a key made by a key gets the maker's own permissions written out.
    let r = create(&app, &manager, json!({"name": "no list"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(strings(&r.body["permissions"]), MANAGER);
    let child = r.body["key"].as_str().unwrap().to_owned();
    let me = send(app.get("/api/v1/me").bearer_auth(&child)).await;
    assert_eq!(strings(&me.body["permissions"]), MANAGER, "not everything the member holds");

    // The list never shows a secret.
    let list = app.list_keys(&manager, "").await;
    assert_eq!(list.len(), 4);
    let text = serde_json::to_string(&list).unwrap();
    for k in &list {
        assert_key_view(k);
        assert!(k.get("key").is_none(), "no key field in lists: {k}");
    }
    for s in [&secret, &child, &manager.secret] {
        assert!(!text.contains(s.as_str()), "a secret in the list");
    }
}

/// Managing keys with a key needs `api_keys:write` / `api_keys:read` in the key's own
/// list: a key without it, an inheriting key and a wildcard key are refused (403).
async fn managing_keys_needs_explicit_permissions(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let boss = app.member(&org, "boss@acme.test", "admin").await;
    let manager = app.key(&ada, Some(MANAGER)).await;
    let target = app.key(&ada, Some(&["projects:read"])).await;
    let cannot = [
        ("projects:read only", app.key(&ada, Some(&["projects:read"])).await),
        ("api_keys:read only", app.key(&ada, Some(&["api_keys:read"])).await),
        ("a member's inheriting key", app.key(&ada, None).await),
        ("an admin's inheriting key", app.key(&boss, None).await),
        ("an admin's wildcard key", app.key(&boss, Some(&["*"])).await),
    ];
    for (what, key) in &cannot {
        let r = send(app.post("/api/v1/api-keys").bearer_auth(&key.secret).json(&json!({"name": "x"}))).await;
        assert_eq!(r.status, 403, "{what} created a key: {}", r.text);
        r.assert_insufficient_scope();
        if what.contains("admin") {
            continue; // the admin's keys are not ada's: the rest would be 404s anyway
        }
        let r = send(app.delete(&format!("/api/v1/api-keys/{}", target.id)).bearer_auth(&key.secret)).await;
        assert_eq!(r.status, 403, "{what} revoked a key: {}", r.text);
        r.assert_insufficient_scope();
        let r = send(app.post(&format!("/api/v1/api-keys/{}/roll", target.id)).bearer_auth(&key.secret)).await;
        assert_eq!(r.status, 403, "{what} rolled a key: {}", r.text);
        r.assert_insufficient_scope();
    }
    // Listing needs api_keys:read in the own list.
    for key in [
        app.key(&ada, Some(&["projects:read"])).await,
        app.key(&ada, Some(&["api_keys:write"])).await,
        app.key(&ada, None).await,
        app.key(&boss, None).await,
    ] {
        send(app.get("/api/v1/api-keys").bearer_auth(&key.secret)).await.assert_insufficient_scope();
    }
    // Nothing was created, revoked or rolled.
    assert_eq!(app.me_status(&target.secret, Via::Bearer).await, 200);
    let names: Vec<Value> = app.list_keys(&manager, "").await.iter().map(|k| k["name"].clone()).collect();
    assert!(!names.contains(&json!("x")));
}

/// A key can never be given a permission its creator lacks (403).
async fn no_key_exceeds_its_creator(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let vic = app.member(&org, "vic@acme.test", "viewer").await;
    let manager = app.key(&vic, Some(MANAGER)).await;
    for perms in
        [json!(["projects:write"]), json!(["*"]), json!(["projects:*"]), json!(["projects:read", "audit:read"])]
    {
        let r = create(&app, &manager, json!({"name": "more", "permissions": perms})).await;
        assert_eq!(r.status, 403, "{perms}: {}", r.text);
        r.assert_insufficient_scope();
    }
    // A member holds projects:write, but a key without it cannot hand it out.
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let narrow = app.key(&ada, Some(&["api_keys:write", "api_keys:read"])).await;
    let r = create(&app, &narrow, json!({"name": "wider", "permissions": ["projects:read"]})).await;
    r.assert_insufficient_scope();
    // ... while one that holds it can.
    let r = create(&app, &narrow, json!({"name": "same", "permissions": ["api_keys:read"]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.list_keys(&manager, "").await.len(), 1, "the viewer got no new key");
}

async fn create_validates_its_input(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(MANAGER)).await;
    let past = (Utc::now() - Duration::seconds(5)).to_rfc3339();
    for body in [
        json!({}),
        json!({"permissions": ["projects:read"]}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "é".repeat(101)}),
        json!({"name": "tab\there"}),
        json!({"name": "ok", "expires_at": past}),
        json!({"name": "ok", "expires_at": "tomorrow"}),
        json!({"name": "ok", "permissions": ["rockets:launch"]}),
        json!({"name": "ok", "permissions": ["Projects Read"]}),
        json!({"name": "ok", "permissions": "projects:read"}),
        json!({"name": 5}),
        json!({"name": "ok", "colour": "red"}),
        json!(["name"]),
    ] {
        let r = create(&app, &manager, body.clone()).await;
        r.assert_error(422, "validation_failed");
    }
    let r = create(&app, &manager, json!({"name": "x".repeat(100)})).await;
    assert_eq!(r.status, 201, "100 characters are allowed: {}", r.text);
    assert_eq!(app.list_keys(&manager, "").await.len(), 2, "only the valid request made a key");
}

async fn lists_show_own_keys_newest_first(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let bob = app.member(&acme, "bob@acme.test", "member").await;
    let ada_elsewhere = app.join(&other, &ada.user, "owner").await;
    let manager = app.key(&ada, Some(MANAGER)).await;
    let mut mine = vec![manager.id.clone()];
    for n in 0..3 {
        let r = create(&app, &manager, json!({"name": format!("k{n}"), "permissions": ["projects:read"]})).await;
        assert_eq!(r.status, 201);
        mine.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let bobs = app.key(&bob, None).await;
    let elsewhere = app.key(&ada_elsewhere, None).await;

    let list = app.list_keys(&manager, "").await;
    let ids: Vec<&str> = list.iter().map(|k| k["id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = mine.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first, "only ada's keys in acme, newest first");
    assert!(!ids.contains(&bobs.id.as_str()) && !ids.contains(&elsewhere.id.as_str()));
    for k in &list {
        assert!(k.get("revoked_at").is_none(), "no revoked_at without include_revoked: {k}");
    }
    let created: Vec<&str> = list.iter().map(|k| k["created_at"].as_str().unwrap()).collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted);

    // Revoked keys only with ?include_revoked=true, then with revoked_at.
    let gone = &mine[2];
    let r = send(app.delete(&format!("/api/v1/api-keys/{gone}")).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    for query in ["", "?include_revoked=false"] {
        let list = app.list_keys(&manager, query).await;
        assert!(find(&list, gone).is_none(), "{query}: a revoked key is not listed");
        assert_eq!(list.len(), 3);
    }
    let list = app.list_keys(&manager, "?include_revoked=true").await;
    assert_eq!(list.len(), 4);
    for k in &list {
        assert!(k.as_object().unwrap().contains_key("revoked_at"), "{k}");
        if k["id"] == gone.as_str() {
            let at: chrono::DateTime<Utc> = k["revoked_at"].as_str().expect("revoked_at set").parse().unwrap();
            assert!((Utc::now() - at).num_seconds() < 60);
        } else {
            assert!(k["revoked_at"].is_null(), "{k}");
        }
    }
}

async fn revoking_is_final_and_scoped(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let bob = app.member(&acme, "bob@acme.test", "member").await;
    let olga = app.member(&other, "olga@other.test", "owner").await;
    let ada_elsewhere = app.join(&other, &ada.user, "member").await;
    let manager = app.key(&ada, Some(MANAGER)).await;
    let victim = app.key(&ada, None).await;
    let bobs = app.key(&bob, None).await;
    let olgas = app.key(&olga, None).await;
    let adas_other = app.key(&ada_elsewhere, None).await;

    let r = send(app.delete(&format!("/api/v1/api-keys/{}", victim.id)).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "204 has no body");
    assert_eq!(app.me_status(&victim.secret, Via::Bearer).await, 401);
    // Again: the key is gone for this route.
    send(app.delete(&format!("/api/v1/api-keys/{}", victim.id)).bearer_auth(&manager.secret))
        .await
        .assert_error(404, "not_found");
    // Another person's key in the same org, another org's key, and the same person's
    // key in another org: 404, untouched.
    for (what, key) in [("bob's", &bobs), ("another org's", &olgas), ("ada's in another org", &adas_other)] {
        let r = send(app.delete(&format!("/api/v1/api-keys/{}", key.id)).bearer_auth(&manager.secret)).await;
        assert_eq!(r.status, 404, "{what}: {}", r.text);
        r.assert_error(404, "not_found");
        assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200, "{what} key still works");
    }
    // Ids that are not ids, or name nothing.
    for id in [
        "nope",
        "key_",
        "key_00000000000000000000000000000000",
        &acme.id.to_string(),
        &ada.user_id(),
        "key_0192F5E1A8B07C3D9E2F41A6B5C8D7E0",
        "..%2F..%2Fetc%2Fpasswd",
        "%00",
    ] {
        let r = send(app.delete(&format!("/api/v1/api-keys/{id}")).bearer_auth(&manager.secret)).await;
        r.assert_error(404, "not_found");
    }
    assert_eq!(app.me_status(&manager.secret, Via::Bearer).await, 200);
}

async fn rolling_replaces_the_secret(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(MANAGER)).await;
    let key = app.key(&ada, Some(&["projects:read"])).await;
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200, "cached before the roll");

    // No body: no grace. The old secret fails on the very next request.
    let r = send(app.post(&format!("/api/v1/api-keys/{}/roll", key.id)).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_key_view(&r.body);
    let new = r.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new, key.secret);
    assert!(new.starts_with("kw_"));
    assert_eq!(r.body["id"], key.id, "same key, new secret");
    assert_eq!(r.body["prefix"], new[..12]);
    assert_eq!(r.body["name"], "test key");
    assert_eq!(strings(&r.body["permissions"]), ["projects:read"], "same settings");
    for via in EVERY_VIA {
        let old = send(via.apply(app.get("/api/v1/me"), &key.secret)).await;
        assert_eq!(old.status, 401, "{via:?}: the old secret after a roll without grace");
        old.assert_invalid_token();
        assert_eq!(app.me_status(&new, via).await, 200, "{via:?}: the new secret");
    }
    let listed = app.list_keys(&manager, "").await;
    assert_eq!(find(&listed, &key.id).unwrap()["prefix"], new[..12], "the list shows the new prefix");

    // With a grace period both work, as the same key.
    let r = send(
        app.post(&format!("/api/v1/api-keys/{}/roll", key.id))
            .bearer_auth(&manager.secret)
            .json(&json!({"grace_seconds": 60})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let newer = r.body["key"].as_str().unwrap().to_owned();
    for secret in [&new, &newer] {
        let me = send(app.get("/api/v1/me").bearer_auth(secret)).await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.body["credential"]["id"], key.id);
    }
    // A roll without grace ends every earlier secret, including one in its grace period.
    let r = send(app.post(&format!("/api/v1/api-keys/{}/roll", key.id)).bearer_auth(&manager.secret).json(&json!({})))
        .await;
    assert_eq!(r.status, 200, "an empty object is a roll without grace: {}", r.text);
    let newest = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&new, Via::Bearer).await, 401);
    assert_eq!(app.me_status(&newer, Via::Bearer).await, 401);
    assert_eq!(app.me_status(&newest, Via::Bearer).await, 200);

    // Grace periods out of range are refused, and the key is left alone.
    for body in
        [json!({"grace_seconds": 1_000_000_000}), json!({"grace_seconds": -1}), json!({"grace_seconds": 604_801})]
    {
        let r =
            send(app.post(&format!("/api/v1/api-keys/{}/roll", key.id)).bearer_auth(&manager.secret).json(&body)).await;
        r.assert_error(422, "validation_failed");
    }
    assert_eq!(app.me_status(&newest, Via::Bearer).await, 200);

    // Another person's key, a revoked key, a malformed id: 404.
    let bob = app.member(&org, "bob@acme.test", "member").await;
    let bobs = app.key(&bob, None).await;
    let revoked = app.key(&ada, None).await;
    let r = send(app.delete(&format!("/api/v1/api-keys/{}", revoked.id)).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204);
    for id in [bobs.id.as_str(), revoked.id.as_str(), "nope"] {
        let r = send(app.post(&format!("/api/v1/api-keys/{id}/roll")).bearer_auth(&manager.secret)).await;
        r.assert_error(404, "not_found");
    }
    assert_eq!(app.me_status(&bobs.secret, Via::Bearer).await, 200);
    assert_eq!(app.me_status(&revoked.secret, Via::Bearer).await, 401, "a roll cannot revive a revoked key");
}

both_backends!(
    created_keys_are_shown_once_and_work,
    managing_keys_needs_explicit_permissions,
    no_key_exceeds_its_creator,
    create_validates_its_input,
    lists_show_own_keys_newest_first,
    revoking_is_final_and_scoped,
    rolling_replaces_the_secret,
);
