//! The device authorization grant (RFC 8628) end to end over HTTP, as docs/device.md and
//! DESIGN.md "OAuth details that tests check" → Device grant describe it: starting,
//! polling (`authorization_pending`, `slow_down` and the grown interval), a person who
//! signs in and approves on `/device` (one organization, or a choice of several),
//! denial, expiry, one redemption only, another client's code, unknown clients, scopes,
//! refresh without a secret, and the signed-in devices at `/api/v1/sessions`.

use std::time::{Duration, Instant};

use keyward_store::testing::TestDb;
use serde_json::{json, Value};

use crate::helpers::*;

/// The default `member` role's permissions, sorted.
const MEMBER: &[&str] =
    &["api_keys:read", "api_keys:write", "members:read", "projects:read", "projects:write", "service_accounts:read"];

/// The user-code alphabet: no vowels, no look-alikes.
const ALPHABET: &str = "BCDFGHJKLMNPQRSTVWXZ";

/// A short polling interval, so a test can wait one out.
const FAST: &str = "[device]\ninterval = \"1s\"";

#[track_caller]
fn assert_user_code(code: &str) {
    let chars: Vec<char> = code.chars().collect();
    assert_eq!(chars.len(), 9, "user_code {code:?} is XXXX-XXXX");
    for (i, c) in chars.iter().enumerate() {
        if i == 4 {
            assert_eq!(*c, '-', "user_code {code:?} is XXXX-XXXX");
        } else {
            assert!(ALPHABET.contains(*c), "user_code {code:?}: {c:?} is not in {ALPHABET}");
        }
    }
}

/// The code as a person might type it: lower case, without the dash.
fn typed(user_code: &str) -> String {
    user_code.replace('-', "").to_lowercase()
}

/// Asserts an OAuth error at the device endpoints: `status`, JSON, `Cache-Control: no-store`.
#[track_caller]
fn assert_device_error(r: &Reply, status: u16, code: &str) {
    r.assert_error(status, code);
    let cc = r.header("cache-control").unwrap_or_default();
    assert!(cc.to_ascii_lowercase().contains("no-store"), "Cache-Control {cc:?}; body {}", r.text);
}

/// Asserts a successful token answer with a refresh token; returns (access, refresh).
#[track_caller]
fn assert_tokens(r: &Reply) -> (String, String) {
    assert_eq!(r.status, 200, "tokens: {}", r.text);
    r.assert_no_store();
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{ct}");
    let access = r.body["access_token"].as_str().unwrap_or_else(|| panic!("access_token: {}", r.text)).to_owned();
    assert!(access.starts_with("kwat_"), "{access}");
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.text);
    assert_eq!(r.body["expires_in"], 3600, "{}", r.text);
    assert!(r.body["scope"].is_string(), "{}", r.text);
    let refresh = r.body["refresh_token"].as_str().unwrap_or_else(|| panic!("refresh_token: {}", r.text)).to_owned();
    assert!(refresh.starts_with("kwrt_"), "{refresh}");
    (access, refresh)
}

