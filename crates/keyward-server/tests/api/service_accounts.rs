//! `/api/v1/service-accounts`: create, list, delete, secret rotation, public keys, the
//! rules for creating one (permission, role, plan), and the account's own client
//! secret as a credential on the management API (DESIGN.md "Domain", "HTTP API",
//! "Presenting a credential" 4).

use keyward_core::domain::{Plan, Slug};
use keyward_store::testing::TestDb;
use keyward_store::Actor;
use serde_json::{json, Value};

use crate::helpers::*;

/// The default `member` role's permissions, sorted.
const MEMBER: &[&str] =
    &["api_keys:read", "api_keys:write", "members:read", "projects:read", "projects:write", "service_accounts:read"];

fn sorted(v: &Value) -> Vec<String> {
    let mut s = strings(v);
    s.sort();
    s
}

#[track_caller]
fn assert_sa_view(v: &Value) {
    let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    for f in ["id", "kind", "client_id", "name", "role", "created_at", "secrets", "public_keys"] {
        assert!(obj.contains_key(f), "{f} missing in {v}");
    }
    assert!(v["id"].as_str().unwrap().starts_with("sa_"), "{v}");
    assert_eq!(v["kind"], "service_account", "{v}");
    assert!(v["created_at"].as_str().is_some_and(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()), "{v}");
    for s in v["secrets"].as_array().expect("secrets is a list") {
        let s = s.as_object().unwrap();
        for f in ["prefix", "created_at", "expires_at"] {
            assert!(s.contains_key(f), "secret {f} missing in {v}");
        }
    }
    for k in v["public_keys"].as_array().expect("public_keys is a list") {
        assert!(k["kid"].as_str().is_some_and(|k| !k.is_empty()), "{v}");
        assert!(k["alg"].is_string(), "{v}");
    }
}

async fn list(app: &TestApp, manager: &Key) -> Vec<Value> {
    let r = send(app.get("/api/v1/service-accounts").bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 200, "list service accounts: {}", r.text);
    r.body["data"].as_array().expect("data is a list").clone()
}

async fn me(app: &TestApp, authorization: &str) -> Reply {
    send(app.get("/api/v1/me").header(reqwest::header::AUTHORIZATION, authorization)).await
}

async fn check(app: &TestApp, authorization: &str, permission: &str) -> u16 {
    send(app.get(&format!("/auth/check?permission={permission}")).header(reqwest::header::AUTHORIZATION, authorization))
        .await
        .status
}

