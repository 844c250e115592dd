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

async fn openapi_document(db: &TestDb) {
    let app = spawn_app(db).await;
    let r = send(app.get("/api/v1/openapi.json")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["openapi"].as_str().expect("an openapi version").starts_with("3.1"), "{}", r.body["openapi"]);
    let paths = r.body["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/me",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/api/v1/api-keys/{id}/roll",
        "/api/v1/keys/verify",
        "/api/v1/members",
        "/api/v1/audit-events",
        "/auth/check",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(paths["/api/v1/api-keys"].get("post").is_some() && paths["/api/v1/api-keys"].get("get").is_some());
    assert!(r.body["components"]["securitySchemes"].get("bearer").is_some());
}

both_backends!(health_ready_and_metrics, openapi_document);
