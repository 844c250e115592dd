//! The harness: a server on port 0 over a fresh database, fixtures made through the
//! store, the ways to present a key, replies read as JSON, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::permission::Roles;
use keyward_core::secret::SecretFormat;
use keyward_server::keys::{self, Creator, KeyRequest};
use keyward_server::{Server, Settings};
use keyward_store::testing::TestDb;
use keyward_store::{Actor, Org, Principal, Store, User};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

/// Generates a `#[tokio::test]` per backend for each `async fn case(db: &TestDb)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = keyward_store::testing::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = keyward_store::testing::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// The shortest flush the server allows in tests: last-used times and failed
/// authentications reach the database within this.
pub const FLUSH: &str = "100ms";
/// How long a test waits for something asynchronous (a flush, a change made by
/// another process) before failing.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// A running server with its store and an HTTP client.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub http: reqwest::Client,
    /// The same database, reached directly (as the admin commands reach it).
    pub store: Store,
    pub roles: Roles,
    pub secrets: SecretFormat,
    /// Dropping it stops the server (graceful shutdown).
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A person in an organization with a role.
#[derive(Clone)]
pub struct Member {
    pub org: Org,
    pub user: User,
    pub role: String,
}

impl Member {
    pub fn principal(&self) -> Principal {
        Principal::user(&self.user.id)
    }
    pub fn user_id(&self) -> String {
        self.user.id.to_string()
    }
}

/// A key made for a test: its id, plain secret and display prefix.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
    pub prefix: String,
}

/// Starts the server on `db` with the test settings (100 ms usage flush).
pub async fn spawn_app(db: &TestDb) -> TestApp {
    spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"")).await
}

/// Starts the server with `extra` TOML (which must set `usage_flush_interval`).
pub async fn spawn_app_with(db: &TestDb, extra: &str) -> TestApp {
    // Migrate before the server does, so fixtures and server never race on it.
    let store = db.store().await;
    let settings = Settings::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\n{extra}\n",
        db.url
    ))
    .expect("test settings are valid");
    let roles = settings.roles.clone();
    let secrets = settings.secrets.clone();
    let server = Server::build(settings).await.expect("the server starts");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    TestApp { base, http, store, roles, secrets, _stop: stop }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.req(Method::DELETE, path)
    }

    /// An organization on the pro plan.
    pub async fn org(&self, slug: &str) -> Org {
        self.store.create_org(&Slug::parse(slug).unwrap(), slug, Plan::Pro).await.expect("create org")
    }

    /// A new person, member of `org` with `role`.
    pub async fn member(&self, org: &Org, email: &str, role: &str) -> Member {
        let user = self
            .store
            .create_user(&Email::parse(email).unwrap(), email, None)
            .await
            .expect("create user");
        self.join(org, &user, role).await
    }

    /// An existing person joins `org` with `role`.
    pub async fn join(&self, org: &Org, user: &User, role: &str) -> Member {
        self.store
            .add_member(&org.id, &Principal::user(&user.id), role, &Actor::cli())
            .await
            .expect("add member");
        Member { org: org.clone(), user: user.clone(), role: role.to_owned() }
    }

    /// A key of `m`'s with `permissions` (`None`: inherits all `m` holds), made as the
    /// admin commands make keys.
    pub async fn key(&self, m: &Member, permissions: Option<&[&str]>) -> Key {
        self.key_with(
            m,
            KeyRequest {
                name: "test key".into(),
                permissions: permissions.map(|p| p.iter().map(|s| s.to_string()).collect()),
                expires_at: None,
            },
        )
        .await
    }

    pub async fn key_expiring(&self, m: &Member, permissions: Option<&[&str]>, at: DateTime<Utc>) -> Key {
        self.key_with(
            m,
            KeyRequest {
                name: "expiring key".into(),
                permissions: permissions.map(|p| p.iter().map(|s| s.to_string()).collect()),
                expires_at: Some(at),
            },
        )
        .await
    }

    pub async fn key_with(&self, m: &Member, req: KeyRequest) -> Key {
        let holds = self.roles.permissions_of(&m.role);
        let (key, secret) = keys::create(
            &self.store,
            &self.secrets,
            &self.roles,
            &m.org.id,
            &m.principal(),
            &Creator { holds: &holds, restricted: false },
            &req,
            &Actor::cli(),
        )
        .await
        .expect("create key");
        Key { id: key.id.to_string(), secret: secret.expose().to_owned(), prefix: key.prefix.as_str().to_owned() }
    }

    /// A key whose expiry has already passed, written straight into the store (the
    /// rules refuse to make one).
    pub async fn expired_key(&self, m: &Member, permissions: Option<&[&str]>) -> Key {
        let secret = self.secrets.generate(keyward_core::secret::SecretKind::ApiKey);
        let new = keyward_store::NewApiKey {
            org_id: m.org.id.clone(),
            principal: m.principal(),
            name: "expired key".into(),
            prefix: secret.display_prefix(),
            permissions: permissions.map(|p| keyward_core::permission::PermissionSet::parse(p).unwrap()),
            expires_at: Some(Utc::now() - chrono::Duration::seconds(10)),
        };
        let key = self.store.create_api_key(&new, &secret.hash(), &Actor::cli()).await.expect("create key");
        Key { id: key.id.to_string(), secret: secret.expose().to_owned(), prefix: key.prefix.as_str().to_owned() }
    }

    /// `GET /api/v1/me` with `key` presented by `via`: the status.
    pub async fn me_status(&self, key: &str, via: Via) -> u16 {
        send(via.apply(self.get("/api/v1/me"), key)).await.status
    }

    /// The caller's keys as listed by the API.
    pub async fn list_keys(&self, manager: &Key, query: &str) -> Vec<Value> {
        let r = send(self.get(&format!("/api/v1/api-keys{query}")).bearer_auth(&manager.secret)).await;
        assert_eq!(r.status, 200, "list keys: {}", r.text);
        r.body["data"].as_array().expect("data is a list").clone()
    }
}

