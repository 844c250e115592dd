//! The harness: a server on port 0 over a fresh database, fixtures made through the
//! store, the ways to present a key, replies read as JSON, and polling with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use keyward_core::domain::{Plan, Slug};
use keyward_core::permission::Roles;
use keyward_core::secret::SecretFormat;
use keyward_server::keys::KeyRequest;
use keyward_server::testing;
pub use keyward_server::testing::html::*;
pub use keyward_server::testing::http::*;
pub use keyward_server::testing::PASSWORD;
use keyward_store::testing::TestDb;
use keyward_store::{Actor, Org, Principal, Store, User};
use reqwest::header::{HeaderValue, AUTHORIZATION};
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
    _running: testing::Running,
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
    let running = testing::serve(db, extra).await;
    let roles = running.settings.roles.clone();
    let secrets = running.settings.secrets.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    TestApp { base: running.base.clone(), http, store, roles, secrets, _running: running }
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
        let user = testing::member(&self.store, org, email, role).await;
        Member { org: org.clone(), user, role: role.to_owned() }
    }

    /// An existing person joins `org` with `role`.
    pub async fn join(&self, org: &Org, user: &User, role: &str) -> Member {
        self.store.add_member(&org.id, &Principal::user(&user.id), role, &Actor::cli()).await.expect("add member");
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
        let (key, secret) = testing::key(&self.store, &self.roles, &m.org, &m.principal(), &m.role, &req).await;
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

pub const EVERY_VIA: [Via; 5] =
    [Via::Bearer, Via::BasicUser, Via::BasicUserWithPassword, Via::BasicApikey, Via::Header];

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

// --- Service accounts and OAuth -------------------------------------------------------

/// The `public_url` a test server has when the test does not set one (DESIGN.md's
/// default): OAuth's issuer, and what JWT assertions name as their audience.
pub const PUBLIC_URL: &str = "http://127.0.0.1:7070";

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Starts the server with the test settings plus `tables` (TOML tables such as
/// `[service_accounts]\nmin_plan = "pro"`, which must come after the top-level keys).
pub async fn spawn_app_tables(db: &TestDb, tables: &str) -> TestApp {
    spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"\n{tables}")).await
}

