//! What real OAuth client libraries do, and keyward must accept (DESIGN.md "OAuth details
//! that tests check"): imported clients with equal secrets or keyward-looking secrets,
//! raw (unencoded) Basic credentials, authlib's one-hour assertions, openid-client's
//! `alg: "Ed25519"`, an assertion addressed to the endpoint being called, the metadata
//! validators read, the MCP SDK asking for every scope, `405` with no-store, and one
//! status for a client id that may not act alone.

use chrono::Utc;
use keyward_core::secret::SecretKind;
use keyward_store::testing::TestDb;
use keyward_store::{Actor, NewClientSecret, NewServiceAccount, Org};
use serde_json::{json, Value};

use crate::helpers::*;

/// Imports a client `client_id` with a bcrypt hash of `plain`, as `keyward serviceaccount
/// import` does; returns the account id.
async fn import(app: &TestApp, org: &Org, client_id: &str, plain: &str) -> String {
    let hash = keyward_core::legacy::BcryptHash::parse(&bcrypt::hash(plain, 4).unwrap()).unwrap();
    let new = NewServiceAccount {
        org_id: org.id.clone(),
        name: client_id.into(),
        role: "member".into(),
        client_id: Some(client_id.into()),
        secret: Some(NewClientSecret::Bcrypt(hash)),
        public_keys: vec![],
    };
    app.store.create_service_account(&new, &Actor::cli()).await.unwrap().id.to_string()
}

/// Who an access token (or a Basic pair on the API) acts as: `/api/v1/me`'s principal id.
async fn principal_of(app: &TestApp, authorization: &str) -> String {
    let r = send(app.get("/api/v1/me").header(reqwest::header::AUTHORIZATION, authorization)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["principal"]["id"].as_str().unwrap().to_owned()
}

/// `client_credentials` with `authorization`; must succeed; the token's principal id.
async fn token_principal(app: &TestApp, authorization: Option<&str>, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(extra);
    let r = app.token(authorization, &pairs).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.assert_no_store();
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    principal_of(app, &format!("Bearer {access}")).await
}

/// Two imported clients whose secrets are equal: each authenticates as itself, before
/// and after either was re-hashed, at the token endpoint and on the API.
async fn equal_imported_secrets_each_authenticate_as_themselves(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let shared = "the-same-legacy-secret";
    let a = import(&app, &org, "client-a", shared).await;
    let b = import(&app, &org, "client-b", shared).await;
    for round in 0..3 {
        for (client, id) in [("client-a", &a), ("client-b", &b)] {
            let basic = client_basic(client, shared);
            assert_eq!(&token_principal(&app, Some(&basic), &[]).await, id, "round {round}: {client} by Basic");
            let post = [("client_id", client), ("client_secret", shared)];
            assert_eq!(&token_principal(&app, None, &post).await, id, "round {round}: {client} by post");
            assert_eq!(&principal_of(&app, &basic).await, id, "round {round}: {client} on the API");
        }
    }
    // Neither opens the door for a client that holds another secret.
    let c = import(&app, &org, "client-c", "another-secret").await;
    let r = app.token(Some(&client_basic("client-c", shared)), &[("grant_type", "client_credentials")]).await;
    r.assert_oauth_error(401, "invalid_client");
    assert_eq!(token_principal(&app, Some(&client_basic("client-c", "another-secret")), &[]).await, c);
}

/// An imported secret that looks like a keyward secret — an API key, a client secret with
/// a wrong checksum, even one with a right checksum — is the client's secret all the same.
async fn imported_secrets_that_look_like_keyward_secrets_work(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let generated = app.secrets.generate(SecretKind::ServiceAccountSecret);
    let api_key_like = app.secrets.generate(SecretKind::ApiKey);
    let cases = [
        ("kw-key-like", api_key_like.expose().to_owned()),
        ("kwsa-bad-checksum", "kwsa_0123456789abcdefghijABCDEFGHIJ0123456789".to_owned()),
        ("kwsa-good-checksum", generated.expose().to_owned()),
        ("kw-short", "kw_x".to_owned()),
    ];
    for (client, secret) in &cases {
        let id = import(&app, &org, client, secret).await;
        for round in ["bcrypt", "re-hashed"] {
            let basic = client_basic(client, secret);
            assert_eq!(token_principal(&app, Some(&basic), &[]).await, id, "{client} by Basic, {round}");
            let post = [("client_id", *client), ("client_secret", secret.as_str())];
            assert_eq!(token_principal(&app, None, &post).await, id, "{client} by post, {round}");
            assert_eq!(principal_of(&app, &basic).await, id, "{client} on the API, {round}");
        }
        let wrong = client_basic(client, &format!("{secret}x"));
        app.token(Some(&wrong), &[("grant_type", "client_credentials")])
            .await
            .assert_oauth_error(401, "invalid_client");
    }
}

/// Most client libraries send Basic credentials without form-encoding them: a secret
/// with `+`, `%` or `:` works raw too, at the token endpoint as on the API; the encoded
/// form (RFC 6749 §2.3.1) keeps working.
async fn raw_basic_credentials_work_at_the_token_endpoint(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    for (client, secret) in [("plus-client", "a+b"), ("percent-client", "50%off:%zz"), ("both", "x%2By+z")] {
        let id = import(&app, &org, client, secret).await;
        let raw = basic(&format!("{client}:{secret}"));
        let encoded = client_basic(client, secret);
        for round in 0..2 {
            assert_eq!(token_principal(&app, Some(&raw), &[]).await, id, "{client} raw, round {round}");
            assert_eq!(token_principal(&app, Some(&encoded), &[]).await, id, "{client} encoded, round {round}");
            assert_eq!(principal_of(&app, &raw).await, id, "{client} raw on the API");
        }
        // A raw pair that is wrong in both readings is still refused, with a challenge.
        let r = app.token(Some(&basic(&format!("{client}:{secret}x"))), &[("grant_type", "client_credentials")]).await;
        r.assert_oauth_error(401, "invalid_client");
        assert!(r.challenges().iter().any(|c| c.starts_with("Basic")), "{:?}", r.challenges());
    }
}

/// An org with an admin key and an account holding the three test public keys.
async fn keyed_account(app: &TestApp) -> Sa {
    let (_, admin) = app.org_with_admin("acme").await;
    let keys = [Signer::rsa().public_pem, Signer::ec().public_pem, Signer::ed25519().public_pem];
    app.create_sa(&admin, json!({"name": "bot", "secret": true, "public_keys": keys})).await
}

fn with_assertion(jwt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_assertion_type", JWT_BEARER_ASSERTION.into()),
        ("client_assertion", jwt.into()),
    ]
}

