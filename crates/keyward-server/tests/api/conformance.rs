//! Answers the OpenAPI document promises, where a Schemathesis run found the server
//! giving another: each case here pins one fix. (The run itself is
//! `tests/schemathesis.rs`.)
//!
//! - Every `401` names a scheme (RFC 9110 §15.5.2), OAuth's `invalid_client` included.
//! - Text PostgreSQL cannot store (a NUL character) in a client id or a key id is a
//!   value that names nothing: the same `401`/`404` as on SQLite, never a `5xx`.
//! - A key set's own `kid`s follow the rule a given `kid` follows (`422`).

use keyward_core::assertion::PublicKey;
use keyward_store::testing::TestDb;
use reqwest::header::AUTHORIZATION;
use serde_json::json;

use crate::helpers::*;

/// RFC 9110 §15.5.2: "The server generating a 401 response MUST send a
/// WWW-Authenticate header field". OAuth's `invalid_client` had it only after a Basic
/// attempt.
async fn every_oauth_401_names_a_scheme(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "backend"})).await;
    let wrong = mistyped(sa.secret());
    let viewer_org = app.org("other").await;
    let viewer = app.member(&viewer_org, "v@other.test", "viewer").await;
    let no_verify = app.key(&viewer, None).await;
    // (what, path, Authorization, form)
    type Case<'a> = (&'a str, &'a str, Option<String>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "client_secret_post with a wrong secret",
            "/oauth/token",
            None,
            vec![("grant_type", "client_credentials"), ("client_id", &sa.client_id), ("client_secret", &wrong)],
        ),
        ("no client authentication", "/oauth/token", None, vec![("grant_type", "client_credentials")]),
        ("an unknown Bearer credential", "/oauth/introspect", Some(format!("Bearer {wrong}")), vec![("token", "x")]),
        (
            "a Bearer credential without keys:verify",
            "/oauth/introspect",
            Some(format!("Bearer {}", no_verify.secret)),
            vec![("token", "x")],
        ),
        ("introspection without a client", "/oauth/introspect", None, vec![("token", "x")]),
        ("revocation without a client", "/oauth/revoke", None, vec![("token", "x")]),
        (
            "revocation with a wrong secret",
            "/oauth/revoke",
            None,
            vec![("token", "x"), ("client_id", &sa.client_id), ("client_secret", &wrong)],
        ),
        ("Basic at the device endpoint", "/oauth/device_authorization", Some(sa.basic()), vec![]),
    ];
    let mut seen = 0;
    for (what, path, authorization, pairs) in cases {
        let r = app.oauth_form(path, authorization.as_deref(), &pairs).await;
        if r.status != 401 {
            // "No client authentication" may be a 400 instead (RFC 6749 §5.2 allows
            // either); whatever is 401 must carry the challenge.
            assert_eq!(r.status, 400, "{what}: {}", r.text);
            continue;
        }
        seen += 1;
        r.assert_oauth_error(401, "invalid_client");
        let c = r.challenges();
        assert!(c.iter().any(|c| c.starts_with("Basic") && c.contains("realm=\"keyward\"")), "{what}: {c:?}");
    }
    assert!(seen >= 6, "most of these are 401s: {seen}");
}

/// A client id with a NUL character: on PostgreSQL its lookup failed with a database
/// error (`500`, or `503` on the management API); it names no client on either backend.
async fn a_nul_in_a_client_id_names_no_client(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    app.create_sa(&admin, json!({"name": "backend"})).await;
    // The management API: a Basic pair that is neither a key nor a client.
    for pair in ["a\0b:secret", "a\0b:", "\0:\0"] {
        let r = send(app.get("/api/v1/me").header(AUTHORIZATION, basic(pair))).await;
        r.assert_invalid_token();
        let r = send(app.get("/auth/check").header(AUTHORIZATION, basic(pair))).await;
        r.assert_invalid_token();
    }
    // The OAuth endpoints: Basic (form-encoded halves), the body, and an assertion's
    // issuer.
    let r = app.token(Some(&client_basic("a\0b", "secret")), &[("grant_type", "client_credentials")]).await;
    r.assert_oauth_error(401, "invalid_client");
    let r = app
        .token(None, &[("grant_type", "client_credentials"), ("client_id", "a\0b"), ("client_secret", "secret")])
        .await;
    r.assert_oauth_error(401, "invalid_client");
    let r = app
        .oauth_form("/oauth/revoke", None, &[("token", "x"), ("client_id", "a\0b"), ("client_secret", "secret")])
        .await;
    r.assert_oauth_error(401, "invalid_client");
    let assertion = Signer::ed25519().sign(None, &assertion_claims("a\0b", &token_endpoint()));
    let r = app
        .token(None, &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
        .await;
    r.assert_oauth_error(400, "invalid_grant");
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

/// `DELETE …/public-keys/{kid}` with a NUL in the kid: `500` on PostgreSQL before; no
/// key can have that id (a kid has no control characters), so it is `404`.
async fn a_nul_in_a_kid_is_not_found(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let signer = Signer::ed25519();
    let sa = app.create_sa(&admin, json!({"name": "signer", "public_keys": [signer.public_pem]})).await;
    let kid = sa.kid("EdDSA");
    for bad in ["a%00b", "%00", &format!("{kid}%00")] {
        let path = format!("/api/v1/service-accounts/{}/public-keys/{bad}", sa.id);
        let r = send(app.delete(&path).bearer_auth(&admin.secret)).await;
        r.assert_error(404, "not_found");
    }
    // The key is still there, and its own id still removes it.
    let path = format!("/api/v1/service-accounts/{}/public-keys/{kid}", sa.id);
    assert_eq!(send(app.delete(&path).bearer_auth(&admin.secret)).await.status, 204);
}

/// A JWKS whose keys carry their own `kid`s: each must be 1–256 characters without
/// control characters, like a `kid` given beside the key (a NUL one was stored on
/// SQLite and failed with `500` on PostgreSQL).
async fn a_key_sets_kids_follow_the_kid_rule(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let good = PublicKey::parse(&Signer::ec().public_pem, Some("good")).expect("a test key");
    let other = PublicKey::parse(&Signer::ed25519().public_pem, None).expect("a test key");
    for bad in ["a\0b", "tab\there", &"k".repeat(257)] {
        let mut jwk = other.to_jwk_value();
        jwk["kid"] = json!(bad);
        let set = json!({"keys": [good.to_jwk_value(), jwk]}).to_string();
        let r = app.create_sa_reply(&admin, &json!({"name": "signer", "public_keys": [set.clone()]})).await;
        r.assert_error(422, "validation_failed");
        assert!(r.body["error_description"].as_str().unwrap().contains("key id"), "{}", r.text);
        let sa = app.create_sa(&admin, json!({"name": "later"})).await;
        let r = send(
            app.post(&format!("/api/v1/service-accounts/{}/public-keys", sa.id))
                .bearer_auth(&admin.secret)
                .json(&json!({"public_key": set})),
        )
        .await;
        // A set is not one key: refused either way, never stored.
        r.assert_error(422, "validation_failed");
    }
    let r = send(app.get("/api/v1/service-accounts").bearer_auth(&admin.secret)).await;
    assert!(r.body["data"].as_array().unwrap().iter().all(|a| a["public_keys"].as_array().unwrap().is_empty()));
}

both_backends!(
    every_oauth_401_names_a_scheme,
    a_nul_in_a_client_id_names_no_client,
    a_nul_in_a_kid_is_not_found,
    a_key_sets_kids_follow_the_kid_rule,
);
