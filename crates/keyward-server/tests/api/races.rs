//! Concurrent state changes over HTTP: many requests from tokio tasks released together
//! by a barrier, on a multi-threaded runtime, repeated for several rounds. Each case
//! checks the invariant a lost race used to break: one winner, the losers a clear 4xx
//! (never a 500), and no credential left working that should not.

use std::sync::Arc;

use chrono::Utc;
use keyward_store::testing::TestDb;
use keyward_store::{NewToken, NewTokens, Principal};
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::helpers::*;

/// Like `both_backends!`, on a multi-threaded runtime: the server's handlers and the
/// test's requests run in parallel, not only interleaved.
macro_rules! both_backends_parallel {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = keyward_store::testing::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = keyward_store::testing::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// Sends every request at once (each from its own task, released by one barrier) and
/// returns the replies in the order of `requests`.
pub async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|rb| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                send(rb).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for t in tasks {
        replies.push(t.await.expect("the request task does not panic"));
    }
    replies
}

/// Asserts that no reply is a 5xx, naming the first one that is.
#[track_caller]
fn assert_no_server_error(replies: &[Reply], what: &str) {
    if let Some(r) = replies.iter().find(|r| r.status >= 500) {
        panic!("{what}: a {} answer: {}", r.status, r.text);
    }
}

fn roll_request(app: &TestApp, manager: &Key, id: &str, grace: i64) -> reqwest::RequestBuilder {
    app.post(&format!("/api/v1/api-keys/{id}/roll"))
        .bearer_auth(&manager.secret)
        .json(&json!({ "grace_seconds": grace }))
}

/// Four simultaneous rolls without grace: the ones that raced an earlier commit answer
/// `409 conflict`, and of every secret handed out exactly one works — the one the list
/// shows.
async fn simultaneous_rolls_have_one_winner(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    let mut conflicts = 0;
    for round in 0..10 {
        let target = app.key(&ada, None).await;
        let replies = all_at_once((0..4).map(|_| roll_request(&app, &manager, &target.id, 0)).collect()).await;
        assert_no_server_error(&replies, "simultaneous rolls");
        let mut secrets = Vec::new();
        for r in &replies {
            match r.status {
                200 => secrets.push((r.body["key"].as_str().unwrap().to_owned(), r.body["prefix"].clone())),
                409 => {
                    r.assert_error(409, "conflict");
                    conflicts += 1;
                }
                other => panic!("round {round}: a roll answered {other}: {}", r.text),
            }
        }
        assert!(!secrets.is_empty(), "round {round}: one roll wins");
        let mut working = Vec::new();
        for (secret, prefix) in &secrets {
            if app.me_status(secret, Via::Bearer).await == 200 {
                working.push(prefix.clone());
            }
        }
        assert_eq!(working.len(), 1, "round {round}: exactly one secret works, of {}", secrets.len());
        assert_eq!(app.me_status(&target.secret, Via::Bearer).await, 401, "round {round}: the old secret is gone");
        let listed = app.list_keys(&manager, "").await;
        assert_eq!(find(&listed, &target.id).expect("listed")["prefix"], working[0], "round {round}: list");
    }
    assert!(conflicts > 0, "simultaneous rolls were refused as conflicts at least once");
}

