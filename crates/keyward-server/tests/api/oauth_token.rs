//! `POST /oauth/token`: `client_credentials` with client_secret_basic,
//! client_secret_post and private_key_jwt; the jwt-bearer grant; refresh-token rotation
//! and reuse detection; scopes; every error of DESIGN.md "OAuth details that tests
//! check" (except the device grant); bad input.

use chrono::Utc;
use keyward_store::testing::TestDb;
use keyward_store::Actor;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

use crate::helpers::*;

/// A named request to the token endpoint: its Authorization header and form fields.
type Case<'a> = (&'a str, Option<String>, Vec<(&'a str, String)>);

/// Makes an assertion (a fresh one each call).
type Assertion<'a> = Box<dyn Fn() -> String + 'a>;

const MEMBER: &[&str] =
    &["api_keys:read", "api_keys:write", "members:read", "projects:read", "projects:write", "service_accounts:read"];

fn sorted_scope(s: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        s.as_str().unwrap_or_else(|| panic!("scope is text: {s}")).split(' ').map(str::to_owned).collect();
    v.sort();
    v
}

/// Asserts a successful token answer and returns it.
#[track_caller]
fn assert_token_reply(r: &Reply, refresh: bool) -> (String, Option<String>) {
    assert_eq!(r.status, 200, "{}", r.text);
    r.assert_no_store();
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{ct}");
    let access = r.body["access_token"].as_str().unwrap_or_else(|| panic!("access_token: {}", r.text)).to_owned();
    assert!(access.starts_with("kwat_"), "{access}");
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.text);
    assert_eq!(r.body["expires_in"], 3600, "{}", r.text);
    assert!(r.body["scope"].is_string(), "{}", r.text);
    let rt = r.body.get("refresh_token").and_then(Value::as_str).map(str::to_owned);
    if refresh {
        let rt = rt.as_deref().unwrap_or_else(|| panic!("a refresh token: {}", r.text));
        assert!(rt.starts_with("kwrt_"), "{rt}");
    } else {
        assert!(rt.is_none(), "no refresh token for client_credentials: {}", r.text);
    }
    (access, rt)
}

async fn me(app: &TestApp, token: &str) -> Reply {
    send(app.get("/api/v1/me").bearer_auth(token)).await
}

/// An org with an admin key and one account holding a secret and all three test keys.
async fn setup(app: &TestApp) -> (Key, Sa) {
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app
        .create_sa(
            &admin,
            json!({
                "name": "bot",
                "secret": true,
                "public_keys": [Signer::rsa().public_pem, Signer::ec().public_pem, Signer::ed25519().public_pem],
            }),
        )
        .await;
    (admin, sa)
}

fn cc_assertion(jwt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_assertion_type", JWT_BEARER_ASSERTION.into()),
        ("client_assertion", jwt.into()),
    ]
}

async fn token_owned(app: &TestApp, auth: Option<&str>, pairs: &[(&str, String)]) -> Reply {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.token(auth, &pairs).await
}

async fn jwt_grant(app: &TestApp, jwt: &str) -> Reply {
    app.token(None, &[("grant_type", JWT_BEARER_GRANT), ("assertion", jwt)]).await
}

async fn client_credentials_with_basic(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let r = app.token(Some(&sa.basic()), &[("grant_type", "client_credentials")]).await;
    let (access, _) = assert_token_reply(&r, false);
    assert_eq!(sorted_scope(&r.body["scope"]), MEMBER, "everything the account holds");

    let m = me(&app, &access).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["principal"]["kind"], "service_account");
    assert_eq!(m.body["principal"]["id"], sa.id);
    assert_eq!(m.body["credential"]["kind"], "access_token");
    assert_eq!(m.body["org"]["slug"], "acme");
    let mut perms = strings(&m.body["permissions"]);
    perms.sort();
    assert_eq!(perms, MEMBER);
    // Each request gets a new token.
    let again = app.sa_token(&sa, None).await;
    assert_ne!(again, access);
    assert_eq!(app.me_status(&again, Via::Bearer).await, 200);
    assert_eq!(app.me_status(&access, Via::Bearer).await, 200);
}

