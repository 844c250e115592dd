//! Signing in and the pages, over HTTP, as docs/device.md "Sign-in" and "Approval"
//! describe them: one message for every failed sign-in, the session cookie's attributes,
//! `next` limited to local paths, CSRF on every form, `/logout`, the rate limits on
//! passwords and user codes, the sign-in redirect from `/device`, what the pages may
//! contain (no script, no other host, a label per field), and malformed forms.

use keyward_store::testing::TestDb;

use crate::helpers::*;

const WRONG: &str = "the e-mail or the password is wrong";
const TOO_MANY: &str = "too many attempts";

/// Asserts a refusal for a missing or mismatched CSRF field: 403, an HTML page.
#[track_caller]
fn assert_csrf_refused(r: &Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "{what}: the refusal is an HTML page, not {ct:?}");
    assert!(set_cookie(r, "keyward_session").is_none(), "{what}: no session: {:?}", set_cookies(r));
}

/// `value` with its first character changed.
fn altered(value: &str) -> String {
    let mut c: Vec<char> = value.chars().collect();
    c[0] = if c[0] == 'A' { 'B' } else { 'A' };
    c.into_iter().collect()
}

/// The path a redirect points at (a path, or a URL on this server); fails for another host.
#[track_caller]
fn redirect_target(app: &TestApp, r: &Reply) -> String {
    assert_eq!(r.status, 303, "a redirect: {}", r.text);
    let loc = location(r);
    local_target(&loc, &[PUBLIC_URL, &app.base]).unwrap_or_else(|| panic!("redirect to another host: {loc:?}"))
}

/// A code in the user-code alphabet that no client was given (8 of 20 letters: the
/// chance that one was is nil).
const NOT_A_CODE: [&str; 6] = ["BCDF-BCDF", "GHJK-GHJK", "LMNP-LMNP", "QRST-QRST", "VWXZ-VWXZ", "ZXWV-TSRQ"];

async fn wrong_password_and_unknown_email_look_the_same(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    app.member(&org, "nopass@acme.test", "member").await; // no password at all

    let mut seen = Vec::new();
    for (email, password) in
        [("ada@acme.test", "wrong horse"), ("nobody@acme.test", PASSWORD), ("nopass@acme.test", PASSWORD)]
    {
        let mut b = app.browser();
        let r = b.sign_in(email, password, "/").await;
        assert_eq!(r.status, 401, "{email}/{password:?}: {}", r.text);
        assert!(r.text.contains(WRONG), "{email}: the one message: {}", r.text);
        assert!(set_cookie(&r, "keyward_session").is_none(), "{email}: no session");
        assert!(input_value(&r.text, "csrf").is_some(), "{email}: the form again: {}", r.text);
        assert_plain_page(&r, "the failed sign-in page");
        let lower = r.text.to_lowercase();
        for telltale in ["unknown", "no such", "not found", "no password", "does not exist"] {
            assert!(!lower.contains(telltale), "{email}: the page tells {telltale:?}: {}", r.text);
        }
        seen.push((r.status, r.header("content-type")));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "the same answer every time: {seen:?}");
}

async fn the_session_cookie(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    let r = b.get("/login").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(set_cookie(&r, "keyward_csrf").is_some(), "GET /login sets keyward_csrf: {:?}", set_cookies(&r));
    assert!(input_value(&r.text, "csrf").is_some_and(|v| !v.is_empty()), "a hidden csrf field: {}", r.text);

    let r = b.sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(redirect_target(&app, &r), "/");
    let c = set_cookie(&r, "keyward_session").unwrap_or_else(|| panic!("keyward_session: {:?}", set_cookies(&r)));
    let attrs: Vec<String> = c.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(attrs.iter().any(|a| a == "httponly"), "HttpOnly: {c}");
    assert!(attrs.iter().any(|a| a == "samesite=lax"), "SameSite=Lax: {c}");
    assert!(attrs.iter().any(|a| a == "path=/"), "Path=/: {c}");
    assert!(attrs.iter().any(|a| a == "max-age=43200"), "Max-Age = session_lifetime (12 h): {c}");
    assert!(!attrs.iter().any(|a| a == "secure"), "not Secure for an http public_url: {c}");
    let value = c.split(';').next().unwrap().split_once('=').unwrap().1;
    assert!(value.len() >= 20, "a session id worth guessing nothing: {value:?}");

    // The cookie signs in.
    let r = b.get("/device").await;
    assert_eq!(r.status, 200, "signed in: {}", r.text);
}

