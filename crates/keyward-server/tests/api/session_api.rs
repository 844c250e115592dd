//! The web UI's session cookie on the management API: the person in their current
//! organization; unsafe methods need `X-CSRF-Token` = the session's CSRF token (the
//! `csrf` field of its pages); never on `/auth/check`; a Bearer credential, when
//! present, decides instead.

use keyward_store::testing::TestDb;
use serde_json::json;

use crate::helpers::*;

async fn the_session_cookie_works_on_the_management_api(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let csrf = b.csrf_from("/settings/api-keys").await;
    let cookie = b.cookie("keyward_csrf").expect("the pre-session cookie").to_owned();

    let r = b.get("/api/v1/me").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["principal"]["email"], "ada@acme.test");
    assert_eq!(r.body["credential"]["kind"], "session");
    assert_eq!(r.body["org"]["slug"], "acme");

    // Unsafe: refused without the header, or with a wrong one.
    let body = serde_json::to_vec(&json!({"name": "from the ui"})).unwrap();
    let r = b.post_raw("/api/v1/api-keys", "application/json", body.clone()).await;
    r.assert_error(403, "insufficient_scope");
    let with = |token: &str| {
        let mut rb = b
            .http
            .post(format!("{}/api/v1/api-keys", b.base))
            .header("content-type", "application/json")
            .body(body.clone());
        rb = rb.header("x-csrf-token", token.to_owned());
        let cookies = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        rb.header("cookie", cookies)
    };
    send(with("wrong-token-wrong-token-wrong-tok")).await.assert_error(403, "insufficient_scope");
    // The cookie's own value (the old double-submit rule) is no token, nor is empty.
    send(with(&cookie)).await.assert_error(403, "insufficient_scope");
    send(with("")).await.assert_error(403, "insufficient_scope");
    // Another session's token, of the same person, does not fit this session.
    let other = app.signed_in("ada@acme.test").await.csrf_from("/settings/api-keys").await;
    assert_ne!(other, csrf);
    send(with(&other)).await.assert_error(403, "insufficient_scope");
    let r = send(with(&csrf)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me_status(&key, Via::Bearer).await, 200);
    let keys = app
        .store
        .list_api_keys(&keyward_store::KeyScope { org_id: org.id.clone(), principal_id: Some(ada.user_id()) }, false)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "the key is the person's");

    // Not a credential for /auth/check (a forward-auth proxy would otherwise let any
    // signed-in browser through).
    let r = b.get("/auth/check").await;
    assert_eq!(r.status, 401);

    // A presented credential decides, not the cookie: a wrong one is a 401.
    let rb = b
        .http
        .get(format!("{}/api/v1/me", b.base))
        .bearer_auth("kw_wrong")
        .header("cookie", b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "));
    send(rb).await.assert_invalid_token();

    // Signed out: the cookie is nothing.
    let session = b.cookie("keyward_session").unwrap().to_owned();
    let r = b.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    let rb = b.http.get(format!("{}/api/v1/me", b.base)).header("cookie", format!("keyward_session={session}"));
    send(rb).await.assert_missing_credential();
}

/// The session acts in the current organization only.
async fn the_session_acts_in_the_current_organization(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let globex = app.org("globex").await;
    let ada = app.person(&acme, "ada@acme.test", "member").await;
    app.join(&globex, &ada.user, "viewer").await;
    let acme_key = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    let mut b = app.signed_in("ada@acme.test").await;
    let csrf = b.csrf_from("/settings/api-keys").await;
    let first = b.get("/api/v1/me").await;
    assert_eq!(first.body["org"]["slug"], "acme", "the first organization by slug");
    let r = b.post_form("/settings/org", &[("csrf", &csrf), ("org", "globex")]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let me = b.get("/api/v1/me").await;
    assert_eq!(me.body["org"]["slug"], "globex");
    assert!(!strings(&me.body["permissions"]).contains(&"projects:write".to_owned()), "a viewer in globex");
    let list = b.get("/api/v1/api-keys").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(find(list.body["data"].as_array().unwrap(), &acme_key.id).is_none(), "acme's key is not listed in globex");
    // Another organization's slug in the cookie: the first one instead, never that one.
    app.org("initech").await;
    b.cookies.insert("keyward_org".into(), "initech".into());
    let me = b.get("/api/v1/me").await;
    assert_eq!(me.body["org"]["slug"], "acme");
}

both_backends!(the_session_cookie_works_on_the_management_api, the_session_acts_in_the_current_organization);