/// The path of a file in keyward-core's test data (test key pairs).
pub fn testdata(name: &str) -> String {
    format!("{}/../keyward-core/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata_text(name: &str) -> String {
    std::fs::read_to_string(testdata(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A service account made over HTTP for a test.
#[derive(Clone, Debug)]
pub struct Sa {
    pub id: String,
    pub client_id: String,
    /// The client secret, when one was made.
    pub secret: Option<String>,
    /// The view the create call answered.
    pub view: Value,
}

impl Sa {
    pub fn secret(&self) -> &str {
        self.secret.as_deref().expect("this account has a client secret")
    }

    /// `Authorization: Basic` with this account's client credentials.
    pub fn basic(&self) -> String {
        client_basic(&self.client_id, self.secret())
    }

    /// The kid of the registered public key whose `alg` is `alg`.
    pub fn kid(&self, alg: &str) -> String {
        self.view["public_keys"]
            .as_array()
            .expect("public_keys is a list")
            .iter()
            .find(|k| k["alg"] == alg)
            .unwrap_or_else(|| panic!("no {alg} key in {}", self.view))["kid"]
            .as_str()
            .expect("kid is text")
            .to_owned()
    }
}

impl TestApp {
    /// `POST /api/v1/service-accounts` with `body`, as `manager` (a Bearer key).
    pub async fn create_sa_reply(&self, manager: &Key, body: &Value) -> Reply {
        send(self.post("/api/v1/service-accounts").bearer_auth(&manager.secret).json(body)).await
    }

    /// A service account made over HTTP by `manager`; the request must succeed.
    pub async fn create_sa(&self, manager: &Key, body: Value) -> Sa {
        let r = self.create_sa_reply(manager, &body).await;
        assert_eq!(r.status, 201, "create service account {body}: {}", r.text);
        Sa {
            id: r.body["id"].as_str().expect("id").to_owned(),
            client_id: r.body["client_id"].as_str().expect("client_id").to_owned(),
            secret: r.body["client_secret"].as_str().map(str::to_owned),
            view: r.body.clone(),
        }
    }

    /// An organization (pro plan) with an admin and the admin's inheriting key.
    pub async fn org_with_admin(&self, slug: &str) -> (Org, Key) {
        let org = self.org(slug).await;
        let admin = self.member(&org, &format!("admin@{slug}.test"), "admin").await;
        let key = self.key(&admin, None).await;
        (org, key)
    }

    /// `POST /oauth/token` with a form body and an optional `Authorization` header.
    pub async fn token(&self, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Reply {
        let mut rb = self
            .post("/oauth/token")
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(pairs));
        if let Some(a) = authorization {
            rb = rb.header(AUTHORIZATION, a);
        }
        send(rb).await
    }

    /// A form POST to any OAuth endpoint.
    pub async fn oauth_form(&self, path: &str, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Reply {
        let mut rb = self
            .post(path)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(pairs));
        if let Some(a) = authorization {
            rb = rb.header(AUTHORIZATION, a);
        }
        send(rb).await
    }

    /// An access token for `sa` by `client_credentials` with Basic; must succeed.
    pub async fn sa_token(&self, sa: &Sa, scope: Option<&str>) -> String {
        let mut pairs = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        let r = self.token(Some(&sa.basic()), &pairs).await;
        assert_eq!(r.status, 200, "client_credentials for {}: {}", sa.client_id, r.text);
        r.body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// `GET /api/v1/me` with a raw `Authorization` value: the status.
    pub async fn me_status_auth(&self, authorization: &str) -> u16 {
        send(self.get("/api/v1/me").header(AUTHORIZATION, authorization)).await.status
    }
}

/// A JWT signer for tests: one of keyward-core's test key pairs.
#[derive(Clone)]
pub struct Signer {
    pub alg: jsonwebtoken::Algorithm,
    pub key: jsonwebtoken::EncodingKey,
    /// The public half, as registered with an account.
    pub public_pem: String,
}

impl Signer {
    pub fn rsa() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::RS256,
            key: jsonwebtoken::EncodingKey::from_rsa_pem(testdata_text("rsa_private.pem").as_bytes()).expect("rsa key"),
            public_pem: testdata_text("rsa_public.pem"),
        }
    }

    pub fn ec() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::ES256,
            key: jsonwebtoken::EncodingKey::from_ec_pem(testdata_text("ec_private.pem").as_bytes()).expect("ec key"),
            public_pem: testdata_text("ec_public.pem"),
        }
    }

    pub fn ed25519() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::EdDSA,
            key: jsonwebtoken::EncodingKey::from_ed_pem(testdata_text("ed25519_private.pem").as_bytes())
                .expect("ed25519 key"),
            public_pem: testdata_text("ed25519_public.pem"),
        }
    }

    /// Another P-256 key pair, registered nowhere: "signed by a different key".
    pub fn other_ec() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::ES256,
            key: jsonwebtoken::EncodingKey::from_ec_pem(OTHER_EC_PRIVATE.as_bytes()).expect("ec key"),
            public_pem: OTHER_EC_PUBLIC.to_owned(),
        }
    }

    /// Another Ed25519 key pair, registered nowhere.
    pub fn other_ed25519() -> Self {
        Self {
            alg: jsonwebtoken::Algorithm::EdDSA,
            key: jsonwebtoken::EncodingKey::from_ed_pem(OTHER_ED25519_PRIVATE.as_bytes()).expect("ed25519 key"),
            public_pem: OTHER_ED25519_PUBLIC.to_owned(),
        }
    }

    /// The JWS `alg` name.
    pub fn alg_name(&self) -> &'static str {
        match self.alg {
            jsonwebtoken::Algorithm::RS256 => "RS256",
            jsonwebtoken::Algorithm::ES256 => "ES256",
            jsonwebtoken::Algorithm::EdDSA => "EdDSA",
            _ => unreachable!("test signers are RS256, ES256 or EdDSA"),
        }
    }

    /// Signs `claims` with `kid` in the header.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }
}

/// Claims of a good assertion by `client_id` for `aud`, valid for two minutes, with a
/// fresh `jti`.
pub fn assertion_claims(client_id: &str, aud: &str) -> Value {
    let now = Utc::now().timestamp();
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 120,
        "jti": fresh_jti(),
    })
}

pub fn fresh_jti() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default(), N.fetch_add(1, Ordering::Relaxed))
}

