//! `POST /oauth/introspect` (RFC 7662), `POST /oauth/revoke` (RFC 7009) and
//! `GET /.well-known/oauth-authorization-server` (RFC 8414).

use std::time::Duration;

use keyward_store::testing::TestDb;
use reqwest::header::AUTHORIZATION;
use serde_json::{json, Value};

use crate::helpers::*;

/// An org with an admin key, two accounts (one with a key pair) and a backend key
/// holding `keys:verify`.
struct Ctx {
    app: TestApp,
    admin: Key,
    boss: Member,
    sa: Sa,
    other: Sa,
    verifier: Key,
}

async fn ctx_with(app: TestApp) -> Ctx {
    let org = app.org("acme").await;
    let boss = app.member(&org, "boss@acme.test", "admin").await;
    let admin = app.key(&boss, None).await;
    let verifier = app.key(&boss, Some(&["keys:verify"])).await;
    let sa =
        app.create_sa(&admin, json!({"name": "bot", "secret": true, "public_keys": [Signer::ec().public_pem]})).await;
    let other = app.create_sa(&admin, json!({"name": "other bot"})).await;
    Ctx { app, admin, boss, sa, other, verifier }
}

async fn ctx(db: &TestDb) -> Ctx {
    ctx_with(spawn_app(db).await).await
}

impl Ctx {
    async fn introspect(&self, auth: Option<&str>, token: &str) -> Reply {
        self.app.oauth_form("/oauth/introspect", auth, &[("token", token)]).await
    }

    async fn revoke(&self, auth: Option<&str>, token: &str) -> Reply {
        self.app.oauth_form("/oauth/revoke", auth, &[("token", token)]).await
    }

    fn bearer_verifier(&self) -> String {
        format!("Bearer {}", self.verifier.secret)
    }

    /// An access and refresh token for `sa` by the jwt-bearer grant.
    async fn token_pair(&self) -> (String, String) {
        let jwt =
            Signer::ec().sign(Some(&self.sa.kid("ES256")), &assertion_claims(&self.sa.client_id, &token_endpoint()));
        let r = self.app.token(None, &[("grant_type", JWT_BEARER_GRANT), ("assertion", &jwt)]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned())
    }
}

#[track_caller]
fn assert_inactive(r: &Reply, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    assert_eq!(r.body, json!({"active": false}), "{what}: exactly {{\"active\": false}}, not {}", r.text);
}

