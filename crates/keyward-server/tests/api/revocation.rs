//! Taking power away: revocation on this server (from the very next request), changes
//! made by another process sharing the database (within one second), role changes and
//! removals through every key, and expiry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keyward_core::ids::KeyId;
use keyward_store::testing::TestDb;
use keyward_store::{Actor, Store};
use serde_json::json;

use crate::helpers::*;

/// DESIGN.md: other processes learn of a change within one second.
const ONE_SECOND: Duration = Duration::from_secs(1);

/// The store as another process (the CLI, another instance) sees the database: its
/// own pool, nothing shared with the server.
async fn other_process(db: &TestDb) -> Store {
    Store::connect(&db.url).await.expect("connect")
}

async fn a_revoked_key_fails_on_the_very_next_request(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    for round in 0..3 {
        let key = app.key(&ada, None).await;
        for via in EVERY_VIA {
            assert_eq!(app.me_status(&key.secret, via).await, 200, "{via:?} before");
        }
        // Requests with the key keep filling the cache while it is revoked: none of
        // those fills may bring the revoked grant back.
        let stop = Arc::new(AtomicBool::new(false));
        let hammer = {
            let (http, url, secret, stop) = (app.http.clone(), app.url("/api/v1/me"), key.secret.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = http.get(&url).bearer_auth(&secret).send().await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = send(app.delete(&format!("/api/v1/api-keys/{}", key.id)).bearer_auth(&manager.secret)).await;
        assert_eq!(r.status, 204, "{}", r.text);
        for via in EVERY_VIA {
            for path in ["/api/v1/me", "/auth/check"] {
                let r = send(via.apply(app.get(path), &key.secret)).await;
                assert_eq!(r.status, 401, "round {round}, {via:?} on {path} right after revocation: {}", r.text);
                assert_eq!(r.body["error"], "invalid_token");
                assert!(r.challenges()[0].contains("error=\"invalid_token\""));
            }
        }
        stop.store(true, Ordering::Relaxed);
        hammer.await.unwrap();
        assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 401, "and it stays revoked");
    }
    assert_eq!(app.me_status(&manager.secret, Via::Bearer).await, 200, "other keys are untouched");
}

/// `keyward key revoke` while the server runs: the store revokes and writes the change
/// log; the server refuses the key within one second, by every presentation.
async fn a_revocation_by_another_process_arrives_within_a_second(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, None).await;
    let other = app.key(&ada, None).await;
    for via in EVERY_VIA {
        assert_eq!(app.me_status(&key.secret, via).await, 200, "{via:?}: cached");
    }
    let cli = other_process(db).await;
    cli.revoke_api_key(None, &KeyId::parse(&key.id).unwrap(), &Actor::cli()).await.unwrap();
    let took = eventually("the server refuses a key revoked elsewhere", ONE_SECOND, || async {
        app.me_status(&key.secret, Via::Bearer).await == 401
    })
    .await;
    eprintln!("[{:?}] revocation by another process took {took:?}", db.backend);
    for via in EVERY_VIA {
        let r = send(via.apply(app.get("/api/v1/me"), &key.secret)).await;
        r.assert_invalid_token();
    }
    assert_eq!(app.me_status(&other.secret, Via::Bearer).await, 200, "only that key");
}