async fn client_credentials_with_post_and_json(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let r = app
        .token(
            None,
            &[("grant_type", "client_credentials"), ("client_id", &sa.client_id), ("client_secret", sa.secret())],
        )
        .await;
    let (access, _) = assert_token_reply(&r, false);
    assert_eq!(me(&app, &access).await.body["principal"]["id"], sa.id);

    // JSON bodies are accepted too.
    let r =
        send(app.post("/oauth/token").json(
            &json!({"grant_type": "client_credentials", "client_id": sa.client_id, "client_secret": sa.secret()}),
        ))
        .await;
    let (access, _) = assert_token_reply(&r, false);
    assert_eq!(app.me_status(&access, Via::Bearer).await, 200);
    let r = send(
        app.post("/oauth/token").header(AUTHORIZATION, sa.basic()).json(&json!({"grant_type": "client_credentials"})),
    )
    .await;
    assert_token_reply(&r, false);
}

/// private_key_jwt with each algorithm, and with either audience.
async fn client_credentials_with_private_key_jwt(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    for signer in [Signer::rsa(), Signer::ec(), Signer::ed25519()] {
        let kid = sa.kid(signer.alg_name());
        for aud in [token_endpoint(), PUBLIC_URL.to_owned()] {
            let jwt = signer.sign(Some(&kid), &assertion_claims(&sa.client_id, &aud));
            let r = token_owned(&app, None, &cc_assertion(&jwt)).await;
            let (access, _) = assert_token_reply(&r, false);
            let m = me(&app, &access).await;
            assert_eq!(m.body["principal"]["id"], sa.id, "{}: {}", signer.alg_name(), m.text);
        }
        // With the client id in the body too (RFC 7523 §3: optional).
        let jwt = signer.sign(Some(&kid), &assertion_claims(&sa.client_id, &token_endpoint()));
        let mut pairs = cc_assertion(&jwt);
        pairs.push(("client_id", sa.client_id.clone()));
        assert_token_reply(&token_owned(&app, None, &pairs).await, false);
    }
    // An audience given as a list that holds the token endpoint.
    let signer = Signer::ec();
    let mut claims = assertion_claims(&sa.client_id, "x");
    claims["aud"] = json!([token_endpoint()]);
    let jwt = signer.sign(Some(&sa.kid("ES256")), &claims);
    assert_token_reply(&token_owned(&app, None, &cc_assertion(&jwt)).await, false);
}

/// `scope` narrows the token to a subset of the account's permissions; more is narrowed
/// to what the account holds; `invalid_scope` for an unknown scope or when nothing remains.
async fn scope_narrows_the_token(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let r = app.token(Some(&sa.basic()), &[("grant_type", "client_credentials"), ("scope", "projects:read")]).await;
    let (access, _) = assert_token_reply(&r, false);
    assert_eq!(r.body["scope"], "projects:read");
    let m = me(&app, &access).await;
    assert_eq!(strings(&m.body["permissions"]), ["projects:read"]);
    let c = send(app.get("/auth/check?permission=projects:read").bearer_auth(&access)).await;
    assert_eq!(c.status, 200, "{}", c.text);
    send(app.get("/auth/check?permission=projects:write").bearer_auth(&access)).await.assert_insufficient_scope();

    let r = app
        .token(Some(&sa.basic()), &[("grant_type", "client_credentials"), ("scope", "projects:read members:read")])
        .await;
    assert_token_reply(&r, false);
    assert_eq!(sorted_scope(&r.body["scope"]), ["members:read", "projects:read"]);

    // Held in part: narrowed to what is held, and the answer says so.
    for (scope, granted) in [("projects:read audit:read", vec!["projects:read"]), ("*", MEMBER.to_vec())] {
        let r = app.token(Some(&sa.basic()), &[("grant_type", "client_credentials"), ("scope", scope)]).await;
        assert_token_reply(&r, false);
        assert_eq!(sorted_scope(&r.body["scope"]), granted, "{scope}");
    }
    for scope in
        ["audit:read", "keys:verify", "service_accounts:write", "rockets:launch", "projects:read rockets:launch"]
    {
        let r = app.token(Some(&sa.basic()), &[("grant_type", "client_credentials"), ("scope", scope)]).await;
        r.assert_oauth_error(400, "invalid_scope");
    }
    // The same with private_key_jwt.
    let jwt = Signer::ed25519().sign(Some(&sa.kid("EdDSA")), &assertion_claims(&sa.client_id, &token_endpoint()));
    let mut pairs = cc_assertion(&jwt);
    pairs.push(("scope", "audit:read".into()));
    token_owned(&app, None, &pairs).await.assert_oauth_error(400, "invalid_scope");
}

