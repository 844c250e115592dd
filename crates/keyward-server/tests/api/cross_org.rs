//! Another organization's credential against every route: it sees and touches nothing
//! of this organization's. The same person in both organizations included.

use keyward_store::testing::TestDb;
use serde_json::json;

use crate::helpers::*;

const MANAGER: &[&str] = &["api_keys:read", "api_keys:write", "keys:verify", "audit:read", "members:read"];

async fn another_orgs_credential_reaches_nothing(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let globex = app.org("globex").await;
    let alice = app.member(&acme, "alice@acme.test", "owner").await;
    let bob = app.member(&acme, "bob@acme.test", "member").await;
    let gina = app.member(&globex, "gina@globex.test", "owner").await;
    let alice_at_globex = app.join(&globex, &alice.user, "admin").await;

    // Acme's objects.
    let acme_manager = app.key(&alice, Some(MANAGER)).await;
    let acme_keys = [app.key(&alice, None).await, app.key(&bob, None).await, acme_manager.clone()];
    let acme_events = {
        let r = send(app.get("/api/v1/audit-events?limit=200").bearer_auth(&acme_manager.secret)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert!(!acme_events.is_empty());

    // Globex's credentials: its owner's, and the same person's who owns things in acme.
    let outsiders = [
        ("gina", app.key(&gina, Some(MANAGER)).await),
        ("alice at globex", app.key(&alice_at_globex, Some(MANAGER)).await),
    ];
    for (who, b) in &outsiders {
        // Identity: globex, never acme.
        let me = send(app.get("/api/v1/me").bearer_auth(&b.secret)).await;
        assert_eq!(me.body["org"]["slug"], "globex", "{who}");
        let check = send(app.get("/auth/check").bearer_auth(&b.secret)).await;
        assert_eq!(check.header("x-keyward-org").as_deref(), Some("globex"), "{who}");

        // Lists: none of acme's keys.
        let list = app.list_keys(b, "?include_revoked=true").await;
        for k in &acme_keys {
            assert!(find(&list, &k.id).is_none(), "{who} lists acme's key {}", k.id);
        }
        // Revoke and roll acme's keys: 404, untouched.
        for k in &acme_keys {
            let r = send(app.delete(&format!("/api/v1/api-keys/{}", k.id)).bearer_auth(&b.secret)).await;
            r.assert_error(404, "not_found");
            let r = send(
                app.post(&format!("/api/v1/api-keys/{}/roll", k.id))
                    .bearer_auth(&b.secret)
                    .json(&json!({"grace_seconds": 0})),
            )
            .await;
            r.assert_error(404, "not_found");
            assert_eq!(app.me_status(&k.secret, Via::Bearer).await, 200, "{who} changed acme's key");
        }
        // Verify: acme's keys do not exist for globex's backend.
        for k in &acme_keys {
            let r = send(app.post("/api/v1/keys/verify").bearer_auth(&b.secret).json(&json!({"key": k.secret}))).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body["code"], "NOT_FOUND", "{who}: {}", r.text);
            assert!(r.body["key_id"].is_null() && r.body["principal"].is_null());
        }
        // Audit: none of acme's events, even with acme's cursor.
        for query in ["?limit=200".to_owned(), format!("?limit=200&before={}", acme_events[0])] {
            let r = send(app.get(&format!("/api/v1/audit-events{query}")).bearer_auth(&b.secret)).await;
            assert_eq!(r.status, 200, "{}", r.text);
            for e in r.body["data"].as_array().unwrap() {
                assert!(!acme_events.contains(&e["id"].as_str().unwrap().to_owned()), "{who} reads acme's {e}");
                for k in &acme_keys {
                    assert_ne!(e["target"]["id"], k.id.as_str(), "{who}: an event about acme's key");
                }
            }
        }
        // Members: globex's people only.
        let r = send(app.get("/api/v1/members").bearer_auth(&b.secret)).await;
        assert_eq!(r.status, 200);
        let emails: Vec<&str> =
            r.body["data"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap()).collect();
        assert!(!emails.contains(&"bob@acme.test"), "{who} lists acme's people: {emails:?}");
        let alice_role = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == "alice@acme.test")
            .map(|m| m["role"].clone());
        assert_eq!(alice_role, Some(json!("admin")), "alice's role in globex, not acme's owner");
    }

    // And the other way round: acme's backend cannot see globex's keys.
    for (_, b) in &outsiders {
        let r = send(app.post("/api/v1/keys/verify").bearer_auth(&acme_manager.secret).json(&json!({"key": b.secret})))
            .await;
        assert_eq!(r.body["code"], "NOT_FOUND", "{}", r.text);
        let r = send(app.delete(&format!("/api/v1/api-keys/{}", b.id)).bearer_auth(&acme_manager.secret)).await;
        r.assert_error(404, "not_found");
        assert_eq!(app.me_status(&b.secret, Via::Bearer).await, 200);
    }
    // Nothing acme's was revoked along the way.
    assert_eq!(app.list_keys(&acme_manager, "").await.len(), 2, "alice's two keys in acme");
}

both_backends!(another_orgs_credential_reaches_nothing);