/// The token endpoint URL that assertions name as their audience.
pub fn token_endpoint() -> String {
    format!("{PUBLIC_URL}/oauth/token")
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned JWT (`alg: none`).
pub fn unsigned_jwt(claims: &Value) -> String {
    let header = serde_json::json!({"alg": "none", "typ": "JWT"});
    format!("{}.{}.", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
}

pub const OTHER_EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3jcavv9y1ANtyxdB
nrK4X/fACtrFxjTWOg1PmCJKeuOhRANCAATHU+aaOfuvh1j9OOeA4mUXRRusCJJ6
Xl4cUo1039mOH1vezuZxfrU1I09iEahq7ItCFc8CxkCYc1vfHuHlkGe0
-----END PRIVATE KEY-----
";
pub const OTHER_EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEx1Pmmjn7r4dY/TjngOJlF0UbrAiS
el5eHFKNdN/Zjh9b3s7mcX61NSNPYhGoauyLQhXPAsZAmHNb3x7h5ZBntA==
-----END PUBLIC KEY-----
";
pub const OTHER_ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGy7WYvrX6LdyLAky8wxpL0zslIMtZv9+Yv1c5PNBs0O
-----END PRIVATE KEY-----
";
pub const OTHER_ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAIlFYcB4bJ8QTHoUm5rHKsGgU49Mbup275rVfA/gCw2s=
-----END PUBLIC KEY-----
";

/// keyward-core's test Ed25519 public key (`ed25519_public.pem`) as JWK JSON text.
pub const ED25519_PUBLIC_JWK: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"en_V8W2jItrOgZuK_kILj4D_4ih2ZoZql2fMTtSB_Ic"}"#;

// --- People who sign in: browsers, forms, the device flow ------------------------------

/// `grant_type` of the device-code grant (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl TestApp {
    /// A new person in `org` with `role` whose password is [`PASSWORD`].
    pub async fn person(&self, org: &Org, email: &str, role: &str) -> Member {
        let user = testing::person(&self.store, org, email, role).await;
        Member { org: org.clone(), user, role: role.to_owned() }
    }

    /// A browser with an empty cookie jar that does not follow redirects.
    pub fn browser(&self) -> Browser {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { base: self.base.clone(), http, cookies: std::collections::BTreeMap::new() }
    }

    /// A browser signed in as `email` (password [`PASSWORD`]); the sign-in must succeed.
    pub async fn signed_in(&self, email: &str) -> Browser {
        let mut b = self.browser();
        let r = b.sign_in(email, PASSWORD, "/").await;
        assert_eq!(r.status, 303, "sign in as {email}: {}", r.text);
        assert!(b.cookie("keyward_session").is_some(), "a session cookie after signing in as {email}");
        b
    }

    /// `POST /oauth/device_authorization` with `client_id` and an optional `scope`.
    pub async fn device_start_reply(&self, client_id: &str, scope: Option<&str>) -> Reply {
        let mut pairs = vec![("client_id", client_id)];
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        self.oauth_form("/oauth/device_authorization", None, &pairs).await
    }

    /// Starts the device flow; it must succeed. Returns the answer.
    pub async fn device_start(&self, client_id: &str, scope: Option<&str>) -> DeviceStart {
        let r = self.device_start_reply(client_id, scope).await;
        assert_eq!(r.status, 200, "device authorization for {client_id}: {}", r.text);
        DeviceStart {
            device_code: r.body["device_code"].as_str().unwrap_or_else(|| panic!("device_code: {}", r.text)).to_owned(),
            user_code: r.body["user_code"].as_str().unwrap_or_else(|| panic!("user_code: {}", r.text)).to_owned(),
            body: r.body,
        }
    }

    /// One poll of the token endpoint with the device-code grant.
    pub async fn device_poll(&self, device_code: &str, client_id: &str) -> Reply {
        self.token(None, &[("grant_type", DEVICE_CODE_GRANT), ("device_code", device_code), ("client_id", client_id)])
            .await
    }
}

/// The answer of `POST /oauth/device_authorization`.
#[derive(Clone, Debug)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub body: Value,
}