/// The jwt-bearer grant gives an access token and a refresh token.
async fn jwt_bearer_grant_gives_a_refresh_token(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    for signer in [Signer::rsa(), Signer::ec(), Signer::ed25519()] {
        let jwt = signer.sign(Some(&sa.kid(signer.alg_name())), &assertion_claims(&sa.client_id, &token_endpoint()));
        let r = jwt_grant(&app, &jwt).await;
        let (access, _) = assert_token_reply(&r, true);
        let m = me(&app, &access).await;
        assert_eq!(m.status, 200, "{}", m.text);
        assert_eq!(m.body["principal"]["id"], sa.id);
        assert_eq!(m.body["credential"]["kind"], "access_token");
    }
    // With a scope.
    let jwt = Signer::ec().sign(Some(&sa.kid("ES256")), &assertion_claims(&sa.client_id, PUBLIC_URL));
    let r = app.token(None, &[("grant_type", JWT_BEARER_GRANT), ("assertion", &jwt), ("scope", "projects:read")]).await;
    let (access, _) = assert_token_reply(&r, true);
    assert_eq!(strings(&me(&app, &access).await.body["permissions"]), ["projects:read"]);
    // A refresh token is not an access token.
    let rt = r.body["refresh_token"].as_str().unwrap();
    assert_eq!(app.me_status(rt, Via::Bearer).await, 401, "a refresh token on the API");
}

/// Refresh rotates both tokens; the old refresh token again is `invalid_grant` and
/// revokes the whole family.
async fn refresh_rotates_and_reuse_revokes_the_family(db: &TestDb) {
    let app = spawn_app(db).await;
    let (admin, sa) = setup(&app).await;
    let jwt = Signer::rsa().sign(Some(&sa.kid("RS256")), &assertion_claims(&sa.client_id, &token_endpoint()));
    let (access1, rt1) = assert_token_reply(&jwt_grant(&app, &jwt).await, true);
    let rt1 = rt1.unwrap();

    let r = app.token(Some(&sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    let (access2, rt2) = assert_token_reply(&r, true);
    let rt2 = rt2.unwrap();
    assert_ne!(access2, access1);
    assert_ne!(rt2, rt1);
    assert_eq!(app.me_status(&access2, Via::Bearer).await, 200);

    // Once more with the new one: works, and rotates again.
    let r = app.token(Some(&sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]).await;
    let (access3, rt3) = assert_token_reply(&r, true);
    let rt3 = rt3.unwrap();
    assert_eq!(app.me_status(&access3, Via::Bearer).await, 200);

    // Another client cannot use this account's refresh token.
    let other = app.create_sa(&admin, json!({"name": "other"})).await;
    app.token(Some(&other.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt3)])
        .await
        .assert_oauth_error(400, "invalid_grant");
    // A made-up or missing refresh token.
    app.token(Some(&sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", "kwrt_nope")])
        .await
        .assert_oauth_error(400, "invalid_grant");
    app.token(Some(&sa.basic()), &[("grant_type", "refresh_token")]).await.assert_oauth_error(400, "invalid_request");

    // Reuse of a rotated refresh token: refused, and the family is dead.
    app.token(Some(&sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt1)])
        .await
        .assert_oauth_error(400, "invalid_grant");
    app.token(Some(&sa.basic()), &[("grant_type", "refresh_token"), ("refresh_token", &rt3)])
        .await
        .assert_oauth_error(400, "invalid_grant");
    for (what, t) in
        [("newest access token", &access3), ("earlier access token", &access2), ("first access token", &access1)]
    {
        let r = me(&app, t).await;
        assert_eq!(r.status, 401, "{what} after reuse: {}", r.text);
        r.assert_invalid_token();
    }
    // Other tokens of the account are not in the family.
    let fresh = app.sa_token(&sa, None).await;
    assert_eq!(app.me_status(&fresh, Via::Bearer).await, 200);
}

/// A refresh token is exchanged by its own client authenticated with private_key_jwt.
async fn refresh_with_private_key_jwt(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let ec = Signer::ec();
    let jwt = ec.sign(Some(&sa.kid("ES256")), &assertion_claims(&sa.client_id, &token_endpoint()));
    let (_, rt) = assert_token_reply(&jwt_grant(&app, &jwt).await, true);
    let client = ec.sign(Some(&sa.kid("ES256")), &assertion_claims(&sa.client_id, &token_endpoint()));
    let r = app
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_deref().unwrap()),
                ("client_assertion_type", JWT_BEARER_ASSERTION),
                ("client_assertion", &client),
            ],
        )
        .await;
    let (access, _) = assert_token_reply(&r, true);
    assert_eq!(app.me_status(&access, Via::Bearer).await, 200);
}