/// A roll and a revocation at once: whichever commits first, the key ends revoked and no
/// secret of it works; the roll answers `200` or `404`, never `500`.
async fn roll_and_revoke_at_once(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    for round in 0..10 {
        let target = app.key(&ada, None).await;
        let replies = all_at_once(vec![
            roll_request(&app, &manager, &target.id, 0),
            app.delete(&format!("/api/v1/api-keys/{}", target.id)).bearer_auth(&manager.secret),
            roll_request(&app, &manager, &target.id, 60),
        ])
        .await;
        assert_no_server_error(&replies, "roll and revoke");
        assert_eq!(replies[1].status, 204, "round {round}: the revocation: {}", replies[1].text);
        for r in [&replies[0], &replies[2]] {
            assert!([200, 404, 409].contains(&r.status), "round {round}: roll answered {}", r.text);
            if let Some(secret) = r.body["key"].as_str() {
                assert_eq!(
                    app.me_status(secret, Via::Bearer).await,
                    401,
                    "round {round}: a rolled secret of a revoked key"
                );
            }
        }
        assert_eq!(app.me_status(&target.secret, Via::Bearer).await, 401, "round {round}: the first secret");
        let listed = app.list_keys(&manager, "?include_revoked=true").await;
        assert!(!find(&listed, &target.id).expect("listed")["revoked_at"].is_null(), "round {round}: revoked");
        // Nothing happened to the key after its revocation: no roll committed later.
        let events = app.store.audit_events(&org.id, None, 100).await.unwrap();
        let last = events
            .iter()
            .find(|e| e.target_id.as_deref() == Some(target.id.as_str()) && e.action.starts_with("api_key."))
            .expect("events");
        assert_eq!(last.action, "api_key.revoked", "round {round}: the key's last event");
    }
}

/// A service account with a secret, made over HTTP by an admin; returns it with the
/// admin's key.
async fn account(app: &TestApp) -> (Key, Sa) {
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot", "secret": true})).await;
    (admin, sa)
}

/// An access and refresh token pair for `sa`, stored as the token endpoint stores them.
async fn token_pair(app: &TestApp, sa: &Sa) -> (String, String) {
    let access = app.secrets.generate(keyward_core::secret::SecretKind::AccessToken);
    let refresh = app.secrets.generate(keyward_core::secret::SecretKind::RefreshToken);
    let org = app.store.org_by_slug(&keyward_core::domain::Slug::parse("acme").unwrap()).await.unwrap();
    let id = keyward_core::ids::ServiceAccountId::parse(&sa.id).unwrap();
    let now = Utc::now();
    app.store
        .issue_tokens(&NewTokens {
            org_id: org.id,
            principal: Principal::service_account(&id),
            client_id: sa.client_id.clone(),
            scopes: None,
            access: NewToken::of(&access, now + chrono::Duration::hours(1)),
            refresh: Some(NewToken::of(&refresh, now + chrono::Duration::days(1))),
            family: None,
        })
        .await
        .expect("issue tokens");
    (access.expose().to_owned(), refresh.expose().to_owned())
}

fn refresh_request(app: &TestApp, sa: &Sa, refresh_token: &str) -> reqwest::RequestBuilder {
    app.post("/oauth/token")
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::AUTHORIZATION, sa.basic())
        .body(form_body(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]))
}

/// Six simultaneous reuses of an exchanged refresh token: every one answers
/// `invalid_grant` (no deadlock surfacing as a 500), and the family is revoked.
async fn simultaneous_refresh_token_reuse(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = account(&app).await;
    for round in 0..20 {
        let (access0, rt0) = token_pair(&app, &sa).await;
        // A family of a few generations; the first, long used, is presented again.
        let (mut access1, mut rt1) = (String::new(), rt0.clone());
        for _ in 0..1 + round % 4 {
            let r = send(refresh_request(&app, &sa, &rt1)).await;
            assert_eq!(r.status, 200, "round {round}: an exchange: {}", r.text);
            access1 = r.body["access_token"].as_str().unwrap().to_owned();
            rt1 = r.body["refresh_token"].as_str().unwrap().to_owned();
        }
        let replies = all_at_once((0..6).map(|_| refresh_request(&app, &sa, &rt0)).collect()).await;
        assert_no_server_error(&replies, "simultaneous reuse");
        for r in &replies {
            r.assert_oauth_error(400, "invalid_grant");
        }
        for (what, t) in [("first access token", &access0), ("newest access token", &access1)] {
            assert_eq!(app.me_status(t, Via::Bearer).await, 401, "round {round}: {what} after reuse");
        }
        send(refresh_request(&app, &sa, &rt1)).await.assert_oauth_error(400, "invalid_grant");
    }
}

