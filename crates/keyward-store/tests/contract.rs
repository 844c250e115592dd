//! The store's contract: the same cases against SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use keyward_core::assertion::PublicKey;
use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::ids::ServiceAccountId;
use keyward_core::legacy::{BcryptHash, ImportedHash};
use keyward_core::permission::PermissionSet;
use keyward_core::secret::PlainSecret;
use keyward_core::secret::{SecretFormat, SecretHash, SecretKind};
use keyward_store::{
    Actor, Change, ClientSecretInfo, CredentialRef, HashKind, KeyScope, KeyUsage, NewApiKey, NewClientSecret,
    NewServiceAccount, NewToken, NewTokens, Principal, PrincipalKind, PurgeRules, Purged, RefreshOutcome,
    ServiceAccount, Store, StoreError,
};

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
    service_account_with_a_secret,
    service_account_with_public_keys,
    imported_bcrypt_client_secret_upgrades_once,
    two_clients_with_equal_secrets_each_keep_theirs,
    server_secrets_are_made_once,
    a_device_client_that_missed_a_slow_down_recovers,
    rotating_a_client_secret,
    deleting_a_service_account_takes_everything,
    tokens_are_found_by_hash,
    refresh_rotates_and_reuse_revokes_the_family,
    refresh_refuses_other_clients_and_expired_tokens,
    revoking_tokens,
    jti_is_single_use_per_issuer,
    concurrent_refreshes_and_jtis_have_one_winner,
    only_recent_rows_below_the_cursor_are_read_again,
    purge_removes_what_ended_and_keeps_the_rest,
    purge_keeps_a_device_while_its_family_lives,
    purge_works_in_bounded_batches,
    a_bcrypt_upgrade_keeps_a_rolled_secrets_grace,
    the_subscriber_hears_exactly_what_the_log_records,
);

/// `on_change`: every committed change reaches this process's subscriber, in the log's
/// order, and a mutation that fails or changes nothing tells it nothing.
async fn the_subscriber_hears_exactly_what_the_log_records(store: &Store) {
    let (org, user) = setup(store).await;
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Change>::new()));
    store.on_change({
        let heard = heard.clone();
        move |c| heard.lock().unwrap().push(c.clone())
    });
    let before = store.latest_change().await.unwrap();
    let (new, secret) = new_key(&org, &user, None);
    let key = store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.unwrap();
    let mine = KeyScope { org_id: org.id.clone(), principal_id: Some(user.id.to_string()) };
    store.revoke_api_key(Some(&mine), &key.id, &Actor::cli()).await.unwrap();
    // Already revoked: refused, and nothing to tell.
    assert!(store.revoke_api_key(Some(&mine), &key.id, &Actor::cli()).await.is_err());
    store.set_role(&org.id, &user.id.to_string(), "admin", &Actor::cli()).await.unwrap();
    // A clone shares the subscriber (the server hands clones to every part).
    let (again, secret) = new_key(&org, &user, None);
    store.clone().create_api_key(&again, &secret.hash(), &Actor::cli()).await.unwrap();

    let logged: Vec<Change> =
        store.changes_after(before, 100).await.unwrap().into_iter().map(|row| row.change).collect();
    assert_eq!(
        logged,
        vec![
            Change::KeyCreated,
            Change::Key(key.id.clone()),
            Change::Member { org_id: org.id.clone(), principal_id: user.id.to_string() },
            Change::KeyCreated,
        ]
    );
    assert_eq!(*heard.lock().unwrap(), logged);
}

/// `changes_since`: everything past the cursor; below it, only rows written since
/// `recent_since` (what a late PostgreSQL commit can be).
async fn only_recent_rows_below_the_cursor_are_read_again(store: &Store) {
    let (org, user) = setup(store).await;
    let before = store.latest_change().await.unwrap();
    for _ in 0..3 {
        let (new, secret) = new_key(&org, &user, None);
        let key = store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.unwrap();
        store.revoke_api_key(None, &key.id, &Actor::cli()).await.unwrap();
    }
    let all = store.changes_after(before, 100).await.unwrap();
    assert_eq!(all.len(), 6, "a key_created and a key change per key");
    let seqs: Vec<i64> = all.iter().map(|c| c.seq).collect();
    let cursor = seqs[3];
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let read = |since| async move {
        store.changes_since(before, cursor, since, 100).await.unwrap().iter().map(|c| c.seq).collect::<Vec<_>>()
    };
    assert_eq!(read(long_ago).await, seqs, "recent rows below the cursor are read again");
    assert_eq!(read(later).await, seqs[4..].to_vec(), "older ones are not: only those past the cursor");
}

async fn setup(store: &Store) -> (keyward_store::Org, keyward_store::User) {
    let org = store.create_org(&Slug::parse("acme").unwrap(), "Acme", Plan::Pro).await.unwrap();
    let user = store.create_user(&Email::parse("ada@example.com").unwrap(), "Ada", None).await.unwrap();
    store.add_member(&org.id, &Principal::user(&user.id), "member", &Actor::cli()).await.unwrap();
    (org, user)
}

