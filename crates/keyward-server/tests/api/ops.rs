//! Operations: `/health`, `/ready`, `/metrics`, and the OpenAPI document.

use keyward_store::testing::TestDb;

use crate::helpers::*;

async fn health_ready_and_metrics(db: &TestDb) {
    let app = spawn_app(db).await;
    let r = send(app.get("/health")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ok");
    let r = send(app.get("/ready")).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&ada, None).await;
    assert_eq!(app.me_status(&key.secret, Via::Bearer).await, 200);
    assert_eq!(app.me_status(&mistyped(&key.secret), Via::Bearer).await, 401);

    let res = app.get("/metrics").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = res.text().await.unwrap();
    assert!(text.contains("# TYPE keyward_authentications_total counter"), "{text}");
    let count = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    };
    assert!(count("keyward_authentications_total{result=\"ok\",kind=\"api_key\"}") >= 1);
    assert!(count("keyward_authentications_total{result=\"unknown\",kind=\"none\"}") >= 1);
    assert!(!text.contains(&key.secret[12..]), "no secret in metrics");
    assert!(!text.contains(&key.id), "no key ids as label values");
}

/// The document lists every JSON route of the main listener under every method it
/// answers (what each declares is checked by the unit tests beside the document and by
/// `tests/schemathesis.rs`), and names this deployment's API-key header.
async fn openapi_document(db: &TestDb) {
    let app = spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"\napi_key_header = \"X-Our-Key\"")).await;
    let r = send(app.get("/api/v1/openapi.json")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["openapi"].as_str().expect("an openapi version").starts_with("3.1"), "{}", r.body["openapi"]);
    let paths = r.body["paths"].as_object().expect("paths");
    let mut routes: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    routes.sort();
    let mut expected: Vec<(String, String)> = [
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/.well-known/oauth-protected-resource"),
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/api-keys/{id}"),
        ("POST", "/api/v1/api-keys/{id}/roll"),
        ("POST", "/api/v1/keys/verify"),
        ("GET", "/api/v1/members"),
        ("GET", "/api/v1/audit-events"),
        ("GET", "/api/v1/service-accounts"),
        ("POST", "/api/v1/service-accounts"),
        ("DELETE", "/api/v1/service-accounts/{id}"),
        ("POST", "/api/v1/service-accounts/{id}/secret"),
        ("POST", "/api/v1/service-accounts/{id}/public-keys"),
        ("DELETE", "/api/v1/service-accounts/{id}/public-keys/{kid}"),
        ("GET", "/api/v1/sessions"),
        ("DELETE", "/api/v1/sessions/{id}"),
        ("POST", "/oauth/token"),
        ("POST", "/oauth/introspect"),
        ("POST", "/oauth/revoke"),
        ("POST", "/oauth/device_authorization"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .chain(
        ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
            .iter()
            .map(|m| (m.to_string(), "/auth/check".to_owned())),
    )
    .collect();
    expected.sort();
    assert_eq!(routes, expected);
    let schemes = &r.body["components"]["securitySchemes"];
    // Header names are case-insensitive; the document writes them in lower case.
    assert_eq!(schemes["api_key"]["name"], "x-our-key", "{schemes}");
    for name in ["bearer", "basic", "session"] {
        assert!(schemes[name].is_object(), "{name}: {schemes}");
    }
    // The route that serves it is public and answers like one.
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"));
}

both_backends!(health_ready_and_metrics, openapi_document);