async fn an_https_public_url_makes_the_cookie_secure(db: &TestDb) {
    let app =
        spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"\npublic_url = \"https://keys.example.test\""))
            .await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    let r = b.sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let c = set_cookie(&r, "keyward_session").unwrap_or_else(|| panic!("keyward_session: {:?}", set_cookies(&r)));
    assert!(c.split(';').skip(1).any(|a| a.trim().eq_ignore_ascii_case("secure")), "Secure: {c}");
    assert!(c.to_ascii_lowercase().contains("httponly"), "{c}");
}

async fn next_is_a_local_path_only(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    for evil in [
        "https://evil.example/",
        "http://evil.example/device",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
    ] {
        let mut b = app.browser();
        let page = b.get(&format!("/login?next={}", form_encode(evil))).await;
        assert_eq!(page.status, 200, "{evil}: {}", page.text);
        assert_eq!(
            input_value(&page.text, "next").as_deref(),
            Some("/"),
            "{evil}: the hidden next becomes /: {}",
            page.text
        );
        let csrf = input_value(&page.text, "csrf").expect("csrf");
        let r = b
            .post_form("/login", &[("csrf", &csrf), ("email", "ada@acme.test"), ("password", PASSWORD), ("next", evil)])
            .await;
        assert_eq!(r.status, 303, "{evil}: {}", r.text);
        assert_eq!(redirect_target(&app, &r), "/", "{evil}: to / (Location {:?})", r.header("location"));
    }
    let mut b = app.browser();
    let r = b.sign_in("ada@acme.test", PASSWORD, "/device?user_code=BCDF-GHJK").await;
    assert_eq!(redirect_target(&app, &r), "/device?user_code=BCDF-GHJK", "a local next is kept");
}

async fn login_needs_its_csrf_field_and_cookie(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    let csrf = b.csrf_from("/login").await;
    assert!(b.cookie("keyward_csrf").is_some(), "the csrf cookie");

    let creds = [("email", "ada@acme.test"), ("password", PASSWORD), ("next", "/")];
    let r = b.post_form("/login", &creds).await;
    assert_csrf_refused(&r, "POST /login without csrf");
    let wrong = altered(&csrf);
    let mut with_wrong = vec![("csrf", wrong.as_str())];
    with_wrong.extend(creds);
    assert_csrf_refused(&b.post_form("/login", &with_wrong).await, "POST /login with a wrong csrf");
    let mut with_csrf = vec![("csrf", csrf.as_str())];
    with_csrf.extend(creds);
    let mut no_cookie = app.browser();
    assert_csrf_refused(
        &no_cookie.post_form("/login", &with_csrf).await,
        "POST /login with a csrf field but no cookie",
    );
    // The cookie of another browser does not fit this form either.
    let mut other = app.browser();
    other.csrf_from("/login").await;
    assert_csrf_refused(&other.post_form("/login", &with_csrf).await, "POST /login with another browser's csrf cookie");

    // Everything right: signed in (so the refusals above were about the csrf).
    let r = b.post_form("/login", &with_csrf).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(set_cookie(&r, "keyward_session").is_some());
}

async fn device_and_logout_need_csrf(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    let csrf = b.csrf_from("/device").await;
    let wrong = altered(&csrf);
    let jar = b.cookies.clone();

    let approve = |csrf: Option<&str>| {
        let mut p =
            vec![("user_code", start.user_code.clone()), ("org", "acme".into()), ("decision", "approve".into())];
        if let Some(c) = csrf {
            p.push(("csrf", c.to_owned()));
        }
        p
    };
    // A double-submit pair the attacker chose: the cookie and the field equal.
    const FORGED: &str = "forgedforgedforgedforgedforged12";
    for (what, field, forge_cookie) in [
        ("without csrf", None, false),
        ("with a wrong csrf", Some(wrong.as_str()), false),
        ("with a forged cookie and field pair", Some(FORGED), true),
    ] {
        b.cookies = jar.clone();
        if forge_cookie {
            b.cookies.insert("keyward_csrf".into(), FORGED.into());
        }
        let pairs = approve(field);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.post_form("/device", &pairs).await;
        assert_csrf_refused(&r, &format!("POST /device {what}"));
        assert!(!r.text.contains("Approved"), "{}", r.text);

        b.cookies = jar.clone();
        if forge_cookie {
            b.cookies.insert("keyward_csrf".into(), FORGED.into());
        }
        let pairs: Vec<(&str, &str)> = field.map(|c| vec![("csrf", c)]).unwrap_or_default();
        let r = b.post_form("/logout", &pairs).await;
        assert_csrf_refused(&r, &format!("POST /logout {what}"));
    }
    // Nothing happened: the code is still pending, the session still signs in.
    assert_eq!(
        app.device_poll(&start.device_code, "keyward-cli").await.body["error"],
        "authorization_pending",
        "a refused POST /device approved nothing"
    );
    b.cookies = jar;
    assert_eq!(b.get("/device").await.status, 200, "a refused POST /logout ended nothing");
}