/// Simultaneous exchanges of one fresh refresh token: at most one gets tokens; the
/// others are reuse (`invalid_grant`), which revokes the family — the winner's new
/// tokens included. Never a 500.
async fn simultaneous_refreshes_of_one_token(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = account(&app).await;
    for round in 0..10 {
        let (_, rt0) = token_pair(&app, &sa).await;
        let replies = all_at_once((0..4).map(|_| refresh_request(&app, &sa, &rt0)).collect()).await;
        assert_no_server_error(&replies, "simultaneous refreshes");
        let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert!(winners.len() <= 1, "round {round}: {} exchanges of one token", winners.len());
        for r in replies.iter().filter(|r| r.status != 200) {
            r.assert_oauth_error(400, "invalid_grant");
        }
        if let Some(w) = winners.first() {
            let access = w.body["access_token"].as_str().unwrap();
            if replies.len() - winners.len() > 0 {
                assert_eq!(app.me_status(access, Via::Bearer).await, 401, "round {round}: reuse revoked the winner's");
            }
        }
    }
}

/// A stolen, already exchanged refresh token presented while the rightful client
/// exchanges the newest one: the reuse revokes the family, including the pair that
/// exchange issued if it won the race.
async fn reuse_while_the_client_refreshes(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = account(&app).await;
    for round in 0..12 {
        let (_, rt0) = token_pair(&app, &sa).await;
        let r = send(refresh_request(&app, &sa, &rt0)).await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text);
        let rt1 = r.body["refresh_token"].as_str().unwrap().to_owned();
        let replies = all_at_once(vec![refresh_request(&app, &sa, &rt1), refresh_request(&app, &sa, &rt0)]).await;
        assert_no_server_error(&replies, "reuse and refresh");
        replies[1].assert_oauth_error(400, "invalid_grant");
        if replies[0].status == 200 {
            let access2 = replies[0].body["access_token"].as_str().unwrap();
            let rt2 = replies[0].body["refresh_token"].as_str().unwrap();
            assert_eq!(
                app.me_status(access2, Via::Bearer).await,
                401,
                "round {round}: the pair issued during the reuse"
            );
            send(refresh_request(&app, &sa, rt2)).await.assert_oauth_error(400, "invalid_grant");
        } else {
            replies[0].assert_oauth_error(400, "invalid_grant");
        }
    }
}

fn rotate_request(app: &TestApp, admin: &Key, sa: &Sa, grace: i64) -> reqwest::RequestBuilder {
    app.post(&format!("/api/v1/service-accounts/{}/secret", sa.id))
        .bearer_auth(&admin.secret)
        .json(&json!({ "grace_seconds": grace }))
}

/// Simultaneous client-secret rotations without grace: as with key rolls, one wins, the
/// others answer `409`, and exactly one secret authenticates the client.
async fn simultaneous_secret_rotations(db: &TestDb) {
    let app = spawn_app(db).await;
    let (admin, sa) = account(&app).await;
    let mut conflicts = 0;
    for round in 0..8 {
        let replies = all_at_once((0..4).map(|_| rotate_request(&app, &admin, &sa, 0)).collect()).await;
        assert_no_server_error(&replies, "simultaneous rotations");
        let mut secrets = Vec::new();
        for r in &replies {
            match r.status {
                200 => secrets.push(r.body["client_secret"].as_str().expect("client_secret").to_owned()),
                409 => {
                    r.assert_error(409, "conflict");
                    conflicts += 1;
                }
                other => panic!("round {round}: a rotation answered {other}: {}", r.text),
            }
        }
        assert!(!secrets.is_empty(), "round {round}: one rotation wins");
        let mut working = 0;
        for s in &secrets {
            let r = app.token(Some(&client_basic(&sa.client_id, s)), &[("grant_type", "client_credentials")]).await;
            if r.status == 200 {
                working += 1;
            }
        }
        assert_eq!(working, 1, "round {round}: exactly one of {} secrets works", secrets.len());
        let list = send(app.get("/api/v1/service-accounts").bearer_auth(&admin.secret)).await;
        let view = find(list.body["data"].as_array().expect("data"), &sa.id).expect("listed").clone();
        let live: &Vec<Value> = view["secrets"].as_array().expect("secrets");
        assert_eq!(live.len(), 1, "round {round}: one secret listed: {view}");
    }
    assert!(conflicts > 0, "simultaneous rotations were refused as conflicts at least once");
}

