//! CSRF tokens bound to the browser: the `/login` form's token to its pre-session cookie,
//! a signed-in page's token to the session; forged, empty and borrowed tokens refused
//! (`403`); tokens made by one instance accepted by another on the same database.

use keyward_store::testing::TestDb;
use serde_json::json;

use crate::helpers::*;

/// A double-submit pair an attacker can plant: the cookie and the field equal.
const FORGED: &str = "forgedforgedforgedforgedforged12";

#[track_caller]
fn assert_refused(r: &Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    assert!(set_cookie(r, "keyward_session").is_none(), "{what}: no session");
}

fn login_form(csrf: &str) -> Vec<(&str, &str)> {
    vec![("csrf", csrf), ("email", "ada@acme.test"), ("password", PASSWORD), ("next", "/")]
}

/// Before signing in: the `/login` token is bound to the pre-session cookie.
async fn the_login_form_needs_its_own_token(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;

    // A pair of the attacker's choosing (the old double-submit rule), and an empty pair.
    for (what, cookie, field) in [("a forged pair", FORGED, FORGED), ("an empty pair", "", "")] {
        let mut b = app.browser();
        b.cookies.insert("keyward_csrf".into(), cookie.into());
        assert_refused(&b.post_form("/login", &login_form(field)).await, what);
    }
    // The token is not the cookie's value, and fits that cookie only.
    let mut b = app.browser();
    let token = b.csrf_from("/login").await;
    let cookie = b.cookie("keyward_csrf").expect("GET /login sets the pre-session cookie").to_owned();
    assert_ne!(token, cookie, "the token is derived, not the cookie itself");
    assert_refused(&b.post_form("/login", &login_form(&cookie)).await, "the cookie's value as the token");
    let mut other = app.browser();
    let other_token = other.csrf_from("/login").await;
    assert_ne!(other_token, token);
    assert_refused(&b.post_form("/login", &login_form(&other_token)).await, "another browser's token");
    let mut no_cookie = app.browser();
    assert_refused(&no_cookie.post_form("/login", &login_form(&token)).await, "the token without its cookie");
    // The same page again gives the same token (several tabs work).
    assert_eq!(b.csrf_from("/login").await, token);
    // The real flow.
    let r = b.post_form("/login", &login_form(&token)).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(set_cookie(&r, "keyward_session").is_some());
}

/// Signed in: a page's token is bound to the session; the pre-session token, a forged
/// pair and another session's token are refused, on a form and on the management API.
async fn a_signed_in_token_is_bound_to_the_session(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    let pre_token = b.csrf_from("/login").await;
    let r = b.post_form("/login", &login_form(&pre_token)).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let token = b.csrf_from("/settings/api-keys").await;
    assert_ne!(token, pre_token, "signing in changes the token");
    assert_eq!(b.csrf_from("/device").await, token, "one token for every page of the session");
    let other_session = app.signed_in("ada@acme.test").await.csrf_from("/settings/api-keys").await;
    assert_ne!(other_session, token);

    let jar = b.cookies.clone();
    let create = |csrf: &str| vec![("csrf", csrf.to_owned()), ("name", "from the form".to_owned())];
    for (what, csrf, forge) in [
        ("the pre-session token", pre_token.as_str(), false),
        ("another session's token", other_session.as_str(), false),
        ("a forged pair", FORGED, true),
        ("an empty token", "", false),
    ] {
        b.cookies = jar.clone();
        if forge {
            b.cookies.insert("keyward_csrf".into(), FORGED.into());
        }
        let pairs = create(csrf);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_refused(&b.post_form("/settings/api-keys", &pairs).await, &format!("form, {what}"));
        // The management API with the session cookie and X-CSRF-Token.
        let cookies = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let rb = app
            .post("/api/v1/api-keys")
            .header("cookie", cookies)
            .header("x-csrf-token", csrf)
            .json(&json!({"name": "from the api"}));
        send(rb).await.assert_error(403, "insufficient_scope");
    }
    b.cookies = jar;
    let keys = b.get("/settings/api-keys").await;
    assert!(!keys.text.contains("from the form"), "nothing was made by a refused form");

    // The real flow: the form and the API.
    let form = [("csrf", token.as_str()), ("name", "from the form"), ("permission", "projects:read")];
    let r = b.post_form("/settings/api-keys", &form).await;
    assert!(r.status == 200 || r.status == 303, "{}", r.text);
    assert!(b.get("/settings/api-keys").await.text.contains("from the form"), "the real form made the key");
    let cookies = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let rb = app
        .post("/api/v1/api-keys")
        .header("cookie", cookies)
        .header("x-csrf-token", &token)
        .json(&json!({"name": "from the api"}));
    let r = send(rb).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // After signing out, the session's token is worth nothing, even with a new session.
    assert_eq!(b.post_form("/logout", &[("csrf", &token)]).await.status, 303);
    let again = b.csrf_from("/login").await;
    assert_eq!(b.post_form("/login", &login_form(&again)).await.status, 303);
    let r = b.post_form("/settings/api-keys", &[("csrf", &token), ("name", "stale")]).await;
    assert_refused(&r, "the previous session's token");
}

/// Two instances on one database share the key: a form from one is accepted by the other
/// (a load balancer may send the POST elsewhere).
async fn another_instance_accepts_the_token(db: &TestDb) {
    let a = spawn_app(db).await;
    let b_app = spawn_app(db).await;
    let org = a.org("acme").await;
    a.person(&org, "ada@acme.test", "member").await;
    let mut browser = a.browser();
    let token = browser.csrf_from("/login").await;
    browser.base = b_app.base.clone();
    let r = browser.post_form("/login", &login_form(&token)).await;
    assert_eq!(r.status, 303, "instance B accepts instance A's form: {}", r.text);
    let from_b = browser.csrf_from("/settings/api-keys").await;
    browser.base = a.base.clone();
    assert_eq!(browser.csrf_from("/settings/api-keys").await, from_b, "one token for the session on both");
}

both_backends!(
    the_login_form_needs_its_own_token,
    a_signed_in_token_is_bound_to_the_session,
    another_instance_accepts_the_token,
);