async fn logout_ends_the_session(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let session = b.cookie("keyward_session").unwrap().to_owned();
    let csrf = b.csrf_from("/device").await;
    let r = b.post_form("/logout", &[("csrf", &csrf)]).await;
    let to = redirect_target(&app, &r);
    assert!(to == "/login" || to.starts_with("/login?"), "to /login: {to}");
    let cleared =
        set_cookie(&r, "keyward_session").unwrap_or_else(|| panic!("the cookie is cleared: {:?}", set_cookies(&r)));
    let lower = cleared.to_ascii_lowercase().replace(' ', "");
    assert!(
        lower.starts_with("keyward_session=;")
            || lower.contains(";max-age=0")
            || lower.contains("expires=thu,01jan1970"),
        "cleared: {cleared}"
    );
    assert!(b.cookie("keyward_session").is_none());
    let r = b.get("/device").await;
    assert_eq!(r.status, 303, "signed out: {}", r.text);

    // The old cookie, kept by someone, no longer signs in: the session is gone.
    let mut thief = app.browser();
    thief.cookies.insert("keyward_session".into(), session);
    let r = thief.get("/device").await;
    let to = redirect_target(&app, &r);
    assert!(to.starts_with("/login"), "the ended session's cookie goes to /login: {to}");
}

async fn five_wrong_passwords_lock_the_email(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    app.person(&org, "bob@acme.test", "member").await;
    let mut b = app.browser();
    for i in 1..=5 {
        let r = b.sign_in("ada@acme.test", &format!("wrong {i}"), "/").await;
        assert_eq!(r.status, 401, "failure {i}: {}", r.text);
    }
    // The 6th attempt is refused even with the right password.
    let r = b.sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "after 5 failures: {}", r.text);
    assert!(r.text.contains(TOO_MANY), "{}", r.text);
    assert!(set_cookie(&r, "keyward_session").is_none(), "no session while locked");
    let r = app.browser().sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "from a fresh browser too: {}", r.text);
    // Per e-mail address: someone else still signs in.
    let r = app.browser().sign_in("bob@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "another e-mail is not locked: {}", r.text);
}