async fn post_owned(app: &TestApp, path: &str, pairs: &[(&str, String)]) -> Reply {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.oauth_form(path, None, &pairs).await
}

/// authlib signs client assertions with `exp` one hour ahead: accepted, with the small
/// leeway; beyond that, refused.
async fn an_assertion_an_hour_ahead_is_accepted(db: &TestDb) {
    let app = spawn_app(db).await;
    let sa = keyed_account(&app).await;
    for signer in [Signer::rsa(), Signer::ec(), Signer::ed25519()] {
        let mut claims = assertion_claims(&sa.client_id, &token_endpoint());
        claims["exp"] = json!(Utc::now().timestamp() + 3600);
        let jwt = signer.sign(Some(&sa.kid(signer.alg_name())), &claims);
        let r = post_owned(&app, "/oauth/token", &with_assertion(&jwt)).await;
        assert_eq!(r.status, 200, "{}: {}", signer.alg_name(), r.text);
    }
    let mut claims = assertion_claims(&sa.client_id, &token_endpoint());
    claims["exp"] = json!(Utc::now().timestamp() + 3600 + 120);
    let jwt = Signer::ec().sign(Some(&sa.kid("ES256")), &claims);
    post_owned(&app, "/oauth/token", &with_assertion(&jwt)).await.assert_oauth_error(401, "invalid_client");
}

/// A JWT whose header is `header` (JSON), signed with the Ed25519 test key.
fn ed25519_jwt(header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &Signer::ed25519().key, jsonwebtoken::Algorithm::EdDSA)
        .expect("sign");
    format!("{input}.{sig}")
}

