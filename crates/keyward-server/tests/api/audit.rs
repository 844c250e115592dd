//! `GET /api/v1/audit-events`: organization admins, newest first, paginated, never a
//! secret; key creation, roll and revocation, role changes, failed authentications.

use keyward_store::testing::TestDb;
use keyward_store::Actor;
use serde_json::{json, Value};

use crate::helpers::*;

async fn events(app: &TestApp, caller: &Key, query: &str) -> Value {
    let r = send(app.get(&format!("/api/v1/audit-events{query}")).bearer_auth(&caller.secret)).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body
}

fn ids(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

async fn audit_events_record_the_key_lifecycle(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let boss = app.member(&acme, "boss@acme.test", "admin").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let auditor = app.key(&boss, None).await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write", "projects:read"])).await;
    let mut secrets = vec![auditor.secret.clone(), manager.secret.clone()];

    let r = send(app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&json!({"name": "ci"}))).await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_owned();
    secrets.push(r.body["key"].as_str().unwrap().to_owned());
    let r = send(app.post(&format!("/api/v1/api-keys/{id}/roll")).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 200);
    let rolled = r.body["key"].as_str().unwrap().to_owned();
    let rolled_prefix = r.body["prefix"].as_str().unwrap().to_owned();
    secrets.push(rolled.clone());
    assert_eq!(app.me_status(&rolled, Via::Bearer).await, 200);
    let r = send(app.delete(&format!("/api/v1/api-keys/{id}")).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204);
    app.store.set_role(&acme.id, &ada.user_id(), "viewer", &Actor::cli()).await.unwrap();
    // Using the revoked key: a failed authentication, written with the next batch.
    for via in EVERY_VIA {
        assert_eq!(app.me_status(&rolled, via).await, 401);
    }

    let deadline = std::time::Instant::now() + PATIENCE;
    let page = loop {
        let page = events(&app, &auditor, "").await;
        if page["data"].as_array().unwrap().iter().any(|e| e["action"] == "auth.failed") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "auth.failed is not written within {PATIENCE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let data = page["data"].as_array().unwrap();
    let actions: Vec<&str> = data.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for wanted in ["api_key.created", "api_key.rolled", "api_key.revoked", "member.role_changed", "auth.failed"] {
        assert!(actions.contains(&wanted), "{wanted} missing in {actions:?}");
    }
    // Newest first.
    let list_ids = ids(&page);
    let mut sorted = list_ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(list_ids, sorted, "ids newest first");
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        data.iter().map(|e| e["at"].as_str().unwrap().parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "times newest first: {times:?}");
    let pos = |action: &str| actions.iter().position(|a| *a == action).unwrap();
    assert!(pos("api_key.revoked") < pos("api_key.rolled"), "{actions:?}");
    assert!(pos("auth.failed") < pos("api_key.revoked"), "{actions:?}");

    // What each says.
    let of = |action: &str| data.iter().find(|e| e["action"] == action && e["target"]["id"] == id.as_str());
    let created = data
        .iter()
        .find(|e| e["action"] == "api_key.created" && e["target"]["id"] == id.as_str())
        .expect("the API-made key's creation");
    assert_eq!(created["actor"]["kind"], "user");
    assert_eq!(created["actor"]["id"], ada.user_id());
    assert_eq!(created["actor"]["credential"], format!("api_key:{}", manager.id));
    assert_eq!(created["target"]["kind"], "api_key");
    assert!(of("api_key.rolled").is_some() && of("api_key.revoked").is_some());
    let role = data.iter().find(|e| e["action"] == "member.role_changed").unwrap();
    assert_eq!(role["detail"]["from"], "member");
    assert_eq!(role["detail"]["to"], "viewer");
    assert_eq!(role["target"]["id"], ada.user_id());
    let failed = of("auth.failed").expect("auth.failed names the key");
    let prefix = failed["detail"]["prefix"].as_str().expect("a display prefix");
    assert!(prefix.chars().count() <= 12, "{prefix}");
    assert_eq!(prefix, rolled_prefix);
    assert_eq!(failed["detail"]["reason"], "revoked");
    assert!(failed["detail"]["count"].as_u64().unwrap() >= 1);
    assert_eq!(failed["actor"]["kind"], "anonymous");

    // Never a secret.
    let text = page.to_string();
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret in the audit log");
        assert!(!text.contains(&s[12..]), "part of a secret beyond its prefix in the audit log");
    }
}

async fn audit_events_are_paginated(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let boss = app.member(&acme, "boss@acme.test", "owner").await;
    let auditor = app.key(&boss, None).await;
    for _ in 0..4 {
        app.key(&boss, None).await;
    }
    let all = events(&app, &auditor, "?limit=200").await;
    let every = ids(&all);
    assert!(every.len() >= 6, "a member.added and five key creations: {every:?}");
    assert!(all["next_cursor"].is_null(), "one page holds them all");

    let first = events(&app, &auditor, "?limit=2").await;
    let cursor = first["next_cursor"].as_str().expect("more pages").to_owned();
    let second = events(&app, &auditor, &format!("?limit=2&before={cursor}")).await;
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    assert!(a.iter().all(|x| !b.contains(x)), "disjoint pages: {a:?} {b:?}");
    assert!(a.iter().all(|x| b.iter().all(|y| x > y)), "the second page is older");

    // Walking every page gives the whole log once, in order.
    let mut walked = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = events(&app, &auditor, &query).await;
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&before={c}"),
            None => break,
        }
        assert!(walked.len() <= every.len(), "pagination does not end");
    }
    assert_eq!(walked, every);
}

async fn audit_events_are_for_admins_of_the_org(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let boss = app.member(&acme, "boss@acme.test", "admin").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let vic = app.member(&acme, "vic@acme.test", "viewer").await;
    let olga = app.member(&other, "olga@other.test", "admin").await;
    app.key(&ada, None).await;
    for (what, key) in [
        ("a member", app.key(&ada, None).await),
        ("a viewer", app.key(&vic, None).await),
        ("an admin's key without audit:read", app.key(&boss, Some(&["projects:read"])).await),
    ] {
        let r = send(app.get("/api/v1/audit-events").bearer_auth(&key.secret)).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text);
        r.assert_insufficient_scope();
    }
    let acme_events = events(&app, &app.key(&boss, Some(&["audit:read"])).await, "?limit=200").await;
    assert!(!ids(&acme_events).is_empty());
    let other_events = events(&app, &app.key(&olga, None).await, "?limit=200").await;
    let theirs = ids(&other_events);
    assert!(ids(&acme_events).iter().all(|e| !theirs.contains(e)), "no event of acme's for other's admin");
    let text = other_events.to_string();
    for person in [&boss, &ada, &vic] {
        assert!(!text.contains(&person.user_id()), "nothing about acme's people");
    }
    // Another org's cursor does not open acme's log either.
    let cursor = ids(&acme_events)[0].clone();
    let after = events(&app, &app.key(&olga, None).await, &format!("?before={cursor}")).await;
    assert!(ids(&after).iter().all(|e| !ids(&acme_events).contains(e)));
}

both_backends!(
    audit_events_record_the_key_lifecycle,
    audit_events_are_paginated,
    audit_events_are_for_admins_of_the_org
);
