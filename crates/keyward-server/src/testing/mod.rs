//! What this crate's test binaries share (the `test-support` feature): a server on port 0
//! over a test database, the fixtures every suite makes (organizations, members, keys made
//! through the same rule functions as the API and the CLI), and pages read as a browser
//! parses them (`scraper`, on html5ever).

use std::net::SocketAddr;

use keyward_core::domain::{Email, Plan, Slug};
use keyward_core::permission::Roles;
use keyward_core::secret::{PlainSecret, SecretFormat};
use keyward_store::testing::TestDb;
use keyward_store::{Actor, ApiKey, Org, Principal, Store, User};

use crate::deployment::Deployment;
use crate::keys::{self, Creator, KeyRequest};
use crate::startup::Server;
use crate::Settings;

pub mod html;
pub mod http;

/// A server started by [`serve`]. Dropping it shuts the server down gracefully.
pub struct Running {
    /// `http://127.0.0.1:PORT` of the main listener.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the gateway, when `[gateway]` is configured.
    pub gateway: Option<String>,
    pub addr: SocketAddr,
    /// The settings it runs with.
    pub settings: Settings,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts a server on `db` with `extra` TOML (any key but `listen` and `database_url`;
/// a `[gateway]` table gets its own port 0 unless it names one).
pub async fn serve(db: &TestDb, extra: &str) -> Running {
    let toml = format!("listen = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\n{extra}\n", db.url);
    let settings = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("test settings: {e}\n{toml}"));
    let server = Server::build(settings.clone()).await.expect("the server starts");
    let addr = server.local_addr();
    let gateway = server.gateway_addr().map(|g| format!("http://{g}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { base: format!("http://{addr}"), gateway, addr, settings, _stop: stop }
}

impl Running {
    /// The main listener's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The password every test person who signs in has.
pub const PASSWORD: &str = "correct horse";

/// The argon2id hash of [`PASSWORD`], made once: argon2 is slow in a debug build, and
/// the same salt for every test person does not matter here.
pub fn password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| keyward_core::password::hash(PASSWORD))
}

/// An organization on the `pro` plan, named by its slug.
pub async fn org(store: &Store, slug: &str) -> Org {
    store.create_org(&Slug::parse(slug).expect("a slug"), slug, Plan::Pro).await.expect("create org")
}

/// A new person (named by their e-mail), member of `org` with `role`.
pub async fn member(store: &Store, org: &Org, email: &str, role: &str) -> User {
    let user = store.create_user(&Email::parse(email).expect("an e-mail"), email, None).await.expect("create user");
    store.add_member(&org.id, &Principal::user(&user.id), role, &Actor::cli()).await.expect("add member");
    user
}

/// A new person in `org` with `role` who signs in with [`PASSWORD`].
pub async fn person(store: &Store, org: &Org, email: &str, role: &str) -> User {
    let user = member(store, org, email, role).await;
    store.set_password_hash(&user.id, password_hash()).await.expect("set password");
    user
}

/// A key of `principal`'s in `org`, made as the admin commands make keys (the creator holds
/// everything `role` grants), with the default secret format.
pub async fn key(
    store: &Store,
    roles: &Roles,
    org: &Org,
    principal: &Principal,
    role: &str,
    req: &KeyRequest,
) -> (ApiKey, PlainSecret) {
    let secrets = SecretFormat::new("kw").expect("the default prefix");
    let holds = roles.permissions_of(role);
    let deployment = Deployment { store, secrets: &secrets, roles, min_plan: Plan::Free };
    let creator = Creator { holds: &holds, restricted: false };
    keys::create(&deployment, &org.id, principal, &creator, req, &Actor::cli()).await.expect("create key")
}

/// A key request named `name` with `permissions` (`None`: inherits the owner's).
pub fn key_request(name: &str, permissions: Option<&[&str]>) -> KeyRequest {
    KeyRequest {
        name: name.into(),
        permissions: permissions.map(|p| p.iter().map(|s| s.to_string()).collect()),
        expires_at: None,
    }
}