fn sorted_scope(s: &Value) -> Vec<String> {
    let mut v: Vec<String> = s
        .as_str()
        .unwrap_or_else(|| panic!("scope is text: {s}"))
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn sorted(v: &Value) -> Vec<String> {
    let mut s = strings(v);
    s.sort();
    s
}

async fn me(app: &TestApp, token: &str) -> Reply {
    send(app.get("/api/v1/me").bearer_auth(token)).await
}

/// The code-entry form: `GET /device`, then `POST /device` with the code as typed. The
/// answer must be the approval page.
async fn enter_code(b: &mut Browser, user_code: &str) -> Reply {
    let csrf = b.csrf_from("/device").await;
    let page = b.post_form("/device", &[("csrf", &csrf), ("user_code", user_code)]).await;
    assert_eq!(page.status, 200, "the approval page for {user_code:?}: {}", page.text);
    page
}

/// Enters the code (lower case, no dash) and decides for `org`: the answer.
async fn decide(b: &mut Browser, user_code: &str, org: &str, decision: &str) -> Reply {
    let page = enter_code(b, &typed(user_code)).await;
    let csrf = input_value(&page.text, "csrf").unwrap_or_else(|| panic!("no csrf on the approval page: {}", page.text));
    b.post_form("/device", &[("csrf", &csrf), ("user_code", &typed(user_code)), ("org", org), ("decision", decision)])
        .await
}

#[track_caller]
fn assert_approved(r: &Reply) {
    assert_eq!(r.status, 200, "approve: {}", r.text);
    assert!(r.text.contains("Approved"), "the page says Approved: {}", r.text);
}

/// `email` (already a person with a password) approves a fresh `client_id` code for
/// `org`; the client redeems it. Returns (start, access, refresh).
pub(crate) async fn approved_tokens(
    app: &TestApp,
    email: &str,
    org: &str,
    client_id: &str,
    scope: Option<&str>,
) -> (DeviceStart, String, String) {
    let mut b = app.signed_in(email).await;
    let start = app.device_start(client_id, scope).await;
    assert_approved(&decide(&mut b, &start.user_code, org, "approve").await);
    let r = app.device_poll(&start.device_code, client_id).await;
    let (access, refresh) = assert_tokens(&r);
    (start, access, refresh)
}

async fn start_answers_the_documented_fields(db: &TestDb) {
    let app = spawn_app(db).await;
    let r = app.device_start_reply("keyward-cli", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{ct}");
    let b = &r.body;
    let user_code = b["user_code"].as_str().unwrap_or_else(|| panic!("user_code: {}", r.text));
    assert_user_code(user_code);
    let device_code = b["device_code"].as_str().unwrap_or_else(|| panic!("device_code: {}", r.text));
    assert!(device_code.len() >= 20, "the device code is a random secret: {device_code:?}");
    assert_ne!(device_code, user_code);
    assert_eq!(b["verification_uri"], format!("{PUBLIC_URL}/device"), "{}", r.text);
    assert_eq!(b["verification_uri_complete"], format!("{PUBLIC_URL}/device?user_code={user_code}"), "{}", r.text);
    assert_eq!(b["expires_in"], 600, "{}", r.text);
    assert_eq!(b["interval"], 5, "{}", r.text);

    // Every start is a new pair of codes.
    let again = app.device_start("keyward-cli", None).await;
    assert_ne!(again.device_code, device_code);
    assert_ne!(again.user_code, user_code);
    assert_user_code(&again.user_code);

    // The other default client, and a JSON body.
    let mcp = app.device_start("keyward-mcp", None).await;
    assert_user_code(&mcp.user_code);
    let j = send(app.post("/oauth/device_authorization").json(&json!({"client_id": "keyward-cli"}))).await;
    assert_eq!(j.status, 200, "a JSON body is accepted: {}", j.text);
    assert_user_code(j.body["user_code"].as_str().unwrap_or_default());

    // Until someone decides, the client is told to wait.
    let p = app.device_poll(device_code, "keyward-cli").await;
    assert_device_error(&p, 400, "authorization_pending");
    p.assert_no_store();
}

async fn a_person_approves_and_the_client_gets_tokens(db: &TestDb) {
    let app = spawn_app_tables(db, FAST).await;
    let org = app.org("acme").await;
    let ada = app.person(&org, "ada@acme.test", "member").await;
    let start = app.device_start("keyward-cli", None).await;
    assert_eq!(start.body["interval"], 1, "the configured interval: {}", start.body);

    let first_poll = Instant::now();
    assert_device_error(&app.device_poll(&start.device_code, "keyward-cli").await, 400, "authorization_pending");

    // The person opens verification_uri_complete: not signed in, so to /login and back.
    let complete = start.body["verification_uri_complete"].as_str().unwrap().to_owned();
    let path = complete.strip_prefix(PUBLIC_URL).expect("verification_uri_complete is on public_url").to_owned();
    let mut b = app.browser();
    let r = b.get(&path).await;
    assert_eq!(r.status, 303, "GET {path} signed out: {}", r.text);
    let to = local_target(&location(&r), &[PUBLIC_URL, &app.base]).expect("a local redirect");
    assert!(to.starts_with("/login?"), "to the sign-in page: {to}");
    let next = query_param(&to, "next").unwrap_or_else(|| panic!("next in {to}"));
    assert_eq!(next, format!("/device?user_code={}", start.user_code));
    let login = b.get(&to).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(input_value(&login.text, "next").as_deref(), Some(next.as_str()), "the hidden next: {}", login.text);
    let csrf = input_value(&login.text, "csrf").expect("csrf on /login");
    let r = b
        .post_form("/login", &[("csrf", &csrf), ("email", "ada@acme.test"), ("password", PASSWORD), ("next", &next)])
        .await;
    assert_eq!(r.status, 303, "sign in: {}", r.text);
    assert_eq!(local_target(&location(&r), &[PUBLIC_URL, &app.base]).as_deref(), Some(next.as_str()), "back to next");

    // The approval page, pre-filled: it names the client, what it asks for, the org.
    let page = b.get(&next).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_plain_page(&page, "the approval page");
    assert!(page.text.contains("keyward CLI"), "the client's display name: {}", page.text);
    assert!(page.text.contains("keyward-cli"), "the client id: {}", page.text);
    assert!(page.text.contains("everything you hold"), "no scope asked: {}", page.text);
    assert_eq!(input_value(&page.text, "org").as_deref(), Some("acme"), "one org: a hidden field: {}", page.text);
    assert!(select_options(&page.text, "org").is_none(), "no choice for one org: {}", page.text);
    let decisions: Vec<String> = tags(&page.text, "button")
        .into_iter()
        .chain(tags(&page.text, "input"))
        .filter(|a| a.get("name").is_some_and(|n| n == "decision"))
        .filter_map(|a| a.get("value").cloned())
        .collect();
    assert!(
        decisions.contains(&"approve".to_owned()) && decisions.contains(&"deny".to_owned()),
        "{decisions:?}: {}",
        page.text
    );

    // The link works with the code in lower case without the dash, too.
    let page = b.get(&format!("/device?user_code={}", typed(&start.user_code))).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("keyward-cli"), "the approval page: {}", page.text);

    // Approve through the code-entry form, the code typed in lower case without the dash.
    assert_approved(&decide(&mut b, &start.user_code, "acme", "approve").await);

    // Honour the interval since the last poll, then redeem.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(first_poll.elapsed())).await;
    let redeemed = Instant::now();
    let (access, refresh) = assert_tokens(&app.device_poll(&start.device_code, "keyward-cli").await);
    assert_ne!(access, refresh);
    let m = me(&app, &access).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["principal"]["kind"], "user", "{}", m.text);
    assert_eq!(m.body["principal"]["id"], ada.user_id(), "{}", m.text);
    assert_eq!(m.body["principal"]["email"], "ada@acme.test", "{}", m.text);
    assert_eq!(m.body["org"]["id"], org.id.to_string(), "{}", m.text);
    assert_eq!(m.body["org"]["slug"], "acme", "{}", m.text);
    assert_eq!(sorted(&m.body["permissions"]), MEMBER, "no scope: everything the person holds: {}", m.text);

    // Once only.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(redeemed.elapsed())).await;
    assert_device_error(&app.device_poll(&start.device_code, "keyward-cli").await, 400, "invalid_grant");
    // Unknown device codes too.
    assert_device_error(&app.device_poll("not-a-device-code", "keyward-cli").await, 400, "invalid_grant");
    // The used code is no good on /device any more.
    let csrf = b.csrf_from("/device").await;
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 400, "a used code on /device: {}", r.text);
    assert!(r.text.contains("that code is not valid"), "{}", r.text);
}