async fn five_wrong_user_codes_lock_the_page(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.signed_in("ada@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    let csrf = b.csrf_from("/device").await;
    for (i, code) in NOT_A_CODE.iter().take(5).enumerate() {
        let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", code)]).await;
        assert_eq!(r.status, 400, "wrong code {}: {}", i + 1, r.text);
        assert!(r.text.contains("that code is not valid"), "{}", r.text);
        assert!(input_value(&r.text, "user_code").is_some(), "the form again: {}", r.text);
    }
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", NOT_A_CODE[5])]).await;
    assert_eq!(r.status, 429, "the 6th wrong code: {}", r.text);
    assert!(r.text.contains(TOO_MANY), "{}", r.text);
    // Even the right code, until the window passes.
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 429, "a right code while locked: {}", r.text);
    let r = b
        .post_form(
            "/device",
            &[("csrf", &csrf), ("user_code", &start.user_code), ("org", "acme"), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status, 429, "approving while locked: {}", r.text);
    assert_eq!(app.device_poll(&start.device_code, "keyward-cli").await.body["error"], "authorization_pending");
}

async fn device_without_a_session_goes_to_login(db: &TestDb) {
    let app = spawn_app(db).await;
    let mut b = app.browser();
    for (path, next) in [("/device", "/device"), ("/device?user_code=BCDF-GHJK", "/device?user_code=BCDF-GHJK")] {
        let r = b.get(path).await;
        let to = redirect_target(&app, &r);
        assert!(to.starts_with("/login?"), "{path}: to /login with next: {to}");
        assert_eq!(query_param(&to, "next").as_deref(), Some(next), "{path}: next in {to}");
    }
    // A made-up session cookie is no session.
    b.cookies.insert("keyward_session".into(), "made-up".into());
    let r = b.get("/device").await;
    assert!(redirect_target(&app, &r).starts_with("/login"), "{:?}", r.header("location"));
}

async fn pages_are_plain_html(db: &TestDb) {
    let app = spawn_app(db).await;
    let acme = app.org("acme").await;
    let beta = app.org("beta").await;
    let ada = app.person(&acme, "ada@acme.test", "member").await;
    app.join(&beta, &ada.user, "member").await;

    let mut b = app.browser();
    let login = b.get("/login").await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_plain_page(&login, "GET /login");
    let inputs = tags(&login.text, "input");
    let field = |n: &str| inputs.iter().find(|a| a.get("name").is_some_and(|x| x == n)).cloned();
    assert!(field("email").is_some(), "an email field: {}", login.text);
    assert_eq!(field("password").and_then(|a| a.get("type").cloned()).as_deref(), Some("password"), "{}", login.text);
    assert_eq!(field("csrf").and_then(|a| a.get("type").cloned()).as_deref(), Some("hidden"), "{}", login.text);
    assert_eq!(field("next").and_then(|a| a.get("type").cloned()).as_deref(), Some("hidden"), "{}", login.text);

    let failed = b.sign_in("ada@acme.test", "wrong horse", "/").await;
    assert_plain_page(&failed, "the failed sign-in");

    let mut b = app.signed_in("ada@acme.test").await;
    let entry = b.get("/device").await;
    assert_eq!(entry.status, 200, "{}", entry.text);
    assert_plain_page(&entry, "the code-entry form");
    assert!(input_value(&entry.text, "user_code").is_some(), "a user_code field: {}", entry.text);

    let start = app.device_start("keyward-cli", None).await;
    let approval = b.get(&format!("/device?user_code={}", start.user_code)).await;
    assert_eq!(approval.status, 200, "{}", approval.text);
    assert_plain_page(&approval, "the approval page with a select");

    let csrf = input_value(&approval.text, "csrf").expect("csrf");
    let bad = b.post_form("/device", &[("csrf", &csrf), ("user_code", NOT_A_CODE[0])]).await;
    assert_eq!(bad.status, 400);
    assert_plain_page(&bad, "a wrong code");
    let done = b
        .post_form(
            "/device",
            &[("csrf", &csrf), ("user_code", &start.user_code), ("org", "acme"), ("decision", "approve")],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_plain_page(&done, "Approved");
    let refused = b.post_form("/logout", &[]).await;
    assert_plain_page(&refused, "the csrf refusal");
}

async fn malformed_forms_are_4xx(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    let csrf = b.csrf_from("/login").await;

    #[track_caller]
    fn is_4xx(r: &Reply, what: &str) {
        assert!((400..500).contains(&r.status), "{what}: {} {}", r.status, r.text);
    }

    let huge = format!("{}@acme.test", "a".repeat(100 * 1024));
    let r = b.post_form("/login", &[("csrf", &csrf), ("email", &huge), ("password", PASSWORD), ("next", "/")]).await;
    is_4xx(&r, "a 100 KB e-mail");
    let huge_password = "p".repeat(100 * 1024);
    let r = b.post_form("/login", &[("csrf", &csrf), ("email", "x@acme.test"), ("password", &huge_password)]).await;
    is_4xx(&r, "a 100 KB password");
    let form = form_body(&[("csrf", &csrf), ("email", "ada@acme.test"), ("password", PASSWORD)]);
    let r = b.post_raw("/login", "text/plain", form.clone().into_bytes()).await;
    is_4xx(&r, "a form sent as text/plain");
    let r = b.post_raw("/login", "application/octet-stream", form.into_bytes()).await;
    is_4xx(&r, "a form sent as octet-stream");
    let mut raw = format!("csrf={}&email=", form_encode(&csrf)).into_bytes();
    raw.extend_from_slice(&[0xff, 0xfe, 0x80]);
    raw.extend_from_slice(b"&password=x");
    let r = b.post_raw("/login", "application/x-www-form-urlencoded", raw).await;
    is_4xx(&r, "raw non-UTF-8 bytes in the form");
    let enc = format!("csrf={}&email=%FF%FE%80&password=x", form_encode(&csrf)).into_bytes();
    let r = b.post_raw("/login", "application/x-www-form-urlencoded", enc).await;
    is_4xx(&r, "percent-encoded non-UTF-8 in the form");
    let r = b.post_raw("/login", "application/x-www-form-urlencoded", b"%%%&&==".to_vec()).await;
    is_4xx(&r, "a broken form");

    // The same on /device, signed in.
    let mut b = app.signed_in("ada@acme.test").await;
    let csrf = b.csrf_from("/device").await;
    let huge_code = "B".repeat(100 * 1024);
    let r = b.post_form("/device", &[("csrf", &csrf), ("user_code", &huge_code)]).await;
    is_4xx(&r, "a 100 KB user code");
    let r = b
        .post_form(
            "/device",
            &[("csrf", &csrf), ("user_code", "BCDF-GHJK"), ("org", &"o".repeat(100 * 1024)), ("decision", "approve")],
        )
        .await;
    is_4xx(&r, "a 100 KB org");
    let r = b
        .post_form("/device", &[("csrf", &csrf), ("user_code", "BCDF-GHJK"), ("org", "acme"), ("decision", "maybe")])
        .await;
    is_4xx(&r, "an unknown decision");
    let mut raw = format!("csrf={}&user_code=", form_encode(&csrf)).into_bytes();
    raw.extend_from_slice(&[0xff, 0xfe, 0x80]);
    let r = b.post_raw("/device", "application/x-www-form-urlencoded", raw).await;
    is_4xx(&r, "non-UTF-8 on /device");
    let r = b.post_raw("/device", "text/plain", format!("csrf={csrf}&user_code=BCDFGHJK").into_bytes()).await;
    is_4xx(&r, "text/plain on /device");
    // Still alive and well.
    assert_eq!(app.browser().get("/login").await.status, 200);
}

async fn twenty_failures_lock_the_client_address(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    // 4 addresses × 5 failures each = 20 failures from 127.0.0.1.
    for n in 1..=4 {
        for i in 1..=5 {
            let r = b.sign_in(&format!("guess{n}@acme.test"), &format!("wrong {i}"), "/").await;
            assert_eq!(r.status, 401, "guess{n}, failure {i}: {}", r.text);
        }
    }
    let r = app.browser().sign_in("ada@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 429, "after 20 failures from one address, even a fresh e-mail: {}", r.text);
    assert!(r.text.contains(TOO_MANY), "{}", r.text);
}

async fn wrong_user_codes_are_counted_per_address_too(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    app.person(&org, "bob@acme.test", "member").await;
    let mut ada = app.signed_in("ada@acme.test").await;
    let mut bob = app.signed_in("bob@acme.test").await;
    let start = app.device_start("keyward-cli", None).await;
    let ada_csrf = ada.csrf_from("/device").await;
    let bob_csrf = bob.csrf_from("/device").await;
    for code in &NOT_A_CODE[..3] {
        assert_eq!(ada.post_form("/device", &[("csrf", &ada_csrf), ("user_code", code)]).await.status, 400);
    }
    for code in &NOT_A_CODE[3..5] {
        assert_eq!(bob.post_form("/device", &[("csrf", &bob_csrf), ("user_code", code)]).await.status, 400);
    }
    // Five wrong codes from 127.0.0.1: the page is closed to both.
    let r = bob.post_form("/device", &[("csrf", &bob_csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 429, "bob after 5 wrong codes from his address: {}", r.text);
    let r = ada.post_form("/device", &[("csrf", &ada_csrf), ("user_code", &start.user_code)]).await;
    assert_eq!(r.status, 429, "ada too: {}", r.text);
}

async fn a_session_ends_after_its_lifetime(db: &TestDb) {
    let app = spawn_app_with(db, &format!("usage_flush_interval = \"{FLUSH}\"\nsession_lifetime = \"2s\"")).await;
    let org = app.org("acme").await;
    app.person(&org, "ada@acme.test", "member").await;
    let mut b = app.browser();
    let r = b.sign_in("ada@acme.test", PASSWORD, "/").await;
    let c = set_cookie(&r, "keyward_session").unwrap_or_else(|| panic!("keyward_session: {:?}", set_cookies(&r)));
    assert!(c.to_ascii_lowercase().replace(' ', "").contains(";max-age=2"), "Max-Age = session_lifetime: {c}");
    assert_eq!(b.get("/device").await.status, 200, "signed in");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // The browser would drop the cookie; the server must not take it either.
    let r = b.get("/device").await;
    assert_eq!(r.status, 303, "an expired session: {}", r.text);
    assert!(redirect_target(&app, &r).starts_with("/login"));
}

both_backends!(
    twenty_failures_lock_the_client_address,
    wrong_user_codes_are_counted_per_address_too,
    a_session_ends_after_its_lifetime,
    wrong_password_and_unknown_email_look_the_same,
    the_session_cookie,
    an_https_public_url_makes_the_cookie_secure,
    next_is_a_local_path_only,
    login_needs_its_csrf_field_and_cookie,
    device_and_logout_need_csrf,
    logout_ends_the_session,
    five_wrong_passwords_lock_the_email,
    five_wrong_user_codes_lock_the_page,
    device_without_a_session_goes_to_login,
    pages_are_plain_html,
    malformed_forms_are_4xx,
);
