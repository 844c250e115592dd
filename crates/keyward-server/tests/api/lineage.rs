//! No credential outlives its maker (DESIGN.md, "Rules for keys"): a key made by an API
//! key or an OAuth access token expires no later than its maker (none asked → the
//! maker's expiry; a later one → `422`), and revoking the access token — or its family —
//! revokes the keys its holder made, here at once and on every other instance through
//! the change log. A roll keeps a key's expiry.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::device::approved_tokens;
use crate::helpers::*;
use keyward_store::testing::TestDb;

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("a time: {v}")).parse().expect("RFC 3339")
}

async fn create_with(app: &TestApp, credential: &str, body: Value) -> Reply {
    send(app.post("/api/v1/api-keys").bearer_auth(credential).json(&body)).await
}

async fn a_key_made_by_an_expiring_key_expires_with_it(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let until = Utc::now() + Duration::minutes(2);
    let parent = app.key_expiring(&ada, Some(&["api_keys:read", "api_keys:write", "projects:read"]), until).await;
    let parent_expiry = find(&app.list_keys(&parent, "").await, &parent.id).expect("listed")["expires_at"].clone();

    // No expiry asked for: the maker's, to the millisecond.
    let r = create_with(&app, &parent.secret, json!({"name": "child"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(time(&r.body["expires_at"]), time(&parent_expiry), "the child expires with its maker: {}", r.text);
    let child = r.body["id"].as_str().unwrap().to_owned();

    // Later than the maker: refused, and nothing is made.
    let later = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let r = create_with(&app, &parent.secret, json!({"name": "later", "expires_at": later})).await;
    r.assert_error(422, "validation_failed");
    assert!(r.body["error_description"].as_str().unwrap().contains("outlives"), "{}", r.text);
    assert!(!app.list_keys(&parent, "").await.iter().any(|k| k["name"] == "later"));

    // Sooner is fine.
    let sooner = Utc::now() + Duration::minutes(1);
    let r = create_with(&app, &parent.secret, json!({"name": "sooner", "expires_at": sooner.to_rfc3339()})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(time(&r.body["expires_at"]) <= time(&parent_expiry));

    // A roll keeps the key's expiry.
    let r = send(app.post(&format!("/api/v1/api-keys/{child}/roll")).bearer_auth(&parent.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(time(&r.body["expires_at"]), time(&parent_expiry), "a roll keeps the expiry: {}", r.text);
    let rolled = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&rolled, Via::Bearer).await, 200);

    // A maker without an expiry bounds nothing.
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write", "projects:read"])).await;
    let r = create_with(&app, &manager.secret, json!({"name": "free"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["expires_at"].is_null(), "{}", r.text);
}

async fn a_key_made_by_an_access_token_lives_no_longer_and_dies_with_it(db: &TestDb) {
    let app = spawn_app(db).await;
    let other = spawn_app(db).await;
    let (org, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "ci", "role": "member"})).await;
    let before = Utc::now();
    let token = app.sa_token(&sa, None).await;

    // No expiry asked: the token's (an hour by default).
    let r = create_with(&app, &token, json!({"name": "from a token"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let expires = time(&r.body["expires_at"]);
    assert!(
        expires > before + Duration::minutes(59) && expires <= Utc::now() + Duration::hours(1),
        "the token's expiry: {}",
        r.text
    );
    let child = r.body["key"].as_str().unwrap().to_owned();
    let child_id = r.body["id"].as_str().unwrap().to_owned();
    let r = create_with(
        &app,
        &token,
        json!({"name": "too long", "expires_at": (Utc::now() + Duration::hours(2)).to_rfc3339()}),
    )
    .await;
    r.assert_error(422, "validation_failed");

    // A key made by that key descends from the token too.
    let r = create_with(&app, &child, json!({"name": "grandchild"})).await;
    assert_eq!(r.status, 201, "the child names api_keys:write: {}", r.text);
    assert_eq!(time(&r.body["expires_at"]), expires);
    let grandchild = r.body["key"].as_str().unwrap().to_owned();

    // A key the account made with its own client secret is not bounded by any token.
    let r = send(app.post("/api/v1/api-keys").header("authorization", sa.basic()).json(&json!({"name": "own"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["expires_at"].is_null(), "{}", r.text);
    let own = r.body["key"].as_str().unwrap().to_owned();

    for k in [&child, &grandchild, &own] {
        assert_eq!(app.me_status(k, Via::Bearer).await, 200);
        assert_eq!(other.me_status(k, Via::Bearer).await, 200, "cached on the other instance too");
    }
    // Revoke the token (RFC 7009): its keys stop here at once, and on the other instance
    // through the change log.
    let r = app.oauth_form("/oauth/revoke", Some(&sa.basic()), &[("token", &token)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for k in [&child, &grandchild] {
        assert_eq!(app.me_status(k, Via::Bearer).await, 401, "a key the token made, at once");
        eventually("the other instance refuses the token's key", PATIENCE, || async {
            other.me_status(k, Via::Bearer).await == 401
        })
        .await;
    }
    assert_eq!(app.me_status(&own, Via::Bearer).await, 200, "the account's own key stays");

    // Recorded: revoked, with the reason in the audit log.
    let scope = keyward_store::KeyScope { org_id: org.id.clone(), principal_id: Some(sa.id.clone()) };
    let keys = app.store.list_api_keys(&scope, true).await.unwrap();
    let made = keys.iter().find(|k| k.id.to_string() == child_id).expect("the child");
    assert!(made.revoked_at.is_some());
    assert_eq!(made.origin.created_by.as_deref().map(|c| c.starts_with("access_token:tok_")), Some(true));
    let events = send(app.get("/api/v1/audit-events").bearer_auth(&admin.secret)).await;
    assert!(
        events.body["data"].as_array().unwrap().iter().any(|e| e["action"] == "api_key.revoked"
            && e["target"]["id"] == child_id.as_str()
            && e["detail"]["reason"].as_str().is_some_and(|r| r.contains("access token"))),
        "{}",
        events.text
    );
}

async fn ending_a_device_session_revokes_the_keys_it_made(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.person(&org, "ada@acme.test", "member").await;
    let (_, access, refresh) = approved_tokens(&app, "ada@acme.test", "acme", "keyward-cli", None).await;
    let r = create_with(&app, &access, json!({"name": "made on a laptop"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    // A refreshed token is the same family: what it makes goes with the family too.
    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "keyward-cli")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (access2, refresh2) =
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned());
    let r = create_with(&app, &access2, json!({"name": "after a refresh"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key2 = r.body["key"].as_str().unwrap().to_owned();
    // A key the person makes otherwise is untouched.
    let mine = app.key(&ada, None).await;
    for k in [&key, &key2, &mine.secret] {
        assert_eq!(app.me_status(k, Via::Bearer).await, 200);
    }
    // `keyward logout`: the refresh token revoked, the family with it.
    let r = app.oauth_form("/oauth/revoke", None, &[("token", &refresh2), ("client_id", "keyward-cli")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.me_status(&key, Via::Bearer).await, 401, "made by the family's first token");
    assert_eq!(app.me_status(&key2, Via::Bearer).await, 401, "made by the family's refreshed token");
    assert_eq!(app.me_status(&mine.secret, Via::Bearer).await, 200);
}

both_backends!(
    a_key_made_by_an_expiring_key_expires_with_it,
    a_key_made_by_an_access_token_lives_no_longer_and_dies_with_it,
    ending_a_device_session_revokes_the_keys_it_made,
);
