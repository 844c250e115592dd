//! Bad input on every route — broken JSON, wrong types, unknown fields, a 10 MB body,
//! the wrong content type, bad query strings and paths, non-UTF-8 header bytes,
//! unknown routes, wrong methods — gets a 4xx answer in the JSON error shape, never a
//! 5xx and never plain text.

use keyward_store::testing::TestDb;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;

use crate::helpers::*;

/// Everything the bad requests need to get past authentication.
const EVERYTHING: &[&str] =
    &["api_keys:read", "api_keys:write", "keys:verify", "audit:read", "members:read", "projects:read"];

#[track_caller]
fn assert_json_4xx(r: &Reply, what: &str) {
    assert!((400..500).contains(&r.status), "{what}: status {} body {}", r.status, r.text);
    assert!(r.body["error"].is_string(), "{what}: not a JSON error: {:?}", r.text);
    assert!(r.body["error_description"].is_string(), "{what}: {}", r.text);
}

#[track_caller]
fn assert_status_json(r: &Reply, what: &str, status: u16, code: &str) {
    assert_json_4xx(r, what);
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_eq!(r.body["error"], code, "{what}");
}

struct Ctx {
    app: TestApp,
    key: Key,
    /// A key of the caller's, for the roll route.
    target: Key,
}

async fn ctx(db: &TestDb) -> Ctx {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let boss = app.member(&org, "boss@acme.test", "owner").await;
    let key = app.key(&boss, Some(EVERYTHING)).await;
    let target = app.key(&boss, None).await;
    Ctx { app, key, target }
}