/// Deleting an account while it asks for tokens: every token it got before or during the
/// deletion stops working with it, and introspection calls none of them active.
async fn deleting_an_account_while_it_gets_tokens(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let admin_person = app.member(&org, "admin@acme.test", "admin").await;
    let admin = app.key(&admin_person, None).await;
    for round in 0..6 {
        let sa = app.create_sa(&admin, json!({"name": format!("bot{round}"), "secret": true})).await;
        let cc = |app: &TestApp| {
            app.post("/oauth/token")
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(reqwest::header::AUTHORIZATION, sa.basic())
                .body(form_body(&[("grant_type", "client_credentials")]))
        };
        let mut requests: Vec<_> = (0..8).map(|_| cc(&app)).collect();
        requests.insert(4, app.delete(&format!("/api/v1/service-accounts/{}", sa.id)).bearer_auth(&admin.secret));
        let replies = all_at_once(requests).await;
        assert_no_server_error(&replies, "delete while issuing");
        assert_eq!(replies[4].status, 204, "round {round}: the deletion: {}", replies[4].text);
        for (i, r) in replies.iter().enumerate().filter(|(i, _)| *i != 4) {
            if r.status != 200 {
                // Authenticated before the deletion committed, issued after: invalid_grant;
                // authenticated after it: invalid_client.
                assert!([400, 401].contains(&r.status), "round {round}, request {i}: {}", r.text);
                assert!(
                    ["invalid_grant", "invalid_client"].contains(&r.body["error"].as_str().unwrap_or_default()),
                    "{}",
                    r.text
                );
                continue;
            }
            let token = r.body["access_token"].as_str().unwrap();
            assert_eq!(app.me_status(token, Via::Bearer).await, 401, "round {round}: a token of a deleted account");
            let stored = app.store.token_by_hash(&keyward_core::secret::SecretHash::of(token)).await.unwrap();
            assert!(stored.expect("stored").revoked, "round {round}: the token row is revoked");
        }
    }
}

async fn jwt_grant(app: &TestApp, jwt: &str) -> Reply {
    app.token(None, &[("grant_type", JWT_BEARER_GRANT), ("assertion", jwt)]).await
}

/// A JWT assertion already past its `exp` but within the clock-skew leeway is accepted
/// once; its `jti` must stay remembered until the leeway ends too, even when the
/// issuer's next assertion prunes expired ids meanwhile.
async fn a_jti_is_remembered_through_the_leeway(db: &TestDb) {
    let app = spawn_app(db).await;
    let (admin, _) = account(&app).await;
    let signer = Signer::ec();
    let sa = app.create_sa(&admin, json!({"name": "signer", "public_keys": [signer.public_pem]})).await;
    let kid = sa.kid("ES256");
    let mut claims = assertion_claims(&sa.client_id, &token_endpoint());
    claims["exp"] = json!(Utc::now().timestamp() - 5);
    let late = signer.sign(Some(&kid), &claims);
    assert_eq!(jwt_grant(&app, &late).await.status, 200, "accepted within the leeway");
    // Another assertion of the same issuer (which prunes its expired ids).
    let fresh = signer.sign(Some(&kid), &assertion_claims(&sa.client_id, &token_endpoint()));
    assert_eq!(jwt_grant(&app, &fresh).await.status, 200);
    jwt_grant(&app, &late).await.assert_oauth_error(400, "invalid_grant");
}

both_backends_parallel!(
    a_jti_is_remembered_through_the_leeway,
    simultaneous_rolls_have_one_winner,
    roll_and_revoke_at_once,
    simultaneous_refresh_token_reuse,
    simultaneous_refreshes_of_one_token,
    reuse_while_the_client_refreshes,
    simultaneous_secret_rotations,
    deleting_an_account_while_it_gets_tokens,
);
