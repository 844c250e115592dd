//! Presenting a credential (DESIGN.md "Presenting a credential"): every accepted form,
//! the 401 challenges, and a present-but-wrong credential never falling through.

use keyward_core::secret::SecretKind;
use keyward_store::testing::TestDb;
use reqwest::header::AUTHORIZATION;

use crate::helpers::*;

/// Each accepted presentation reaches `/api/v1/me` with the same facts.
async fn every_presentation_is_accepted(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, Some(&["projects:read", "api_keys:read"])).await;
    for via in EVERY_VIA {
        let r = send(via.apply(app.get("/api/v1/me"), &key.secret)).await;
        assert_eq!(r.status, 200, "{via:?}: {}", r.text);
        let b = &r.body;
        assert_eq!(b["principal"]["kind"], "user", "{via:?}");
        assert_eq!(b["principal"]["id"], ada.user_id(), "{via:?}");
        assert_eq!(b["principal"]["email"], "ada@acme.test", "{via:?}");
        assert_eq!(b["org"]["id"], org.id.to_string(), "{via:?}");
        assert_eq!(b["org"]["slug"], "acme", "{via:?}");
        assert_eq!(strings(&b["permissions"]), ["api_keys:read", "projects:read"], "{via:?}");
        assert_eq!(b["credential"]["kind"], "api_key", "{via:?}");
        assert_eq!(b["credential"]["id"], key.id, "{via:?}");
        assert!(!r.text.contains(&key.secret), "the secret is never echoed");
    }
    // Scheme names are case-insensitive (RFC 7235), and spaces around the key are not
    // part of it.
    let r = send(app.get("/api/v1/me").header(AUTHORIZATION, format!("bearer  {} ", key.secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r =
        send(app.get("/api/v1/me").header(AUTHORIZATION, basic(&format!("{}:", key.secret)).replace("Basic", "BASIC")))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// No credential: 401, both challenges, no `error` attribute, on every protected route.
async fn a_missing_credential_gets_both_challenges(db: &TestDb) {
    let app = spawn_app(db).await;
    let r = send(app.get("/api/v1/me")).await;
    r.assert_missing_credential();
    assert_eq!(r.challenges(), ["Bearer realm=\"keyward\"", "Basic realm=\"keyward\""]);
    for (method, path) in [
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/api-keys/key_0192f5e1a8b07c3d9e2f41a6b5c8d7e0"),
        ("POST", "/api/v1/api-keys/key_0192f5e1a8b07c3d9e2f41a6b5c8d7e0/roll"),
        ("POST", "/api/v1/keys/verify"),
        ("GET", "/api/v1/members"),
        ("GET", "/api/v1/audit-events"),
        ("GET", "/auth/check"),
        ("POST", "/auth/check"),
    ] {
        let r = send(app.req(method.parse().unwrap(), path).json(&serde_json::json!({"name": "x", "key": "y"}))).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text);
        r.assert_missing_credential();
    }
    // An empty API-key header is present, so it is refused as invalid, not treated as
    // anonymous.
    send(app.get("/api/v1/me").header("X-API-Key", "")).await.assert_invalid_token();
}

/// Wrong, truncated, mistyped: 401 `invalid_token` with both challenges, by every
/// presentation.
async fn wrong_keys_are_invalid_tokens(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, None).await;
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200);

    let s = &key.secret;
    let mut checksum_typo: Vec<char> = s.chars().collect();
    let last = checksum_typo.len() - 1;
    checksum_typo[last] = if checksum_typo[last] == '0' { '1' } else { '0' };
    let checksum_typo: String = checksum_typo.into_iter().collect();
    let unknown = app.secrets.generate(SecretKind::ApiKey).expose().to_owned();
    let wrong: Vec<(&str, String)> = vec![
        ("a well-formed key that was never issued", unknown),
        ("truncated by one character", s[..s.len() - 1].to_owned()),
        ("truncated to the display prefix", s[..12].to_owned()),
        ("one character mistyped", mistyped(s)),
        ("the checksum mistyped", checksum_typo),
        ("one character too many", format!("{s}x")),
        ("upper-cased", s.to_uppercase()),
        ("an access-token prefix", s.replacen("kw_", "kwat_", 1)),
        ("not a key at all", "hello".to_owned()),
        ("a long legacy-looking string", "x".repeat(300)),
    ];
    for (what, value) in &wrong {
        for via in EVERY_VIA {
            let r = send(via.apply(app.get("/api/v1/me"), value)).await;
            assert_eq!(r.status, 401, "{what} via {via:?}: {}", r.text);
            r.assert_invalid_token();
            assert!(!r.text.contains(value.as_str()) || value.len() < 6, "the value is not echoed");
        }
    }
    // The real key still works: nothing above locked it out.
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200);
}