/// openid-client names Ed25519 signing `alg: "Ed25519"` (RFC 9864): accepted as EdDSA,
/// for client authentication and for the JWT-bearer grant; never for another key type.
async fn the_ed25519_algorithm_name_is_accepted(db: &TestDb) {
    let app = spawn_app(db).await;
    let sa = keyed_account(&app).await;
    let kid = sa.kid("EdDSA");
    for header in [json!({"alg": "Ed25519", "kid": kid, "typ": "JWT"}), json!({"alg": "Ed25519"})] {
        let jwt = ed25519_jwt(&header, &assertion_claims(&sa.client_id, &token_endpoint()));
        let r = post_owned(&app, "/oauth/token", &with_assertion(&jwt)).await;
        assert_eq!(r.status, 200, "{header}: {}", r.text);
        let jwt = ed25519_jwt(&header, &assertion_claims(&sa.client_id, &token_endpoint()));
        let r = app.token(None, &[("grant_type", JWT_BEARER_GRANT), ("assertion", &jwt)]).await;
        assert_eq!(r.status, 200, "jwt-bearer grant, {header}: {}", r.text);
    }
    // Named Ed25519 but pointing at the EC key: refused.
    let jwt = ed25519_jwt(
        &json!({"alg": "Ed25519", "kid": sa.kid("ES256")}),
        &assertion_claims(&sa.client_id, &token_endpoint()),
    );
    post_owned(&app, "/oauth/token", &with_assertion(&jwt)).await.assert_oauth_error(401, "invalid_client");
    // The metadata names it among the signing algorithms.
    let meta = send(app.get("/.well-known/oauth-authorization-server")).await;
    assert!(strings(&meta.body["token_endpoint_auth_signing_alg_values_supported"]).contains(&"Ed25519".to_owned()));
}

/// An assertion may name the endpoint it is sent to as its audience: introspection's
/// URL at introspection, revocation's at revocation — and only there.
async fn an_assertion_for_the_called_endpoint_is_accepted_there(db: &TestDb) {
    let app = spawn_app(db).await;
    let sa = keyed_account(&app).await;
    let token = app.sa_token(&sa, None).await;
    let introspect = format!("{PUBLIC_URL}/oauth/introspect");
    let revoke = format!("{PUBLIC_URL}/oauth/revoke");
    let assertion = |aud: &str| {
        let jwt = Signer::ec().sign(Some(&sa.kid("ES256")), &assertion_claims(&sa.client_id, aud));
        vec![
            ("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()),
            ("client_assertion", jwt),
            ("token", token.clone()),
        ]
    };
    // Refused where it was not addressed.
    post_owned(&app, "/oauth/introspect", &assertion(&revoke)).await.assert_oauth_error(401, "invalid_client");
    post_owned(&app, "/oauth/revoke", &assertion(&introspect)).await.assert_oauth_error(401, "invalid_client");
    let mut at_token = assertion(&introspect);
    at_token.retain(|(k, _)| *k != "token");
    at_token.push(("grant_type", "client_credentials".into()));
    post_owned(&app, "/oauth/token", &at_token).await.assert_oauth_error(401, "invalid_client");
    // Accepted where it was.
    let r = post_owned(&app, "/oauth/introspect", &assertion(&introspect)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true, "{}", r.text);
    let r = post_owned(&app, "/oauth/revoke", &assertion(&revoke)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.me_status(&token, Via::Bearer).await, 401, "revoked by the client that proved itself");
    // The issuer and the token endpoint stay good audiences everywhere.
    for aud in [PUBLIC_URL.to_owned(), token_endpoint()] {
        let r = post_owned(&app, "/oauth/introspect", &assertion(&aud)).await;
        assert_eq!(r.status, 200, "aud {aud}: {}", r.text);
    }
}

/// The metadata document as validators read it: `none` among the token endpoint's
/// methods (the device-flow clients are public), no empty `response_types_supported`.
async fn the_metadata_passes_validators(db: &TestDb) {
    let app = spawn_app(db).await;
    let meta = send(app.get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(meta.status, 200, "{}", meta.text);
    let methods = strings(&meta.body["token_endpoint_auth_methods_supported"]);
    for m in ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] {
        assert!(methods.contains(&m.to_owned()), "{m} in {methods:?}");
    }
    assert!(meta.body.get("response_types_supported").is_none(), "no empty list: {}", meta.text);
    for (k, v) in meta.body.as_object().unwrap() {
        assert!(!(v.is_array() && v.as_array().unwrap().is_empty()), "{k} is an empty list");
    }
}

/// The MCP SDK asks for every scope in `scopes_supported`: a member-role account gets
/// what it holds, and `scope` says so. `invalid_scope` only for an unknown scope, or
/// when nothing would remain.
async fn every_supported_scope_is_narrowed_to_what_is_held(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "mcp", "role": "member"})).await;
    let meta = send(app.get("/.well-known/oauth-authorization-server")).await;
    let every = strings(&meta.body["scopes_supported"]).join(" ");
    let r = app.token(Some(&sa.basic()), &[("grant_type", "client_credentials"), ("scope", &every)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut granted: Vec<String> = r.body["scope"].as_str().unwrap().split(' ').map(str::to_owned).collect();
    granted.sort();
    let mut holds = app.roles.permissions_of("member").to_strings();
    holds.sort();
    assert_eq!(granted, holds, "what a member holds, not everything asked for");
    assert!(!granted.contains(&"audit:read".to_owned()));
    let access = r.body["access_token"].as_str().unwrap();
    let me = send(app.get("/api/v1/me").bearer_auth(access)).await;
    let mut perms = strings(&me.body["permissions"]);
    perms.sort();
    assert_eq!(perms, holds);
    // In part: narrowed.
    let auth = sa.basic();
    let r =
        app.token(Some(&auth), &[("grant_type", "client_credentials"), ("scope", "projects:read audit:read")]).await;
    assert_eq!((r.status, r.body["scope"].as_str()), (200, Some("projects:read")), "{}", r.text);
    // Nothing held, or a scope no deployment catalogue has: invalid_scope.
    for scope in ["audit:read", "audit:read keys:verify", "projects:read rockets:launch"] {
        let r = app.token(Some(&sa.basic()), &[("grant_type", "client_credentials"), ("scope", scope)]).await;
        r.assert_oauth_error(400, "invalid_scope");
    }
}

/// Every OAuth POST endpoint answers another method with `405`, `Allow: POST` and the
/// no-store headers of its other answers.
async fn other_methods_are_405_with_no_store(db: &TestDb) {
    let app = spawn_app(db).await;
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/device_authorization"] {
        for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
            let r = send(app.req(method.clone(), path)).await;
            assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
            r.assert_no_store();
            assert_eq!(r.header("allow").as_deref(), Some("POST"), "{method} {path}");
            assert!(r.body["error"].is_string() && r.body["error_description"].is_string(), "{}", r.text);
        }
    }
}