fn new_key(
    org: &keyward_store::Org,
    user: &keyward_store::User,
    perms: Option<&str>,
) -> (NewApiKey, keyward_core::secret::PlainSecret) {
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
    store
        .roll_api_key(None, &key.id, &newest.hash(), &newest.display_prefix(), Duration::zero(), &Actor::cli())
        .await
        .unwrap();
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
    assert!(matches!(
        store.set_role(&org.id, user.id.as_str(), "owner", &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
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

// ---------------------------------------------------------------------------------
// Service accounts and OAuth tokens.

fn secrets() -> SecretFormat {
    SecretFormat::new("kw").unwrap()
}

fn ec_public_key(kid: Option<&str>) -> PublicKey {
    let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../keyward-core/testdata/ec_public.pem"))
        .unwrap();
    PublicKey::parse(&pem, kid).unwrap()
}

fn sha256_secret() -> (PlainSecret, NewClientSecret) {
    let plain = secrets().generate(SecretKind::ServiceAccountSecret);
    let stored = NewClientSecret::Sha256 { hash: plain.hash(), prefix: plain.display_prefix() };
    (plain, stored)
}

fn new_account(
    org: &keyward_store::Org,
    name: &str,
    secret: Option<NewClientSecret>,
    keys: Vec<PublicKey>,
) -> NewServiceAccount {
    NewServiceAccount {
        org_id: org.id.clone(),
        name: name.into(),
        role: "member".into(),
        client_id: None,
        secret,
        public_keys: keys,
    }
}

/// A service account named `ci` with a generated client secret.
async fn account_with_secret(store: &Store, org: &keyward_store::Org) -> (ServiceAccount, PlainSecret) {
    let (plain, stored) = sha256_secret();
    let account =
        store.create_service_account(&new_account(org, "ci", Some(stored), vec![]), &Actor::cli()).await.unwrap();
    (account, plain)
}

/// Millisecond precision, what the database keeps.
fn ms(t: chrono::DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn token(kind: SecretKind, ttl: Duration) -> (PlainSecret, NewToken) {
    let plain = secrets().generate(kind);
    let new = NewToken { hash: plain.hash(), prefix: plain.display_prefix(), expires_at: Utc::now() + ttl };
    (plain, new)
}

/// A grant for the account as `client_id`: an access token, and a refresh token when asked.
fn grant(account: &ServiceAccount, client_id: &str, refresh: bool) -> (NewTokens, PlainSecret, Option<PlainSecret>) {
    let (access, access_new) = token(SecretKind::AccessToken, Duration::hours(1));
    let (refresh_plain, refresh_new) = if refresh {
        let (p, n) = token(SecretKind::RefreshToken, Duration::days(30));
        (Some(p), Some(n))
    } else {
        (None, None)
    };
    let new = NewTokens {
        org_id: account.org_id.clone(),
        principal: Principal::service_account(&account.id),
        client_id: client_id.to_owned(),
        scopes: Some(PermissionSet::parse(["projects:read"]).unwrap()),
        access: access_new,
        refresh: refresh_new,
        family: None,
    };
    (new, access, refresh_plain)
}

async fn changes_since(store: &Store, before: i64) -> Vec<Change> {
    store.changes_after(before, 1000).await.unwrap().into_iter().map(|c| c.change).collect()
}

async fn service_account_with_a_secret(store: &Store) {
    let (org, _) = setup(store).await;
    let before = store.latest_change().await.unwrap();
    let (account, plain) = account_with_secret(store, &org).await;
    assert!(account.id.as_str().starts_with("sa_"), "{:?}", account.id);
    assert_eq!(account.client_id, account.id.to_string(), "without an imported client id, the id is the client id");
    assert_eq!((account.name.as_str(), account.role.as_str(), &account.org_id), ("ci", "member", &org.id));
    assert_eq!(account.secrets.len(), 1);
    assert_eq!(account.secrets[0].prefix, plain.display_prefix());
    assert_eq!(account.secrets[0].expires_at, None);
    assert!(account.public_keys.is_empty());
    assert!(changes_since(store, before).await.contains(&Change::KeyCreated), "negative caches are cleared");

    // Listing: the organization's own, never another's.
    assert_eq!(store.service_accounts(&org.id).await.unwrap(), vec![account.clone()]);
    assert_eq!(store.service_account(&org.id, &account.id).await.unwrap(), account);
    let other = store.create_org(&Slug::parse("other").unwrap(), "Other", Plan::Free).await.unwrap();
    assert!(store.service_accounts(&other.id).await.unwrap().is_empty());
    assert!(matches!(store.service_account(&other.id, &account.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.service_account(&org.id, &ServiceAccountId::generate()).await, Err(StoreError::NotFound)));

    // A member like a person, labelled by its name.
    let members = store.members(&org.id).await.unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    let sa = members.iter().find(|m| m.principal.kind == PrincipalKind::ServiceAccount).expect("listed among members");
    assert_eq!(sa.principal, Principal::service_account(&account.id));
    assert_eq!(sa.label, "ci");
    assert_eq!(sa.role, "member");
    assert!(members.iter().any(|m| m.principal.kind == PrincipalKind::User && m.label == "ada@example.com"));
    assert!(store.members(&other.id).await.unwrap().is_empty());

    // Found by the secret's hash, with everything authentication needs.
    let found = store.client_secret_grant(&account.client_id, &plain.hash()).await.unwrap().expect("found by hash");
    assert_eq!(
        found.credential,
        CredentialRef::ClientSecret { account: account.id.clone(), client_id: account.client_id.clone() }
    );
    assert_eq!(found.principal, Principal::service_account(&account.id));
    assert_eq!(found.principal_label, "ci");
    assert_eq!(found.role.as_deref(), Some("member"));
    assert_eq!((&found.org_id, &found.org_slug, found.org_plan), (&org.id, &org.slug, Plan::Pro));
    assert_eq!(found.prefix, plain.display_prefix());
    assert!(found.secret_hash.ct_eq(&plain.hash()));
    assert_eq!(found.own_permissions, None);
    assert_eq!(found.expires_at, None);
    assert!(!found.revoked);
    let stranger = secrets().generate(SecretKind::ServiceAccountSecret);
    assert!(store.client_secret_grant(&account.client_id, &stranger.hash()).await.unwrap().is_none());
    assert!(store.key_grant_by_hash(&plain.hash()).await.unwrap().is_none(), "a client secret is not an API key");

    // By client id, for the token endpoint.
    let client = store.client_by_id(&account.client_id).await.unwrap().expect("found by client id");
    assert_eq!(client.account, account);
    assert_eq!((&client.org_slug, client.org_plan), (&org.slug, Plan::Pro));
    assert_eq!(client.secret_hashes, vec![(plain.hash().to_hex(), HashKind::Sha256, None)]);
    assert!(store.client_by_id("nobody").await.unwrap().is_none());
    // A client id no column can hold (PostgreSQL's text has no NUL) names nothing.
    assert!(store.client_by_id("a\0b").await.unwrap().is_none());

    // Given a role like a person.
    store.set_role(&org.id, account.id.as_str(), "viewer", &Actor::cli()).await.unwrap();
    assert_eq!(store.service_account(&org.id, &account.id).await.unwrap().role, "viewer");
    assert_eq!(
        store.client_secret_grant(&account.client_id, &plain.hash()).await.unwrap().unwrap().role.as_deref(),
        Some("viewer")
    );
    store.set_role(&org.id, account.id.as_str(), "member", &Actor::cli()).await.unwrap();

    // A second account with the same imported client id is refused.
    let mut dup = new_account(&org, "dup", Some(sha256_secret().1), vec![]);
    dup.client_id = Some(account.client_id.clone());
    assert!(matches!(store.create_service_account(&dup, &Actor::cli()).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.service_accounts(&org.id).await.unwrap().len(), 1, "nothing of the refused account remains");
    assert_eq!(store.members(&org.id).await.unwrap().len(), 2);
}

async fn service_account_with_public_keys(store: &Store) {
    let (org, _) = setup(store).await;
    let first = ec_public_key(None);
    let account = store
        .create_service_account(&new_account(&org, "signer", None, vec![first.clone()]), &Actor::cli())
        .await
        .unwrap();
    assert!(account.secrets.is_empty(), "no secret was asked for");
    assert_eq!(account.public_keys, vec![first.clone()]);
    assert_eq!(store.service_account(&org.id, &account.id).await.unwrap().public_keys, vec![first.clone()]);
    let client = store.client_by_id(&account.client_id).await.unwrap().unwrap();
    assert!(client.secret_hashes.is_empty());
    assert_eq!(client.account.public_keys, vec![first.clone()]);

    // Another key under its own kid; the same kid again is a conflict.
    let second = ec_public_key(Some("second"));
    let after = store.add_public_key(&org.id, &account.id, &second, &Actor::cli()).await.unwrap();
    assert_eq!(after.public_keys.len(), 2);
    assert!(after.public_keys.contains(&second) && after.public_keys.contains(&first));
    assert!(matches!(
        store.add_public_key(&org.id, &account.id, &second, &Actor::cli()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_public_key(&org.id, &account.id, &first, &Actor::cli()).await,
        Err(StoreError::Conflict(_))
    ));
    let other = store.create_org(&Slug::parse("other").unwrap(), "Other", Plan::Free).await.unwrap();
    let third = ec_public_key(Some("third"));
    assert!(matches!(
        store.add_public_key(&other.id, &account.id, &third, &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.service_account(&org.id, &account.id).await.unwrap().public_keys.len(), 2);

    // Removing: an unknown kid, or another organization's account, is NotFound.
    assert!(matches!(
        store.remove_public_key(&org.id, &account.id, "unknown", &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.remove_public_key(&other.id, &account.id, "second", &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.remove_public_key(&org.id, &account.id, "sec\0ond", &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
    store.remove_public_key(&org.id, &account.id, "second", &Actor::cli()).await.unwrap();
    assert_eq!(store.service_account(&org.id, &account.id).await.unwrap().public_keys, vec![first.clone()]);
    assert!(matches!(
        store.remove_public_key(&org.id, &account.id, "second", &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
}

async fn imported_bcrypt_client_secret_upgrades_once(store: &Store) {
    let (org, _) = setup(store).await;
    let plain = "legacy-client-secret-0123456789";
    let bcrypt = BcryptHash::parse(&bcrypt::hash(plain, 4).unwrap()).unwrap();
    let mut new = new_account(&org, "legacy", Some(NewClientSecret::Bcrypt(bcrypt.clone())), vec![]);
    new.client_id = Some("legacy".into());
    let account = store.create_service_account(&new, &Actor::cli()).await.unwrap();
    assert_eq!(account.client_id, "legacy");
    assert_ne!(account.id.to_string(), "legacy");
    assert_eq!(account.secrets.len(), 1);
    assert_eq!(account.secrets[0].prefix.as_str(), "", "nothing of an imported secret is known");

    let client = store.client_by_id("legacy").await.unwrap().expect("found by the imported client id");
    assert_eq!(client.account.id, account.id);
    assert_eq!(client.secret_hashes, vec![(bcrypt.as_str().to_owned(), HashKind::Bcrypt, None)]);
    assert!(store.client_by_id(account.id.as_str()).await.unwrap().is_none(), "the client id is the imported one");
    let fast = SecretHash::of(plain);
    assert!(
        store.client_secret_grant(&account.client_id, &fast).await.unwrap().is_none(),
        "bcrypt secrets are not found by hash"
    );

    assert!(store.upgrade_client_secret(&account.id, bcrypt.as_str(), &fast).await.unwrap());
    assert!(!store.upgrade_client_secret(&account.id, bcrypt.as_str(), &fast).await.unwrap(), "only once");
    let client = store.client_by_id("legacy").await.unwrap().unwrap();
    assert_eq!(client.secret_hashes, vec![(fast.to_hex(), HashKind::Sha256, None)]);
    let found =
        store.client_secret_grant(&account.client_id, &fast).await.unwrap().expect("found by its fast hash now");
    assert_eq!(
        found.credential,
        CredentialRef::ClientSecret { account: account.id.clone(), client_id: "legacy".into() }
    );
    assert_eq!(found.role.as_deref(), Some("member"));
    let listed = store.service_account(&org.id, &account.id).await.unwrap();
    assert_eq!(listed.secrets.len(), 1, "upgraded, not added");
    assert_eq!(listed.secrets[0].created_at, account.secrets[0].created_at, "the secret keeps its creation time");
}

/// Two imported clients whose plain secrets are equal: once both are upgraded, each
/// holds the same fast hash, and a client id always finds its own account.
async fn two_clients_with_equal_secrets_each_keep_theirs(store: &Store) {
    let (org, _) = setup(store).await;
    let plain = "shared-legacy-secret";
    let mut accounts = Vec::new();
    for id in ["client-a", "client-b"] {
        let bcrypt = BcryptHash::parse(&bcrypt::hash(plain, 4).unwrap()).unwrap();
        let mut new = new_account(&org, id, Some(NewClientSecret::Bcrypt(bcrypt.clone())), vec![]);
        new.client_id = Some(id.into());
        accounts.push((store.create_service_account(&new, &Actor::cli()).await.unwrap(), bcrypt));
    }
    let fast = SecretHash::of(plain);
    for (account, bcrypt) in &accounts {
        assert!(
            store.upgrade_client_secret(&account.id, bcrypt.as_str(), &fast).await.unwrap(),
            "{}",
            account.client_id
        );
    }
    for (account, _) in &accounts {
        let found = store.client_secret_grant(&account.client_id, &fast).await.unwrap().expect("found");
        assert_eq!(
            found.credential,
            CredentialRef::ClientSecret { account: account.id.clone(), client_id: account.client_id.clone() }
        );
    }
    // Another account's bcrypt row is not upgraded through this one.
    let (a, _) = &accounts[0];
    let (_, b_bcrypt) = &accounts[1];
    assert!(!store.upgrade_client_secret(&a.id, b_bcrypt.as_str(), &fast).await.unwrap());
    assert!(store.client_secret_grant("nobody", &fast).await.unwrap().is_none());
}

/// The deployment's own secrets: the first candidate is kept, every later one reads it.
async fn server_secrets_are_made_once(store: &Store) {
    assert_eq!(store.server_secret("csrf", "first").await.unwrap(), "first");
    assert_eq!(store.server_secret("csrf", "second").await.unwrap(), "first");
    assert_eq!(store.server_secret("other", "x").await.unwrap(), "x");
    let (a, b) = tokio::join!(store.server_secret("raced", "a"), store.server_secret("raced", "b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both read the one stored");
}

/// RFC 8628 §3.5 from the client's side, on the store's clock: a client that missed one
/// `slow_down` (so its interval is 5 s short of the code's) and then adds 5 s per
/// `slow_down` it sees is answered `authorization_pending` again, because a poll answered
/// `slow_down` does not restart the clock.
async fn a_device_client_that_missed_a_slow_down_recovers(store: &Store) {
    use keyward_store::{DevicePoll, NewDeviceAuthorization};
    let code = secrets().generate(SecretKind::DeviceCode);
    let t0 = Utc::now();
    let new = NewDeviceAuthorization {
        code_hash: code.hash(),
        user_code: keyward_core::device::UserCode::generate(),
        client_id: "cli".into(),
        scopes: None,
        interval: Duration::seconds(5),
        expires_at: t0 + Duration::minutes(10),
    };
    store.create_device_authorization(&new).await.unwrap();
    let hash = code.hash();
    let poll =
        |at: i64| async move { store.poll_device(&hash, "cli", t0 + Duration::seconds(at), |_| None).await.unwrap().0 };
    assert_eq!(poll(0).await, DevicePoll::Pending);
    // A retry 2 s later: slow_down (the code's interval is now 10 s), lost on the way.
    assert_eq!(poll(2).await, DevicePoll::SlowDown);
    // The client still waits 5 s: slow_down (15 s), which it sees, so it waits 10 s.
    assert_eq!(poll(7).await, DevicePoll::SlowDown);
    // 17 s after the last poll in time: welcome (a restarted clock would say 10 s < 15 s).
    assert_eq!(poll(17).await, DevicePoll::Pending);
    // Still 5 s short of the code's 15 s, the client is told again, and keeps up.
    assert_eq!(poll(27).await, DevicePoll::SlowDown);
    assert_eq!(poll(42).await, DevicePoll::Pending);
}

async fn rotating_a_client_secret(store: &Store) {
    let (org, _) = setup(store).await;
    let (account, old) = account_with_secret(store, &org).await;
    let other = store.create_org(&Slug::parse("other").unwrap(), "Other", Plan::Free).await.unwrap();
    let (_, stray) = sha256_secret();
    assert!(matches!(
        store.rotate_client_secret(&other.id, &account.id, &stray, Duration::zero(), &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store.client_secret_grant(&account.client_id, &old.hash()).await.unwrap().is_some(),
        "a refused rotation changes nothing"
    );

    // With a grace period the old secret gets an expiry; the new one has none.
    let before = store.latest_change().await.unwrap();
    let (fresh, stored) = sha256_secret();
    let rotated =
        store.rotate_client_secret(&org.id, &account.id, &stored, Duration::seconds(60), &Actor::cli()).await.unwrap();
    assert_eq!(rotated.secrets.len(), 2, "{:?}", rotated.secrets);
    let old_grant =
        store.client_secret_grant(&account.client_id, &old.hash()).await.unwrap().expect("old secret still valid");
    let until = old_grant.expires_at.expect("the old secret expires");
    assert!(until > Utc::now() + Duration::seconds(50) && until <= Utc::now() + Duration::seconds(61), "{until}");
    assert_eq!(
        store.client_secret_grant(&account.client_id, &fresh.hash()).await.unwrap().expect("new secret").expires_at,
        None
    );
    let old_info = rotated.secrets.iter().find(|s| s.prefix == old.display_prefix()).expect("old listed");
    assert_eq!(old_info.expires_at.map(ms), Some(ms(until)));
    let new_info: &ClientSecretInfo =
        rotated.secrets.iter().find(|s| s.prefix == fresh.display_prefix()).expect("new listed");
    assert_eq!(new_info.expires_at, None);
    let mut hashes = store.client_by_id(&account.client_id).await.unwrap().unwrap().secret_hashes;
    hashes.sort();
    let mut want =
        vec![(old.hash().to_hex(), HashKind::Sha256, Some(until)), (fresh.hash().to_hex(), HashKind::Sha256, None)];
    want.sort();
    assert_eq!(hashes, want);
    let changes = changes_since(store, before).await;
    assert!(
        changes.contains(&Change::Member { org_id: org.id.clone(), principal_id: account.id.to_string() }),
        "cached grants of the old secret are dropped: {changes:?}"
    );

    // Without one, every old secret is gone at once.
    let (newest, stored) = sha256_secret();
    let rotated =
        store.rotate_client_secret(&org.id, &account.id, &stored, Duration::zero(), &Actor::cli()).await.unwrap();
    assert_eq!(rotated.secrets.len(), 1);
    assert_eq!(rotated.secrets[0].prefix, newest.display_prefix());
    assert!(store.client_secret_grant(&account.client_id, &old.hash()).await.unwrap().is_none(), "old hash gone");
    assert!(
        store.client_secret_grant(&account.client_id, &fresh.hash()).await.unwrap().is_none(),
        "previous hash gone"
    );
    assert!(store.client_secret_grant(&account.client_id, &newest.hash()).await.unwrap().is_some());
    assert_eq!(
        store.client_by_id(&account.client_id).await.unwrap().unwrap().secret_hashes,
        vec![(newest.hash().to_hex(), HashKind::Sha256, None)]
    );
}

async fn deleting_a_service_account_takes_everything(store: &Store) {
    let (org, user) = setup(store).await;
    let (account, secret) = account_with_secret(store, &org).await;
    let (kept, _) = account_with_secret(store, &org).await;
    // An API key of the account's, and one of a person's that must survive.
    let key_secret = secrets().generate(SecretKind::ApiKey);
    let new = NewApiKey {
        org_id: org.id.clone(),
        principal: Principal::service_account(&account.id),
        name: "sa key".into(),
        prefix: key_secret.display_prefix(),
        permissions: None,
        expires_at: None,
    };
    let key = store.create_api_key(&new, &key_secret.hash(), &Actor::cli()).await.unwrap();
    let (user_key, user_secret) = new_key(&org, &user, None);
    let user_key = store.create_api_key(&user_key, &user_secret.hash(), &Actor::cli()).await.unwrap();
    // Tokens: a client-credentials access token and an access/refresh pair.
    let (cc, cc_access, _) = grant(&account, &account.client_id, false);
    store.issue_tokens(&cc).await.unwrap();
    let (pair, pair_access, pair_refresh) = grant(&account, &account.client_id, true);
    let pair_refresh = pair_refresh.unwrap();
    store.issue_tokens(&pair).await.unwrap();
    let (kept_tokens, kept_access, _) = grant(&kept, &kept.client_id, false);
    store.issue_tokens(&kept_tokens).await.unwrap();

    let other = store.create_org(&Slug::parse("other").unwrap(), "Other", Plan::Free).await.unwrap();
    assert!(matches!(
        store.delete_service_account(&other.id, &account.id, &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store.client_secret_grant(&account.client_id, &secret.hash()).await.unwrap().is_some(),
        "another org cannot delete it"
    );

    let before = store.latest_change().await.unwrap();
    store.delete_service_account(&org.id, &account.id, &Actor::cli()).await.unwrap();

    let member = Change::Member { org_id: org.id.clone(), principal_id: account.id.to_string() };
    let changes = changes_since(store, before).await;
    assert!(changes.contains(&member), "a member change is written: {changes:?}");

    let members = store.members(&org.id).await.unwrap();
    assert!(!members.iter().any(|m| m.principal.id == account.id.as_str()), "membership gone: {members:?}");
    assert!(members.iter().any(|m| m.principal.id == kept.id.as_str()), "the other account stays");
    assert_eq!(
        store.service_accounts(&org.id).await.unwrap(),
        vec![store.service_account(&org.id, &kept.id).await.unwrap()]
    );
    assert!(matches!(store.service_account(&org.id, &account.id).await, Err(StoreError::NotFound)));
    assert!(
        store.client_secret_grant(&account.client_id, &secret.hash()).await.unwrap().is_none(),
        "its secret no longer grants"
    );
    assert!(store.client_by_id(&account.client_id).await.unwrap().is_none());

    // Its API keys are revoked; a person's are not.
    assert!(store.api_key(None, &key.id).await.unwrap().revoked_at.is_some(), "its api key is revoked");
    let key_grant = store.key_grant_by_hash(&key_secret.hash()).await.unwrap();
    assert!(key_grant.is_none_or(|g| g.key.revoked_at.is_some()));
    assert!(store.api_key(None, &user_key.id).await.unwrap().revoked_at.is_none(), "a person's key is untouched");

    // Its tokens are revoked; another account's are not.
    for plain in [&cc_access, &pair_access, &pair_refresh] {
        let info = store.token_by_hash(&plain.hash()).await.unwrap().expect("the token row stays");
        assert!(info.revoked, "{} token revoked", info.kind);
    }
    for plain in [&cc_access, &pair_access] {
        let g = store.token_grant_by_hash(&plain.hash()).await.unwrap().unwrap();
        assert!(g.revoked);
        assert_eq!(g.role, None, "no longer a member");
    }
    let (outcome, issued) = store
        .refresh_tokens(&pair_refresh.hash(), &account.client_id, Utc::now(), |_| panic!("nothing is issued"))
        .await
        .unwrap();
    assert_eq!((outcome, issued), (RefreshOutcome::Invalid, None));
    assert!(!store.token_grant_by_hash(&kept_access.hash()).await.unwrap().unwrap().revoked);
    assert!(store
        .client_secret_grant(&kept.client_id, &store_secret_hash_of(store, &kept).await)
        .await
        .unwrap()
        .is_some());

    assert!(matches!(
        store.delete_service_account(&org.id, &account.id, &Actor::cli()).await,
        Err(StoreError::NotFound)
    ));
}

/// The one stored sha256 hash of an account's secret.
async fn store_secret_hash_of(store: &Store, account: &ServiceAccount) -> SecretHash {
    let client = store.client_by_id(&account.client_id).await.unwrap().unwrap();
    assert_eq!(client.secret_hashes.len(), 1);
    SecretHash::from_hex(&client.secret_hashes[0].0).unwrap()
}

async fn tokens_are_found_by_hash(store: &Store) {
    let (org, _) = setup(store).await;
    let (account, _) = account_with_secret(store, &org).await;
    let (new, access, refresh) = grant(&account, &account.client_id, true);
    let refresh = refresh.unwrap();
    let issued = store.issue_tokens(&new).await.unwrap();
    assert!(issued.refresh_id.is_some());
    assert_ne!(Some(&issued.access_id), issued.refresh_id.as_ref());

    let found = store.token_grant_by_hash(&access.hash()).await.unwrap().expect("access token found");
    assert_eq!(
        found.credential,
        CredentialRef::AccessToken {
            id: issued.access_id.clone(),
            family: issued.family.clone(),
            client_id: account.client_id.clone()
        }
    );
    assert_eq!(found.principal, Principal::service_account(&account.id));
    assert_eq!(found.principal_label, "ci");
    assert_eq!(found.role.as_deref(), Some("member"));
    assert_eq!((&found.org_id, &found.org_slug, found.org_plan), (&org.id, &org.slug, Plan::Pro));
    assert_eq!(found.own_permissions, new.scopes);
    assert_eq!(found.prefix, access.display_prefix());
    assert!(found.secret_hash.ct_eq(&access.hash()));
    assert_eq!(found.expires_at.map(ms), Some(ms(new.access.expires_at)));
    assert!(!found.revoked);

    assert!(store.token_grant_by_hash(&refresh.hash()).await.unwrap().is_none(), "a refresh token is not a grant");
    assert!(store.token_grant_by_hash(&secrets().generate(SecretKind::AccessToken).hash()).await.unwrap().is_none());

    let info = store.token_by_hash(&refresh.hash()).await.unwrap().expect("refresh token known");
    assert_eq!(info.kind, "refresh");
    assert_eq!(Some(&info.id), issued.refresh_id.as_ref());
    assert_eq!(info.family, issued.family);
    assert_eq!(info.client_id, account.client_id);
    assert_eq!(info.principal_label, "ci");
    assert_eq!(info.scopes, new.scopes);
    assert_eq!(ms(info.expires_at), ms(new.refresh.as_ref().unwrap().expires_at));
    assert!(!info.used && !info.revoked);
    assert_eq!(store.token_by_hash(&access.hash()).await.unwrap().unwrap().kind, "access");

    // Client credentials: an access token alone, in a family of its own.
    let (cc, cc_access, _) = grant(&account, &account.client_id, false);
    let cc = NewTokens { scopes: None, ..cc };
    let only = store.issue_tokens(&cc).await.unwrap();
    assert_eq!(only.refresh_id, None);
    assert_ne!(only.family, issued.family);
    assert_eq!(store.token_grant_by_hash(&cc_access.hash()).await.unwrap().unwrap().own_permissions, None);

    // The same secret twice is refused.
    assert!(matches!(store.issue_tokens(&cc).await, Err(StoreError::Conflict(_))));
}

async fn refresh_rotates_and_reuse_revokes_the_family(store: &Store) {
    let (org, _) = setup(store).await;
    let (account, _) = account_with_secret(store, &org).await;
    let (new, first_access, first_refresh) = grant(&account, &account.client_id, true);
    let first_refresh = first_refresh.unwrap();
    let issued = store.issue_tokens(&new).await.unwrap();

    let (next, second_access, second_refresh) = grant(&account, &account.client_id, true);
    let second_refresh = second_refresh.unwrap();
    let mut seen = None;
    let (outcome, exchanged) = store
        .refresh_tokens(&first_refresh.hash(), &account.client_id, Utc::now(), |g| {
            seen = Some(g.clone());
            Some(next)
        })
        .await
        .unwrap();
    let RefreshOutcome::Exchanged(refreshed) = outcome else { panic!("exchanged, got {outcome:?}") };
    assert_eq!(Some(&refreshed), seen.as_ref(), "the callback saw the grant returned");
    assert_eq!(refreshed.family, issued.family);
    assert_eq!(refreshed.org_id, org.id);
    assert_eq!(refreshed.principal, Principal::service_account(&account.id));
    assert_eq!(refreshed.scopes, new.scopes);
    assert_eq!(refreshed.role.as_deref(), Some("member"));
    let exchanged = exchanged.expect("a new pair");
    assert_eq!(exchanged.family, issued.family, "the new pair joins the family");
    assert!(exchanged.refresh_id.is_some());
    assert!(store.token_by_hash(&first_refresh.hash()).await.unwrap().unwrap().used);
    let new_info = store.token_by_hash(&second_refresh.hash()).await.unwrap().unwrap();
    assert_eq!(new_info.family, issued.family);
    assert!(!new_info.used && !new_info.revoked);
    assert!(!store.token_grant_by_hash(&second_access.hash()).await.unwrap().unwrap().revoked);
    assert!(
        !store.token_grant_by_hash(&first_access.hash()).await.unwrap().unwrap().revoked,
        "an exchange revokes nothing"
    );

    // The used token again: reuse; the whole family is revoked.
    let before = store.latest_change().await.unwrap();
    let (outcome, issued_again) = store
        .refresh_tokens(&first_refresh.hash(), &account.client_id, Utc::now(), |_| panic!("nothing is issued on reuse"))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused(issued.family.clone()));
    assert_eq!(issued_again, None);
    for plain in [&first_access, &first_refresh, &second_access, &second_refresh] {
        let info = store.token_by_hash(&plain.hash()).await.unwrap().unwrap();
        assert!(info.revoked, "{} token {:?} of the family is revoked", info.kind, info.id);
    }
    assert!(store.token_grant_by_hash(&second_access.hash()).await.unwrap().unwrap().revoked);
    assert!(changes_since(store, before).await.contains(&Change::Tokens(issued.family.clone())));
    let (outcome, _) = store
        .refresh_tokens(&second_refresh.hash(), &account.client_id, Utc::now(), |_| panic!("revoked"))
        .await
        .unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid, "the newest refresh token died with its family");
}

async fn refresh_refuses_other_clients_and_expired_tokens(store: &Store) {
    let (org, _) = setup(store).await;
    let (account, _) = account_with_secret(store, &org).await;
    let (new, _, refresh) = grant(&account, &account.client_id, true);
    let refresh = refresh.unwrap();
    store.issue_tokens(&new).await.unwrap();
    let never = |_: &keyward_store::RefreshedGrant| -> Option<NewTokens> { panic!("nothing is issued") };

    // Another client: Invalid, and the token is left as it was.
    let (outcome, issued) = store.refresh_tokens(&refresh.hash(), "someone-else", Utc::now(), never).await.unwrap();
    assert_eq!((outcome, issued), (RefreshOutcome::Invalid, None));
    let info = store.token_by_hash(&refresh.hash()).await.unwrap().unwrap();
    assert!(!info.used && !info.revoked, "another client's attempt changes nothing");

    // Presented after its expiry: Invalid.
    let late = new.refresh.as_ref().unwrap().expires_at + Duration::seconds(1);
    let (outcome, _) = store.refresh_tokens(&refresh.hash(), &account.client_id, late, never).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid);
    let (expired_new, _, expired) = grant(&account, &account.client_id, true);
    let expired = expired.unwrap();
    let mut expired_new = expired_new;
    expired_new.refresh.as_mut().unwrap().expires_at = Utc::now() - Duration::seconds(1);
    store.issue_tokens(&expired_new).await.unwrap();
    let (outcome, _) = store.refresh_tokens(&expired.hash(), &account.client_id, Utc::now(), never).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid, "an expired refresh token");
    assert!(!store.token_by_hash(&expired.hash()).await.unwrap().unwrap().revoked, "expiry is not reuse");

    // Unknown, or an access token presented as a refresh token: Invalid.
    let unknown = secrets().generate(SecretKind::RefreshToken);
    let (outcome, _) = store.refresh_tokens(&unknown.hash(), &account.client_id, Utc::now(), never).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid);
    let access_plain = secrets().generate(SecretKind::AccessToken);
    let mut access_only = grant(&account, &account.client_id, false).0;
    access_only.access.hash = access_plain.hash();
    store.issue_tokens(&access_only).await.unwrap();
    let (outcome, _) = store.refresh_tokens(&access_plain.hash(), &account.client_id, Utc::now(), never).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Invalid, "an access token is not a refresh token");

    // Nothing to issue: Invalid, and the token stays unused.
    let (outcome, issued) =
        store.refresh_tokens(&refresh.hash(), &account.client_id, Utc::now(), |_| None).await.unwrap();
    assert_eq!((outcome, issued), (RefreshOutcome::Invalid, None));
    assert!(!store.token_by_hash(&refresh.hash()).await.unwrap().unwrap().used, "left unused");

    // The right client, in time: exchanged.
    let (next, _, _) = grant(&account, &account.client_id, true);
    let (outcome, issued) =
        store.refresh_tokens(&refresh.hash(), &account.client_id, Utc::now(), |_| Some(next)).await.unwrap();
    assert!(matches!(outcome, RefreshOutcome::Exchanged(_)), "{outcome:?}");
    assert!(issued.is_some());
}

async fn revoking_tokens(store: &Store) {
    let (org, _) = setup(store).await;
    let (account, _) = account_with_secret(store, &org).await;
    let client = account.client_id.clone();
    let (first, first_access, first_refresh) = grant(&account, &client, true);
    let first_refresh = first_refresh.unwrap();
    let first = store.issue_tokens(&first).await.unwrap();
    let (second, second_access, second_refresh) = grant(&account, &client, true);
    let second_refresh = second_refresh.unwrap();
    let second = store.issue_tokens(&second).await.unwrap();
    let revoked = |plain: &PlainSecret| {
        let hash = plain.hash();
        async move { store.token_by_hash(&hash).await.unwrap().unwrap().revoked }
    };

    // An access token alone.
    let before = store.latest_change().await.unwrap();
    assert_eq!(store.revoke_token(&first_access.hash(), &client).await.unwrap(), Some(first.family.clone()));
    assert!(revoked(&first_access).await);
    assert!(!revoked(&first_refresh).await, "revoking an access token leaves its refresh token");
    assert!(store.token_grant_by_hash(&first_access.hash()).await.unwrap().unwrap().revoked);
    assert_eq!(store.revoke_token(&first_access.hash(), &client).await.unwrap(), None, "already revoked");
    assert!(changes_since(store, before).await.contains(&Change::Tokens(first.family.clone())));

    // Another client's token: nothing matches, nothing is revoked.
    assert_eq!(store.revoke_token(&second_refresh.hash(), "someone-else").await.unwrap(), None);
    assert_eq!(store.revoke_token(&second_access.hash(), "someone-else").await.unwrap(), None);
    assert!(!revoked(&second_refresh).await && !revoked(&second_access).await);

    // A refresh token takes its whole family, and only its family.
    let before = store.latest_change().await.unwrap();
    assert_eq!(store.revoke_token(&second_refresh.hash(), &client).await.unwrap(), Some(second.family.clone()));
    assert!(revoked(&second_refresh).await);
    assert!(revoked(&second_access).await, "the family's access token goes with it");
    assert!(!revoked(&first_refresh).await, "another family is untouched");
    assert!(changes_since(store, before).await.contains(&Change::Tokens(second.family.clone())));

    // Unknown: None.
    assert_eq!(store.revoke_token(&secrets().generate(SecretKind::AccessToken).hash(), &client).await.unwrap(), None);
}

async fn jti_is_single_use_per_issuer(store: &Store) {
    let until = Utc::now() + Duration::seconds(60);
    assert!(store.use_jti("client-a", "jti-1", until).await.unwrap(), "first use");
    assert!(!store.use_jti("client-a", "jti-1", until).await.unwrap(), "a replay");
    assert!(!store.use_jti("client-a", "jti-1", until).await.unwrap(), "still a replay");
    assert!(store.use_jti("client-b", "jti-1", until).await.unwrap(), "another issuer's id is its own");
    assert!(store.use_jti("client-a", "jti-2", until).await.unwrap());
    // An id whose assertion expired is pruned, so the table does not grow for ever.
    assert!(store.use_jti("client-a", "old", Utc::now() - Duration::seconds(1)).await.unwrap());
    assert!(store.use_jti("client-a", "old", until).await.unwrap(), "expired ids are pruned");
    assert!(!store.use_jti("client-a", "old", until).await.unwrap());
    // The store works normally after a refused insert (PostgreSQL aborts that transaction).
    assert!(store.is_current().await.unwrap());
}

async fn concurrent_refreshes_and_jtis_have_one_winner(store: &Store) {
    let (org, _) = setup(store).await;
    let (account, _) = account_with_secret(store, &org).await;
    let (new, _, refresh) = grant(&account, &account.client_id, true);
    let refresh = refresh.unwrap();
    let issued = store.issue_tokens(&new).await.unwrap();
    let (one, _, _) = grant(&account, &account.client_id, true);
    let (two, _, _) = grant(&account, &account.client_id, true);
    let hash = refresh.hash();
    let (x, y) = tokio::join!(
        store.refresh_tokens(&hash, &account.client_id, Utc::now(), |_| Some(one)),
        store.refresh_tokens(&hash, &account.client_id, Utc::now(), |_| Some(two)),
    );
    let mut outcomes = [x.unwrap().0, y.unwrap().0];
    outcomes.sort_by_key(|o| matches!(o, RefreshOutcome::Exchanged(_)));
    assert_eq!(outcomes[0], RefreshOutcome::Reused(issued.family.clone()), "{outcomes:?}");
    assert!(matches!(outcomes[1], RefreshOutcome::Exchanged(_)), "exactly one exchange: {outcomes:?}");
    assert!(store.token_by_hash(&hash).await.unwrap().unwrap().revoked, "the race revoked the family");

    let until = Utc::now() + Duration::seconds(60);
    let (x, y) = tokio::join!(store.use_jti("client-a", "raced", until), store.use_jti("client-a", "raced", until));
    let mut results = [x.unwrap(), y.unwrap()];
    results.sort();
    assert_eq!(results, [false, true], "one use, one replay");
}

fn purge_rules(ended_before: chrono::DateTime<Utc>) -> PurgeRules {
    PurgeRules { ended_before, jtis_expired_before: Utc::now(), batch_size: 100, max_batches: 10 }
}

async fn stored(store: &Store, secret: &PlainSecret) -> bool {
    store.token_by_hash(&secret.hash()).await.unwrap().is_some()
}

/// Ended rows go, live ones stay; a family goes only when every token of it ended, so a
/// used refresh token stays as long as its family can still be revoked by its reuse.
async fn purge_removes_what_ended_and_keeps_the_rest(store: &Store) {
    let (org, user) = setup(store).await;
    let (account, _) = account_with_secret(store, &org).await;
    let client = account.client_id.clone();
    let now = Utc::now();
    // An access token that expired two hours ago, alone in its family.
    let (mut old, old_access, _) = grant(&account, &client, false);
    old.access.expires_at = now - Duration::hours(2);
    store.issue_tokens(&old).await.unwrap();
    // A family whose access token expired but whose refresh token lives.
    let (mut half, half_access, half_refresh) = grant(&account, &client, true);
    half.access.expires_at = now - Duration::hours(2);
    store.issue_tokens(&half).await.unwrap();
    // A family rotated once: its first refresh token is used, the second lives.
    let (first, first_access, first_refresh) = grant(&account, &client, true);
    store.issue_tokens(&first).await.unwrap();
    let (second, second_access, second_refresh) = grant(&account, &client, true);
    let first_refresh = first_refresh.unwrap();
    let (outcome, _) =
        store.refresh_tokens(&first_refresh.hash(), &client, Utc::now(), |_| Some(second)).await.unwrap();
    assert!(matches!(outcome, RefreshOutcome::Exchanged(_)));
    // A live token, and a family revoked just now.
    let (live, live_access, _) = grant(&account, &client, false);
    store.issue_tokens(&live).await.unwrap();
    let (gone, gone_access, gone_refresh) = grant(&account, &client, true);
    store.issue_tokens(&gone).await.unwrap();
    assert!(store.revoke_token(&gone_refresh.as_ref().unwrap().hash(), &client).await.unwrap().is_some());
    // Device codes: one expired two hours ago, one live.
    let code = |expires_at| keyward_store::NewDeviceAuthorization {
        code_hash: secrets().generate(SecretKind::AccessToken).hash(),
        user_code: keyward_core::device::UserCode::generate(),
        client_id: "keyward-cli".into(),
        scopes: None,
        interval: Duration::seconds(5),
        expires_at,
    };
    store.create_device_authorization(&code(now - Duration::hours(2))).await.unwrap();
    store.create_device_authorization(&code(now + Duration::minutes(10))).await.unwrap();
    // Used JWT ids: one whose assertion expired, one still acceptable.
    // (Another issuer for the old one: recording an id prunes its issuer's expired ids.)
    assert!(store.use_jti("other-issuer", "old", now - Duration::minutes(1)).await.unwrap());
    assert!(store.use_jti("issuer", "new", now + Duration::minutes(5)).await.unwrap());
    // Browser sessions: one ended a minute ago, one live (of another person: starting a
    // session prunes the person's ended ones).
    let other = store.create_user(&Email::parse("bob@example.com").unwrap(), "Bob", None).await.unwrap();
    store.create_web_session(&SecretHash::of("ended"), &other.id, now - Duration::minutes(1)).await.unwrap();
    store.create_web_session(&SecretHash::of("live"), &user.id, now + Duration::hours(1)).await.unwrap();

    // An hour of retention: only what ended before that goes.
    let purged = store.purge(&purge_rules(now - Duration::hours(1))).await.unwrap();
    assert_eq!(
        purged,
        Purged { oauth_tokens: 1, device_authorizations: 1, assertion_jtis: 1, web_sessions: 0 },
        "the first pass"
    );
    assert!(!stored(store, &old_access).await, "the family that ended two hours ago");
    for (what, t) in [
        ("an expired access token of a live family", &half_access),
        ("the live refresh token", half_refresh.as_ref().unwrap()),
        ("a used refresh token of a live family", &first_refresh),
        ("the first access token of a live family", &first_access),
        ("the family's newest access token", &second_access),
        ("the family's newest refresh token", second_refresh.as_ref().unwrap()),
        ("a live token", &live_access),
        ("a family revoked within the retention", &gone_access),
    ] {
        assert!(stored(store, t).await, "{what} stays");
    }
    assert!(!store.use_jti("issuer", "new", now + Duration::minutes(5)).await.unwrap(), "a live jti stays used");
    assert_eq!(store.row_count("device_authorizations").await, 1, "the live code stays");
    assert_eq!(store.row_count("web_sessions").await, 2, "sessions ended within the retention stay");

    // No retention: the revoked family and the ended session go too, nothing live does.
    let purged = store.purge(&purge_rules(Utc::now() + Duration::seconds(1))).await.unwrap();
    assert_eq!(purged.oauth_tokens, 2, "the revoked family's two tokens: {purged:?}");
    assert_eq!(purged.web_sessions, 1);
    assert!(!stored(store, &gone_access).await && !stored(store, gone_refresh.as_ref().unwrap()).await);
    assert!(stored(store, &first_refresh).await, "the used token of a live family still stays");
    assert!(stored(store, &half_access).await, "so does an expired token of a live family");
    assert_eq!(store.row_count("web_sessions").await, 1, "the live session stays");
    assert!(store.web_session(&SecretHash::of("live")).await.unwrap().is_some());

    // Reuse still revokes the family, which then goes whole.
    let (outcome, _) = store.refresh_tokens(&first_refresh.hash(), &client, Utc::now(), |_| None).await.unwrap();
    assert!(matches!(outcome, RefreshOutcome::Reused(_)), "{outcome:?}");
    let purged = store.purge(&purge_rules(Utc::now() + Duration::seconds(1))).await.unwrap();
    assert_eq!(purged.oauth_tokens, 4, "the rotated family: {purged:?}");
    assert_eq!(store.purge(&purge_rules(Utc::now() + Duration::seconds(1))).await.unwrap(), Purged::default());
}

/// A redeemed device code is a signed-in device: it stays while its family has a token.
async fn purge_keeps_a_device_while_its_family_lives(store: &Store) {
    let (org, user) = setup(store).await;
    let user_code = keyward_core::device::UserCode::generate();
    let device_code = secrets().generate(SecretKind::AccessToken);
    store
        .create_device_authorization(&keyward_store::NewDeviceAuthorization {
            code_hash: device_code.hash(),
            user_code: user_code.clone(),
            client_id: "keyward-cli".into(),
            scopes: None,
            interval: Duration::seconds(5),
            expires_at: Utc::now() + Duration::minutes(10),
        })
        .await
        .unwrap();
    assert!(store.decide_device(&user_code, &user.id, &org.id, true).await.unwrap());
    let (access, access_new) = token(SecretKind::AccessToken, Duration::hours(1));
    let (_, refresh_new) = token(SecretKind::RefreshToken, Duration::days(30));
    let (poll, issued) = store
        .poll_device(&device_code.hash(), "keyward-cli", Utc::now(), |a| {
            Some(NewTokens {
                org_id: a.org_id.clone(),
                principal: Principal::user(&a.user_id),
                client_id: a.client_id.clone(),
                scopes: None,
                access: access_new,
                refresh: Some(refresh_new),
                family: None,
            })
        })
        .await
        .unwrap();
    assert!(matches!(poll, keyward_store::DevicePoll::Redeemed(_)), "{poll:?}");
    let family = issued.unwrap().family;
    // Long after the code itself expired, the device stays while its tokens do.
    let far = Utc::now() + Duration::days(1);
    assert_eq!(store.purge(&purge_rules(far)).await.unwrap().device_authorizations, 0);
    assert_eq!(store.device_sessions(&user.id, &org.id).await.unwrap().len(), 1);
    assert!(stored(store, &access).await, "the access token of a live family stays");
    // Signed out, and once its tokens are gone, so is the device.
    store.end_device_session(&user.id, &org.id, &family).await.unwrap();
    let purged = store.purge(&purge_rules(far)).await.unwrap();
    assert_eq!((purged.oauth_tokens, purged.device_authorizations), (2, 1), "{purged:?}");
    assert_eq!(store.row_count("device_authorizations").await, 0);
}

/// Each statement deletes at most `batch_size` rows, and a pass runs at most
/// `max_batches` of them per table.
async fn purge_works_in_bounded_batches(store: &Store) {
    setup(store).await;
    for i in 0..7 {
        // One person each: starting a session prunes the person's ended ones.
        let email = Email::parse(&format!("p{i}@example.com")).unwrap();
        let user = store.create_user(&email, "P", None).await.unwrap();
        store
            .create_web_session(&SecretHash::of(&format!("s{i}")), &user.id, Utc::now() - Duration::minutes(1))
            .await
            .unwrap();
    }
    let rules = PurgeRules { batch_size: 2, max_batches: 2, ..purge_rules(Utc::now()) };
    assert_eq!(store.purge(&rules).await.unwrap().web_sessions, 4, "two batches of two");
    assert_eq!(store.row_count("web_sessions").await, 3);
    assert_eq!(store.purge(&rules).await.unwrap().web_sessions, 3, "two and one, then it stops");
    assert_eq!(store.purge(&rules).await.unwrap().web_sessions, 0);
}

/// A rolled key's imported bcrypt secret keeps its grace expiry when it is upgraded to
/// the fast hash on first use (it used to lose it, and so never expire).
async fn a_bcrypt_upgrade_keeps_a_rolled_secrets_grace(store: &Store) {
    let (org, user) = setup(store).await;
    let plain = "legacy-secret-for-the-grace-test";
    let bcrypt = bcrypt::hash(plain, 4).unwrap();
    let (new, _) = new_key(&org, &user, None);
    let imported = ImportedHash::Bcrypt(BcryptHash::parse(&bcrypt).unwrap());
    let key = store.import_api_key(&new, &imported, &Actor::cli()).await.unwrap();
    let next = secrets().generate(SecretKind::ApiKey);
    store
        .roll_api_key(None, &key.id, &next.hash(), &next.display_prefix(), Duration::minutes(5), &Actor::cli())
        .await
        .unwrap();
    assert!(store.upgrade_bcrypt_secret(&bcrypt, &SecretHash::of(plain)).await.unwrap());
    let grant = store.key_grant_by_hash(&SecretHash::of(plain)).await.unwrap().expect("upgraded");
    let expires = grant.secret_expires_at.expect("the grace expiry survives the upgrade");
    assert!(expires <= Utc::now() + Duration::minutes(5), "{expires}");
}
