//! The store's contract: the same cases against SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::legacy::{BcryptHash, ImportedHash};
use keyward_core::permission::PermissionSet;
use keyward_core::secret::{SecretFormat, SecretHash, SecretKind};
use keyward_store::{Actor, Change, KeyScope, KeyUsage, NewApiKey, Principal, Store, StoreError};

/// Runs one async case against both backends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { let db = keyward_store::testing::TestDb::sqlite(); super::$name(&db.store().await).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                let Some(db) = keyward_store::testing::TestDb::postgres().await else { return };
                super::$name(&db.store().await).await;
            })*
        }
    };
}

contract!(
    orgs_and_users_are_unique,
    key_lifecycle,
    roll_keeps_old_secret_for_the_grace_period,
    memberships_drive_grants_and_changes,
    bcrypt_imports_upgrade_once,
    usage_is_coalesced,
    audit_pages_newest_first,
    migrations_are_current,
);

async fn setup(store: &Store) -> (keyward_store::Org, keyward_store::User) {
    let org = store.create_org(&Slug::parse("acme").unwrap(), "Acme", Plan::Pro).await.unwrap();
    let user = store.create_user(&Email::parse("ada@example.com").unwrap(), "Ada", None).await.unwrap();
    store.add_member(&org.id, &Principal::user(&user.id), "member", &Actor::cli()).await.unwrap();
    (org, user)
}

fn new_key(org: &keyward_store::Org, user: &keyward_store::User, perms: Option<&str>) -> (NewApiKey, keyward_core::secret::PlainSecret) {
    let secret = SecretFormat::new("kw").unwrap().generate(SecretKind::ApiKey);
    let new = NewApiKey {
        org_id: org.id.clone(),
        principal: Principal::user(&user.id),
        name: "ci".into(),
        prefix: secret.display_prefix(),
        permissions: perms.map(|p| PermissionSet::parse(p.split(' ')).unwrap()),
        expires_at: None,
    };
    (new, secret)
}

