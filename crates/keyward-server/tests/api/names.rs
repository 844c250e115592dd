//! What a stored name may hold, and lists that name `*` beside explicit entries
//! (DESIGN.md, "Rules for keys"): a key's or a service account's name with a control or
//! format character (U+202E, U+200B, U+2028, a BOM…) is refused with `422`, through the
//! API and the web forms alike; a key whose list holds `*` and `api_keys:read`/`write`
//! keeps those entries, so it can still manage keys.

use serde_json::json;

use crate::helpers::*;
use keyward_store::testing::TestDb;

/// Each of the characters DESIGN.md names, and a few of the same kinds.
const HIDDEN: [char; 7] = ['\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}', '\u{2029}', '\u{0007}', '\u{200D}'];

async fn hidden_characters_are_refused_in_names(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let boss = app.person(&org, "boss@acme.test", "admin").await;
    let manager = app.key(&boss, Some(&["*", "api_keys:read", "api_keys:write"])).await;
    for c in HIDDEN {
        let name = format!("invoice{c}fdp.exe");
        let r = send(app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&json!({"name": name}))).await;
        r.assert_error(422, "validation_failed");
        assert!(r.body["error_description"].as_str().unwrap().contains("control or format"), "{}", r.text);
        let r = app.create_sa_reply(&manager, &json!({"name": name})).await;
        r.assert_error(422, "validation_failed");
    }
    assert!(app.list_keys(&manager, "").await.iter().all(|k| k["id"] == manager.id.as_str()), "no key was made");
    assert!(app.store.service_accounts(&org.id).await.unwrap().is_empty(), "no account was made");
    // Visible text of any script is a name.
    let r =
        send(app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&json!({"name": "ключ 東京 🔑"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], "ключ 東京 🔑");

    // The web forms: Settings > API keys, and Service accounts.
    let mut b = app.signed_in("boss@acme.test").await;
    for c in ['\u{202E}', '\u{FEFF}'] {
        let name = format!("laptop{c}");
        let csrf = b.csrf_from("/settings/api-keys").await;
        let r = b
            .post_form(
                "/settings/api-keys",
                &[("csrf", &csrf), ("name", &name), ("permission", "projects:read"), ("expires", "never")],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains("control or format"), "{}", r.text);
        let csrf = b.csrf_from("/admin/service-accounts").await;
        let r =
            b.post_form("/admin/service-accounts", &[("csrf", &csrf), ("name", &name), ("credential", "secret")]).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains("control or format"), "{}", r.text);
    }
    assert!(app.store.service_accounts(&org.id).await.unwrap().is_empty(), "no account was made");
}

async fn a_list_with_a_wildcard_keeps_its_explicit_entries(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let boss = app.member(&org, "boss@acme.test", "owner").await;
    let manager = app.key(&boss, Some(&["*", "api_keys:read", "api_keys:write"])).await;
    // It may manage keys: list, create, revoke.
    let listed = app.list_keys(&manager, "").await;
    let own = find(&listed, &manager.id).expect("listed");
    assert_eq!(strings(&own["permissions"]), ["*", "api_keys:read", "api_keys:write"], "{own}");
    let r = send(app.post("/api/v1/api-keys").bearer_auth(&manager.secret).json(&json!({"name": "ci"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Made without a list, the child gets the maker's list written out, entries and all.
    assert_eq!(strings(&r.body["permissions"]), ["*", "api_keys:read", "api_keys:write"], "{}", r.text);
    let child = r.body["key"].as_str().unwrap().to_owned();
    let child_id = r.body["id"].as_str().unwrap().to_owned();
    let r = send(app.get("/api/v1/api-keys").bearer_auth(&child)).await;
    assert_eq!(r.status, 200, "the child can manage keys too: {}", r.text);
    let r = send(app.delete(&format!("/api/v1/api-keys/{child_id}")).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // A key holding `*` alone still cannot.
    let wild = app.key(&boss, Some(&["*"])).await;
    let r = send(app.get("/api/v1/api-keys").bearer_auth(&wild.secret)).await;
    r.assert_error(403, "insufficient_scope");
}

both_backends!(hidden_characters_are_refused_in_names, a_list_with_a_wildcard_keeps_its_explicit_entries);