/// Authorization headers that cannot be read: 401 `invalid_token`, never anonymous.
async fn unreadable_credentials_are_invalid_tokens(db: &TestDb) {
    let app = spawn_app(db).await;
    let bad_authorizations: Vec<(&str, reqwest::header::HeaderValue)> = vec![
        ("a garbage scheme", "Digest username=\"x\"".parse().unwrap()),
        ("a scheme alone", "Token".parse().unwrap()),
        ("Bearer with nothing", "Bearer".parse().unwrap()),
        ("Bearer with spaces", "Bearer    ".parse().unwrap()),
        ("Basic with broken base64", "Basic !!!not-base64!!!".parse().unwrap()),
        ("Basic without a colon", basic("kw_nocolon").parse().unwrap()),
        ("Basic apikey without a key", basic("apikey:").parse().unwrap()),
        ("Basic with an empty user", basic(":secret").parse().unwrap()),
        (
            "Basic of non-UTF-8 bytes",
            format!("Basic {}", {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':', 0x80])
            })
            .parse()
            .unwrap(),
        ),
        ("non-UTF-8 bytes", non_utf8(b"Bearer kw_")),
        ("only non-UTF-8 bytes", non_utf8(b"")),
        ("a very long header", format!("Bearer {}", "k".repeat(10_000)).parse().unwrap()),
    ];
    for (what, value) in bad_authorizations {
        let r = send(app.get("/api/v1/me").header(AUTHORIZATION, value.clone())).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_invalid_token();
        let r = send(app.get("/auth/check").header(AUTHORIZATION, value)).await;
        assert_eq!(r.status, 401, "{what} on /auth/check: {}", r.text);
        assert_eq!(r.body["error"], "invalid_token");
    }
    let r = send(app.get("/api/v1/me").header("X-API-Key", non_utf8(b"kw_"))).await;
    r.assert_invalid_token();
    let r = send(app.get("/api/v1/me").header("X-API-Key", "kw_wrong")).await;
    r.assert_invalid_token();
}

/// A present but wrong `Authorization` header, next to a valid `X-API-Key`, is refused:
/// the valid key elsewhere is never a fallback.
async fn a_wrong_authorization_never_falls_through(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, None).await;
    assert_eq!(app.me_status(&key.secret, Via::Header).await, 200);
    let revoked = app.key(&ada, None).await;
    app.store
        .revoke_api_key(None, &keyward_core::ids::KeyId::parse(&revoked.id).unwrap(), &keyward_store::Actor::cli())
        .await
        .unwrap();
    let wrongs: Vec<reqwest::header::HeaderValue> = vec![
        format!("Bearer {}", mistyped(&key.secret)).parse().unwrap(),
        format!("Bearer {}", revoked.secret).parse().unwrap(),
        basic(&format!("apikey:{}", mistyped(&key.secret))).parse().unwrap(),
        "Digest abc".parse().unwrap(),
        "Basic %%%".parse().unwrap(),
        "Bearer".parse().unwrap(),
        non_utf8(b"Bearer "),
    ];
    for wrong in wrongs {
        for path in ["/api/v1/me", "/auth/check", "/api/v1/members"] {
            let r = send(app.get(path).header(AUTHORIZATION, wrong.clone()).header("X-API-Key", &key.secret)).await;
            assert_eq!(r.status, 401, "{path} with {wrong:?} and a valid X-API-Key: {}", r.text);
            assert_eq!(r.body["error"], "invalid_token", "{path}");
        }
    }
}

/// The API-key header's name is configuration (`api_key_header`); the default name
/// then carries nothing.
async fn the_api_key_header_is_configurable(db: &TestDb) {
    let app =
        spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"\napi_key_header = \"X-Acme-Token\"")).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, None).await;
    let r = send(app.get("/api/v1/me").header("X-Acme-Token", &key.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["credential"]["id"], key.id);
    send(app.get("/api/v1/me").header("X-Acme-Token", mistyped(&key.secret))).await.assert_invalid_token();
    send(app.get("/api/v1/me").header("X-API-Key", &key.secret)).await.assert_missing_credential();
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200);
}

both_backends!(
    the_api_key_header_is_configurable,
    every_presentation_is_accepted,
    a_missing_credential_gets_both_challenges,
    wrong_keys_are_invalid_tokens,
    unreadable_credentials_are_invalid_tokens,
    a_wrong_authorization_never_falls_through,
);