async fn polling_too_fast_is_slow_down_and_the_interval_stays_grown(db: &TestDb) {
    let app = spawn_app_tables(db, FAST).await;
    let a = app.device_start("keyward-cli", None).await;
    let b = app.device_start("keyward-cli", None).await;
    assert_eq!(a.body["interval"], 1, "{}", a.body);

    assert_device_error(&app.device_poll(&a.device_code, "keyward-cli").await, 400, "authorization_pending");
    let r = app.device_poll(&a.device_code, "keyward-cli").await;
    assert_device_error(&r, 400, "slow_down");
    r.assert_no_store();
    assert_device_error(&app.device_poll(&b.device_code, "keyward-cli").await, 400, "authorization_pending");
    assert_device_error(&app.device_poll(&b.device_code, "keyward-cli").await, 400, "slow_down");
    let b_slowed = Instant::now();

    // A: 2 s later is more than the configured 1 s but less than the grown 6 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_device_error(
        &app.device_poll(&a.device_code, "keyward-cli").await,
        400,
        "slow_down", // the interval grew by 5 s and stayed grown
    );

    // B: past the grown interval (1 s + 5 s), polling is welcome again — it grew by 5 s,
    // not more, and only for the codes that were polled too fast.
    tokio::time::sleep(Duration::from_millis(6300).saturating_sub(b_slowed.elapsed())).await;
    assert_device_error(&app.device_poll(&b.device_code, "keyward-cli").await, 400, "authorization_pending");

    // A third code, never polled too fast, still has the 1 s interval.
    let c = app.device_start("keyward-cli", None).await;
    assert_device_error(&app.device_poll(&c.device_code, "keyward-cli").await, 400, "authorization_pending");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_device_error(&app.device_poll(&c.device_code, "keyward-cli").await, 400, "authorization_pending");
}

