//! The web UI in a real browser: headless Chromium (Debian's `chromium`) driven through
//! ChromeDriver (`chromium-driver`) with fantoccini, against keyward started in the test
//! process, walking the pages as a person does:
//!
//! - sign in, generate a key with one permission, read it from the page, call
//!   `/api/v1/me` with it over HTTP and see that permission, see "last used" change,
//!   revoke it after the confirmation and see it fail;
//! - an admin creates a service account and sees its secret once;
//! - a viewer cannot reach the admin pages, and is not shown links to them.
//!
//! Every page visited is saved as a PNG under `target/screenshots/` (or
//! `$CARGO_TARGET_DIR/screenshots/`) for a reviewer, the key list also at a phone's
//! width (390 px).
//!
//! **One backend.** These cases run on SQLite only: the pages do the same store calls
//! on both backends, and the HTTP tests (`tests/api/web_pages.rs`) cover those on
//! PostgreSQL too; a second browser walk would only double the time.
//!
//! **Skipped** with `SKIPPED: chromedriver not installed` when `/usr/bin/chromedriver`
//! is missing, except under `CI=true`, where that fails (`.ci/run` installs it). The
//! cases take turns (one Chromium at a time on a small machine); every wait is bounded
//! (10 s), and each case as a whole too.

#[path = "browser/driver.rs"]
mod driver;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use keyward_server::testing::{self, http::*, Running, PASSWORD};
use keyward_store::testing::TestDb;
use keyward_store::Store;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use driver::{Driver, Page, DESKTOP};

/// keyward for one case: the server, its database reached directly, an HTTP client.
struct App {
    running: Running,
    store: Store,
    http: reqwest::Client,
}

impl App {
    async fn get(&self, path: &str, header: (&str, &str)) -> Reply {
        send(self.http.get(self.running.url(path)).header(header.0, header.1)).await
    }