async fn an_active_token_is_described(db: &TestDb) {
    let c = ctx(db).await;
    let r = c
        .app
        .token(Some(&c.sa.basic()), &[("grant_type", "client_credentials"), ("scope", "projects:read members:read")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_owned();

    // A client learns only about its own tokens (the implementation's documented
    // choice); a backend with keys:verify about any of its organization's.
    assert_inactive(&c.introspect(Some(&c.other.basic()), &token).await, "another client of the org");
    for (who, auth) in [("the client itself", c.sa.basic()), ("a keys:verify key", c.bearer_verifier())] {
        let r = c.introspect(Some(&auth), &token).await;
        assert_eq!(r.status, 200, "{who}: {}", r.text);
        let b = &r.body;
        assert_eq!(b["active"], true, "{who}: {}", r.text);
        let mut scope: Vec<&str> = b["scope"].as_str().expect("scope").split(' ').collect();
        scope.sort();
        assert_eq!(scope, ["members:read", "projects:read"], "{who}");
        assert_eq!(b["client_id"], c.sa.client_id, "{who}");
        assert!(b["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer")), "{who}: {}", r.text);
        let (exp, iat) = (b["exp"].as_i64().expect("exp"), b["iat"].as_i64().expect("iat"));
        assert!((exp - iat - 3600).abs() <= 1, "{who}: exp - iat = {}", exp - iat);
        assert!((iat - chrono::Utc::now().timestamp()).abs() < 60, "{who}: iat is now");
        assert!(b["sub"].as_str().is_some_and(|s| !s.is_empty()), "{who}: {}", r.text);
        assert!(!r.text.contains(&token), "{who}: the token echoed");
        let cc = r.header("cache-control").unwrap_or_default();
        assert!(cc.contains("no-store"), "{who}: Cache-Control {cc:?}");
    }
    // A refresh token is active too (RFC 7662 §2.1), and JSON bodies work.
    let (_, rt) = c.token_pair().await;
    let r = c.introspect(Some(&c.sa.basic()), &rt).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    let r =
        send(c.app.post("/oauth/introspect").header(AUTHORIZATION, c.sa.basic()).json(&json!({"token": token}))).await;
    assert_eq!(r.body["active"], true, "a JSON body: {}", r.text);
    // With a hint.
    let r = c
        .app
        .oauth_form("/oauth/introspect", Some(&c.sa.basic()), &[("token", &token), ("token_type_hint", "access_token")])
        .await;
    assert_eq!(r.body["active"], true, "{}", r.text);
}

async fn unknown_expired_and_revoked_tokens_are_inactive(db: &TestDb) {
    let app = spawn_app_tables(db, "[oauth]\naccess_token_ttl = \"1s\"").await;
    let c = ctx_with(app).await;
    let r = c.app.token(Some(&c.sa.basic()), &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["expires_in"], 1, "the configured lifetime: {}", r.text);
    let short = r.body["access_token"].as_str().unwrap().to_owned();
    let r = c.introspect(Some(&c.sa.basic()), &short).await;
    assert_eq!(r.body["active"], true, "not expired yet: {}", r.text);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_inactive(&c.introspect(Some(&c.sa.basic()), &short).await, "an expired token");
    assert_eq!(c.app.me_status(&short, Via::Bearer).await, 401, "an expired token on the API");

    for (what, t) in [
        ("an unknown access token", "kwat_0000000000000000000000000000000000000".to_owned()),
        ("an unknown refresh token", "kwrt_0000000000000000000000000000000000000".to_owned()),
        ("garbage", "not a token".to_owned()),
        ("an empty token", String::new()),
        ("the caller's own secret", c.sa.secret().to_owned()),
        ("a mistyped token", mistyped(&short)),
    ] {
        let r = c.introspect(Some(&c.sa.basic()), &t).await;
        if t.is_empty() && r.status == 400 {
            r.assert_error(400, "invalid_request"); // RFC 7662 requires the parameter
            continue;
        }
        assert_inactive(&r, what);
    }

    // Revoked.
    let r = c.app.token(Some(&c.sa.basic()), &[("grant_type", "client_credentials")]).await;
    let t = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.introspect(Some(&c.sa.basic()), &t).await.body["active"], true);
    assert_eq!(c.revoke(Some(&c.sa.basic()), &t).await.status, 200);
    assert_inactive(&c.introspect(Some(&c.sa.basic()), &t).await, "a revoked token");
    assert_inactive(&c.introspect(Some(&c.bearer_verifier()), &t).await, "a revoked token, asked by a backend");

    // The account deleted: its tokens are inactive.
    let r = c.app.token(Some(&c.other.basic()), &[("grant_type", "client_credentials")]).await;
    let t = r.body["access_token"].as_str().unwrap().to_owned();
    let r = send(c.app.delete(&format!("/api/v1/service-accounts/{}", c.other.id)).bearer_auth(&c.admin.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_inactive(&c.introspect(Some(&c.bearer_verifier()), &t).await, "a deleted account's token");
}

async fn introspection_needs_an_authenticated_caller(db: &TestDb) {
    let c = ctx(db).await;
    let token = c.app.sa_token(&c.sa, None).await;
    let r = c.introspect(None, &token).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.body["error"].is_string() && r.body["error_description"].is_string(), "{}", r.text);
    assert!(r.body.get("active").is_none(), "nothing about the token: {}", r.text);
    for (what, auth) in [
        ("a wrong client secret", client_basic(&c.sa.client_id, &mistyped(c.sa.secret()))),
        ("an unknown client", client_basic("nobody", "x")),
        ("a made-up Bearer key", "Bearer kw_nope".to_owned()),
    ] {
        let r = c.introspect(Some(&auth), &token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert!(r.body.get("active").is_none(), "{what}: {}", r.text);
    }
    // A key or an access token without keys:verify is no introspection caller.
    let plain = c.app.key(&c.boss, Some(&["projects:read", "api_keys:read"])).await;
    let r = c.introspect(Some(&format!("Bearer {}", plain.secret)), &token).await;
    assert!(r.status == 401 || r.status == 403, "a key without keys:verify: {}", r.text);
    assert!(r.body.get("active").is_none(), "{}", r.text);
    let r =
        c.introspect(Some(&format!("Bearer {}", c.app.sa_token(&c.other, Some("projects:read")).await)), &token).await;
    assert!(r.status == 401 || r.status == 403, "an access token without keys:verify: {}", r.text);
    assert!(r.body.get("active").is_none(), "{}", r.text);
}

/// Another organization's token, introspected by this organization's caller, is
/// `{"active": false}`.
async fn another_orgs_token_is_inactive(db: &TestDb) {
    let c = ctx(db).await;
    let (_, b_admin) = c.app.org_with_admin("globex").await;
    let b_sa = c.app.create_sa(&b_admin, json!({"name": "globex bot"})).await;
    let b_token = c.app.sa_token(&b_sa, None).await;
    let a_token = c.app.sa_token(&c.sa, None).await;
    for (who, auth) in [("acme's client", c.sa.basic()), ("acme's keys:verify key", c.bearer_verifier())] {
        assert_inactive(&c.introspect(Some(&auth), &b_token).await, who);
    }
    // And the other way round.
    assert_inactive(&c.introspect(Some(&b_sa.basic()), &a_token).await, "globex's client on acme's token");
    // The tokens themselves are fine.
    assert_eq!(c.introspect(Some(&b_sa.basic()), &b_token).await.body["active"], true);
    assert_eq!(c.app.me_status(&b_token, Via::Bearer).await, 200);
}

async fn revocation(db: &TestDb) {
    let c = ctx(db).await;
    // Unknown tokens: 200.
    for t in ["kwat_0000000000000000000000000000000000000", "nonsense", "kwrt_x"] {
        let r = c.revoke(Some(&c.sa.basic()), t).await;
        assert_eq!(r.status, 200, "{t}: {}", r.text);
    }
    // Needs client authentication.
    let token = c.app.sa_token(&c.sa, None).await;
    assert_eq!(c.app.me_status(&token, Via::Bearer).await, 200, "cached");
    let r = c.revoke(None, &token).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.body["error"].is_string(), "{}", r.text);
    let r = c.revoke(Some(&client_basic(&c.sa.client_id, &mistyped(c.sa.secret()))), &token).await;
    r.assert_oauth_error(401, "invalid_client");
    assert_eq!(c.app.me_status(&token, Via::Bearer).await, 200, "not revoked by those");

    // Another client cannot revoke it: 200, and it keeps working.
    let r = c.revoke(Some(&c.other.basic()), &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.app.me_status(&token, Via::Bearer).await, 200, "another client's revocation did nothing");
    assert_eq!(c.introspect(Some(&c.sa.basic()), &token).await.body["active"], true);

    // Its own client can: 401 at once.
    let r = c.revoke(Some(&c.sa.basic()), &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    send(c.app.get("/api/v1/me").bearer_auth(&token)).await.assert_invalid_token();
    assert_eq!(c.revoke(Some(&c.sa.basic()), &token).await.status, 200, "again");
    // With a hint, and by client_secret_post.
    let t2 = c.app.sa_token(&c.sa, None).await;
    let r = c
        .app
        .oauth_form(
            "/oauth/revoke",
            None,
            &[
                ("token", &t2),
                ("token_type_hint", "access_token"),
                ("client_id", &c.sa.client_id),
                ("client_secret", c.sa.secret()),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.app.me_status(&t2, Via::Bearer).await, 401);

    // Revoking a refresh token kills its family.
    let (access, rt) = c.token_pair().await;
    assert_eq!(c.app.me_status(&access, Via::Bearer).await, 200);
    let r = c.revoke(Some(&c.sa.basic()), &rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.app.me_status(&access, Via::Bearer).await, 401, "the family's access token");
    c.app
        .token(Some(&c.sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .await
        .assert_oauth_error(400, "invalid_grant");
    // A refreshed family: revoking the new refresh token kills the rotated access token too.
    let (_, rt) = c.token_pair().await;
    let r = c.app.token(Some(&c.sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (a2, rt2) =
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned());
    assert_eq!(c.revoke(Some(&c.sa.basic()), &rt2).await.status, 200);
    assert_eq!(c.app.me_status(&a2, Via::Bearer).await, 401);
    // Another client revoking this client's refresh token does nothing.
    let (a3, rt3) = c.token_pair().await;
    assert_eq!(c.revoke(Some(&c.other.basic()), &rt3).await.status, 200);
    assert_eq!(c.app.me_status(&a3, Via::Bearer).await, 200);
    let r = c.app.token(Some(&c.sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt3)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Bad requests to introspect and revoke: 4xx JSON, never 5xx.
async fn bad_input_on_introspect_and_revoke(db: &TestDb) {
    let c = ctx(db).await;
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        for (what, ct, body) in [
            ("no token", Some("application/x-www-form-urlencoded"), String::new()),
            ("token twice", Some("application/x-www-form-urlencoded"), "token=a&token=b".to_owned()),
            ("text/plain", Some("text/plain"), "token=a".to_owned()),
            ("no content type", None, "token=a".to_owned()),
            ("broken JSON", Some("application/json"), "{\"token".to_owned()),
            ("huge", Some("application/x-www-form-urlencoded"), format!("token={}", "a".repeat(3 * 1024 * 1024))),
        ] {
            let mut rb = c.app.post(path).header(AUTHORIZATION, c.sa.basic()).body(body);
            if let Some(ct) = ct {
                rb = rb.header("content-type", ct);
            }
            let r = send(rb).await;
            assert!(
                (400..500).contains(&r.status),
                "{path}: {what}: {} {}",
                r.status,
                &r.text[..r.text.len().min(300)]
            );
            assert!(
                r.body["error"].is_string() && r.body["error_description"].is_string(),
                "{path}: {what}: {}",
                r.text
            );
        }
    }
}

async fn authorization_server_metadata(db: &TestDb) {
    let app = spawn_app(db).await;
    let r = send(app.get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"));
    let m = &r.body;
    assert_eq!(m["issuer"], PUBLIC_URL, "the issuer is public_url: {}", r.text);
    assert_eq!(m["token_endpoint"], format!("{PUBLIC_URL}/oauth/token"));
    assert_eq!(m["introspection_endpoint"], format!("{PUBLIC_URL}/oauth/introspect"));
    assert_eq!(m["revocation_endpoint"], format!("{PUBLIC_URL}/oauth/revoke"));
    let list = |f: &str| -> Vec<String> {
        m[f].as_array().map(|_| strings(&m[f])).unwrap_or_else(|| panic!("{f} is a list: {m}"))
    };
    let grants = list("grant_types_supported");
    for g in ["client_credentials", "refresh_token", JWT_BEARER_GRANT] {
        assert!(grants.contains(&g.to_owned()), "{g} in {grants:?}");
    }
    let methods = list("token_endpoint_auth_methods_supported");
    for a in ["client_secret_basic", "client_secret_post", "private_key_jwt"] {
        assert!(methods.contains(&a.to_owned()), "{a} in {methods:?}");
    }
    assert!(!methods.contains(&"none".to_owned()) || grants.iter().any(|g| g.contains("device_code")), "{methods:?}");
    let algs = list("token_endpoint_auth_signing_alg_values_supported");
    for a in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&a.to_owned()), "{a} in {algs:?}");
    }
    for a in ["none", "HS256", "HS384", "HS512"] {
        assert!(!algs.contains(&a.to_owned()), "{a} must not be offered: {algs:?}");
    }
    // The endpoints it names are where the server answers (relative to the real address).
    let r = app.token(None, &[("grant_type", "nope")]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let doc: Value = r.body;
    assert!(doc["error"].is_string());

    // A custom public_url is reflected.
    let db2 = if db.url.starts_with("sqlite") { TestDb::sqlite() } else { TestDb::postgres().await.unwrap() };
    let app = spawn_app_with(
        &db2,
        &format!("usage_flush_interval = \"{FLUSH}\"\npublic_url = \"https://keys.example.com/\""),
    )
    .await;
    let r = send(app.get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(r.body["issuer"], "https://keys.example.com", "{}", r.text);
    assert_eq!(r.body["token_endpoint"], "https://keys.example.com/oauth/token");
}

async fn metadata_can_be_switched_off(db: &TestDb) {
    let app = spawn_app_tables(db, "[oauth]\nmetadata = false").await;
    let r = send(app.get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    r.assert_error(404, "not_found");
}

both_backends!(
    an_active_token_is_described,
    unknown_expired_and_revoked_tokens_are_inactive,
    introspection_needs_an_authenticated_caller,
    another_orgs_token_is_inactive,
    revocation,
    bad_input_on_introspect_and_revoke,
    authorization_server_metadata,
    metadata_can_be_switched_off,
);
