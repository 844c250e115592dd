//! The purge task in a running server: with a short interval, ended rows disappear by
//! themselves and `/metrics` counts them per table; live ones stay.

use chrono::{Duration, Utc};
use keyward_core::secret::{SecretHash, SecretKind};
use keyward_store::testing::TestDb;
use keyward_store::{NewToken, NewTokens, Principal};
use serde_json::json;

use crate::helpers::*;

/// The value of one `/metrics` line, or 0 when absent.
async fn metric(app: &TestApp, series: &str) -> u64 {
    let text = send(app.get("/metrics")).await.text;
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0)
}

async fn the_purge_task_deletes_ended_rows(db: &TestDb) {
    let app = spawn_app_tables(db, "[purge]\ninterval = \"50ms\"\nretention = \"0s\"").await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot", "secret": true})).await;
    let org = app.store.org_by_slug(&keyward_core::domain::Slug::parse("acme").unwrap()).await.unwrap();
    let account = keyward_core::ids::ServiceAccountId::parse(&sa.id).unwrap();
    let tokens = |expires_at| {
        let access = app.secrets.generate(SecretKind::AccessToken);
        let new = NewTokens {
            org_id: org.id.clone(),
            principal: Principal::service_account(&account),
            client_id: sa.client_id.clone(),
            scopes: None,
            access: NewToken::of(&access, expires_at),
            refresh: None,
            family: None,
        };
        (access, new)
    };
    let (ended, ended_new) = tokens(Utc::now() - Duration::minutes(1));
    app.store.issue_tokens(&ended_new).await.unwrap();
    let live = app.sa_token(&sa, None).await;
    let person = app.member(&org, "ada@acme.test", "member").await;
    app.store
        .create_web_session(&SecretHash::of("ended"), &person.user.id, Utc::now() - Duration::minutes(1))
        .await
        .unwrap();
    assert!(app.store.use_jti("issuer", "old", Utc::now() - Duration::minutes(1)).await.unwrap());

    eventually("the ended rows are purged", PATIENCE * 5, || async {
        app.store.token_by_hash(&ended.hash()).await.unwrap().is_none()
            && app.store.row_count("web_sessions").await == 0
            && app.store.row_count("assertion_jtis").await == 0
    })
    .await;
    assert!(app.store.token_by_hash(&SecretHash::of(&live)).await.unwrap().is_some(), "the live token stays");
    assert_eq!(app.me_status(&live, Via::Bearer).await, 200, "and works");
    assert!(metric(&app, "keyward_purged_rows_total{table=\"oauth_tokens\"}").await >= 1);
    assert_eq!(metric(&app, "keyward_purged_rows_total{table=\"web_sessions\"}").await, 1);
    assert_eq!(metric(&app, "keyward_purged_rows_total{table=\"assertion_jtis\"}").await, 1);
    assert_eq!(metric(&app, "keyward_purge_failures_total").await, 0);
}

/// `[purge] enabled = false`: this instance leaves everything in place.
async fn a_disabled_purge_deletes_nothing(db: &TestDb) {
    let app = spawn_app_tables(db, "[purge]\nenabled = false\ninterval = \"10ms\"\nretention = \"0s\"").await;
    let org = app.org("acme").await;
    let person = app.member(&org, "ada@acme.test", "member").await;
    app.store
        .create_web_session(&SecretHash::of("ended"), &person.user.id, Utc::now() - Duration::minutes(1))
        .await
        .unwrap();
    // Other background work (usage flushes every 100 ms) goes on meanwhile: once the
    // flusher has run several times, the purge would have run many more.
    let key = app.key(&person, None).await;
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200);
    eventually("the use is flushed", PATIENCE, || async {
        app.store
            .api_key(None, &keyward_core::ids::KeyId::parse(&key.id).unwrap())
            .await
            .unwrap()
            .last_used_at
            .is_some()
    })
    .await;
    assert_eq!(app.store.row_count("web_sessions").await, 1);
    assert_eq!(metric(&app, "keyward_purged_rows_total{table=\"web_sessions\"}").await, 0);
}

both_backends!(the_purge_task_deletes_ended_rows, a_disabled_purge_deletes_nothing);