/// The ways DESIGN.md lets a request present an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer KEY`
    Bearer,
    /// `Authorization: Basic base64(KEY:)`
    BasicUser,
    /// `Authorization: Basic base64(KEY:anything)`
    BasicUserWithPassword,
    /// `Authorization: Basic base64(apikey:KEY)`
    BasicApikey,
    /// `X-API-Key: KEY`
    Header,
}

pub const EVERY_VIA: [Via; 5] = [Via::Bearer, Via::BasicUser, Via::BasicUserWithPassword, Via::BasicApikey, Via::Header];

pub fn basic(pair: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

impl Via {
    pub fn apply(self, rb: RequestBuilder, key: &str) -> RequestBuilder {
        match self {
            Via::Bearer => rb.header(AUTHORIZATION, format!("Bearer {key}")),
            Via::BasicUser => rb.header(AUTHORIZATION, basic(&format!("{key}:"))),
            Via::BasicUserWithPassword => rb.header(AUTHORIZATION, basic(&format!("{key}:anything"))),
            Via::BasicApikey => rb.header(AUTHORIZATION, basic(&format!("apikey:{key}"))),
            Via::Header => rb.header("X-API-Key", key),
        }
    }
}

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: Value,
}

pub async fn send(rb: RequestBuilder) -> Reply {
    let res = rb.send().await.expect("the request reaches the server");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("the body can be read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, text, body }
}

impl Reply {
    /// Asserts an error answer: `status`, JSON `{"error": code, "error_description": text}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(self.body["error"], code, "error code; body: {}", self.text);
        assert!(
            self.body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
            "error_description; body: {}",
            self.text
        );
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content type {ct:?}");
        self
    }

    /// Asserts the answer to a missing credential: 401, both challenges, no `error`.
    #[track_caller]
    pub fn assert_missing_credential(&self) -> &Self {
        self.assert_error(401, "unauthorized");
        let c = self.challenges();
        assert_eq!(c.len(), 2, "two challenges: {c:?}");
        assert!(c[0].starts_with("Bearer realm=\"keyward\""), "{c:?}");
        assert!(!c[0].contains("error="), "no error attribute: {c:?}");
        assert_eq!(c[1], "Basic realm=\"keyward\"", "{c:?}");
        self
    }

    /// Asserts the answer to a present but wrong credential: 401 `invalid_token`.
    #[track_caller]
    pub fn assert_invalid_token(&self) -> &Self {
        self.assert_error(401, "invalid_token");
        let c = self.challenges();
        assert_eq!(c.len(), 2, "two challenges: {c:?}");
        assert!(c[0].starts_with("Bearer realm=\"keyward\", error=\"invalid_token\""), "{c:?}");
        assert_eq!(c[1], "Basic realm=\"keyward\"", "{c:?}");
        self
    }

    /// Asserts 403 `insufficient_scope` with the Bearer challenge saying so.
    #[track_caller]
    pub fn assert_insufficient_scope(&self) -> &Self {
        self.assert_error(403, "insufficient_scope");
        let c = self.challenges();
        assert!(
            c.iter().any(|c| c.starts_with("Bearer realm=\"keyward\", error=\"insufficient_scope\"")),
            "{c:?}"
        );
        self
    }

    pub fn challenges(&self) -> Vec<String> {
        self.headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("challenges are text").to_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().expect("header is text").to_owned())
    }
}

/// A header value that is not UTF-8 (and not even ASCII).
pub fn non_utf8(prefix: &[u8]) -> HeaderValue {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x80]);
    HeaderValue::from_bytes(&bytes).expect("obs-text is a valid header value")
}

/// Polls `check` until it is true; fails after `within`. Returns how long it took.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The key with `id` in a list of key views.
pub fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|k| k["id"] == id)
}

/// A secret with one character of its random part changed.
pub fn mistyped(secret: &str) -> String {
    let mut chars: Vec<char> = secret.chars().collect();
    let i = 10;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}
