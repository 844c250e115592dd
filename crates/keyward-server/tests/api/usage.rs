//! Last used: shown in lists at once (from memory), written to the database in the
//! coalesced batch, never on the request path.

use chrono::{DateTime, Utc};
use keyward_core::ids::KeyId;
use keyward_store::testing::TestDb;

use crate::helpers::*;

fn parse_time(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("a timestamp, not {v}")).parse().unwrap()
}

/// With an hour between flushes, a use shows in the list at once, and the database has
/// not been written: no write on the request path.
async fn last_used_is_listed_at_once_without_a_write(db: &TestDb) {
    let app = spawn_app_with(db, "usage_flush_interval = \"1h\"").await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    let key = app.key(&ada, None).await;
    let id = KeyId::parse(&key.id).unwrap();

    let list = app.list_keys(&manager, "").await;
    assert!(find(&list, &key.id).unwrap()["last_used_at"].is_null(), "a new key was never used");

    let before = Utc::now() - chrono::Duration::seconds(1);
    for via in EVERY_VIA {
        assert_eq!(app.me_status(&key.secret, via).await, 200);
    }
    let list = app.list_keys(&manager, "").await;
    let used = parse_time(&find(&list, &key.id).unwrap()["last_used_at"]);
    assert!(used >= before && used <= Utc::now() + chrono::Duration::seconds(1), "{used}");
    assert!(!find(&list, &manager.id).unwrap()["last_used_at"].is_null(), "the lister's own use too");

    let stored = app.store.api_key(None, &id).await.unwrap();
    assert_eq!(stored.last_used_at, None, "no database write on the request path");
}

/// With the 100 ms flush, the use reaches the database, and a server that never saw the
/// request lists it from there.
async fn last_used_reaches_the_database(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    let key = app.key(&ada, None).await;
    let id = KeyId::parse(&key.id).unwrap();
    assert_eq!(app.store.api_key(None, &id).await.unwrap().last_used_at, None);

    assert_eq!(app.me_status(&key.secret, Via::Header).await, 200);
    eventually("last_used_at is written", PATIENCE, || async {
        app.store.api_key(None, &id).await.unwrap().last_used_at.is_some()
    })
    .await;
    let written = app.store.api_key(None, &id).await.unwrap().last_used_at.unwrap();
    assert!((Utc::now() - written).num_seconds() < 10);

    let fresh = spawn_app(db).await;
    let list = fresh.list_keys(&manager, "").await;
    let listed = parse_time(&find(&list, &key.id).unwrap()["last_used_at"]);
    assert_eq!(listed, written, "listed from the database by a server that never saw the use");
}

both_backends!(last_used_is_listed_at_once_without_a_write, last_used_reaches_the_database);