/// Wrong client credentials: 401 `invalid_client`, with a Basic challenge after Basic.
async fn wrong_client_credentials_are_invalid_client(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    for (what, auth) in [
        ("a mistyped secret", client_basic(&sa.client_id, &mistyped(sa.secret()))),
        ("a longer secret", client_basic(&sa.client_id, &format!("{}x", sa.secret()))),
        ("no secret", client_basic(&sa.client_id, "")),
        ("an unknown client", client_basic("sa_00000000000000000000000000000000", sa.secret())),
        ("another client's id", client_basic("someone-else", sa.secret())),
    ] {
        let r = app.token(Some(&auth), &[("grant_type", "client_credentials")]).await;
        r.assert_oauth_error(401, "invalid_client");
        let c = r.challenges();
        assert!(c.iter().any(|c| c.starts_with("Basic") && c.contains("realm=\"keyward\"")), "{what}: {c:?}");
    }
    for (what, id, secret) in [
        ("a wrong secret", sa.client_id.clone(), mistyped(sa.secret())),
        ("an unknown client", "nobody".to_owned(), sa.secret().to_owned()),
        ("an empty secret", sa.client_id.clone(), String::new()),
    ] {
        let r = app
            .token(None, &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)])
            .await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_oauth_error(401, "invalid_client");
    }
    // No client authentication at all.
    let r = app.token(None, &[("grant_type", "client_credentials")]).await;
    assert!(
        (r.status == 401 && r.body["error"] == "invalid_client")
            || (r.status == 400 && r.body["error"] == "invalid_request"),
        "no client authentication: {} {}",
        r.status,
        r.text
    );
    r.assert_no_store();
    // The good credentials still work (nothing locked the client out).
    assert_eq!(app.token(Some(&sa.basic()), &[("grant_type", "client_credentials")]).await.status, 200);
}

/// Two client-authentication methods at once: `invalid_request`.
async fn two_client_authentications_are_invalid_request(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let jwt = || Signer::ec().sign(Some(&sa.kid("ES256")), &assertion_claims(&sa.client_id, &token_endpoint()));
    let a = jwt();
    let b = jwt();
    let cases: Vec<Case> = vec![
        (
            "Basic + client_secret",
            Some(sa.basic()),
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", sa.client_id.clone()),
                ("client_secret", sa.secret().into()),
            ],
        ),
        (
            "Basic + client_assertion",
            Some(sa.basic()),
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", JWT_BEARER_ASSERTION.into()),
                ("client_assertion", a),
            ],
        ),
        (
            "client_secret + client_assertion",
            None,
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", sa.client_id.clone()),
                ("client_secret", sa.secret().into()),
                ("client_assertion_type", JWT_BEARER_ASSERTION.into()),
                ("client_assertion", b),
            ],
        ),
    ];
    for (what, auth, pairs) in cases {
        let r = token_owned(&app, auth.as_deref(), &pairs).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        r.assert_oauth_error(400, "invalid_request");
    }
}