    /// `client_credentials` at the token endpoint with HTTP Basic client authentication.
    async fn client_credentials(&self, client_id: &str, secret: &str) -> Reply {
        let rb = self
            .http
            .post(self.running.url("/oauth/token"))
            .header(AUTHORIZATION, client_basic(client_id, secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(&[("grant_type", "client_credentials")]));
        send(rb).await
    }
}

/// The longest one case may take, start to end (a backstop: every wait is bounded).
const CASE_LIMIT: Duration = Duration::from_secs(90);

/// One Chromium at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `case` with a browser session on a fresh keyward (SQLite); closes the session and
/// stops ChromeDriver whatever happens, then lets a failure through.
async fn with_browser<F, Fut>(name: &str, case: F)
where
    F: FnOnce(App, fantoccini::Client) -> Fut,
    Fut: Future<Output = ()>,
{
    if !driver::available() {
        return;
    }
    let _turn = TURN.lock().await;
    let started = Instant::now();
    let db = TestDb::sqlite();
    // No flush during the walk: "last used" and the chart come from what this instance
    // holds in memory (the flush itself is raced in tests/api/web_pages.rs).
    let store = db.store().await;
    let running = testing::serve(&db, "usage_flush_interval = \"1h\"").await;
    let app = App { running, store, http: reqwest::Client::new() };
    let driver = Driver::start().await;
    let client = driver.session().await;
    let outcome = AssertUnwindSafe(tokio::time::timeout(CASE_LIMIT, case(app, client.clone()))).catch_unwind().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64()),
        Ok(Err(_)) => panic!("{name}: not done within {CASE_LIMIT:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Signs in on `/login?next=…` by typing, as a person; waits to land on `lands_on`.
async fn sign_in(p: &Page<'_>, email: &str, next: &str, lands_on: &str) {
    p.goto(&format!("/login?next={}", form_encode(next))).await;
    p.type_into("#email", email).await;
    p.type_into("#password", PASSWORD).await;
    p.click("form[action='/login'] button[type=submit]").await;
    p.wait_for_path(lands_on).await;
}

/// Signs out with the header's button.
async fn sign_out(p: &Page<'_>) {
    p.click("form[action='/logout'] button[type=submit]").await;
    p.wait_for_path("/login").await;
}

/// The cells' text of the key list's row for the key named `name`; `None` when the list
/// has no such row.
async fn key_row(p: &Page<'_>, name: &str) -> Option<Vec<String>> {
    for row in p.all("table tbody tr").await {
        let cells = row.find_all(fantoccini::Locator::Css("td")).await.expect("cells");
        let mut texts = Vec::new();
        for c in &cells {
            texts.push(c.text().await.expect("cell text").trim().to_owned());
        }
        if texts.first().is_some_and(|t| t == name) {
            return Some(texts);
        }
    }
    None
}

/// The "Last used" cell of the row of `name` (the table's fifth column).
async fn last_used(p: &Page<'_>, name: &str) -> String {
    let header = p.find("table thead tr th:nth-child(5)").await.text().await.unwrap();
    assert_eq!(header.trim(), "Last used", "the fifth column");
    let row = key_row(p, name).await.unwrap_or_else(|| panic!("no row for {name:?}"));
    row[4].clone()
}

/// The `<time>` in the "Last used" cell has the exact time on hover.
async fn last_used_has_exact_time(p: &Page<'_>) -> Option<String> {
    let cell = p.find("table tbody tr td:nth-child(5)").await;
    match cell.find(fantoccini::Locator::Css("time")).await {
        Ok(t) => t.attr("title").await.unwrap(),
        Err(_) => None,
    }
}

/// The page fits the window's width: nothing to scroll sideways.
async fn assert_fits_width(p: &Page<'_>, what: &str) {
    let v =
        p.c.execute("return [document.documentElement.scrollWidth, window.innerWidth]", vec![])
            .await
            .expect("measure the page");
    let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
    assert!(scroll <= inner, "{what}: the page is {scroll} px wide in a {inner} px window (scrolls sideways)");
}

#[tokio::test]
async fn a_person_generates_a_key_uses_it_and_revokes_it() {
    with_browser("a_person_generates_a_key_uses_it_and_revokes_it", |app, c| async move {
        let org = testing::org(&app.store, "acme").await;
        testing::person(&app.store, &org, "ada@acme.test", "member").await;
        let p = Page { c: &c, base: &app.running.base };

        // 1. Sign in, and come back to Settings > API keys.
        p.goto("/login?next=/settings/api-keys").await;
        p.find("#email").await;
        p.screenshot("01-login").await;
        sign_in(&p, "ada@acme.test", "/settings/api-keys", "/settings/api-keys").await;
        assert!(p.text().await.contains("API keys in acme"), "the key list: {}", p.text().await);
        assert!(p.text().await.contains("ada@acme.test"), "who is signed in is shown");
        p.screenshot("02-keys-empty").await;

        // 2. Generate a key with one permission and a 7-day expiry.
        p.type_into("#name", "laptop").await;
        let boxes = p.all("input[type=checkbox][name=permission]").await;
        assert!(boxes.len() > 1, "a checkbox for each permission a member holds");
        let mut values = Vec::new();
        for b in &boxes {
            let value = b.attr("value").await.unwrap().unwrap_or_default();
            assert!(b.is_selected().await.unwrap(), "{value}: checked by default");
            if value != "projects:read" {
                b.click().await.unwrap();
                assert!(!b.is_selected().await.unwrap(), "{value}: unchecked by a click");
            }
            values.push(value);
        }
        assert!(values.iter().any(|v| v == "projects:read"), "projects:read is offered: {values:?}");
        assert!(!values.iter().any(|v| v == "members:write" || v == "*"), "only what a member holds: {values:?}");
        p.find("#expires").await.select_by_value("7").await.expect("choose 7 days");
        p.click("form[action='/settings/api-keys'] button[type=submit]").await;
        let secret = p.find("#secret").await.text().await.unwrap().trim().to_owned();
        assert!(secret.starts_with("kw_") && secret.len() > 30, "the full key on the page: {secret:?}");
        assert_eq!(p.path_and_query().await, "/settings/api-keys", "the secret page's URL carries nothing");
        let text = p.text().await;
        assert!(text.contains("It will not be shown again"), "the warning: {text}");
        let pres: Vec<String> = {
            let mut v = Vec::new();
            for e in p.all("pre").await {
                v.push(e.text().await.unwrap());
            }
            v
        };
        assert!(
            pres.iter().any(|t| t.contains(&format!("curl -H \"Authorization: Bearer {secret}\""))),
            "a curl Bearer line: {pres:?}"
        );
        assert!(pres.iter().any(|t| t.contains(&format!("curl -u \"{secret}:\""))), "a curl -u line: {pres:?}");
        assert!(
            pres.iter().any(|t| t.contains("\"mcpServers\"") && t.contains("\"Authorization\": \"Bearer ${KEYWARD_API_KEY}\"")),
            "an .mcp.json snippet: {pres:?}"
        );
        let copy = p.find("button[data-copy=secret]").await;
        assert!(copy.is_displayed().await.unwrap(), "the copy button is shown (its script ran under the CSP)");
        p.screenshot("03-secret").await;

        // Back to the list: the key is there, never used yet.
        p.click("main a[href='/settings/api-keys']").await;
        p.wait_for_path("/settings/api-keys").await;
        let row = key_row(&p, "laptop").await.expect("the new key in the list");
        assert_eq!(row[2], "projects:read", "its one permission: {row:?}");
        assert_eq!(row[5], "in 7 days", "its expiry: {row:?}");
        assert!(secret.starts_with(&row[1]), "the display prefix {:?} begins the key", row[1]);
        assert!(!p.source().await.contains(&secret), "the list never shows the secret");
        let before = last_used(&p, "laptop").await;
        assert_eq!(before, "never", "before any request");

        // 3. Use it over HTTP.
        let r = app.get("/api/v1/me", ("authorization", &format!("Bearer {secret}"))).await;
        assert_eq!(r.status, 200, "GET /api/v1/me with the key from the page: {}", r.text);
        assert_eq!(strings(&r.body["permissions"]), vec!["projects:read".to_owned()], "{}", r.text);

        // 4. "Last used" changes (pending uses are read from memory: no flush to wait for).
        c.refresh().await.unwrap();
        p.find("table").await;
        let after = last_used(&p, "laptop").await;
        assert_eq!(after, "just now", "after one request (before: {before:?})");
        let exact = last_used_has_exact_time(&p).await.expect("the exact time on hover");
        assert!(exact.ends_with(" UTC"), "{exact:?}");
        p.screenshot("04-keys-list").await;

        // The list at a phone's width: readable, nothing to scroll sideways.
        c.set_window_size(390, 844).await.unwrap();
        let inner = c.execute("return window.innerWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(inner <= 420, "a phone-width window: {inner} px");
        assert_fits_width(&p, "the key list on a phone").await;
        assert!(p.with_text("table tbody td a", "laptop").await.is_some(), "the key's name on a phone");
        p.screenshot("09-keys-list-phone").await;
        c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

        // 5. The key's page, "Revoke…", the confirmation, and the key stops working.
        p.with_text("table tbody td a", "laptop").await.expect("a link to the key").click().await.unwrap();
        p.find("h1").await;
        let detail = p.path().await;
        assert!(detail.starts_with("/settings/api-keys/"), "the key's page: {detail}");
        let text = p.text().await;
        assert!(text.contains("last used just now"), "last used on the key's page: {text}");
        assert!(text.contains("1 request in 30 days"), "the request counted in the chart: {text}");
        assert!(p.all("svg.chart rect.bar").await.len() == 30, "one bar a day");
        p.screenshot("05-key-detail").await;
        p.click("form[action$='/revoke'] button[type=submit]").await;
        p.wait_for_path(&format!("{detail}/revoke")).await;
        let text = p.text().await;
        assert!(text.contains("immediate") && text.contains("cannot be undone"), "the confirmation says so: {text}");
        p.screenshot("06-confirm-revoke").await;
        p.with_text("button", "Revoke key").await.expect("a Revoke key button").click().await.unwrap();
        p.wait_for_path("/settings/api-keys").await;
        assert!(p.text().await.contains("revoked"), "the list says it was revoked: {}", p.text().await);
        assert!(key_row(&p, "laptop").await.is_none(), "the key is gone from the list");
        let r = app.get("/api/v1/me", ("authorization", &format!("Bearer {secret}"))).await;
        assert_eq!(r.status, 401, "the revoked key: {}", r.text);
    })
    .await;
}

#[tokio::test]
async fn an_admin_creates_a_service_account_and_sees_its_secret_once() {
    with_browser("an_admin_creates_a_service_account_and_sees_its_secret_once", |app, c| async move {
        let org = testing::org(&app.store, "acme").await;
        testing::person(&app.store, &org, "root@acme.test", "admin").await;
        let p = Page { c: &c, base: &app.running.base };

        sign_in(&p, "root@acme.test", "/admin/service-accounts", "/admin/service-accounts").await;
        assert!(
            !p.all("nav a[href='/admin/service-accounts']").await.is_empty(),
            "an admin's navigation links the service accounts"
        );
        let form = p.find("form:has(input[name='name'])").await;
        let name = p.find("form:has(input[name='name']) input[name='name']").await;
        name.send_keys("ci-deployer").await.unwrap();
        form.find(fantoccini::Locator::Css("button[type=submit]"))
            .await
            .expect("a submit button")
            .click()
            .await
            .unwrap();
        let secret = p.find("#secret").await.text().await.unwrap().trim().to_owned();
        assert!(secret.starts_with("kwsa_") && secret.len() > 30, "the client secret on the page: {secret:?}");
        assert!(!p.path_and_query().await.contains(&secret), "not in the URL");
        let text = p.text().await;
        assert!(text.contains("will not be shown again"), "the warning: {text}");
        p.screenshot("07-admin-service-account-secret").await;
        // The secret from the page works: client credentials for an access token.
        let client_id = p.find("#client-id").await.text().await.unwrap().trim().to_owned();
        let r = app.client_credentials(&client_id, &secret).await;
        assert_eq!(r.status, 200, "client_credentials with the secret from the page: {}", r.text);

        p.goto("/admin/service-accounts").await;
        p.find("h1").await;
        assert!(p.text().await.contains("ci-deployer"), "the account is listed: {}", p.text().await);
        assert!(!p.source().await.contains(&secret), "the secret is not shown again");
        p.screenshot("07-admin-service-accounts").await;
    })
    .await;
}

#[tokio::test]
async fn a_viewer_cannot_reach_the_admin_pages() {
    with_browser("a_viewer_cannot_reach_the_admin_pages", |app, c| async move {
        let org = testing::org(&app.store, "acme").await;
        testing::person(&app.store, &org, "vic@acme.test", "viewer").await;
        testing::person(&app.store, &org, "root@acme.test", "admin").await;
        let p = Page { c: &c, base: &app.running.base };

        sign_in(&p, "vic@acme.test", "/settings/api-keys", "/settings/api-keys").await;
        for admin in ["/admin/members", "/admin/service-accounts"] {
            assert!(
                p.all(&format!("a[href='{admin}']")).await.is_empty(),
                "a viewer's page links {admin}: {}",
                p.find("header").await.html(false).await.unwrap()
            );
        }
        let session = p.cookie("keyward_session").await.expect("the session cookie");
        for (admin, shot) in
            [("/admin/members", "08-forbidden-members"), ("/admin/service-accounts", "08-forbidden-service-accounts")]
        {
            p.goto(admin).await;
            let h1 = p.find("h1").await.text().await.unwrap();
            assert_eq!(h1, "Forbidden", "{admin} for a viewer: {}", p.text().await);
            p.screenshot(shot).await;
            // The same request over HTTP, with the browser's session: 403.
            let r = app.get(admin, ("cookie", &format!("keyward_session={session}"))).await;
            assert_eq!(r.status, 403, "{admin} for a viewer: {}", r.text);
        }

        // An admin, in the same browser, sees both (so the 403 above was about the role).
        // (The 403 page has no header to sign out from: back to the key list for it.)
        p.goto("/settings/api-keys").await;
        sign_out(&p).await;
        sign_in(&p, "root@acme.test", "/admin/members", "/admin/members").await;
        assert_ne!(p.find("h1").await.text().await.unwrap(), "Forbidden", "an admin reaches /admin/members");
        for admin in ["/admin/members", "/admin/service-accounts"] {
            assert!(!p.all(&format!("nav a[href='{admin}']")).await.is_empty(), "an admin's navigation links {admin}");
        }
        p.screenshot("08-admin-members").await;
    })
    .await;
}
