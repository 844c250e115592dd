//! Abuse controls: failed authentications per client address, throttled before the
//! database while valid cached credentials pass. On sign-in and the device page: attempts counted before the password
//! is hashed (a burst cannot overrun a limit), limits per (e-mail, address), per e-mail
//! and per address sized so an attacker cannot lock the real person out, `Retry-After`
//! on every `429`, and following a `/device` link not counted as an attempt.
//!
//! The client address is varied with `X-Forwarded-For` from a trusted proxy
//! (`rate_limits.trusted_proxies = ["127.0.0.1"]`), as a deployment behind a load
//! balancer sees it.

use std::time::Duration;

use crate::helpers::*;
use keyward_store::testing::TestDb;

const BEHIND_A_PROXY: &str = "[rate_limits]\ntrusted_proxies = [\"127.0.0.1\"]";

/// A browser whose requests come, through the trusted proxy, from `address`.
fn browser_from(app: &TestApp, address: &str) -> Browser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().unwrap());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    Browser { base: app.base.clone(), http, cookies: Default::default() }
}

/// A counter of `/metrics` (a series without labels).
async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// `n` sign-ins as `email` with wrong passwords, all at once, each from its own browser
/// at `address`; the statuses, and every 429's `Retry-After`.
async fn burst(app: &TestApp, address: &str, email: &str, n: usize) -> (Vec<u16>, Vec<Option<String>>) {
    let mut ready = Vec::new();
    for _ in 0..n {
        let mut b = browser_from(app, address);
        let csrf = b.csrf_from("/login").await;
        ready.push((b, csrf));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (mut b, csrf)) in ready.into_iter().enumerate() {
        let email = email.to_owned();
        tasks.spawn(async move {
            let password = format!("wrong guess {i}");
            let r = b.post_form("/login", &[("csrf", &csrf), ("email", &email), ("password", &password)]).await;
            (r.status, r.header("retry-after"))
        });
    }
    let mut statuses = Vec::new();
    let mut waits = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (status, wait) = done.unwrap();
        statuses.push(status);
        if status == 429 {
            waits.push(wait);
        }
    }
    (statuses, waits)
}

async fn a_burst_of_guesses_checks_at_most_the_limit(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let before = metric(&app, "keyward_password_checks_total").await;
    let (statuses, waits) = burst(&app, "127.0.0.1", "ada@acme.test", 100).await;
    let checked = metric(&app, "keyward_password_checks_total").await - before;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + limited, 100, "only 401 and 429: {statuses:?}");
    assert_eq!(wrong, 5, "the per-(e-mail, address) limit is 5: {statuses:?}");
    assert_eq!(checked, 5, "one password hash per attempt let through, none for the refused");
    for wait in waits {
        let seconds: u64 = wait.expect("every 429 carries Retry-After").parse().unwrap();
        assert!((1..=900).contains(&seconds), "Retry-After {seconds}");
    }
    // The right password is refused too now, without being checked.
    let r = app.browser().sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(metric(&app, "keyward_password_checks_total").await - before, 5);
}

async fn the_owner_signs_in_from_elsewhere_while_an_attacker_is_limited(db: &TestDb) {
    let app = spawn_app_tables(db, BEHIND_A_PROXY).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let (statuses, _) = burst(&app, "203.0.113.9", "ada@acme.test", 30).await;
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    let r = browser_from(&app, "203.0.113.9").sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "the attacker's address is limited even with the right password: {}", r.text);
    let r = browser_from(&app, "198.51.100.7").sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "the owner, from their own address: {}", r.text);
    // A success gives its attempt back: the owner can sign in again and again.
    for _ in 0..6 {
        let r = browser_from(&app, "198.51.100.7").sign_in("ada@acme.test", PASSWORD, "/").await;
        assert_eq!(r.status, 303, "{}", r.text);
    }
}

async fn many_addresses_lock_the_email_but_not_others(db: &TestDb) {
    let app = spawn_app_tables(db, &format!("{BEHIND_A_PROXY}\nsign_in_per_email = \"12/15m\"")).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    app.person(&org, "bob@acme.test", "member").await;
    // 3 addresses × 4 failures: under the per-(e-mail, address) limit, at the per-e-mail one.
    for n in 1..=3 {
        let mut b = browser_from(&app, &format!("192.0.2.{n}"));
        for i in 1..=4 {
            let r = b.sign_in("ada@acme.test", &format!("wrong {i}"), "/").await;
            assert_eq!(r.status, 401, "address {n}, failure {i}: {}", r.text);
        }
    }
    let r = browser_from(&app, "198.51.100.7").sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "the e-mail is limited from everywhere: {}", r.text);
    assert!(r.header("retry-after").is_some());
    let r = browser_from(&app, "192.0.2.1").sign_in("bob@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "another e-mail from a guessing address: {}", r.text);
}

