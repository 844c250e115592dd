//! `GET /api/v1/members`: the organization's people with kind and role.

use keyward_store::testing::TestDb;
use keyward_store::Actor;

use crate::helpers::*;

async fn members_lists_the_org_with_roles(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let boss = app.member(&acme, "boss@acme.test", "owner").await;
    let ada = app.member(&acme, "ada@acme.test", "member").await;
    let vic = app.member(&acme, "vic@acme.test", "viewer").await;
    app.member(&other, "olga@other.test", "owner").await;
    app.join(&other, &ada.user, "admin").await;

    let key = app.key(&vic, Some(&["members:read"])).await;
    let r = send(app.get("/api/v1/members").bearer_auth(&key.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.body["data"].as_array().unwrap();
    let mut seen: Vec<(String, String)> = data
        .iter()
        .map(|m| {
            assert_eq!(m["kind"], "user", "{m}");
            assert!(m["id"].as_str().unwrap().starts_with("usr_"));
            assert!(m["joined_at"].is_string());
            (m["email"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned())
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("ada@acme.test".to_owned(), "member".to_owned()),
            ("boss@acme.test".to_owned(), "owner".to_owned()),
            ("vic@acme.test".to_owned(), "viewer".to_owned())
        ],
        "acme's people, with their roles in acme"
    );
    let ada_row = data.iter().find(|m| m["email"] == "ada@acme.test").unwrap();
    assert_eq!(ada_row["id"], ada.user_id());
    assert!(!r.text.contains("olga"));

    app.store.set_role(&acme.id, &boss.user_id(), "admin", &Actor::cli()).await.unwrap();
    let r = send(app.get("/api/v1/members").bearer_auth(&key.secret)).await;
    let boss_row = r.body["data"].as_array().unwrap().iter().find(|m| m["email"] == "boss@acme.test").cloned().unwrap();
    assert_eq!(boss_row["role"], "admin");

    let narrow = app.key(&ada, Some(&["projects:read"])).await;
    send(app.get("/api/v1/members").bearer_auth(&narrow.secret)).await.assert_insufficient_scope();
    send(app.get("/api/v1/members")).await.assert_missing_credential();
}

both_backends!(members_lists_the_org_with_roles);