async fn grant_type_errors(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    for grant in ["password", "authorization_code", "implicit", "CLIENT_CREDENTIALS", "urn:example:nope", ""] {
        let r = app.token(Some(&sa.basic()), &[("grant_type", grant)]).await;
        if grant.is_empty() {
            assert!(
                r.status == 400
                    && ["invalid_request", "unsupported_grant_type"].contains(&r.body["error"].as_str().unwrap_or("")),
                "{}",
                r.text
            );
            r.assert_no_store();
            continue;
        }
        r.assert_oauth_error(400, "unsupported_grant_type");
    }
    app.token(Some(&sa.basic()), &[]).await.assert_oauth_error(400, "invalid_request");
    app.token(Some(&sa.basic()), &[("scope", "projects:read")]).await.assert_oauth_error(400, "invalid_request");
    // A device client asking for client_credentials may not use that grant.
    for client in ["keyward-cli", "keyward-mcp"] {
        let r = app.token(None, &[("grant_type", "client_credentials"), ("client_id", client)]).await;
        if r.status == 401 {
            r.assert_oauth_error(401, "invalid_client");
        } else {
            r.assert_oauth_error(400, "unauthorized_client");
        }
    }
}

/// Every bad assertion used for client authentication is 401 `invalid_client`; as the
/// jwt-bearer grant, 400 `invalid_grant`.
async fn bad_assertions_are_refused(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let ec = Signer::ec();
    let ec_kid = sa.kid("ES256");
    let rsa_kid = sa.kid("RS256");
    let good = || assertion_claims(&sa.client_id, &token_endpoint());
    let now = Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        c
    };
    let hs256 = |claims: &Value| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(ec_kid.clone());
        jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(sa.secret().as_bytes()).unwrap())
            .unwrap()
    };
    let tamper = |jwt: String| {
        // Flip a character in the middle of the signature.
        let dot = jwt.rfind('.').unwrap();
        let mut b: Vec<char> = jwt.chars().collect();
        let i = dot + 10;
        b[i] = if b[i] == 'A' { 'B' } else { 'A' };
        b.into_iter().collect::<String>()
    };
    let none_with_sig = || unsigned_jwt(&good()) + &b64url(b"signature");

    // Each case builds a fresh assertion (fresh jti) for each use.
    let cases: Vec<(&str, Assertion)> = vec![
        ("alg none", Box::new(|| unsigned_jwt(&good()))),
        ("alg none with a signature", Box::new(none_with_sig)),
        ("HS256 with the client secret", Box::new(|| hs256(&good()))),
        (
            "a wrong aud",
            Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["aud"] = json!("https://elsewhere.example/oauth/token")))),
        ),
        (
            "the real address as aud",
            Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["aud"] = json!(format!("{}/oauth/token", app.base))))),
        ),
        (
            "no aud",
            Box::new(|| {
                ec.sign(
                    Some(&ec_kid),
                    &with(&|c| {
                        c.as_object_mut().unwrap().remove("aud");
                    }),
                )
            }),
        ),
        ("an expired exp", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["exp"] = json!(now - 120))))),
        // Up to an hour (and the leeway) is accepted: client libraries default to an hour.
        ("exp 70 minutes ahead", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["exp"] = json!(now + 4200))))),
        ("exp a day ahead", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["exp"] = json!(now + 86_400))))),
        (
            "no exp",
            Box::new(|| {
                ec.sign(
                    Some(&ec_kid),
                    &with(&|c| {
                        c.as_object_mut().unwrap().remove("exp");
                    }),
                )
            }),
        ),
        ("exp as text", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["exp"] = json!("soon"))))),
        (
            "no jti",
            Box::new(|| {
                ec.sign(
                    Some(&ec_kid),
                    &with(&|c| {
                        c.as_object_mut().unwrap().remove("jti");
                    }),
                )
            }),
        ),
        ("an empty jti", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["jti"] = json!(""))))),
        ("signed by a different key", Box::new(|| Signer::other_ec().sign(Some(&ec_kid), &good()))),
        (
            "signed by a different Ed25519 key",
            Box::new(|| Signer::other_ed25519().sign(Some(&sa.kid("EdDSA")), &good())),
        ),
        ("a tampered signature", Box::new(|| tamper(ec.sign(Some(&ec_kid), &good())))),
        (
            "tampered claims",
            Box::new(|| {
                let jwt = ec.sign(Some(&ec_kid), &good());
                let parts: Vec<&str> = jwt.split('.').collect();
                let claims = with(&|c| c["sub"] = json!("someone-else"));
                format!("{}.{}.{}", parts[0], b64url(claims.to_string().as_bytes()), parts[2])
            }),
        ),
        ("an unknown kid", Box::new(|| ec.sign(Some("no-such-kid"), &good()))),
        ("the RSA key's kid on an ES256 signature", Box::new(|| ec.sign(Some(&rsa_kid), &good()))),
        (
            "RS256 signed with the RSA key under the EC key's kid",
            Box::new(|| Signer::rsa().sign(Some(&ec_kid), &good())),
        ),
        ("iss differs from sub", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["iss"] = json!("someone-else"))))),
        ("sub differs from iss", Box::new(|| ec.sign(Some(&ec_kid), &with(&|c| c["sub"] = json!("someone-else"))))),
        (
            "no iss",
            Box::new(|| {
                ec.sign(
                    Some(&ec_kid),
                    &with(&|c| {
                        c.as_object_mut().unwrap().remove("iss");
                    }),
                )
            }),
        ),
        ("an unknown client", Box::new(|| ec.sign(Some(&ec_kid), &assertion_claims("nobody", &token_endpoint())))),
    ];

    for (what, make) in &cases {
        let r = token_owned(&app, None, &cc_assertion(&make())).await;
        assert_eq!(r.status, 401, "client assertion, {what}: {}", r.text);
        r.assert_oauth_error(401, "invalid_client");
        let r = jwt_grant(&app, &make()).await;
        assert_eq!(r.status, 400, "jwt-bearer grant, {what}: {}", r.text);
        r.assert_oauth_error(400, "invalid_grant");
    }

    // A wrong client_assertion_type.
    let jwt = ec.sign(Some(&ec_kid), &good());
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:example:nope"),
                ("client_assertion", &jwt),
            ],
        )
        .await;
    assert!(
        (r.status == 401 && r.body["error"] == "invalid_client")
            || (r.status == 400 && r.body["error"] == "invalid_request"),
        "{}",
        r.text
    );
    // A client_id in the body that is not the assertion's.
    let mut pairs = cc_assertion(&ec.sign(Some(&ec_kid), &good()));
    pairs.push(("client_id", "someone-else".into()));
    let r = token_owned(&app, None, &pairs).await;
    assert!(r.status == 400 || r.status == 401, "{}", r.text);
    r.assert_no_store();

    // A jti is single-use: the first use works, the second (client auth or grant) fails.
    let claims = good();
    let jwt = ec.sign(Some(&ec_kid), &claims);
    assert_token_reply(&token_owned(&app, None, &cc_assertion(&jwt)).await, false);
    token_owned(&app, None, &cc_assertion(&jwt)).await.assert_oauth_error(401, "invalid_client");
    jwt_grant(&app, &jwt).await.assert_oauth_error(400, "invalid_grant");
    // The same jti in a newly signed assertion too.
    let mut again = good();
    again["jti"] = claims["jti"].clone();
    token_owned(&app, None, &cc_assertion(&ec.sign(Some(&ec_kid), &again)))
        .await
        .assert_oauth_error(401, "invalid_client");
    let jwt = ec.sign(Some(&ec_kid), &good());
    assert_token_reply(&jwt_grant(&app, &jwt).await, true);
    jwt_grant(&app, &jwt).await.assert_oauth_error(400, "invalid_grant");

    // And after all that, good assertions still work.
    let jwt = ec.sign(Some(&ec_kid), &good());
    assert_token_reply(&token_owned(&app, None, &cc_assertion(&jwt)).await, false);
    let jwt = Signer::ed25519().sign(Some(&sa.kid("EdDSA")), &good());
    assert_token_reply(&jwt_grant(&app, &jwt).await, true);
}