/// A member becomes a viewer (by another process): every one of their keys loses
/// projects:write within a second — inheriting, explicit and API-made alike — and
/// keeps what the new role still grants. Growing back works the same way.
async fn a_shrunk_role_reaches_every_key(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let inheriting = app.key(&ada, None).await;
    let explicit = app.key(&ada, Some(&["projects:write", "projects:read", "api_keys:write"])).await;
    let r = send(
        app.post("/api/v1/api-keys")
            .bearer_auth(&explicit.secret)
            .json(&json!({"name": "made by the API", "permissions": ["projects:write"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let api_made = r.body["key"].as_str().unwrap().to_owned();
    let keys = [inheriting.secret.clone(), explicit.secret.clone(), api_made.clone()];
    let check = |secret: String, permission: &'static str| {
        let rb = app.get(&format!("/auth/check?permission={permission}")).bearer_auth(secret);
        async move { send(rb).await.status }
    };
    for k in &keys {
        assert_eq!(check(k.clone(), "projects:write").await, 200);
    }

    other_process(db).await.set_role(&org.id, &ada.user_id(), "viewer", &Actor::cli()).await.unwrap();
    for k in &keys {
        eventually("a shrunk role reaches the key", ONE_SECOND, || {
            let k = k.clone();
            let check = &check;
            async move { check(k, "projects:write").await == 403 }
        })
        .await;
        let r = send(app.get("/auth/check?permission=projects:write").bearer_auth(k)).await;
        r.assert_insufficient_scope();
        let me = send(app.get("/api/v1/me").bearer_auth(k)).await;
        assert!(!strings(&me.body["permissions"]).contains(&"projects:write".to_owned()), "{}", me.text);
    }
    assert_eq!(check(inheriting.secret.clone(), "projects:read").await, 200, "what viewers hold stays");
    assert_eq!(check(explicit.secret.clone(), "projects:read").await, 200);
    assert_eq!(check(api_made.clone(), "projects:read").await, 403, "it never had projects:read");
    let me = send(app.get("/api/v1/me").bearer_auth(&api_made)).await;
    assert_eq!(me.status, 200);
    assert!(strings(&me.body["permissions"]).is_empty(), "nothing left: {}", me.text);

    // A viewer still holds api_keys:write, but can no longer hand out projects:write.
    let r = send(
        app.post("/api/v1/api-keys")
            .bearer_auth(&explicit.secret)
            .json(&json!({"name": "more", "permissions": ["projects:write"]})),
    )
    .await;
    r.assert_insufficient_scope();

    // Effective permissions are computed from the role at every request: back to member,
    // the keys' own lists apply again.
    app.store.set_role(&org.id, &ada.user_id(), "member", &Actor::cli()).await.unwrap();
    for k in &keys {
        eventually("a grown role reaches the key", ONE_SECOND, || {
            let k = k.clone();
            let check = &check;
            async move { check(k, "projects:write").await == 200 }
        })
        .await;
    }
}

/// A person removed from the organization (by another process): all their keys there
/// fail within a second, by every presentation; their keys elsewhere keep working.
async fn a_removed_member_loses_every_key(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let other_org = app.org("other").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let ada_elsewhere = app.join(&other_org, &ada.user, "member").await;
    let bob = app.member(&org, "bob@acme.test", "member").await;
    let keys = [app.key(&ada, None).await, app.key(&ada, Some(&["projects:read"])).await];
    let elsewhere = app.key(&ada_elsewhere, None).await;
    let bobs = app.key(&bob, None).await;
    for k in &keys {
        assert_eq!(app.me_status(&k.secret, Via::Bearer).await, 200);
    }
    other_process(db).await.remove_member(&org.id, &ada.user_id(), &Actor::cli()).await.unwrap();
    for k in &keys {
        eventually("a removal reaches the key", ONE_SECOND, || async {
            app.me_status(&k.secret, Via::Bearer).await == 401
        })
        .await;
        for via in EVERY_VIA {
            let r = send(via.apply(app.get("/auth/check"), &k.secret)).await;
            assert_eq!(r.status, 401, "{via:?}: {}", r.text);
            assert_eq!(r.body["error"], "invalid_token");
        }
    }
    assert_eq!(app.me_status(&elsewhere.secret, Via::Bearer).await, 200, "her keys in another org");
    assert_eq!(app.me_status(&bobs.secret, Via::Bearer).await, 200, "other people's keys");

    // Re-admitted, she gets nothing back: removal revoked the keys for good. A new key
    // follows the new membership.
    app.store.add_member(&org.id, &ada.principal(), "viewer", &Actor::cli()).await.unwrap();
    let fresh = app.key(&ada, None).await;
    eventually("re-admission reaches the process", ONE_SECOND, || async {
        app.me_status(&fresh.secret, Via::Bearer).await == 200
    })
    .await;
    for k in &keys {
        assert_eq!(app.me_status(&k.secret, Via::Bearer).await, 401, "an old key stays revoked");
    }
    let me = send(app.get("/api/v1/me").bearer_auth(&fresh.secret)).await;
    assert!(!strings(&me.body["permissions"]).contains(&"projects:write".to_owned()), "as a viewer now");
}

async fn expired_keys_are_refused(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;

    let expired = app.expired_key(&ada, None).await;
    for via in EVERY_VIA {
        let r = send(via.apply(app.get("/api/v1/me"), &expired.secret)).await;
        assert_eq!(r.status, 401, "{via:?}: {}", r.text);
        r.assert_invalid_token();
    }

    // A key that expires while cached stops at its expiry.
    let soon = app.key_expiring(&ada, None, Utc::now() + chrono::Duration::milliseconds(1200)).await;
    assert_eq!(app.me_status(&soon.secret, Via::Bearer).await, 200, "before its expiry");
    eventually("the key expires", Duration::from_secs(3), || async {
        app.me_status(&soon.secret, Via::Bearer).await == 401
    })
    .await;
    for via in EVERY_VIA {
        send(via.apply(app.get("/auth/check"), &soon.secret)).await.assert_invalid_token();
    }

    // A roll's grace period ends the old secret the same way.
    let key = app.key(&ada, None).await;
    let r = send(
        app.post(&format!("/api/v1/api-keys/{}/roll", key.id))
            .bearer_auth(&manager.secret)
            .json(&json!({"grace_seconds": 1})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200, "in its grace period");
    eventually("the grace period ends", Duration::from_secs(3), || async {
        app.me_status(&key.secret, Via::Bearer).await == 401
    })
    .await;
    assert_eq!(app.me_status(&new, Via::Bearer).await, 200, "the new secret has no such end");
}

/// `keyward member set-role` while the server runs and writes its usage batches: on
/// SQLite a transaction that reads before it writes fails at once ("database is
/// locked", no busy wait) when the server commits in between; the change must go
/// through every time.
async fn role_changes_go_through_while_the_server_writes(db: &TestDb) {
    let app = spawn_app_with(db, "usage_flush_interval = \"1ms\"").await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let keys: Vec<Key> = futures_util::future::join_all((0..4).map(|_| app.key(&ada, None))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for k in &keys {
        let (http, url, secret, stop) = (app.http.clone(), app.url("/api/v1/me"), k.secret.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = http.get(&url).bearer_auth(&secret).send().await;
            }
        }));
    }
    let cli = other_process(db).await;
    for n in 0..40 {
        let role = if n % 2 == 0 { "viewer" } else { "member" };
        cli.set_role(&org.id, &ada.user_id(), role, &Actor::cli())
            .await
            .unwrap_or_else(|e| panic!("set-role #{n} while the server writes: {e}"));
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(cli.role_of(&org.id, &ada.user_id()).await.unwrap().as_deref(), Some("member"));
}

both_backends!(
    role_changes_go_through_while_the_server_writes,
    a_revoked_key_fails_on_the_very_next_request,
    a_revocation_by_another_process_arrives_within_a_second,
    a_shrunk_role_reaches_every_key,
    a_removed_member_loses_every_key,
    expired_keys_are_refused,
);