async fn spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    // Each guess claims another address; with no trusted proxy all are 127.0.0.1.
    for i in 1..=5 {
        let r = browser_from(&app, &format!("192.0.2.{i}")).sign_in("ada@acme.test", "wrong", "/").await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = browser_from(&app, "192.0.2.99").sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "X-Forwarded-For from an untrusted peer is not believed: {}", r.text);
}

async fn following_a_device_link_is_not_an_attempt(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    // Ten stale links: the first five say so, the rest show the code to submit.
    for i in 0..10 {
        let r = b
            .get(&format!("/device?user_code=BCDF-BCD{}", ["F", "G", "H", "J", "K", "L", "M", "N", "P", "Q"][i]))
            .await;
        assert!(r.status == 400 || r.status == 200, "link {i}: {} {}", r.status, r.text);
        assert!(input_value(&r.text, "user_code").is_some_and(|v| v.starts_with("BCDF-BCD")), "prefilled: {}", r.text);
    }
    // None of them spent a try: the typed code still works.
    let csrf = b.csrf_from("/device").await;
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("keyward-cli"), "the approval page: {}", r.text);
    // Typed wrong codes count, and the lock says when to come back.
    for code in ["BCDF-BCDF", "GHJK-GHJK", "LMNP-LMNP", "QRST-QRST", "VWXZ-VWXZ"] {
        assert_eq!(b.post_form("/device", &[("csrf", &csrf), ("user_code", code)]).await.status, 400);
    }
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
}

/// A well-formed key (its checksum holds) that no one was given: every one is a cache
/// miss, the kind of flood that would cost a database query each.
fn wrong_key() -> String {
    let format = keyward_core::secret::SecretFormat::new("kw").unwrap();
    format.generate(keyward_core::secret::SecretKind::ApiKey).expose().to_owned()
}

async fn status_from(app: &TestApp, path: &str, key: &str, address: Option<&str>) -> Reply {
    let mut rb = app.get(path).bearer_auth(key);
    if let Some(a) = address {
        rb = rb.header("x-forwarded-for", a);
    }
    send(rb).await
}

async fn misses(app: &TestApp) -> u64 {
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("keyward_grant_cache_lookups_total{outcome=\"miss\"}")).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Makes a key of `m`'s and waits until the instance has applied every change made so
/// far (its change follower works in the background; a member added a moment ago would
/// otherwise drop that member's cached keys later, in the middle of a test). A key's
/// creation clears the negative cache once applied, in order after every earlier change:
/// so a wrong key cached as unknown before the creation misses again once it is applied.
/// The probes come from addresses of their own, so they spend no failures of 127.0.0.1.
async fn settled(app: &TestApp, m: &Member) -> Key {
    let probe = wrong_key();
    status_from(app, "/api/v1/me", &probe, Some("198.51.100.200")).await;
    let key = app.key(m, None).await;
    let mut n = 0;
    eventually("the instance applies the changes made so far", std::time::Duration::from_secs(10), || {
        n += 1;
        let (probe, address) = (probe.clone(), format!("198.51.{}.{}", 100 + n / 250, n % 250));
        async move {
            let before = misses(app).await;
            status_from(app, "/api/v1/me", &probe, Some(&address)).await;
            misses(app).await > before
        }
    })
    .await;
    key
}