/// A poll answered `slow_down` does not restart the clock: the interval counts from the
/// last poll that was in time. (Restarting it left a client that missed one slow_down,
/// and then backed off as RFC 8628 §3.5 says, 5 s short of the grown interval for good.)
async fn a_slow_down_poll_does_not_restart_the_clock(db: &TestDb) {
    let app = spawn_app_tables(db, FAST).await;
    let a = app.device_start("keyward-cli", None).await;
    assert_device_error(&app.device_poll(&a.device_code, "keyward-cli").await, 400, "authorization_pending");
    let in_time = Instant::now();
    // Too soon (under the 1 s interval) — a slow_down the client does not see.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_device_error(&app.device_poll(&a.device_code, "keyward-cli").await, 400, "slow_down");
    // 6 s (1 s + 5 s) after the last poll in time, but only 5.7 s after the slow_down one:
    // welcome, because the slow_down poll did not move the clock.
    tokio::time::sleep(Duration::from_millis(6200).saturating_sub(in_time.elapsed())).await;
    assert_device_error(&app.device_poll(&a.device_code, "keyward-cli").await, 400, "authorization_pending");
}

async fn denied_is_access_denied(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    let r = decide(&mut b, &start.user_code, "acme", "deny").await;
    assert_eq!(r.status, 200, "deny: {}", r.text);
    assert!(r.text.contains("Denied"), "the page says Denied: {}", r.text);
    assert_plain_page(&r, "the Denied page");
    assert_device_error(&app.device_poll(&start.device_code, "keyward-cli").await, 400, "access_denied");
}

async fn an_expired_code_is_expired_token(db: &TestDb) {
    let app = spawn_app_tables(db, "[device]\ncode_lifetime = \"1s\"").await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    assert_eq!(start.body["expires_in"], 1, "the configured lifetime: {}", start.body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_device_error(&app.device_poll(&start.device_code, "keyward-cli").await, 400, "expired_token");
    // Too late to approve, too.
    let csrf = b.csrf_from("/device").await;
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 400, "an expired code on /device: {}", r.text);
    assert!(r.text.contains("that code is not valid"), "{}", r.text);
}

async fn another_clients_code_is_invalid_grant(db: &TestDb) {
    let app = spawn_app_tables(db, FAST).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-mcp", None).await;
    let page = enter_code(&mut b, &start.user_code).await;
    assert!(page.text.contains("keyward MCP client"), "the MCP client's display name: {}", page.text);
    assert!(page.text.contains("keyward-mcp"), "{}", page.text);
    assert_approved(&decide(&mut b, &start.user_code, "acme", "approve").await);

    assert_device_error(&app.device_poll(&start.device_code, "keyward-cli").await, 400, "invalid_grant");
    // The code itself was fine: its own client gets the tokens.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (access, _) = assert_tokens(&app.device_poll(&start.device_code, "keyward-mcp").await);
    assert_eq!(me(&app, &access).await.status, 200);
}

