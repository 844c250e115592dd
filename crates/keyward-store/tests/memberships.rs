//! Membership changes under concurrency, and removal being final — on SQLite and on
//! PostgreSQL. The rule itself (the last owner stays) is the server's; here a check of
//! the same shape is handed to the store, which must run it inside the transaction with
//! the organization locked, so two changes at once cannot both pass it.

use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::secret::{SecretFormat, SecretKind};
use keyward_store::{Actor, KeyScope, NewApiKey, Principal, Standing, Store, StoreError};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let db = keyward_store::testing::TestDb::sqlite(); super::$name(&db.store().await).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = keyward_store::testing::TestDb::postgres().await else { return };
                super::$name(&db.store().await).await;
            })*
        }
    };
}

both!(two_owners_removed_at_once_leave_one, two_owners_demoted_at_once_leave_one, removal_revokes_in_that_org_only);

/// The check the server's rule makes: the last person holding `owner` stays.
fn last_owner_stays(new_role: Option<&'static str>) -> impl FnOnce(&Standing) -> Result<(), StoreError> {
    move |s| {
        if s.role == "owner" && s.other_owners == 0 && new_role != Some("owner") {
            Err(StoreError::Conflict("the last owner"))
        } else {
            Ok(())
        }
    }
}

async fn two_owners(store: &Store, round: usize) -> (keyward_store::Org, String, String) {
    let org = store.create_org(&Slug::parse(&format!("race{round}")).unwrap(), "Race", Plan::Free).await.unwrap();
    let mut ids = Vec::new();
    for who in ["a", "b"] {
        let email = Email::parse(&format!("{who}{round}@race.test")).unwrap();
        let user = store.create_user(&email, who, None).await.unwrap();
        store.add_member(&org.id, &Principal::user(&user.id), "owner", &Actor::cli()).await.unwrap();
        ids.push(user.id.to_string());
    }
    let b = ids.pop().unwrap();
    (org, ids.pop().unwrap(), b)
}

async fn owners(store: &Store, org: &keyward_store::Org) -> usize {
    store.members(&org.id).await.unwrap().iter().filter(|m| m.role == "owner").count()
}

const ROUNDS: usize = 25;

async fn two_owners_removed_at_once_leave_one(store: &Store) {
    for round in 0..ROUNDS {
        let (org, a, b) = two_owners(store, round).await;
        let (s1, s2) = (store.clone(), store.clone());
        let (o1, o2) = (org.id.clone(), org.id.clone());
        let first =
            tokio::spawn(async move { s1.remove_member_checked(&o1, &a, &Actor::cli(), last_owner_stays(None)).await });
        let second =
            tokio::spawn(async move { s2.remove_member_checked(&o2, &b, &Actor::cli(), last_owner_stays(None)).await });
        let (r1, r2) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(owners(store, &org).await, 1, "round {round}: {r1:?} / {r2:?}");
        assert_eq!([&r1, &r2].iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {r1:?} / {r2:?}");
        let refused = if r1.is_ok() { r2 } else { r1 };
        assert!(matches!(refused, Err(StoreError::Conflict(_))), "round {round}: {refused:?}");
    }
}

async fn two_owners_demoted_at_once_leave_one(store: &Store) {
    for round in 0..ROUNDS {
        let (org, a, b) = two_owners(store, 100 + round).await;
        let (s1, s2) = (store.clone(), store.clone());
        let (o1, o2) = (org.id.clone(), org.id.clone());
        let first = tokio::spawn(async move {
            s1.set_role_checked(&o1, &a, "admin", &Actor::cli(), last_owner_stays(Some("admin"))).await
        });
        let second = tokio::spawn(async move {
            s2.set_role_checked(&o2, &b, "admin", &Actor::cli(), last_owner_stays(Some("admin"))).await
        });
        let (r1, r2) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(owners(store, &org).await, 1, "round {round}: {r1:?} / {r2:?}");
        assert_eq!([&r1, &r2].iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {r1:?} / {r2:?}");
    }
}

async fn removal_revokes_in_that_org_only(store: &Store) {
    let (org, a, _) = two_owners(store, 1000).await;
    let other = store.create_org(&Slug::parse("elsewhere").unwrap(), "Elsewhere", Plan::Free).await.unwrap();
    store
        .add_member(
            &other.id,
            &Principal { kind: keyward_store::PrincipalKind::User, id: a.clone() },
            "member",
            &Actor::cli(),
        )
        .await
        .unwrap();
    let make = |org_id: &keyward_core::ids::OrgId| {
        let secret = SecretFormat::new("kw").unwrap().generate(SecretKind::ApiKey);
        let new = NewApiKey {
            org_id: org_id.clone(),
            principal: Principal { kind: keyward_store::PrincipalKind::User, id: a.clone() },
            name: "k".into(),
            prefix: secret.display_prefix(),
            permissions: None,
            expires_at: None,
        };
        (new, secret)
    };
    let (here, here_secret) = make(&org.id);
    let (there, there_secret) = make(&other.id);
    store.create_api_key(&here, &here_secret.hash(), &Actor::cli()).await.unwrap();
    store.create_api_key(&there, &there_secret.hash(), &Actor::cli()).await.unwrap();
    let before = store.remove_member_checked(&org.id, &a, &Actor::cli(), |_| Ok::<(), StoreError>(())).await.unwrap();
    assert_eq!(before.role, "owner");
    assert_eq!(before.other_owners, 1);
    let revoked = |org_id: &keyward_core::ids::OrgId| {
        let scope = KeyScope { org_id: org_id.clone(), principal_id: Some(a.clone()) };
        async move { store.list_api_keys(&scope, true).await.unwrap().iter().all(|k| k.revoked_at.is_some()) }
    };
    assert!(revoked(&org.id).await, "the key in the organization left is revoked");
    assert!(!revoked(&other.id).await, "the key elsewhere is not");
    // Back in, the old key stays revoked.
    store
        .add_member(
            &org.id,
            &Principal { kind: keyward_store::PrincipalKind::User, id: a.clone() },
            "member",
            &Actor::cli(),
        )
        .await
        .unwrap();
    let grant = store.key_grant_by_hash(&here_secret.hash()).await.unwrap().unwrap();
    assert!(grant.key.revoked_at.is_some() && grant.role.as_deref() == Some("member"));
    // Unknown member: NotFound, before any check runs.
    let actor = Actor::cli();
    let r = store
        .remove_member_checked(&org.id, "usr_nobody", &actor, |_| -> Result<(), StoreError> {
            panic!("no check for a non-member")
        })
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
}