async fn wrong_credentials_from_one_address_are_throttled_before_the_database(db: &TestDb) {
    let tables = format!("{BEHIND_A_PROXY}\nfailed_authentications = \"10/1m\"");
    let app = spawn_app_tables(db, &tables).await;
    let (org, admin) = app.org_with_admin("acme").await;
    let m = app.member(&org, "ada@acme.test", "member").await;
    let valid = app.key(&m, None).await;
    let unused = settled(&app, &m).await;
    // Used once, so they are in the cache.
    assert_eq!(status_from(&app, "/auth/check", &valid.secret, None).await.status, 200);
    assert_eq!(status_from(&app, "/api/v1/me", &admin.secret, None).await.status, 200);
    for i in 0..10 {
        let r = status_from(&app, "/api/v1/me", &wrong_key(), None).await;
        assert_eq!(r.status, 401, "wrong key {i}: {}", r.text);
    }
    let before = misses(&app).await;
    for path in ["/api/v1/me", "/auth/check", "/api/v1/api-keys"] {
        let r = status_from(&app, path, &wrong_key(), None).await;
        r.assert_error(429, "rate_limited");
        let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    assert_eq!(misses(&app).await, before, "throttled credentials cost no database lookup");
    // Valid credentials from the same address still pass (from the cache).
    assert_eq!(status_from(&app, "/auth/check", &valid.secret, None).await.status, 200);
    assert_eq!(status_from(&app, "/api/v1/me", &admin.secret, None).await.status, 200);
    // A valid key the cache does not know is not looked up from there until the window
    // ends (docs/decisions.md); from another address it is.
    status_from(&app, "/api/v1/me", &unused.secret, None).await.assert_error(429, "rate_limited");
    assert_eq!(status_from(&app, "/api/v1/me", &unused.secret, Some("198.51.100.8")).await.status, 200);
    // The OAuth token endpoint's client authentication is throttled too.
    let r =
        app.token(Some(&client_basic("no-such-client", "wrong-secret")), &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"], "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Another address is not.
    let r = status_from(&app, "/api/v1/me", &wrong_key(), Some("198.51.100.7")).await;
    assert_eq!(r.status, 401, "{}", r.text);
}

async fn a_plan_limit_holds_per_credential_with_ratelimit_headers(db: &TestDb) {
    let app = spawn_app_tables(db, "[rate_limits.plans]\npro = \"4/1m\"").await;
    let (org, admin) = app.org_with_admin("acme").await;
    let m = app.member(&org, "ada@acme.test", "member").await;
    let key = app.key(&m, None).await;
    for left in (0..4).rev() {
        let r = status_from(&app, "/auth/check", &key.secret, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("ratelimit-policy").as_deref(), Some("\"per-credential\";q=4;w=60"));
        let state = r.header("ratelimit").expect("RateLimit on a limited success");
        assert!(state.starts_with(&format!("\"per-credential\";r={left};t=")), "{state}");
    }
    let r = status_from(&app, "/auth/check", &key.secret, None).await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some_and(|s| (1..=60).contains(&s.parse::<u64>().unwrap())));
    assert!(r.header("ratelimit").is_some_and(|s| s.contains(";r=0;")), "{:?}", r.header("ratelimit"));
    assert!(r.header("ratelimit-policy").is_some());
    // The management API counts too; another credential has its own count.
    status_from(&app, "/api/v1/me", &key.secret, None).await.assert_error(429, "rate_limited");
    let other = app.key(&m, None).await;
    assert_eq!(status_from(&app, "/api/v1/me", &other.secret, None).await.status, 200);
    // The verify API answers 200 with RATE_LIMITED for a key over its limit.
    let r =
        send(app.post("/api/v1/keys/verify").bearer_auth(&admin.secret).json(&serde_json::json!({"key": key.secret})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["code"], "RATE_LIMITED", "{}", r.text);
    assert_eq!(r.body["valid"], false);
    // A plan without an entry is unlimited: no headers.
    let free = app
        .store
        .create_org(&keyward_core::domain::Slug::parse("beta").unwrap(), "Beta", keyward_core::domain::Plan::Free)
        .await
        .unwrap();
    let bo = app.member(&free, "bo@beta.test", "member").await;
    let unlimited = app.key(&bo, None).await;
    for _ in 0..6 {
        let r = status_from(&app, "/auth/check", &unlimited.secret, None).await;
        assert_eq!(r.status, 200);
        assert!(r.header("ratelimit").is_none());
    }
}

async fn device_authorizations_are_limited_per_client(db: &TestDb) {
    let app = spawn_app_tables(db, "[rate_limits]\ndevice_authorizations_per_client = \"2/1m\"").await;
    for _ in 0..2 {
        app.device_start("keyward-cli", None).await;
    }
    let r = app.device_start_reply("keyward-cli", None).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"], "rate_limited");
    for h in ["retry-after", "ratelimit-policy", "ratelimit"] {
        assert!(r.header(h).is_some(), "{h}");
    }
    app.device_start("keyward-mcp", None).await;
}

async fn a_revoked_key_retried_does_not_throttle_its_address(db: &TestDb) {
    let app = spawn_app_tables(db, "[rate_limits]\nfailed_authentications = \"3/1m\"").await;
    let org = app.org("acme").await;
    let m = app.member(&org, "ada@acme.test", "admin").await;
    let manager = app.key(&m, Some(&["api_keys:write"])).await;
    let stale = app.key(&m, None).await;
    let r = send(app.delete(&format!("/api/v1/api-keys/{}", stale.id)).bearer_auth(&manager.secret)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    for _ in 0..6 {
        status_from(&app, "/api/v1/me", &stale.secret, None).await.assert_error(401, "invalid_token");
    }
    let fresh = app.key(&m, None).await;
    assert_eq!(status_from(&app, "/api/v1/me", &fresh.secret, None).await.status, 200, "a real key is not a guess");
}

both_backends!(
    a_revoked_key_retried_does_not_throttle_its_address,
    a_plan_limit_holds_per_credential_with_ratelimit_headers,
    device_authorizations_are_limited_per_client,
    wrong_credentials_from_one_address_are_throttled_before_the_database,
    a_burst_of_guesses_checks_at_most_the_limit,
    the_owner_signs_in_from_elsewhere_while_an_attacker_is_limited,
    many_addresses_lock_the_email_but_not_others,
    spoofed_forwarded_for_is_ignored_without_a_trusted_proxy,
    following_a_device_link_is_not_an_attempt,
);