async fn clients_not_allowed_and_bad_requests(db: &TestDb) {
    let app = spawn_app(db).await;
    let r = app.device_start_reply("not-a-device-client", None).await;
    assert!(r.status == 400 || r.status == 401, "unknown client: {} {}", r.status, r.text);
    assert_device_error(&r, r.status, "invalid_client");

    // With Basic: 401 and a Basic challenge.
    let r = app.oauth_form("/oauth/device_authorization", Some(&client_basic("not-a-device-client", "x")), &[]).await;
    assert_device_error(&r, 401, "invalid_client");
    assert!(r.challenges().iter().any(|c| c.starts_with("Basic")), "{:?}", r.challenges());

    // A service account is no device client either.
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    let r = app.device_start_reply(&sa.client_id, None).await;
    assert_device_error(&r, r.status, "invalid_client");

    let r = app.oauth_form("/oauth/device_authorization", None, &[]).await;
    assert_device_error(&r, 400, "invalid_request");
    let r = app.device_start_reply("keyward-cli", Some("nonsense:everything")).await;
    assert_device_error(&r, 400, "invalid_scope");

    // At the token endpoint, a client id that may not use the device flow.
    let start = app.device_start("keyward-cli", None).await;
    let r = app.device_poll(&start.device_code, "not-a-device-client").await;
    assert!(r.status == 400 || r.status == 401, "unknown client: {} {}", r.status, r.text);
    r.assert_oauth_error(r.status, "invalid_client");
}

/// docs/device.md: "`invalid_client` for a client id not in `device.client_ids` (`401`
/// when it came with Basic)" — a service account presenting its own secret included.
async fn a_service_account_with_its_secret_is_no_device_client(db: &TestDb) {
    let app = spawn_app(db).await;
    let (_, admin) = app.org_with_admin("acme").await;
    let sa = app.create_sa(&admin, json!({"name": "bot"})).await;
    let r = app.oauth_form("/oauth/device_authorization", Some(&sa.basic()), &[]).await;
    assert_device_error(&r, 401, "invalid_client");
    assert!(r.challenges().iter().any(|c| c.starts_with("Basic")), "{:?}", r.challenges());
    let r = app
        .oauth_form(
            "/oauth/device_authorization",
            None,
            &[("client_id", &sa.client_id), ("client_secret", sa.secret())],
        )
        .await;
    assert_device_error(&r, r.status, "invalid_client");
    // The same at the token endpoint ("a client id not in device.client_ids → invalid_client").
    let start = app.device_start("keyward-cli", None).await;
    let r =
        app.token(Some(&sa.basic()), &[("grant_type", DEVICE_CODE_GRANT), ("device_code", &start.device_code)]).await;
    r.assert_oauth_error(401, "invalid_client");
}

async fn a_person_in_two_orgs_chooses_one(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let beta = app.org("beta").await;
    let ada = app.person(&acme, "ada@acme.test", "member").await;
    app.join(&beta, &ada.user, "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;

    let page = b.get(&format!("/device?user_code={}", start.user_code)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_plain_page(&page, "the approval page with a choice of orgs");
    let mut options =
        select_options(&page.text, "org").unwrap_or_else(|| panic!("a <select name=\"org\">: {}", page.text));
    options.sort();
    assert_eq!(options, ["acme", "beta"], "{}", page.text);

    assert_approved(&decide(&mut b, &start.user_code, "beta", "approve").await);
    let (access, _) = assert_tokens(&app.device_poll(&start.device_code, "keyward-cli").await);
    let m = me(&app, &access).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["org"]["id"], beta.id.to_string(), "the org picked: {}", m.text);
    assert_eq!(m.body["org"]["slug"], "beta", "{}", m.text);
    assert_eq!(m.body["principal"]["id"], ada.user_id(), "{}", m.text);
}

async fn an_org_the_person_is_not_in_is_403(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    app.person(&acme, "ada@acme.test", "member").await;
    app.person(&other, "olga@other.test", "owner").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    for org in ["other", "nosuchorg"] {
        let r = decide(&mut b, &start.user_code, org, "approve").await;
        assert_eq!(r.status, 403, "approving for {org}: {}", r.text);
        assert!(!r.text.contains("Approved"), "{}", r.text);
    }
    // Nothing was approved.
    assert_device_error(&app.device_poll(&start.device_code, "keyward-cli").await, 400, "authorization_pending");
}

async fn a_scope_narrows_the_token(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", Some("projects:read")).await;
    let page = enter_code(&mut b, &start.user_code).await;
    assert!(page.text.contains("projects:read"), "the page names the scope asked for: {}", page.text);
    assert!(!page.text.contains("everything you hold"), "{}", page.text);
    assert_approved(&decide(&mut b, &start.user_code, "acme", "approve").await);
    let r = app.device_poll(&start.device_code, "keyward-cli").await;
    let (access, _) = assert_tokens(&r);
    assert_eq!(sorted_scope(&r.body["scope"]), ["projects:read"], "{}", r.text);
    let m = me(&app, &access).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(sorted(&m.body["permissions"]), ["projects:read"], "{}", m.text);
}

async fn refresh_needs_no_secret_and_rotates(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let (_, access, refresh) = approved_tokens(&app, "ada@acme.test", "acme", "keyward-cli", None).await;

    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "keyward-cli")])
        .await;
    let (access2, refresh2) = assert_tokens(&r);
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    let m = me(&app, &access2).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["principal"]["email"], "ada@acme.test", "{}", m.text);

    // Another client cannot use it.
    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh2), ("client_id", "keyward-mcp")])
        .await;
    r.assert_oauth_error(400, "invalid_grant");

    // The used refresh token again: reuse, the family ends.
    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "keyward-cli")])
        .await;
    r.assert_oauth_error(400, "invalid_grant");
    assert_eq!(me(&app, &access2).await.status, 401, "the family is revoked after reuse");
}