impl Ctx {
    /// The routes that read a JSON body, with a valid body for each.
    fn body_routes(&self) -> Vec<(&'static str, String, &'static str)> {
        vec![
            ("create", "/api/v1/api-keys".to_owned(), r#"{"name": "ok"}"#),
            ("roll", format!("/api/v1/api-keys/{}/roll", self.target.id), r#"{"grace_seconds": 0}"#),
            ("verify", "/api/v1/keys/verify".to_owned(), r#"{"key": "kw_x"}"#),
        ]
    }

    /// Every route, as (method, path).
    fn every_route(&self) -> Vec<(Method, String)> {
        vec![
            (Method::GET, "/api/v1/me".into()),
            (Method::GET, "/api/v1/api-keys".into()),
            (Method::POST, "/api/v1/api-keys".into()),
            (Method::DELETE, format!("/api/v1/api-keys/{}", self.target.id)),
            (Method::POST, format!("/api/v1/api-keys/{}/roll", self.target.id)),
            (Method::POST, "/api/v1/keys/verify".into()),
            (Method::GET, "/api/v1/members".into()),
            (Method::GET, "/api/v1/audit-events".into()),
            (Method::GET, "/auth/check".into()),
            (Method::POST, "/auth/check".into()),
        ]
    }

    fn json(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.app.post(path).bearer_auth(&self.key.secret).header(CONTENT_TYPE, "application/json").body(body)
    }
}

async fn bodies_that_cannot_be_read_are_400(db: &TestDb) {
    let c = ctx(db).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (route, path, valid) in c.body_routes() {
        for (what, body) in [
            ("broken JSON", b"{\"".to_vec()),
            ("an unterminated object", b"{".to_vec()),
            ("single quotes", b"{'name': 'ok'}".to_vec()),
            ("a stray comma", b"{,}".to_vec()),
            ("not JSON", b"name=ok".to_vec()),
            ("trailing garbage", format!("{valid} x").into_bytes()),
            ("two documents", format!("{valid}{valid}").into_bytes()),
            ("non-UTF-8 bytes", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
        ] {
            let r = send(c.json(&path, body)).await;
            assert_status_json(&r, &format!("{route}: {what}"), 400, "invalid_request");
        }
        // Nesting where an object is expected is a wrong type (422) or unreadable (400):
        // either way a 4xx, never a stack overflow.
        let r = send(c.json(&path, deep.clone())).await;
        assert_json_4xx(&r, &format!("{route}: deeply nested"));
    }
    // A body is required where one is expected (roll's is optional).
    for path in ["/api/v1/api-keys", "/api/v1/keys/verify"] {
        let r = send(c.app.post(path).bearer_auth(&c.key.secret)).await;
        assert_status_json(&r, &format!("{path}: no body"), 400, "invalid_request");
    }
}

async fn wrong_types_and_unknown_fields_are_422(db: &TestDb) {
    let c = ctx(db).await;
    let cases = [
        (
            "create",
            "/api/v1/api-keys".to_owned(),
            vec![
                r#"{"name": 5}"#,
                r#"{"name": null}"#,
                r#"{"name": "ok", "permissions": [1, 2]}"#,
                r#"{"name": "ok", "permissions": {"a": 1}}"#,
                r#"{"name": "ok", "expires_at": 12}"#,
                r#"{"name": "ok", "nope": 1}"#,
                r#"{"name": "ok", "key": "kw_chosen_by_the_caller"}"#,
                r#""ok""#,
                r#"null"#,
                r#"[]"#,
            ],
        ),
        (
            "roll",
            format!("/api/v1/api-keys/{}/roll", c.target.id),
            vec![
                r#"{"grace_seconds": "soon"}"#,
                r#"{"grace_seconds": 1.5}"#,
                r#"{"grace_seconds": 99999999999999999999999}"#,
                r#"{"grace_seconds": 0, "nope": 1}"#,
                r#"["soon"]"#,
            ],
        ),
        (
            "verify",
            "/api/v1/keys/verify".to_owned(),
            vec![
                r#"{"key": 5}"#,
                r#"{"key": "kw_x", "permissions": "projects:read"}"#,
                r#"{"key": "kw_x", "nope": 1}"#,
                r#"{"permissions": []}"#,
                r#"{}"#,
            ],
        ),
    ];
    for (route, path, bodies) in cases {
        for body in bodies {
            let r = send(c.json(&path, body)).await;
            assert_status_json(&r, &format!("{route}: {body}"), 422, "validation_failed");
        }
    }
    // None of that rolled the key or made one.
    assert_eq!(c.app.me_status(&c.target.secret, Via::Bearer).await, 200);
    assert_eq!(c.app.list_keys(&c.key, "").await.len(), 2);
}

async fn large_bodies_are_413(db: &TestDb) {
    let c = ctx(db).await;
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    for (route, path, _) in c.body_routes() {
        let r = send(c.json(&path, huge.clone())).await;
        assert_status_json(&r, &format!("{route}: 10 MB"), 413, "payload_too_large");
    }
    // Routes that read no body still answer sensibly.
    for (method, path) in c.every_route() {
        let r = send(
            c.app
                .req(method.clone(), &path)
                .bearer_auth(&c.key.secret)
                .header(CONTENT_TYPE, "application/json")
                .body(huge.clone()),
        )
        .await;
        assert!(r.status < 500, "{method} {path}: {}", r.status);
        // (The DELETE revokes the key: 204, no body.)
        assert!(
            r.status == 204 || r.body.is_object(),
            "{method} {path}: JSON, not {:?}",
            &r.text[..r.text.len().min(200)]
        );
    }
    // The server is still fine.
    assert_eq!(c.app.me_status(&c.key.secret, Via::Bearer).await, 200);
}

async fn other_content_types_are_415(db: &TestDb) {
    let c = ctx(db).await;
    for (route, path, valid) in c.body_routes() {
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/xml"),
            Some("jsonish"),
            None,
        ] {
            let mut rb = c.app.post(&path).bearer_auth(&c.key.secret).body(valid);
            if let Some(ct) = ct {
                rb = rb.header(CONTENT_TYPE, ct);
            }
            let r = send(rb).await;
            assert_status_json(&r, &format!("{route}: {ct:?}"), 415, "unsupported_media_type");
        }
        // Parameters and +json types are JSON.
        let r = send(
            c.app
                .post(&path)
                .bearer_auth(&c.key.secret)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(valid),
        )
        .await;
        assert!(r.status < 300, "{route} with a charset: {}", r.text);
    }
}

async fn bad_queries_are_400(db: &TestDb) {
    let c = ctx(db).await;
    for query in [
        "/api/v1/api-keys?include_revoked=maybe",
        "/api/v1/api-keys?include_revoked=",
        "/api/v1/api-keys?include_revoked=%FF",
        "/api/v1/api-keys?include_revoked=true&include_revoked=false",
        "/api/v1/api-keys?colour=red",
        "/api/v1/audit-events?limit=0",
        "/api/v1/audit-events?limit=201",
        "/api/v1/audit-events?limit=-1",
        "/api/v1/audit-events?limit=abc",
        "/api/v1/audit-events?limit=99999999999",
        "/api/v1/audit-events?before=xyz",
        "/api/v1/audit-events?before=evt_",
        "/api/v1/audit-events?before=key_0192f5e1a8b07c3d9e2f41a6b5c8d7e0",
        "/api/v1/audit-events?before=%FF",
        "/api/v1/audit-events?page=2",
        "/auth/check?permission=Not%20A%20Permission",
        "/auth/check?permission=",
        "/auth/check?permission=%FF",
    ] {
        let r = send(c.app.get(query).bearer_auth(&c.key.secret)).await;
        assert_status_json(&r, query, 400, "invalid_request");
    }
}

async fn bad_paths_are_json_errors(db: &TestDb) {
    let c = ctx(db).await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/api-keys/nope"),
        (Method::DELETE, "/api/v1/api-keys/%FF"),
        (Method::DELETE, "/api/v1/api-keys/%FF%FE"),
        (Method::POST, "/api/v1/api-keys/nope/roll"),
        (Method::POST, "/api/v1/api-keys/%FF/roll"),
        (Method::DELETE, "/api/v1/api-keys/key_%00"),
    ] {
        let r = send(c.app.req(method.clone(), path).bearer_auth(&c.key.secret)).await;
        assert_status_json(&r, &format!("{method} {path}"), 404, "not_found");
    }
}

async fn unknown_routes_and_wrong_methods_are_json(db: &TestDb) {
    let c = ctx(db).await;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1"),
        (Method::GET, "/api/v1/nope"),
        (Method::GET, "/api/v2/me"),
        (Method::POST, "/api/v1/api-keys/x/y/z"),
        (Method::GET, "/api/v1/me/"),
        (Method::GET, "/%FF"),
    ] {
        for auth in [true, false] {
            let mut rb = c.app.req(method.clone(), path);
            if auth {
                rb = rb.bearer_auth(&c.key.secret);
            }
            let r = send(rb).await;
            assert_status_json(&r, &format!("{method} {path}"), 404, "not_found");
        }
    }
    for (method, path) in [
        (Method::POST, "/api/v1/me".to_owned()),
        (Method::PUT, "/api/v1/me".to_owned()),
        (Method::DELETE, "/api/v1/api-keys".to_owned()),
        (Method::PATCH, "/api/v1/api-keys".to_owned()),
        (Method::GET, format!("/api/v1/api-keys/{}", c.target.id)),
        (Method::PUT, format!("/api/v1/api-keys/{}", c.target.id)),
        (Method::GET, format!("/api/v1/api-keys/{}/roll", c.target.id)),
        (Method::GET, "/api/v1/keys/verify".to_owned()),
        (Method::POST, "/api/v1/members".to_owned()),
        (Method::DELETE, "/api/v1/audit-events".to_owned()),
        (Method::POST, "/health".to_owned()),
        (Method::POST, "/api/v1/openapi.json".to_owned()),
        (Method::OPTIONS, "/api/v1/me".to_owned()),
    ] {
        let r = send(c.app.req(method.clone(), &path).bearer_auth(&c.key.secret)).await;
        assert_status_json(&r, &format!("{method} {path}"), 405, "method_not_allowed");
    }
    assert_eq!(c.app.me_status(&c.target.secret, Via::Bearer).await, 200, "nothing was revoked");
}

/// Non-UTF-8 bytes in the credential headers, on every route: 401 JSON.
async fn non_utf8_headers_are_401_json(db: &TestDb) {
    let c = ctx(db).await;
    for (method, path) in c.every_route() {
        for (name, value) in [
            (AUTHORIZATION.as_str(), non_utf8(b"Bearer ")),
            (AUTHORIZATION.as_str(), non_utf8(b"Basic ")),
            ("x-api-key", non_utf8(b"")),
        ] {
            let r = send(c.app.req(method.clone(), &path).header(name, value).json(&serde_json::json!({"name": "x"})))
                .await;
            assert_status_json(&r, &format!("{method} {path} {name}"), 401, "invalid_token");
        }
        // Other headers with such bytes do not matter.
        let r = send(c.app.req(method.clone(), &path).bearer_auth(&c.key.secret).header("x-whatever", non_utf8(b"x")))
            .await;
        assert!(r.status < 500 && r.status != 401, "{method} {path}: {}", r.text);
    }
}

both_backends!(
    bodies_that_cannot_be_read_are_400,
    wrong_types_and_unknown_fields_are_422,
    large_bodies_are_413,
    other_content_types_are_415,
    bad_queries_are_400,
    bad_paths_are_json_errors,
    unknown_routes_and_wrong_methods_are_json,
    non_utf8_headers_are_401_json,
);