/// An account with only a secret has no key to check assertions with; an account with
/// only keys has no secret to check.
async fn credentials_the_account_does_not_have(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let secret_only = app.create_sa(&admin, json!({"name": "secret only"})).await;
    let keys_only = app.create_sa(&admin, json!({"name": "keys only", "public_keys": [Signer::ec().public_pem]})).await;
    let ec = Signer::ec();
    let jwt = ec.sign(Some(&keys_only.kid("ES256")), &assertion_claims(&secret_only.client_id, &token_endpoint()));
    token_owned(&app, None, &cc_assertion(&jwt)).await.assert_oauth_error(401, "invalid_client");
    let jwt = ec.sign(None, &assertion_claims(&secret_only.client_id, &token_endpoint()));
    jwt_grant(&app, &jwt).await.assert_oauth_error(400, "invalid_grant");
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &keys_only.client_id),
                ("client_secret", secret_only.secret()),
            ],
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
    // The keys-only account with its key.
    let jwt = ec.sign(Some(&keys_only.kid("ES256")), &assertion_claims(&keys_only.client_id, &token_endpoint()));
    assert_token_reply(&token_owned(&app, None, &cc_assertion(&jwt)).await, false);
}

/// An imported bcrypt secret with `+`, `%` and `:` works through form-urlencoded Basic
/// (RFC 6749 §2.3.1), again after it was re-hashed, and through client_secret_post.
async fn imported_secrets_with_special_characters(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let secret = "s3cr+t%:x";
    let hash = bcrypt::hash(secret, 4).unwrap();
    let sa = app
        .store
        .create_service_account(
            &keyward_store::NewServiceAccount {
                org_id: org.id.clone(),
                name: "legacy".into(),
                role: "member".into(),
                client_id: Some("legacy-client".into()),
                secret: Some(keyward_store::NewClientSecret::Bcrypt(
                    keyward_core::legacy::BcryptHash::parse(&hash).unwrap(),
                )),
                public_keys: vec![],
            },
            &Actor::cli(),
        )
        .await
        .unwrap();
    assert_eq!(sa.client_id, "legacy-client");
    let auth = basic(&format!("legacy-client:{}", form_encode(secret)));
    assert!(auth.len() > 10 && form_encode(secret) != secret, "the secret needs encoding");
    for round in ["first use (bcrypt)", "second use (re-hashed)", "third use"] {
        let r = app.token(Some(&auth), &[("grant_type", "client_credentials")]).await;
        let (access, _) = assert_token_reply(&r, false);
        let m = me(&app, &access).await;
        assert_eq!(m.body["principal"]["id"], sa.id.to_string(), "{round}: {}", m.text);
    }
    let r = app
        .token(None, &[("grant_type", "client_credentials"), ("client_id", "legacy-client"), ("client_secret", secret)])
        .await;
    assert_token_reply(&r, false);
    // A near miss is still wrong.
    let r = app
        .token(
            Some(&basic(&format!("legacy-client:{}", form_encode("s3cr+t%:y")))),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
    let r = app.token(Some(&basic("legacy-client:s3cr t%25:x")), &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 401, "`+` decodes to a space, so a raw space is a different secret: {}", r.text);
}

/// Malformed requests: a 4xx JSON error with no-store, never a 5xx.
async fn bad_input_is_a_4xx_json_error(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    #[track_caller]
    fn json_4xx(r: &Reply, what: &str) {
        assert!((400..500).contains(&r.status), "{what}: {} {}", r.status, &r.text[..r.text.len().min(300)]);
        assert!(
            r.body["error"].is_string() && r.body["error_description"].is_string(),
            "{what}: {}",
            &r.text[..r.text.len().min(300)]
        );
        r.assert_no_store();
    }
    let form = "application/x-www-form-urlencoded";
    let valid = "grant_type=client_credentials";
    for (what, ct, body) in [
        ("an empty body", None, String::new()),
        ("an empty form", Some(form), String::new()),
        ("text/plain", Some("text/plain"), valid.to_owned()),
        ("XML", Some("application/xml"), "<grant_type>client_credentials</grant_type>".to_owned()),
        ("broken JSON", Some("application/json"), "{\"grant_type\"".to_owned()),
        ("JSON with a number", Some("application/json"), r#"{"grant_type": 5}"#.to_owned()),
        ("a JSON list", Some("application/json"), r#"["client_credentials"]"#.to_owned()),
        ("grant_type twice", Some(form), "grant_type=client_credentials&grant_type=client_credentials".to_owned()),
        (
            "grant_type twice, different",
            Some(form),
            "grant_type=client_credentials&grant_type=refresh_token".to_owned(),
        ),
        ("scope twice", Some(form), "grant_type=client_credentials&scope=projects:read&scope=projects:read".to_owned()),
        ("bad percent-encoding", Some(form), "grant_type=client_%ZZcredentials".to_owned()),
        ("non-UTF-8", Some(form), "grant_type=client_credentials&scope=%FF%FE".to_owned()),
        ("a huge body", Some(form), format!("grant_type=client_credentials&scope={}", "a".repeat(3 * 1024 * 1024))),
    ] {
        let mut rb = app.post("/oauth/token").header(AUTHORIZATION, sa.basic()).body(body);
        if let Some(ct) = ct {
            rb = rb.header(CONTENT_TYPE, ct);
        }
        let r = send(rb).await;
        json_4xx(&r, what);
        if what.starts_with("grant_type twice") {
            r.assert_oauth_error(400, "invalid_request");
        }
    }
    // Malformed assertions: client authentication and grant.
    let huge = format!("{}.{}.{}", b64url(b"{\"alg\":\"ES256\"}"), "A".repeat(100 * 1024), "B".repeat(64));
    for (what, jwt) in [
        ("a.b", "a.b".to_owned()),
        ("...", "...".to_owned()),
        ("a.b.c", "a.b.c".to_owned()),
        ("random base64", b64url(&[7u8; 200])),
        ("an empty string", String::new()),
        ("a header that is not JSON", format!("{}.{}.{}", b64url(b"nope"), b64url(b"{}"), b64url(b"sig"))),
        ("a 100 KB assertion", huge),
        ("an API-key-looking string", "kw_0123456789abcdef".to_owned()),
        ("five parts (JWE)", "a.b.c.d.e".to_owned()),
    ] {
        let r = token_owned(&app, None, &cc_assertion(&jwt)).await;
        json_4xx(&r, &format!("client assertion {what}"));
        // (A 100 KB assertion may already be refused as too large a body.)
        if !jwt.is_empty() && !what.contains("100 KB") {
            assert_eq!(r.body["error"], "invalid_client", "client assertion {what}: {}", r.text);
        }
        let r = jwt_grant(&app, &jwt).await;
        json_4xx(&r, &format!("jwt-bearer {what}"));
        if !jwt.is_empty() && !what.contains("100 KB") {
            assert_eq!(r.body["error"], "invalid_grant", "jwt-bearer {what}: {}", r.text);
        }
    }
    // Broken Basic headers.
    for auth in ["Basic", "Basic !!!", "Basic bm9jb2xvbg==", basic(":").as_str(), basic("%ZZ:x").as_str()] {
        let r = app.token(Some(auth), &[("grant_type", "client_credentials")]).await;
        json_4xx(&r, auth);
    }
    let r = send(
        app.post("/oauth/token").header(AUTHORIZATION, non_utf8(b"Basic ")).header(CONTENT_TYPE, form).body(valid),
    )
    .await;
    json_4xx(&r, "non-UTF-8 Basic");
    // GET is not the token endpoint's method.
    let r = send(app.get("/oauth/token")).await;
    assert!((400..500).contains(&r.status) && r.body["error"].is_string(), "{}", r.text);
    // Still fine.
    assert_eq!(app.token(Some(&sa.basic()), &[("grant_type", "client_credentials")]).await.status, 200);
}

/// Error answers carry no-store too, and never echo the secret.
async fn errors_are_not_cached_and_echo_no_secret(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, sa) = setup(&app).await;
    let wrong = mistyped(sa.secret());
    let r = app.token(Some(&client_basic(&sa.client_id, &wrong)), &[("grant_type", "client_credentials")]).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(!r.text.contains(&wrong) && !r.text.contains(sa.secret()), "{}", r.text);
    let r = app
        .token(None, &[("grant_type", "client_credentials"), ("client_id", &sa.client_id), ("client_secret", &wrong)])
        .await;
    assert!(!r.text.contains(&wrong), "{}", r.text);
    r.assert_no_store();
    let r = app.token(Some(&sa.basic()), &[("grant_type", "nope")]).await;
    r.assert_oauth_error(400, "unsupported_grant_type");
}

both_backends!(
    client_credentials_with_basic,
    client_credentials_with_post_and_json,
    client_credentials_with_private_key_jwt,
    scope_narrows_the_token,
    jwt_bearer_grant_gives_a_refresh_token,
    refresh_rotates_and_reuse_revokes_the_family,
    refresh_with_private_key_jwt,
    wrong_client_credentials_are_invalid_client,
    two_client_authentications_are_invalid_request,
    grant_type_errors,
    bad_assertions_are_refused,
    credentials_the_account_does_not_have,
    imported_secrets_with_special_characters,
    bad_input_is_a_4xx_json_error,
    errors_are_not_cached_and_echo_no_secret,
);