async fn sessions_list_and_end_a_device(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let other = app.org("other").await;
    let ada = app.person(&acme, "ada@acme.test", "member").await;
    let bob = app.person(&acme, "bob@acme.test", "admin").await;
    let olga = app.person(&other, "olga@other.test", "owner").await;
    let ada_key = app.key(&ada, None).await;
    let bob_key = app.key(&bob, None).await;
    let olga_key = app.key(&olga, None).await;

    let (_, _, refresh) = approved_tokens(&app, "ada@acme.test", "acme", "keyward-cli", None).await;
    // A refresh keeps it one device.
    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "keyward-cli")])
        .await;
    let (access, refresh) = assert_tokens(&r);

    let r = send(app.get("/api/v1/sessions").bearer_auth(&access)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.body["data"].as_array().unwrap_or_else(|| panic!("data is a list: {}", r.text)).clone();
    assert_eq!(data.len(), 1, "one device across refreshes: {}", r.text);
    let s = &data[0];
    for f in ["id", "client_id", "client_name", "org", "scopes", "created_at", "last_refreshed_at", "expires_at"] {
        assert!(s.get(f).is_some(), "{f} missing in {s}");
    }
    let id = s["id"].as_str().unwrap_or_else(|| panic!("id: {s}")).to_owned();
    assert!(id.starts_with("fam_"), "{id}");
    assert_eq!(s["client_id"], "keyward-cli", "{s}");
    assert_eq!(s["client_name"], "keyward CLI", "{s}");
    assert_eq!(s["org"]["slug"], "acme", "{s}");
    assert_eq!(s["org"]["id"], acme.id.to_string(), "{s}");

    // An API key of the person's lists it too; other people see only their own.
    let r = send(app.get("/api/v1/sessions").bearer_auth(&ada_key.secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["data"].as_array().is_some_and(|d| d.iter().any(|x| x["id"] == id.as_str())), "{}", r.text);
    for k in [&bob_key, &olga_key] {
        let r = send(app.get("/api/v1/sessions").bearer_auth(&k.secret)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["data"], json!([]), "another person's list: {}", r.text);
    }

    // Another person's, or another org's, id: 404; the device keeps working.
    for k in [&bob_key, &olga_key] {
        let r = send(app.delete(&format!("/api/v1/sessions/{id}")).bearer_auth(&k.secret)).await;
        assert_eq!(r.status, 404, "someone else ends ada's device: {}", r.text);
    }
    assert_eq!(me(&app, &access).await.status, 200);
    let r = send(app.delete("/api/v1/sessions/fam_doesnotexist").bearer_auth(&ada_key.secret)).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // The person ends it: the access token stops at once, the refresh token too.
    let r = send(app.delete(&format!("/api/v1/sessions/{id}")).bearer_auth(&ada_key.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(me(&app, &access).await.status, 401, "the ended device's access token, at once");
    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "keyward-cli")])
        .await;
    r.assert_oauth_error(400, "invalid_grant");
    let r = send(app.get("/api/v1/sessions").bearer_auth(&ada_key.secret)).await;
    assert_eq!(r.body["data"], json!([]), "ended devices are not listed: {}", r.text);
}

