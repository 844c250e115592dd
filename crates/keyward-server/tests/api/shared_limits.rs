//! Where per-credential and sign-in counters live: in each process by default, or shared
//! by every instance through Redis (`rate_limits.redis_url`), here the Redis on
//! 127.0.0.1:6379 (each test in its own key namespace, so parallel runs never meet). A
//! Redis that cannot be reached fails open for per-credential limits and closed for
//! sign-in, counted in `/metrics`.
//!
//! The two-instance cases run on PostgreSQL, as a deployment with several instances
//! does. Without Redis the shared case is skipped with a message, except under
//! `CI=true`, where it fails.

use crate::helpers::*;
use keyward_store::testing::TestDb;

const REDIS: &str = "redis://127.0.0.1:6379/";

/// Whether Redis answers on 127.0.0.1:6379; under CI its absence is a failure.
async fn redis_here() -> bool {
    let up = tokio::net::TcpStream::connect("127.0.0.1:6379").await.is_ok();
    if !up {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "Redis on 127.0.0.1:6379 is required under CI=true");
        eprintln!("skipped: no Redis on 127.0.0.1:6379 (set CI=true to make this a failure)");
    }
    up
}

/// A namespace no other test run uses.
fn namespace() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("keyward-test-{}-{random:x}", std::process::id())
}

async fn status(app: &TestApp, key: &str) -> Reply {
    send(app.get("/auth/check").bearer_auth(key)).await
}

/// Two instances on one database; a key of a `pro` organization limited to 5 a minute.
async fn two_instances(db: &TestDb, counters: &str) -> (TestApp, TestApp, Key) {
    let tables = format!("[rate_limits]\n{counters}\n[rate_limits.plans]\npro = \"5/1m\"");
    let a = spawn_app_tables(db, &tables).await;
    let b = spawn_app_tables(db, &tables).await;
    let org = a.org("acme").await;
    let m = a.member(&org, "ada@acme.test", "member").await;
    let key = a.key(&m, None).await;
    (a, b, key)
}

#[tokio::test]
async fn a_per_key_limit_holds_across_instances_through_redis() {
    let Some(db) = TestDb::postgres().await else { return };
    if !redis_here().await {
        return;
    }
    let ns = namespace();
    let (a, b, key) = two_instances(&db, &format!("redis_url = \"{REDIS}\"\nredis_namespace = \"{ns}\"")).await;
    for (i, app) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let r = status(app, &key.secret).await;
        assert_eq!(r.status, 200, "request {}: {}", i + 1, r.text);
        let left = r.header("ratelimit").unwrap();
        assert!(left.contains(&format!(";r={};", 4 - i)), "one count for both instances: {left}");
    }
    let r = status(&b, &key.secret).await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    status(&a, &key.secret).await.assert_error(429, "rate_limited");
}

#[tokio::test]
async fn sign_in_limits_are_shared_through_redis() {
    let Some(db) = TestDb::postgres().await else { return };
    if !redis_here().await {
        return;
    }
    let ns = namespace();
    let (a, b, _) = two_instances(&db, &format!("redis_url = \"{REDIS}\"\nredis_namespace = \"{ns}\"")).await;
    let org = a.org("beta").await;
    a.person(&org, "bo@beta.test", "member").await;
    // 5 wrong passwords for one e-mail from 127.0.0.1, split over the two instances.
    for (i, app) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let r = app.browser().sign_in("bo@beta.test", "wrong", "/").await;
        assert_eq!(r.status, 401, "failure {}: {}", i + 1, r.text);
    }
    for app in [&a, &b] {
        let r = app.browser().sign_in("bo@beta.test", PASSWORD, "/").await;
        assert_eq!(r.status, 429, "one count for both instances: {}", r.text);
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn without_redis_each_instance_counts_alone() {
    let Some(db) = TestDb::postgres().await else { return };
    let (a, b, key) = two_instances(&db, "").await;
    for app in [&a, &b] {
        for i in 0..5 {
            assert_eq!(status(app, &key.secret).await.status, 200, "request {}", i + 1);
        }
    }
    status(&a, &key.secret).await.assert_error(429, "rate_limited");
    status(&b, &key.secret).await.assert_error(429, "rate_limited");
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_for_credentials_and_closed_for_sign_in() {
    let db = TestDb::sqlite();
    // Port 9 (discard) on 127.0.0.1: nothing listens, the connection is refused.
    let tables = "[rate_limits]\nredis_url = \"redis://127.0.0.1:9/\"\n[rate_limits.plans]\npro = \"2/1m\"";
    let app = spawn_app_tables(&db, tables).await;
    let org = app.org("acme").await;
    let m = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&m, None).await;
    for _ in 0..4 {
        let r = status(&app, &key.secret).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.header("ratelimit").is_none(), "no count, no headers");
    }
    let metrics = send(app.get("/metrics")).await.text;
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keyward_rate_limit_store_errors_total "))
        .expect("the series")
        .parse()
        .unwrap();
    assert!(errors >= 4, "every count that missed Redis is counted: {errors}");
    // Sign-in fails closed: no password is checked while its counters cannot be read.
    app.person(&org, "bo@acme.test", "member").await;
    let r = app.browser().sign_in("bo@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
}