/// A new account with a generated secret: the view, the secret shown once, listed
/// without it, a member of kind `service_account`, and its secret works as Basic.
async fn created_with_a_secret_shown_once(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin) = app.org_with_admin("acme").await;

    let r = app.create_sa_reply(&admin, &json!({"name": "ci-bot"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = &r.body;
    assert_sa_view(v);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["client_id"], id, "a generated account's client id is its id");
    assert_eq!(v["name"], "ci-bot");
    assert_eq!(v["role"], "member", "the default role");
    assert_eq!(v["public_keys"], json!([]));
    let secret = v["client_secret"].as_str().expect("a client secret without public keys").to_owned();
    assert!(secret.starts_with("kwsa_"), "{secret}");
    let secrets = v["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "{v}");
    assert_eq!(secrets[0]["prefix"], secret[..12], "the display prefix is the secret's first 12 characters");
    assert!(secrets[0]["expires_at"].is_null());

    // Listed, never with the secret.
    let r = send(app.get("/api/v1/service-accounts").bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains(&secret), "the secret in the list");
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_sa_view(&data[0]);
    assert_eq!(data[0]["id"], id);
    assert!(data[0].get("client_secret").is_none_or(Value::is_null), "{}", data[0]);

    // Among the members, with its kind and role.
    let r = send(app.get("/api/v1/members").bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = r.body["data"].as_array().unwrap().iter().find(|m| m["id"] == id.as_str()).cloned();
    let row = row.unwrap_or_else(|| panic!("the account among the members: {}", r.text));
    assert_eq!(row["kind"], "service_account");
    assert_eq!(row["role"], "member");
    assert_eq!(row["name"], "ci-bot");

    // Its client secret authenticates it (DESIGN.md "Presenting a credential" 4).
    let me = me(&app, &client_basic(&id, &secret)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["principal"]["kind"], "service_account");
    assert_eq!(me.body["principal"]["id"], id);
    assert_eq!(me.body["credential"]["kind"], "client_secret");
    assert_eq!(me.body["org"]["slug"], "acme");
    assert_eq!(me.body["org"]["id"], org.id.to_string());
    assert_eq!(sorted(&me.body["permissions"]), MEMBER);
    assert_eq!(check(&app, &client_basic(&id, &secret), "projects:write").await, 200);
    assert_eq!(check(&app, &client_basic(&id, &secret), "audit:read").await, 403);
    // A wrong secret for the same client id is a wrong credential.
    me_invalid(&app, &client_basic(&id, &mistyped(&secret))).await;
    me_invalid(&app, &client_basic(&id, &format!("{secret}x"))).await;
}

async fn me_invalid(app: &TestApp, authorization: &str) {
    me(app, authorization).await.assert_invalid_token();
}

/// With public keys (PEM and JWK), no secret unless asked for; each key has a kid and
/// its algorithm.
async fn created_with_public_keys(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;

    let r = app
        .create_sa_reply(
            &admin,
            &json!({"name": "keys only", "public_keys": [Signer::rsa().public_pem, ED25519_PUBLIC_JWK, Signer::ec().public_pem]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_sa_view(&r.body);
    assert!(r.body.get("client_secret").is_none_or(Value::is_null), "no secret with public keys: {}", r.text);
    assert_eq!(r.body["secrets"], json!([]), "{}", r.text);
    let keys = r.body["public_keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"], "{}", r.text);
    let mut kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), 3, "distinct kids: {}", r.text);

    // Keys and a secret when asked for.
    let r = app
        .create_sa_reply(&admin, &json!({"name": "both", "public_keys": [Signer::ec().public_pem], "secret": true}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["client_secret"].as_str().expect("secret: true makes one");
    assert!(secret.starts_with("kwsa_"));
    assert_eq!(r.body["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["public_keys"].as_array().unwrap().len(), 1);
    // A role given explicitly.
    let r = app.create_sa_reply(&admin, &json!({"name": "reader", "role": "viewer"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["role"], "viewer");
    assert_eq!(list(&app, &admin).await.len(), 3);
}

/// Creating needs `service_accounts:write`; listing needs `service_accounts:read`.
async fn creating_needs_service_accounts_write(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin) = app.org_with_admin("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let vic = app.member(&org, "vic@acme.test", "viewer").await;
    let member_key = app.key(&ada, None).await;
    let viewer_key = app.key(&vic, None).await;
    let narrow_admin =
        app.key(&app.member(&org, "boss@acme.test", "admin").await, Some(&["service_accounts:read"])).await;
    for (who, key) in [("a member", &member_key), ("a viewer", &viewer_key), ("a read-only admin key", &narrow_admin)] {
        let r = app.create_sa_reply(key, &json!({"name": "nope"})).await;
        assert_eq!(r.status, 403, "{who}: {}", r.text);
        r.assert_insufficient_scope();
    }
    // A member may list (service_accounts:read), a viewer may not.
    assert_eq!(list(&app, &member_key).await.len(), 0);
    send(app.get("/api/v1/service-accounts").bearer_auth(&viewer_key.secret)).await.assert_insufficient_scope();
    // ... and with a secret made by the admin, nobody above could delete or rotate it.
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    for key in [&member_key, &viewer_key, &narrow_admin] {
        let r = send(app.delete(&format!("/api/v1/service-accounts/{}", sa.id)).bearer_auth(&key.secret)).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = send(app.post(&format!("/api/v1/service-accounts/{}/secret", sa.id)).bearer_auth(&key.secret)).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    assert_eq!(app.me_status_auth(&sa.basic()).await, 200, "the secret was not rotated");
    assert_eq!(list(&app, &admin).await.len(), 1, "only the admin's account exists");
}

/// A role with permissions the creator lacks is refused (403); an unknown role is 422.
async fn no_account_exceeds_its_creator(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin) = app.org_with_admin("acme").await;
    let boss = app.member(&org, "boss@acme.test", "admin").await;
    let narrow = app.key(&boss, Some(&["service_accounts:read", "service_accounts:write", "projects:read"])).await;
    for role in ["member", "admin", "owner"] {
        let r = app.create_sa_reply(&narrow, &json!({"name": "too much", "role": role})).await;
        assert_eq!(r.status, 403, "{role}: {}", r.text);
        assert!(r.body["error"].is_string(), "{}", r.text);
    }
    let r = app.create_sa_reply(&admin, &json!({"name": "x", "role": "wizard"})).await;
    r.assert_error(422, "validation_failed");
    // An admin holds `*`, so any role but owner, which only an owner gives.
    for role in ["admin", "member", "viewer"] {
        let r = app.create_sa_reply(&admin, &json!({"name": role, "role": role})).await;
        assert_eq!(r.status, 201, "{role}: {}", r.text);
        assert_eq!(r.body["role"], role);
    }
    let r = app.create_sa_reply(&admin, &json!({"name": "owner", "role": "owner"})).await;
    r.assert_error(403, "insufficient_scope");
    let owner = app.member(&org, "owner@acme.test", "owner").await;
    let owner_key = app.key(&owner, None).await;
    let r = app.create_sa_reply(&owner_key, &json!({"name": "owner", "role": "owner"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(list(&app, &admin).await.len(), 4);
}

async fn create_validates_its_input(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": 5}),
        json!({"name": null}),
        json!({"name": "ok", "role": 3}),
        json!({"name": "ok", "public_keys": "not a list"}),
        json!({"name": "ok", "public_keys": ["not a key"]}),
        json!({"name": "ok", "public_keys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}),
        json!({"name": "ok", "public_keys": [testdata_text("rsa_private.pem")]}),
        json!({"name": "ok", "public_keys": [r#"{"kty":"RSA"}"#]}),
        json!({"name": "ok", "public_keys": [r#"{"kty":"OKP","crv":"Ed25519","x":"!!"}"#]}),
        json!({"name": "ok", "public_keys": [r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}"#]}),
        json!({"name": "ok", "public_keys": [r#"{"kty":"OKP","crv":"Ed25519""#]}),
        json!({"name": "ok", "public_keys": [r#"{"kty":"oct","k":"c2VjcmV0"}"#]}),
        json!({"name": "ok", "public_keys": [""]}),
        json!({"name": "ok", "secret": "yes"}),
        json!({"name": "ok", "client_secret": "kwsa_chosen_by_the_caller"}),
    ] {
        let r = app.create_sa_reply(&admin, &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        r.assert_error(422, "validation_failed");
    }
    assert_eq!(list(&app, &admin).await.len(), 0, "no invalid request made an account");
    let r = app.create_sa_reply(&admin, &json!({"name": "x".repeat(100)})).await;
    assert_eq!(r.status, 201, "100 characters are allowed: {}", r.text);
}

/// `[service_accounts] min_plan = "pro"`: a free organization gets 403 `plan_required`
/// naming the plan; pro and enterprise may; without the setting, free may too.
async fn the_plan_limit_is_enforced(db: &TestDb) {
    let app = spawn_app_tables(db, "[service_accounts]\nmin_plan = \"pro\"").await;
    let mut keys = Vec::new();
    for (slug, plan) in [("free", Plan::Free), ("pro", Plan::Pro), ("big", Plan::Enterprise)] {
        let org = app.store.create_org(&Slug::parse(slug).unwrap(), slug, plan).await.unwrap();
        let admin = app.member(&org, &format!("admin@{slug}.test"), "owner").await;
        keys.push((slug, app.key(&admin, None).await));
    }
    let r = app.create_sa_reply(&keys[0].1, &json!({"name": "bot"})).await;
    r.assert_error(403, "plan_required");
    assert!(r.body["error_description"].as_str().unwrap().contains("pro"), "names the plan: {}", r.text);
    assert_eq!(list(&app, &keys[0].1).await.len(), 0);
    for (slug, key) in &keys[1..] {
        let r = app.create_sa_reply(key, &json!({"name": "bot"})).await;
        assert_eq!(r.status, 201, "{slug}: {}", r.text);
    }

    // No limit by default.
    let db2 = other_db(db).await;
    let app = spawn_app(&db2).await;
    let org = app.store.create_org(&Slug::parse("free").unwrap(), "free", Plan::Free).await.unwrap();
    let admin = app.member(&org, "admin@free.test", "owner").await;
    let key = app.key(&admin, None).await;
    let r = app.create_sa_reply(&key, &json!({"name": "bot"})).await;
    assert_eq!(r.status, 201, "free may without min_plan: {}", r.text);
}

/// A fresh database of the same backend as `db`.
async fn other_db(db: &TestDb) -> TestDb {
    if db.url.starts_with("sqlite") {
        TestDb::sqlite()
    } else {
        TestDb::postgres().await.expect("postgres is reachable (it was a moment ago)")
    }
}

/// Deleting an account stops its secret, its access tokens and its API keys on the very
/// next request, and removes it from the lists.
async fn deleting_stops_everything_at_once(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    let bystander = app.create_sa(&admin, json!({"name": "other bot"})).await;

    // A key of its own, made with its secret.
    let r = send(
        app.post("/api/v1/api-keys")
            .header(reqwest::header::AUTHORIZATION, sa.basic())
            .json(&json!({"name": "bot key", "permissions": ["projects:read"]})),
    )
    .await;
    assert_eq!(r.status, 201, "the account makes itself a key: {}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let m = send(app.get("/api/v1/me").bearer_auth(&key)).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["principal"]["kind"], "service_account");
    assert_eq!(m.body["principal"]["id"], sa.id);
    assert_eq!(strings(&m.body["permissions"]), ["projects:read"]);
    let token = app.sa_token(&sa, None).await;
    let other_token = app.sa_token(&bystander, None).await;
    // All warm in the cache.
    assert_eq!(app.me_status_auth(&sa.basic()).await, 200);
    assert_eq!(app.me_status(&token, Via::Bearer).await, 200);
    assert_eq!(app.me_status(&key, Via::Bearer).await, 200);

    let r = send(app.delete(&format!("/api/v1/service-accounts/{}", sa.id)).bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "204 has no body");

    me(&app, &sa.basic()).await.assert_invalid_token();
    send(app.get("/api/v1/me").bearer_auth(&token)).await.assert_invalid_token();
    send(app.get("/api/v1/me").bearer_auth(&key)).await.assert_invalid_token();
    app.token(Some(&sa.basic()), &[("grant_type", "client_credentials")])
        .await
        .assert_oauth_error(401, "invalid_client");

    // Gone from the lists; again → 404; the other account is untouched.
    let ids: Vec<Value> = list(&app, &admin).await.iter().map(|a| a["id"].clone()).collect();
    assert_eq!(ids, [json!(bystander.id)]);
    let r = send(app.get("/api/v1/members").bearer_auth(&admin.secret)).await;
    assert!(!r.text.contains(&sa.id), "a deleted account among the members: {}", r.text);
    send(app.delete(&format!("/api/v1/service-accounts/{}", sa.id)).bearer_auth(&admin.secret))
        .await
        .assert_error(404, "not_found");
    for id in ["nope", "sa_", "sa_00000000000000000000000000000000", "%FF"] {
        send(app.delete(&format!("/api/v1/service-accounts/{id}")).bearer_auth(&admin.secret))
            .await
            .assert_error(404, "not_found");
    }
    assert_eq!(app.me_status_auth(&bystander.basic()).await, 200);
    assert_eq!(app.me_status(&other_token, Via::Bearer).await, 200);
}

/// `POST …/secret`: a new secret; without grace the old one fails at once, with grace
/// it keeps working.
async fn rotating_the_secret(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    assert_eq!(app.me_status_auth(&sa.basic()).await, 200, "cached before the rotation");

    // No body: no grace.
    let r = send(app.post(&format!("/api/v1/service-accounts/{}/secret", sa.id)).bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_sa_view(&r.body);
    assert_eq!(r.body["id"], sa.id);
    let second = r.body["client_secret"].as_str().expect("the new secret").to_owned();
    assert!(second.starts_with("kwsa_") && second != sa.secret());
    assert_eq!(r.body["secrets"].as_array().unwrap().len(), 1, "the old secret is gone: {}", r.text);
    me(&app, &sa.basic()).await.assert_invalid_token();
    app.token(Some(&sa.basic()), &[("grant_type", "client_credentials")])
        .await
        .assert_oauth_error(401, "invalid_client");
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &second)).await, 200);

    // Grace 0 explicitly: the same.
    let r = send(
        app.post(&format!("/api/v1/service-accounts/{}/secret", sa.id))
            .bearer_auth(&admin.secret)
            .json(&json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let third = r.body["client_secret"].as_str().unwrap().to_owned();
    me(&app, &client_basic(&sa.client_id, &second)).await.assert_invalid_token();
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &third)).await, 200);

    // With grace, both work for now.
    let r = send(
        app.post(&format!("/api/v1/service-accounts/{}/secret", sa.id))
            .bearer_auth(&admin.secret)
            .json(&json!({"grace_seconds": 300})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fourth = r.body["client_secret"].as_str().unwrap().to_owned();
    let secrets = r.body["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "old (expiring) and new: {}", r.text);
    assert!(secrets.iter().any(|s| s["expires_at"].is_string()), "the old one shows its end: {}", r.text);
    for s in [&third, &fourth] {
        assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, s)).await, 200);
        let r = app.token(Some(&client_basic(&sa.client_id, s)), &[("grant_type", "client_credentials")]).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    // Bad bodies.
    for body in
        [json!({"grace_seconds": -1}), json!({"grace_seconds": "soon"}), json!({"grace_seconds": 1.5}), json!({"x": 1})]
    {
        let r = send(
            app.post(&format!("/api/v1/service-accounts/{}/secret", sa.id)).bearer_auth(&admin.secret).json(&body),
        )
        .await;
        r.assert_error(422, "validation_failed");
    }
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &fourth)).await, 200, "bad bodies rotated nothing");
    // Another id → 404.
    send(app.post("/api/v1/service-accounts/sa_00000000000000000000000000000000/secret").bearer_auth(&admin.secret))
        .await
        .assert_error(404, "not_found");
}

/// `POST …/public-keys` registers a key (201, view); assertions signed with it work
/// until `DELETE …/public-keys/{kid}` (204).
async fn adding_and_removing_public_keys(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    let path = format!("/api/v1/service-accounts/{}/public-keys", sa.id);

    let ec = Signer::ec();
    let r = send(app.post(&path).bearer_auth(&admin.secret).json(&json!({"public_key": ec.public_pem}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_sa_view(&r.body);
    let keys = r.body["public_keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1, "{}", r.text);
    assert_eq!(keys[0]["alg"], "ES256");
    let ec_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert!(r.body.get("client_secret").is_none_or(Value::is_null), "no secret shown: {}", r.text);

    // With a chosen kid.
    let ed = Signer::ed25519();
    let r = send(app.post(&path).bearer_auth(&admin.secret).json(&json!({"public_key": ed.public_pem, "kid": "mine"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let kids: Vec<&str> =
        r.body["public_keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&"mine") && kids.contains(&ec_kid.as_str()), "{}", r.text);

    // Both sign assertions.
    for (signer, kid) in [(&ec, ec_kid.as_str()), (&ed, "mine")] {
        let jwt = signer.sign(Some(kid), &assertion_claims(&sa.client_id, &token_endpoint()));
        let r = app
            .token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER_ASSERTION),
                    ("client_assertion", &jwt),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{kid}: {}", r.text);
    }

    // Bad keys are 422; a taken kid is refused with a 4xx.
    for body in [json!({"public_key": "nope"}), json!({}), json!({"public_key": r#"{"kty":"RSA","n":"!","e":"AQAB"}"#})]
    {
        let r = send(app.post(&path).bearer_auth(&admin.secret).json(&body)).await;
        r.assert_error(422, "validation_failed");
    }
    let r = send(
        app.post(&path)
            .bearer_auth(&admin.secret)
            .json(&json!({"public_key": Signer::rsa().public_pem, "kid": "mine"})),
    )
    .await;
    assert!((400..500).contains(&r.status) && r.body["error"].is_string(), "a taken kid: {}", r.text);

    // Removing one: its assertions are refused from now; the other still works.
    let r = send(app.delete(&format!("{path}/mine")).bearer_auth(&admin.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let jwt = ed.sign(Some("mine"), &assertion_claims(&sa.client_id, &token_endpoint()));
    app.token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER_ASSERTION),
            ("client_assertion", &jwt),
        ],
    )
    .await
    .assert_oauth_error(401, "invalid_client");
    let jwt = ec.sign(Some(&ec_kid), &assertion_claims(&sa.client_id, &token_endpoint()));
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER_ASSERTION),
                ("client_assertion", &jwt),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    send(app.delete(&format!("{path}/mine")).bearer_auth(&admin.secret)).await.assert_error(404, "not_found");
    send(app.delete(&format!("{path}/nope")).bearer_auth(&admin.secret)).await.assert_error(404, "not_found");
    let listed = list(&app, &admin).await;
    let kids: Vec<Value> = listed[0]["public_keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(kids, [json!(ec_kid)]);
}

/// A role change of the account shrinks what its secret and its tokens can do on the
/// next request.
async fn a_role_change_reaches_secret_and_tokens(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    let token = app.sa_token(&sa, None).await;
    let bearer = format!("Bearer {token}");
    for auth in [sa.basic(), bearer.clone()] {
        assert_eq!(check(&app, &auth, "projects:write").await, 200);
        assert_eq!(check(&app, &auth, "projects:read").await, 200);
    }
    // Through the store, as the admin commands do: the server learns it through the
    // database within a second (DESIGN.md "Architecture"), like a person's role change.
    app.store.set_role(&org.id, &sa.id, "viewer", &Actor::cli()).await.unwrap();
    for auth in [sa.basic(), bearer.clone()] {
        eventually("the shrunk role reaches the credential", std::time::Duration::from_secs(1), || {
            let auth = auth.clone();
            let app = &app;
            async move { check(app, &auth, "projects:write").await == 403 }
        })
        .await;
        let r =
            send(app.get("/auth/check?permission=projects:write").header(reqwest::header::AUTHORIZATION, &auth)).await;
        r.assert_insufficient_scope();
        assert_eq!(check(&app, &auth, "projects:read").await, 200);
    }
    let r = send(app.get("/api/v1/members").bearer_auth(&admin.secret)).await;
    let row = r.body["data"].as_array().unwrap().iter().find(|m| m["id"] == sa.id.as_str()).cloned().unwrap();
    assert_eq!(row["role"], "viewer");
    let r = me(&app, &sa.basic()).await;
    assert!(!strings(&r.body["permissions"]).contains(&"projects:write".to_owned()), "{}", r.text);
    // And back up: the token's own scope was everything the account held, not a copy.
    app.store.set_role(&org.id, &sa.id, "member", &Actor::cli()).await.unwrap();
    for auth in [sa.basic(), bearer] {
        eventually("the grown role reaches the credential", std::time::Duration::from_secs(1), || {
            let auth = auth.clone();
            let app = &app;
            async move { check(app, &auth, "projects:write").await == 200 }
        })
        .await;
    }
}

/// Another organization's credentials — an admin's key, an admin service account's
/// secret — cannot see or touch this organization's accounts.
async fn another_orgs_credentials_reach_no_account(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, a_admin) = app.org_with_admin("acme").await;
    let (_, b_admin) = app.org_with_admin("globex").await;
    let victim = app
        .create_sa(&a_admin, json!({"name": "acme bot", "public_keys": [Signer::ec().public_pem], "secret": true}))
        .await;
    let kid = victim.kid("ES256");
    let b_sa = app.create_sa(&b_admin, json!({"name": "globex admin bot", "role": "admin"})).await;
    let b_own = app.create_sa(&b_admin, json!({"name": "globex bot"})).await;

    for (who, auth) in
        [("globex's admin key", format!("Bearer {}", b_admin.secret)), ("globex's admin account", b_sa.basic())]
    {
        let with = |rb: reqwest::RequestBuilder| rb.header(reqwest::header::AUTHORIZATION, auth.clone());
        let r = send(with(app.get("/api/v1/service-accounts"))).await;
        assert_eq!(r.status, 200, "{who}: {}", r.text);
        assert!(!r.text.contains(&victim.id), "{who} lists acme's account: {}", r.text);
        assert!(r.text.contains(&b_own.id), "{who} lists its own: {}", r.text);
        let r = send(with(app.get("/api/v1/members"))).await;
        assert!(!r.text.contains(&victim.id), "{who}: acme's account among globex's members");
        for (what, rb) in [
            ("delete", with(app.delete(&format!("/api/v1/service-accounts/{}", victim.id)))),
            ("rotate", with(app.post(&format!("/api/v1/service-accounts/{}/secret", victim.id)))),
            (
                "add a key",
                with(app.post(&format!("/api/v1/service-accounts/{}/public-keys", victim.id)))
                    .json(&json!({"public_key": Signer::rsa().public_pem})),
            ),
            ("remove a key", with(app.delete(&format!("/api/v1/service-accounts/{}/public-keys/{kid}", victim.id)))),
        ] {
            let r = send(rb).await;
            assert_eq!(r.status, 404, "{who}: {what}: {}", r.text);
            r.assert_error(404, "not_found");
        }
    }
    // Untouched: same secret, same single key.
    assert_eq!(app.me_status_auth(&victim.basic()).await, 200);
    let listed = list(&app, &a_admin).await;
    let v = listed.iter().find(|a| a["id"] == victim.id.as_str()).unwrap();
    assert_eq!(v["public_keys"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["secrets"].as_array().unwrap().len(), 1, "{v}");
    // Acme's secret is not a globex credential, and acme's admin cannot touch globex's.
    let r = me(&app, &victim.basic()).await;
    assert_eq!(r.body["org"]["slug"], "acme");
    let r = send(app.delete(&format!("/api/v1/service-accounts/{}", b_own.id)).bearer_auth(&a_admin.secret)).await;
    r.assert_error(404, "not_found");
    assert_eq!(app.me_status_auth(&b_own.basic()).await, 200);
}

/// Bad bodies on the new JSON routes: 4xx JSON, never 5xx.
async fn bad_bodies_are_4xx_json(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    for path in [
        "/api/v1/service-accounts".to_owned(),
        format!("/api/v1/service-accounts/{}/secret", sa.id),
        format!("/api/v1/service-accounts/{}/public-keys", sa.id),
    ] {
        for (what, ct, body) in [
            ("broken JSON", "application/json", "{\"".to_owned()),
            ("not JSON", "application/json", "name=x".to_owned()),
            ("a list", "application/json", "[]".to_owned()),
            ("form", "application/x-www-form-urlencoded", "name=x".to_owned()),
            ("huge", "application/json", format!("{{\"name\": \"{}\"}}", "x".repeat(3 * 1024 * 1024))),
        ] {
            let r = send(app.post(&path).bearer_auth(&admin.secret).header("content-type", ct).body(body)).await;
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
    assert_eq!(app.me_status_auth(&sa.basic()).await, 200, "nothing rotated");
    assert_eq!(list(&app, &admin).await.len(), 1);
}

both_backends!(
    created_with_a_secret_shown_once,
    created_with_public_keys,
    creating_needs_service_accounts_write,
    no_account_exceeds_its_creator,
    create_validates_its_input,
    the_plan_limit_is_enforced,
    deleting_stops_everything_at_once,
    rotating_the_secret,
    adding_and_removing_public_keys,
    a_role_change_reaches_secret_and_tokens,
    another_orgs_credentials_reach_no_account,
    bad_bodies_are_4xx_json,
);