async fn a_decided_code_cannot_be_decided_again(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    assert_approved(&decide(&mut b, &start.user_code, "acme", "approve").await);
    // Approved, not yet redeemed: no second decision.
    let csrf = b.csrf_from("/device").await;
    let r = b
        .post_form(
            "/device",
            &[("csrf", &csrf), ("user_code", &start.user_code), ("org", "acme"), ("decision", "deny")],
        )
        .await;
    assert_eq!(r.status, 400, "denying an approved code: {}", r.text);
    assert!(r.text.contains("that code is not valid"), "{}", r.text);
    assert!(!r.text.contains("Denied"), "{}", r.text);
    assert_tokens(&app.device_poll(&start.device_code, "keyward-cli").await);
}

async fn the_token_follows_the_role_now(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    let ada = app.person(&org, "ada@acme.test", "member").await;
    let (_, all, _) = approved_tokens(&app, "ada@acme.test", "acme", "keyward-cli", None).await;
    let (_, scoped, _) =
        approved_tokens(&app, "ada@acme.test", "acme", "keyward-cli", Some("projects:read projects:write")).await;
    assert_eq!(sorted(&me(&app, &scoped).await.body["permissions"]), ["projects:read", "projects:write"]);

    // approved scopes ∩ what the role holds now
    app.store.set_role(&org.id, &ada.user_id(), "viewer", &keyward_store::Actor::cli()).await.unwrap();
    let viewer = ["api_keys:read", "api_keys:write", "members:read", "projects:read"];
    eventually("a smaller role reaches the unscoped token", PATIENCE, || async {
        sorted(&me(&app, &all).await.body["permissions"]) == viewer
    })
    .await;
    eventually("a smaller role reaches the scoped token", PATIENCE, || async {
        sorted(&me(&app, &scoped).await.body["permissions"]) == ["projects:read"]
    })
    .await;

    // Out of the organization: the tokens stop.
    app.store.remove_member(&org.id, &ada.user_id(), &keyward_store::Actor::cli()).await.unwrap();
    for t in [&all, &scoped] {
        eventually("a removal reaches the device's token", PATIENCE, || async { me(&app, t).await.status == 401 })
            .await;
    }
}

async fn configured_clients_and_their_names(db: &TestDb) {
    let app = spawn_app_tables(
        db,
        "[device]\nclient_ids = [\"keyward-cli\", \"my-tool\", \"plain-tool\"]\n[device.names]\nmy-tool = \"My Tool\"",
    )
    .await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    for (client, shown) in [("my-tool", "My Tool"), ("plain-tool", "plain-tool"), ("keyward-cli", "keyward CLI")] {
        let start = app.device_start(client, None).await;
        let page = enter_code(&mut b, &start.user_code).await;
        assert!(page.text.contains(shown), "{client} shows as {shown:?}: {}", page.text);
        assert!(page.text.contains(client), "{client}: {}", page.text);
    }
    // Not configured any more.
    let r = app.device_start_reply("keyward-mcp", None).await;
    assert_device_error(&r, r.status, "invalid_client");
}

async fn revoking_the_refresh_token_ends_the_device(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let (_, access, refresh) = approved_tokens(&app, "ada@acme.test", "acme", "keyward-cli", None).await;
    // What `keyward logout` does: a device-flow client names itself with client_id.
    let r = app.oauth_form("/oauth/revoke", None, &[("token", &refresh), ("client_id", "keyward-cli")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(me(&app, &access).await.status, 401, "the family's access token, at once");
    let r = app
        .token(None, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "keyward-cli")])
        .await;
    r.assert_oauth_error(400, "invalid_grant");
}

both_backends!(
    a_decided_code_cannot_be_decided_again,
    the_token_follows_the_role_now,
    configured_clients_and_their_names,
    revoking_the_refresh_token_ends_the_device,
    start_answers_the_documented_fields,
    a_person_approves_and_the_client_gets_tokens,
    polling_too_fast_is_slow_down_and_the_interval_stays_grown,
    a_slow_down_poll_does_not_restart_the_clock,
    denied_is_access_denied,
    an_expired_code_is_expired_token,
    another_clients_code_is_invalid_grant,
    clients_not_allowed_and_bad_requests,
    a_service_account_with_its_secret_is_no_device_client,
    a_person_in_two_orgs_chooses_one,
    an_org_the_person_is_not_in_is_403,
    a_scope_narrows_the_token,
    refresh_needs_no_secret_and_rotates,
    sessions_list_and_end_a_device,
);