/// A client id named alone (the public-client way) that is not a public client allowed
/// there: `400 invalid_client` with no-store at every endpoint, the device flow's
/// included; no client at all where one is needed: `401`.
async fn a_client_id_alone_that_may_not_act_is_400_everywhere(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    let start = app.device_start("keyward-cli", None).await;
    for client in ["not-a-device-client", sa.client_id.as_str()] {
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("/oauth/device_authorization", vec![("client_id", client)]),
            (
                "/oauth/token",
                vec![("grant_type", DEVICE_CODE_GRANT), ("device_code", &start.device_code), ("client_id", client)],
            ),
            ("/oauth/token", vec![("grant_type", "refresh_token"), ("refresh_token", "kwrt_x"), ("client_id", client)]),
            ("/oauth/token", vec![("grant_type", "client_credentials"), ("client_id", client)]),
            ("/oauth/revoke", vec![("token", "kwat_x"), ("client_id", client)]),
            ("/oauth/introspect", vec![("token", "kwat_x"), ("client_id", client)]),
        ];
        for (path, pairs) in cases {
            let r = app.oauth_form(path, None, &pairs).await;
            r.assert_oauth_error(400, "invalid_client");
            assert!(r.challenges().is_empty(), "{path} {client}: no challenge without Basic");
        }
    }
    // After Basic it is 401 with a challenge (RFC 6749 §5.2), at the device flow too.
    let r = app.oauth_form("/oauth/device_authorization", Some(&sa.basic()), &[]).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.challenges().iter().any(|c| c.starts_with("Basic")), "{:?}", r.challenges());
    // No client at all where one is needed: 401.
    app.token(None, &[("grant_type", "client_credentials")]).await.assert_oauth_error(401, "invalid_client");
    app.oauth_form("/oauth/revoke", None, &[("token", "kwat_x")]).await.assert_oauth_error(401, "invalid_client");
}

both_backends!(
    equal_imported_secrets_each_authenticate_as_themselves,
    imported_secrets_that_look_like_keyward_secrets_work,
    raw_basic_credentials_work_at_the_token_endpoint,
    an_assertion_an_hour_ahead_is_accepted,
    the_ed25519_algorithm_name_is_accepted,
    an_assertion_for_the_called_endpoint_is_accepted_there,
    the_metadata_passes_validators,
    every_supported_scope_is_narrowed_to_what_is_held,
    other_methods_are_405_with_no_store,
    a_client_id_alone_that_may_not_act_is_400_everywhere,
);
