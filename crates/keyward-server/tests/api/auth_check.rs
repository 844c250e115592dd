//! `/auth/check` (any method): the `X-Keyward-*` headers and the same facts as JSON;
//! `?permission=` → 403 `insufficient_scope`; no credential → 401.

use keyward_store::testing::TestDb;
use reqwest::Method;

use crate::helpers::*;

const IDENTITY_HEADERS: [&str; 4] =
    ["x-keyward-principal", "x-keyward-org", "x-keyward-permissions", "x-keyward-credential"];

async fn check_sets_identity_headers_and_body(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, Some(&["projects:write", "projects:read", "members:read"])).await;
    for method in [Method::GET, Method::POST, Method::DELETE, Method::PUT, Method::PATCH, Method::HEAD] {
        for via in EVERY_VIA {
            let r = send(via.apply(app.req(method.clone(), "/auth/check"), &key.secret)).await;
            assert_eq!(r.status, 200, "{method} {via:?}: {}", r.text);
            assert_eq!(r.header("x-keyward-principal").as_deref(), Some(ada.user_id().as_str()));
            assert_eq!(r.header("x-keyward-org").as_deref(), Some("acme"));
            assert_eq!(r.header("x-keyward-permissions").as_deref(), Some("members:read,projects:read,projects:write"));
            assert_eq!(r.header("x-keyward-credential"), Some(format!("api_key:{}", key.id)));
            if method == Method::HEAD {
                continue;
            }
            assert_eq!(r.body["principal"]["id"], ada.user_id());
            assert_eq!(r.body["principal"]["kind"], "user");
            assert_eq!(r.body["org"]["slug"], "acme");
            assert_eq!(r.body["org"]["id"], org.id.to_string());
            assert_eq!(strings(&r.body["permissions"]), ["members:read", "projects:read", "projects:write"]);
            assert_eq!(r.body["credential"]["kind"], "api_key");
            assert_eq!(r.body["credential"]["id"], key.id);
        }
    }
    // An admin's inheriting key carries `*`.
    let boss = app.member(&org, "boss@acme.test", "admin").await;
    let all = app.key(&boss, None).await;
    let r = send(app.get("/auth/check").bearer_auth(&all.secret)).await;
    assert_eq!(r.header("x-keyward-permissions").as_deref(), Some("*"));
    assert_eq!(r.header("x-keyward-principal"), Some(boss.user_id()));
}

async fn check_refuses_a_missing_permission(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let vic = app.member(&org, "vic@acme.test", "viewer").await;
    let key = app.key(&vic, None).await;
    let r = send(app.get("/auth/check?permission=projects:read").bearer_auth(&key.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let r = send(app.req(method.clone(), "/auth/check?permission=projects:write").bearer_auth(&key.secret)).await;
        r.assert_insufficient_scope();
        assert!(r.challenges()[0].contains("scope=\"projects:write\""), "{:?}", r.challenges());
        for h in IDENTITY_HEADERS {
            assert!(r.header(h).is_none(), "{method}: a 403 carries no {h}");
        }
    }
    // Wildcards in the role cover the asked permission.
    let boss = app.member(&org, "boss@acme.test", "owner").await;
    let all = app.key(&boss, None).await;
    let r = send(app.get("/auth/check?permission=projects:write").bearer_auth(&all.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A key narrower than its holder: the key's own list decides.
    let narrow = app.key(&boss, Some(&["projects:read"])).await;
    send(app.get("/auth/check?permission=projects:write").bearer_auth(&narrow.secret))
        .await
        .assert_insufficient_scope();
}

async fn check_without_a_credential_is_401(db: &TestDb) {
    let app = spawn_app(db).await;
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let r = send(app.req(method.clone(), "/auth/check")).await;
        r.assert_missing_credential();
        let c = r.challenges();
        assert!(
            c[0].contains("resource_metadata=\"http://127.0.0.1:7070/.well-known/oauth-protected-resource\""),
            "{c:?}"
        );
        for h in IDENTITY_HEADERS {
            assert!(r.header(h).is_none());
        }
        let r = send(app.req(method.clone(), "/auth/check?permission=projects:read").bearer_auth("kw_nope")).await;
        r.assert_invalid_token();
        for h in IDENTITY_HEADERS {
            assert!(r.header(h).is_none());
        }
    }
}

/// With `oauth.metadata = false` (API keys only) no challenge sends MCP clients to an
/// OAuth metadata document.
async fn check_without_oauth_metadata_names_none(db: &TestDb) {
    let app = spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"\n[oauth]\nmetadata = false")).await;
    let r = send(app.get("/auth/check")).await;
    r.assert_missing_credential();
    assert_eq!(r.challenges(), ["Bearer realm=\"keyward\"", "Basic realm=\"keyward\""]);
    let r = send(app.get("/auth/check").bearer_auth("kw_wrong")).await;
    r.assert_invalid_token();
    assert_eq!(r.challenges(), ["Bearer realm=\"keyward\", error=\"invalid_token\"", "Basic realm=\"keyward\""]);
}

both_backends!(
    check_without_oauth_metadata_names_none,
    check_sets_identity_headers_and_body,
    check_refuses_a_missing_permission,
    check_without_a_credential_is_401,
);
