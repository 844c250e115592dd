//! Several instances, one database: a change made through one instance (or by another
//! process) reaches every other instance's cache within one second — revocation,
//! member removal, role change — on PostgreSQL (LISTEN/NOTIFY, with the periodic read
//! as reconciliation) and on SQLite (the periodic read). Each case repeats and prints
//! the propagation times' p50 and p99 (`cargo test --test propagation -- --nocapture`).

use std::time::{Duration, Instant};

use keyward_core::domain::Plan;
use keyward_core::permission::Roles;
use keyward_server::deployment::Deployment;
use keyward_server::testing::{self, Running};
use keyward_store::testing::TestDb;
use keyward_store::{Actor, Org, Principal, Store, User};
use tokio::sync::RwLock;

/// The notification-kill case disturbs every instance's listener on the server; it
/// runs alone (write lock) while the timing cases share the read lock.
static EXCLUSIVE: RwLock<()> = RwLock::const_new(());

/// An instance of keyward on the shared database (dropped: shut down).
async fn instance(db: &TestDb) -> Running {
    testing::serve(db, "usage_flush_interval = \"1s\"").await
}

struct World {
    store: Store,
    org: Org,
    user: User,
    http: reqwest::Client,
}

async fn world(db: &TestDb) -> World {
    let store = db.store().await;
    let org = testing::org(&store, "acme").await;
    let user = testing::member(&store, &org, "ada@example.com", "member").await;
    World { store, org, user, http: reqwest::Client::new() }
}

impl World {
    /// A key of the user's with `permissions`; returns (id, secret).
    async fn key(&self, permissions: &[&str]) -> (String, String) {
        let req = testing::key_request("k", Some(permissions));
        let user = Principal::user(&self.user.id);
        let (key, secret) = testing::key(&self.store, &Roles::default(), &self.org, &user, "member", &req).await;
        (key.id.to_string(), secret.expose().to_owned())
    }

    async fn status(&self, base: &str, path: &str, key: &str) -> u16 {
        self.http.get(format!("{base}{path}")).bearer_auth(key).send().await.unwrap().status().as_u16()
    }