async fn orgs_and_users_are_unique(store: &Store) {
    let (org, user) = setup(store).await;
    assert!(matches!(store.create_org(&org.slug, "Again", Plan::Free).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.create_user(&user.email, "Again", None).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.org_by_slug(&org.slug).await.unwrap(), org);
    assert_eq!(store.org_by_id(&org.id).await.unwrap().plan, Plan::Pro);
    assert!(matches!(store.org_by_slug(&Slug::parse("nope").unwrap()).await, Err(StoreError::NotFound)));
}

async fn key_lifecycle(store: &Store) {
    let (org, user) = setup(store).await;
    let (new, secret) = new_key(&org, &user, Some("projects:read"));
    let key = store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.unwrap();
    let grant = store.key_grant_by_hash(&secret.hash()).await.unwrap().expect("found by hash");
    assert_eq!(grant.key, key);
    assert_eq!(grant.role.as_deref(), Some("member"));
    assert_eq!(grant.principal_label, "ada@example.com");
    assert_eq!(grant.org_slug, org.slug);

    let mine = KeyScope { org_id: org.id.clone(), principal_id: Some(user.id.to_string()) };
    assert_eq!(store.list_api_keys(&mine, false).await.unwrap(), vec![key.clone()]);

    let other_org = store.create_org(&Slug::parse("other").unwrap(), "Other", Plan::Free).await.unwrap();
    let theirs = KeyScope { org_id: other_org.id.clone(), principal_id: None };
    assert!(store.list_api_keys(&theirs, true).await.unwrap().is_empty());
    assert!(matches!(store.revoke_api_key(Some(&theirs), &key.id, &Actor::cli()).await, Err(StoreError::NotFound)));

    let before = store.latest_change().await.unwrap();
    let revoked = store.revoke_api_key(Some(&mine), &key.id, &Actor::cli()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let changes = store.changes_after(before, 100).await.unwrap();
    assert_eq!(changes.last().unwrap().change, Change::Key(key.id.clone()));
    assert!(store.list_api_keys(&mine, false).await.unwrap().is_empty());
    assert_eq!(store.list_api_keys(&mine, true).await.unwrap().len(), 1);
    assert!(matches!(store.revoke_api_key(Some(&mine), &key.id, &Actor::cli()).await, Err(StoreError::NotFound)));
    let grant = store.key_grant_by_hash(&secret.hash()).await.unwrap().unwrap();
    assert!(grant.key.revoked_at.is_some(), "revoked keys stay recognisable");
}

async fn roll_keeps_old_secret_for_the_grace_period(store: &Store) {
    let (org, user) = setup(store).await;
    let (new, old) = new_key(&org, &user, None);
    let key = store.create_api_key(&new, &old.hash(), &Actor::cli()).await.unwrap();
    let fresh = SecretFormat::new("kw").unwrap().generate(SecretKind::ApiKey);
    let rolled = store
        .roll_api_key(None, &key.id, &fresh.hash(), &fresh.display_prefix(), Duration::seconds(60), &Actor::cli())
        .await
        .unwrap();
    assert_eq!(rolled.prefix, fresh.display_prefix());
    let old_grant = store.key_grant_by_hash(&old.hash()).await.unwrap().unwrap();
    let until = old_grant.expires_at().expect("old secret expires");
    assert!(until > Utc::now() + Duration::seconds(50) && until <= Utc::now() + Duration::seconds(61));
    assert!(store.key_grant_by_hash(&fresh.hash()).await.unwrap().unwrap().expires_at().is_none());

    let newest = SecretFormat::new("kw").unwrap().generate(SecretKind::ApiKey);
    store.roll_api_key(None, &key.id, &newest.hash(), &newest.display_prefix(), Duration::zero(), &Actor::cli()).await.unwrap();
    assert!(store.key_grant_by_hash(&old.hash()).await.unwrap().is_none());
    assert!(store.key_grant_by_hash(&fresh.hash()).await.unwrap().is_none());
    assert!(store.key_grant_by_hash(&newest.hash()).await.unwrap().is_some());
}

async fn memberships_drive_grants_and_changes(store: &Store) {
    let (org, user) = setup(store).await;
    let (new, secret) = new_key(&org, &user, None);
    store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.unwrap();
    let before = store.latest_change().await.unwrap();
    store.set_role(&org.id, user.id.as_str(), "viewer", &Actor::cli()).await.unwrap();
    assert_eq!(store.key_grant_by_hash(&secret.hash()).await.unwrap().unwrap().role.as_deref(), Some("viewer"));
    store.remove_member(&org.id, user.id.as_str(), &Actor::cli()).await.unwrap();
    assert_eq!(store.key_grant_by_hash(&secret.hash()).await.unwrap().unwrap().role, None);
    let changes: Vec<_> = store.changes_after(before, 100).await.unwrap().into_iter().map(|c| c.change).collect();
    let member = Change::Member { org_id: org.id.clone(), principal_id: user.id.to_string() };
    assert_eq!(changes, vec![member.clone(), member]);
    assert!(matches!(store.set_role(&org.id, user.id.as_str(), "owner", &Actor::cli()).await, Err(StoreError::NotFound)));
    assert!(store.members(&org.id).await.unwrap().is_empty());
}

async fn bcrypt_imports_upgrade_once(store: &Store) {
    let (org, user) = setup(store).await;
    let (new, _) = new_key(&org, &user, None);
    let bcrypt = BcryptHash::parse(&bcrypt::hash("legacy-1234", 4).unwrap()).unwrap();
    let key = store.import_api_key(&new, &ImportedHash::Bcrypt(bcrypt.clone()), &Actor::cli()).await.unwrap();
    let candidates = store.bcrypt_key_secrets().await.unwrap();
    assert_eq!(candidates, vec![(bcrypt.as_str().to_owned(), key.id.clone())]);
    let fast = SecretHash::of("legacy-1234");
    assert!(store.upgrade_bcrypt_secret(bcrypt.as_str(), &fast).await.unwrap());
    assert!(!store.upgrade_bcrypt_secret(bcrypt.as_str(), &fast).await.unwrap(), "only once");
    assert!(store.bcrypt_key_secrets().await.unwrap().is_empty());
    assert_eq!(store.key_grant_by_hash(&fast).await.unwrap().unwrap().key.id, key.id);
}

async fn usage_is_coalesced(store: &Store) {
    let (org, user) = setup(store).await;
    let (new, secret) = new_key(&org, &user, None);
    let key = store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.unwrap();
    let t = Utc::now();
    let day = t.timestamp().div_euclid(86_400);
    let batch = |requests| vec![KeyUsage { key_id: key.id.clone(), last_used_at: t, day, requests }];
    store.record_key_usage(&batch(3)).await.unwrap();
    store.record_key_usage(&batch(4)).await.unwrap();
    assert_eq!(store.key_usage_by_day(&key.id, day - 30).await.unwrap(), vec![(day, 7)]);
    let listed = store.api_key(None, &key.id).await.unwrap();
    assert_eq!(listed.last_used_at.map(|t| t.timestamp_millis()), Some(t.timestamp_millis()));
}

async fn audit_pages_newest_first(store: &Store) {
    let (org, user) = setup(store).await;
    for _ in 0..3 {
        let (new, secret) = new_key(&org, &user, None);
        store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.unwrap();
    }
    let all = store.audit_events(&org.id, None, 100).await.unwrap();
    assert_eq!(all.len(), 4, "member.added and three api_key.created");
    assert_eq!(all.last().unwrap().action, "member.added");
    let page1 = store.audit_events(&org.id, None, 2).await.unwrap();
    let page2 = store.audit_events(&org.id, Some(&page1[1].id), 2).await.unwrap();
    assert_eq!([page1, page2].concat(), all);
}

async fn migrations_are_current(store: &Store) {
    assert!(store.is_current().await.unwrap());
    store.migrate().await.expect("migrating twice is a no-op");
}