/// A browser: a client that does not follow redirects and a cookie jar kept by hand, so
/// a test can drop or change one cookie.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    /// name → value
    pub cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn with_cookies(&self, rb: RequestBuilder) -> RequestBuilder {
        if self.cookies.is_empty() {
            return rb;
        }
        let header = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        rb.header(reqwest::header::COOKIE, header)
    }

    async fn exchange(&mut self, rb: RequestBuilder) -> Reply {
        let r = send(self.with_cookies(rb)).await;
        for line in set_cookies(&r) {
            let first = line.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else { continue };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            let lower = line.to_ascii_lowercase().replace(' ', "");
            if value.is_empty() || lower.contains(";max-age=0") {
                self.cookies.remove(&name);
            } else {
                self.cookies.insert(name, value);
            }
        }
        r
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let rb = self.http.get(format!("{}{path}", self.base));
        self.exchange(rb).await
    }

    /// A form POST (`application/x-www-form-urlencoded`).
    pub async fn post_form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Reply {
        self.post_raw(path, "application/x-www-form-urlencoded", form_body(pairs).into_bytes()).await
    }

    /// A POST with any content type and body bytes.
    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.exchange(rb).await
    }

    /// GETs `path` and returns the value of the page's hidden `csrf` field.
    pub async fn csrf_from(&mut self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        input_value(&r.text, "csrf").unwrap_or_else(|| panic!("no csrf field on {path}: {}", r.text))
    }

    /// `GET /login?next=…`, then `POST /login` with the form's csrf: the POST's answer.
    pub async fn sign_in(&mut self, email: &str, password: &str, next: &str) -> Reply {
        let csrf = self.csrf_from(&format!("/login?next={}", form_encode(next))).await;
        self.post_form("/login", &[("csrf", &csrf), ("email", email), ("password", password), ("next", next)]).await
    }
}

/// Every `Set-Cookie` header of a reply.
pub fn set_cookies(r: &Reply) -> Vec<String> {
    r.headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("Set-Cookie is text").to_owned())
        .collect()
}

/// The `Set-Cookie` header that sets `name`, whole.
pub fn set_cookie(r: &Reply, name: &str) -> Option<String> {
    set_cookies(r).into_iter().find(|c| c.split_once('=').is_some_and(|(n, _)| n.trim() == name))
}

/// A reply's `Location` header; the reply must have one.
#[track_caller]
pub fn location(r: &Reply) -> String {
    r.header("location").unwrap_or_else(|| panic!("no Location; status {} body {}", r.status, r.text))
}

/// The path and query of a `Location` value (a path, or an absolute URL whose origin is
/// `origin`); `None` when it points at another origin.
pub fn local_target(location: &str, origins: &[&str]) -> Option<String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location.to_owned());
    }
    origins.iter().find_map(|o| {
        location.strip_prefix(o).filter(|rest| rest.is_empty() || rest.starts_with('/')).map(|rest| {
            if rest.is_empty() {
                "/".to_owned()
            } else {
                rest.to_owned()
            }
        })
    })
}

/// A query parameter of a path or URL, decoded.
pub fn query_param(path_or_url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse("http://x.invalid/").unwrap().join(path_or_url).ok()?;
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Asserts a server-rendered page as docs/device.md wants it: HTML, no script, no asset
/// or link on another host, and a `<label for=…>` for every field a person fills in.
#[track_caller]
pub fn assert_plain_page(r: &Reply, what: &str) {
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "{what}: content type {ct:?}");
    let lower = r.text.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{what}: a script on the page: {}", r.text);
    assert!(!lower.contains("javascript:"), "{what}: a javascript: URL on the page: {}", r.text);
    for tag in ["script", "link", "img", "a", "iframe", "source", "form", "image", "use", "object", "embed"] {
        for attrs in tags(&r.text, tag) {
            for attr in ["src", "href", "srcset", "data"] {
                if let Some(v) = attrs.get(attr) {
                    let v = v.trim().to_ascii_lowercase();
                    let external = (v.starts_with("http://") || v.starts_with("https://") || v.starts_with("//"))
                        && !v.starts_with(PUBLIC_URL);
                    assert!(!external, "{what}: <{tag} {attr}={v:?}> points at another host: {}", r.text);
                }
            }
        }
    }
    assert!(!lower.contains("@import") && !lower.contains("url(http"), "{what}: CSS loads from elsewhere: {}", r.text);
    let labels: Vec<String> = tags(&r.text, "label").into_iter().filter_map(|a| a.get("for").cloned()).collect();
    let mut fields: Vec<(String, std::collections::BTreeMap<String, String>)> = Vec::new();
    for attrs in tags(&r.text, "input") {
        let kind = attrs.get("type").map(|t| t.to_ascii_lowercase()).unwrap_or_else(|| "text".into());
        if !["hidden", "submit", "button", "reset", "image"].contains(&kind.as_str()) {
            fields.push(("input".into(), attrs));
        }
    }
    for tag in ["select", "textarea"] {
        for attrs in tags(&r.text, tag) {
            fields.push((tag.into(), attrs));
        }
    }
    for (tag, attrs) in fields {
        let id =
            attrs.get("id").unwrap_or_else(|| panic!("{what}: <{tag} {attrs:?}> has no id for a label: {}", r.text));
        assert!(labels.iter().any(|l| l == id), "{what}: no <label for={id:?}> for <{tag} {attrs:?}>: {}", r.text);
    }
}