    /// Polls until `path` answers `want`; the time since `since`. Fails after one second.
    async fn until(&self, base: &str, path: &str, key: &str, want: u16, since: Instant) -> Duration {
        loop {
            if self.status(base, path, key).await == want {
                return since.elapsed();
            }
            assert!(since.elapsed() < Duration::from_secs(1), "{path} did not answer {want} within one second");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Waits a random 0–300 ms, so a repetition does not start in step with the previous
/// one's poll (which would make every measurement wait a whole poll interval).
async fn jitter() {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    tokio::time::sleep(Duration::from_millis(random % 300)).await;
}

fn report(what: &str, db: &TestDb, mut times: Vec<Duration>) {
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    eprintln!(
        "propagation [{:?}] {what}: n={} p50={:?} p99={:?} max={:?}",
        db.backend,
        times.len(),
        pick(0.50),
        pick(0.99),
        times.last().unwrap()
    );
}

const REPEAT: usize = 100;

/// Revokes through A's API, measures until B refuses.
async fn revocation_reaches_the_other_instance(db: &TestDb) {
    let _shared = EXCLUSIVE.read().await;
    let w = world(db).await;
    let (a, b) = (instance(db).await, instance(db).await);
    let (_, admin) = w.key(&["api_keys:write"]).await;
    let mut times = Vec::with_capacity(REPEAT);
    for _ in 0..REPEAT {
        let (id, key) = w.key(&["projects:read"]).await;
        assert_eq!(w.status(&b.base, "/api/v1/me", &key).await, 200, "B has the key cached");
        jitter().await;
        // The key belongs to the admin key's owner, so A may revoke it.
        let started = Instant::now();
        let res = w.http.delete(format!("{}/api/v1/api-keys/{id}", a.base)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(res.status(), 204);
        times.push(w.until(&b.base, "/api/v1/me", &key, 401, started).await);
    }
    report("key revoked on A, refused on B", db, times);
}

/// Role change and removal made by another process (the store, as the CLI does).
async fn membership_changes_reach_every_instance(db: &TestDb) {
    let _shared = EXCLUSIVE.read().await;
    let w = world(db).await;
    let (a, b) = (instance(db).await, instance(db).await);
    let mut shrink = Vec::new();
    let mut removal = Vec::new();
    for _ in 0..REPEAT {
        let (_, key) = w.key(&["projects:write"]).await;
        for inst in [&a, &b] {
            assert_eq!(w.status(&inst.base, "/auth/check?permission=projects:write", &key).await, 200);
        }
        jitter().await;
        let started = Instant::now();
        w.store.set_role(&w.org.id, w.user.id.as_str(), "viewer", &Actor::cli()).await.unwrap();
        for inst in [&a, &b] {
            shrink.push(w.until(&inst.base, "/auth/check?permission=projects:write", &key, 403, started).await);
        }
        jitter().await;
        let started = Instant::now();
        w.store.remove_member(&w.org.id, w.user.id.as_str(), &Actor::cli()).await.unwrap();
        for inst in [&a, &b] {
            removal.push(w.until(&inst.base, "/api/v1/me", &key, 401, started).await);
        }
        // Re-added for the next round; the removed member's key stays revoked.
        w.store.add_member(&w.org.id, &Principal::user(&w.user.id), "member", &Actor::cli()).await.unwrap();
        for inst in [&a, &b] {
            assert_eq!(w.status(&inst.base, "/api/v1/me", &key).await, 401);
        }
    }
    report("role shrunk (other process)", db, shrink);
    report("member removed (other process)", db, removal);
}

/// How a request authenticates: a Bearer secret, or HTTP Basic client credentials.
enum Cred<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

impl World {
    async fn status_as(&self, base: &str, path: &str, cred: &Cred<'_>) -> u16 {
        let req = self.http.get(format!("{base}{path}"));
        let req = match cred {
            Cred::Bearer(secret) => req.bearer_auth(secret),
            Cred::Basic(id, secret) => req.basic_auth(id, Some(secret)),
        };
        req.send().await.unwrap().status().as_u16()
    }

    /// Like [`World::until`], for any credential.
    async fn until_as(&self, base: &str, path: &str, cred: &Cred<'_>, want: u16, since: Instant) -> Duration {
        loop {
            if self.status_as(base, path, cred).await == want {
                return since.elapsed();
            }
            assert!(since.elapsed() < Duration::from_secs(1), "{path} did not answer {want} within one second");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// An admin (a second person) and an API key of theirs that may delete service accounts.
    async fn admin_key(&self) -> String {
        let admin = testing::member(&self.store, &self.org, "root@example.com", "admin").await;
        let req = testing::key_request("admin", Some(&["service_accounts:write"]));
        let admin = Principal::user(&admin.id);
        let (_, secret) = testing::key(&self.store, &Roles::default(), &self.org, &admin, "admin", &req).await;
        secret.expose().to_owned()
    }

    /// A service account with a client secret, made through the store (as the CLI does):
    /// (id, client id, secret).
    async fn service_account(&self) -> (String, String, String) {
        use keyward_server::service_accounts::{create, AccountRequest, OrgRef};
        let req = AccountRequest { name: "ci".into(), ..Default::default() };
        let (account, secret) = create(
            &Deployment {
                store: &self.store,
                secrets: &keyward_core::secret::SecretFormat::new("kw").unwrap(),
                roles: &Roles::default(),
                min_plan: Plan::Free,
            },
            OrgRef::from(&self.org),
            keyward_server::members::Acting::Operator,
            &req,
            &Actor::cli(),
        )
        .await
        .unwrap();
        (account.id.to_string(), account.client_id, secret.expect("a client secret").expose().to_owned())
    }

    async fn delete_service_account(&self, base: &str, admin: &str, id: &str) {
        let res =
            self.http.delete(format!("{base}/api/v1/service-accounts/{id}")).bearer_auth(admin).send().await.unwrap();
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    }
}

/// A service account deleted through A's API: its client secret (Basic) and an access
/// token A issued to it are refused by B within one second.
async fn service_account_deletion_reaches_the_other_instance(db: &TestDb) {
    let _shared = EXCLUSIVE.read().await;
    let w = world(db).await;
    let (a, b) = (instance(db).await, instance(db).await);
    let admin = w.admin_key().await;
    let mut times = Vec::with_capacity(20);
    for _ in 0..20 {
        let (id, client_id, secret) = w.service_account().await;
        let cred = Cred::Basic(&client_id, &secret);
        for inst in [&a, &b] {
            assert_eq!(w.status_as(&inst.base, "/api/v1/me", &cred).await, 200, "the client secret works on both");
        }
        jitter().await;
        let started = Instant::now();
        w.delete_service_account(&a.base, &admin, &id).await;
        assert_eq!(w.status_as(&a.base, "/api/v1/me", &cred).await, 401, "A, which deleted it, refuses at once");
        times.push(w.until_as(&b.base, "/api/v1/me", &cred, 401, started).await);
    }
    report("service account deleted on A, its client secret refused on B", db, times);

    // An access token from A's token endpoint, cached on B.
    let (id, client_id, secret) = w.service_account().await;
    let res = w
        .http
        .post(format!("{}/oauth/token", a.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().expect("an access token").to_owned();
    let cred = Cred::Bearer(&access);
    for inst in [&a, &b] {
        assert_eq!(w.status_as(&inst.base, "/api/v1/me", &cred).await, 200, "the access token works on both");
    }
    jitter().await;
    let started = Instant::now();
    w.delete_service_account(&a.base, &admin, &id).await;
    let took = w.until_as(&b.base, "/api/v1/me", &cred, 401, started).await;
    assert_eq!(w.status_as(&a.base, "/api/v1/me", &cred).await, 401);
    eprintln!("propagation [{:?}] access token of a deleted service account refused on B: {took:?}", db.backend);
}

/// With the notification connections killed, the periodic read still converges.
async fn reconciliation_converges_without_notifications(db: &TestDb) {
    let _alone = EXCLUSIVE.write().await;
    let w = world(db).await;
    let (a, b) = (instance(db).await, instance(db).await);
    let (_, admin) = w.key(&["api_keys:write"]).await;
    // Let both listeners connect before cutting them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = kill_listeners().await;
    if db.backend == keyward_store::Backend::Postgres {
        assert!(killed >= 2, "both instances had a notification connection ({killed} killed)");
    }
    let mut times = Vec::new();
    for _ in 0..10 {
        let (id, key) = w.key(&["projects:read"]).await;
        assert_eq!(w.status(&b.base, "/api/v1/me", &key).await, 200);
        jitter().await;
        kill_listeners().await;
        let started = Instant::now();
        let res = w.http.delete(format!("{}/api/v1/api-keys/{id}", a.base)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(res.status(), 204);
        times.push(w.until(&b.base, "/api/v1/me", &key, 401, started).await);
    }
    report("revoked with notification connections killed", db, times);
    if db.backend == keyward_store::Backend::Postgres {
        let metrics = w.http.get(format!("{}/metrics", b.base)).send().await.unwrap().text().await.unwrap();
        let line = metrics.lines().find(|l| l.starts_with("keyward_change_listener_reconnects_total")).unwrap();
        assert_ne!(line, "keyward_change_listener_reconnects_total 0", "the lost connection was noticed");
    }
}

/// Terminates every keyward notification connection on the test PostgreSQL server.
async fn kill_listeners() -> u64 {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(&TestDb::postgres_base_url()).await else { return 0 };
    let killed: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(keyward_store::LISTENER_APPLICATION_NAME)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    killed.into_iter().filter(|k| *k).count() as u64
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name(&keyward_store::testing::TestDb::sqlite()).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() {
                  let Some(db) = keyward_store::testing::TestDb::postgres().await else { return };
                  super::$name(&db).await;
              })*
        }
    };
}

both_backends!(
    revocation_reaches_the_other_instance,
    membership_changes_reach_every_instance,
    reconciliation_converges_without_notifications,
    service_account_deletion_reaches_the_other_instance,
);
