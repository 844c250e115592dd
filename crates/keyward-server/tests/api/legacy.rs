//! Keys imported from a previous system (plain, SHA-256 hex, bcrypt) work via Basic;
//! a bcrypt one is re-hashed to the fast form on its first use.

use keyward_core::legacy::{BcryptHash, ImportedHash};
use keyward_core::secret::SecretHash;
use keyward_server::keys::{self, Imported};
use keyward_store::testing::TestDb;
use keyward_store::Actor;
use reqwest::header::AUTHORIZATION;

use crate::helpers::*;

const PLAIN: &str = "legacy-key-0123456789abcdef";
const SHA: &str = "legacy-sha-0123456789abcdef";
const BCRYPT: &str = "legacy-bcrypt-0123456789abcdef";

/// The Basic forms DESIGN.md promises for legacy keys.
fn basic_forms(value: &str) -> [String; 3] {
    [basic(&format!("{value}:")), basic(&format!("apikey:{value}")), basic(&format!("{value}:ignored-password"))]
}

async fn imported_keys_work_via_basic(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.member(&org, "ada@acme.test", "member").await;
    let manager = app.key(&ada, Some(&["api_keys:read", "api_keys:write"])).await;
    let import = |name: &'static str, imported: Imported| {
        let (store, org, principal) = (app.store.clone(), org.id.clone(), ada.principal());
        async move { keys::import(&store, &org, &principal, name, imported, &Actor::cli()).await.expect("import") }
    };
    let plain = import("plain", Imported::Plain(PLAIN.into())).await;
    let sha = import("sha256", Imported::Hash(ImportedHash::Sha256(SecretHash::of(SHA)))).await;
    let hash = bcrypt::hash(BCRYPT, 4).unwrap();
    let bcrypted = import("bcrypt", Imported::Hash(ImportedHash::Bcrypt(BcryptHash::parse(&hash).unwrap()))).await;
    assert_eq!(app.store.bcrypt_key_secrets().await.unwrap().len(), 1);

    // Wrong values, some one character away from a real one: 401, and the bcrypt hash
    // is still waiting for its first real use.
    for wrong in [
        "legacy-key-0123456789abcdeX",
        "legacy-bcrypt-0123456789abcdeX",
        "legacy-sha-0123456789abcde",
        "LEGACY-KEY-0123456789ABCDEF",
    ] {
        for authorization in basic_forms(wrong) {
            let r = send(app.get("/api/v1/me").header(AUTHORIZATION, authorization)).await;
            r.assert_invalid_token();
        }
    }
    assert_eq!(app.store.bcrypt_key_secrets().await.unwrap().len(), 1, "a wrong value upgrades nothing");

    for (value, key) in [(PLAIN, &plain), (SHA, &sha), (BCRYPT, &bcrypted)] {
        for authorization in basic_forms(value) {
            let r = send(app.get("/api/v1/me").header(AUTHORIZATION, authorization.clone())).await;
            assert_eq!(r.status, 200, "{value} as {authorization}: {}", r.text);
            assert_eq!(r.body["credential"]["id"], key.id.to_string());
            assert_eq!(r.body["principal"]["id"], ada.user_id());
            assert!(strings(&r.body["permissions"]).contains(&"projects:write".to_owned()), "inherits the member's");
            let r = send(app.get("/auth/check").header(AUTHORIZATION, authorization)).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-keyward-credential"), Some(format!("api_key:{}", key.id)));
        }
    }
    assert!(app.store.bcrypt_key_secrets().await.unwrap().is_empty(), "the bcrypt key was re-hashed on first use");

    // From the database alone (a server that never saw it), the re-hashed key works.
    let fresh = spawn_app(db).await;
    for authorization in basic_forms(BCRYPT) {
        let r = send(fresh.get("/api/v1/me").header(AUTHORIZATION, authorization)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["credential"]["id"], bcrypted.id.to_string());
    }
    let r = send(fresh.get("/api/v1/me").header(AUTHORIZATION, basic("legacy-bcrypt-0123456789abcdeX:"))).await;
    r.assert_invalid_token();

    // Lists show at most a short prefix of an imported key, never the key.
    let list = app.list_keys(&manager, "").await;
    for k in [&plain, &sha, &bcrypted] {
        let v = find(&list, &k.id.to_string()).expect("listed");
        let prefix = v["prefix"].as_str().unwrap();
        assert!(prefix.len() <= 12);
    }
    let text = serde_json::to_string(&list).unwrap();
    for value in [PLAIN, SHA, BCRYPT] {
        assert!(!text.contains(value));
    }

    // Revoking an imported key works like any other.
    let r = send(app.delete(&format!("/api/v1/api-keys/{}", bcrypted.id)).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204);
    for authorization in basic_forms(BCRYPT) {
        send(app.get("/api/v1/me").header(AUTHORIZATION, authorization)).await.assert_invalid_token();
    }
}

both_backends!(imported_keys_work_via_basic);
