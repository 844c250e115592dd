//! The admin pages over HTTP, as a person in a browser uses them: `/admin/members`
//! (change a role, remove), `/admin/service-accounts` (create with a secret or an
//! uploaded public key, the secret shown once, rotate with grace, delete) and
//! `/admin/audit` (pages, filters). Who may reach them (admins only: a viewer and a member
//! get 403), CSRF on every form, and another organization's ids (404).

use keyward_core::domain::{Plan, Slug};
use keyward_store::testing::TestDb;
use keyward_store::{Org, ServiceAccount};

use crate::helpers::*;

const ADMIN_PAGES: [&str; 3] = ["/admin/members", "/admin/service-accounts", "/admin/audit"];

/// An organization with a signed-in admin.
async fn admin_in(app: &TestApp, slug: &str) -> (Org, Member, Browser) {
    let org = app.org(slug).await;
    let admin = app.person(&org, &format!("admin@{slug}.test"), "admin").await;
    let b = app.signed_in(&admin.user.email.to_string()).await;
    (org, admin, b)
}

/// A `multipart/form-data` body: `(name, file name, value)`; its content type.
fn multipart(fields: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let fields: Vec<(&str, Option<&str>, &[u8])> = fields.iter().map(|(n, f, v)| (*n, *f, v.as_bytes())).collect();
    multipart_bytes(&fields)
}

/// [`multipart`] with any bytes as values.
fn multipart_bytes(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----keyward-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, file, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let head = match file {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The one-time secret shown on a page.
#[track_caller]
fn shown_secret(r: &Reply) -> String {
    element_text(&r.text, "secret").unwrap_or_else(|| panic!("no secret on the page: {}", r.text))
}

/// Creates a service account through the form (multipart, as the browser sends it).
async fn create_with_form(b: &mut Browser, fields: &[(&str, Option<&str>, &str)]) -> Reply {
    let csrf = b.csrf_from("/admin/service-accounts").await;
    let mut all = vec![("csrf", None, csrf.as_str())];
    all.extend_from_slice(fields);
    let (ct, body) = multipart(&all);
    b.post_raw("/admin/service-accounts", &ct, body).await
}

async fn accounts(app: &TestApp, org: &Org) -> Vec<ServiceAccount> {
    app.store.service_accounts(&org.id).await.expect("list accounts")
}

async fn account_named(app: &TestApp, org: &Org, name: &str) -> ServiceAccount {
    accounts(app, org).await.into_iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no account {name}"))
}

/// `GET /auth/check` with `key` as Bearer: status and `X-Keyward-Permissions`.
async fn check(app: &TestApp, key: &Key) -> (u16, Option<String>) {
    let r = send(app.get("/auth/check").bearer_auth(&key.secret)).await;
    (r.status, r.header("x-keyward-permissions"))
}

#[track_caller]
fn assert_page(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "{what}: an HTML page, not {ct:?}");
}

async fn an_admin_sees_the_admin_pages(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin, mut b) = admin_in(&app, "acme").await;
    app.person(&org, "bob@acme.test", "viewer").await;
    let r = b.get("/settings/api-keys").await;
    for page in ADMIN_PAGES {
        assert!(r.text.contains(&format!("href=\"{page}\"")), "the navigation links {page}: {}", r.text);
    }
    for page in ADMIN_PAGES {
        let r = b.get(page).await;
        assert_page(&r, 200, page);
        assert_plain_page(&r, page);
        assert!(r.text.contains("aria-current=\"page\""), "{page}: the current section is marked");
    }
    let r = b.get("/admin/members").await;
    assert!(r.text.contains("bob@acme.test") && r.text.contains(&admin.user.email.to_string()), "{}", r.text);
    assert_eq!(
        select_options(&r.text, "role"),
        Some(vec!["admin".to_owned(), "member".to_owned(), "viewer".to_owned()]),
        "a role select for bob, without owner (only an owner gives it): {}",
        r.text
    );
    assert!(r.text.contains("(you)"), "the admin's own row is marked: {}", r.text);
    let page = app.store.members(&org.id).await.unwrap();
    let bob = page.iter().find(|m| m.label == "bob@acme.test").unwrap();
    assert!(r.text.contains(&format!("/admin/members/{}/remove", bob.principal.id)), "a remove link for bob");
    assert!(!r.text.contains(&format!("/admin/members/{}/remove", admin.user_id())), "none for the admin");
    assert!(!r.text.contains(&format!("/admin/members/{}/role", admin.user_id())), "no role form for the admin");

    // Not signed in: to the sign-in page, which comes back.
    let mut nobody = app.browser();
    for page in ADMIN_PAGES {
        let r = nobody.get(page).await;
        assert_eq!(r.status, 303, "{page}: {}", r.text);
        assert!(location(&r).starts_with("/login?next="), "{page}: {}", location(&r));
    }
}

async fn a_viewer_and_a_member_cannot_reach_admin_pages(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut admin_b) = admin_in(&app, "acme").await;
    let r = create_with_form(
        &mut admin_b,
        &[("name", None, "bot"), ("role", None, "viewer"), ("credential", None, "secret")],
    )
    .await;
    assert_page(&r, 201, "create");
    let sa = account_named(&app, &org, "bot").await;
    let carol = app.person(&org, "carol@acme.test", "viewer").await;
    for role in ["viewer", "member"] {
        let email = format!("{role}@acme.test");
        app.person(&org, &email, role).await;
        let mut b = app.signed_in(&email).await;
        let r = b.get("/settings/api-keys").await;
        assert_eq!(r.status, 200, "{role}: {}", r.text);
        assert!(!r.text.contains("/admin/"), "{role}: no admin link in the navigation: {}", r.text);
        for page in ADMIN_PAGES.iter().map(|p| p.to_string()).chain([
            format!("/admin/members/{}/remove", carol.user_id()),
            format!("/admin/service-accounts/{}/delete", sa.id),
            "/admin/audit?action=member.added".to_owned(),
        ]) {
            assert_page(&b.get(&page).await, 403, &format!("{role}: GET {page}"));
        }
        let csrf = b.csrf_from("/settings/api-keys").await;
        let posts = [
            (format!("/admin/members/{}/role", carol.user_id()), vec![("csrf", csrf.as_str()), ("role", "viewer")]),
            (format!("/admin/members/{}/remove", carol.user_id()), vec![("csrf", csrf.as_str()), ("confirm", "yes")]),
            ("/admin/service-accounts".to_owned(), vec![("csrf", csrf.as_str()), ("name", "mine"), ("role", "viewer")]),
            (
                format!("/admin/service-accounts/{}/rotate", sa.id),
                vec![("csrf", csrf.as_str()), ("grace_seconds", "0")],
            ),
            (format!("/admin/service-accounts/{}/delete", sa.id), vec![("csrf", csrf.as_str()), ("confirm", "yes")]),
        ];
        for (path, form) in &posts {
            assert_page(&b.post_form(path, form).await, 403, &format!("{role}: POST {path}"));
        }
    }
    // Nothing was done.
    assert_eq!(app.store.role_of(&org.id, &carol.user_id()).await.unwrap().as_deref(), Some("viewer"));
    let left = accounts(&app, &org).await;
    assert_eq!(left.len(), 1, "no account made, none deleted");
    assert_eq!(left[0].secrets.len(), 1, "no secret rotated");
}

async fn a_service_account_secret_is_shown_once_and_works(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut b) = admin_in(&app, "acme").await;
    let r = create_with_form(
        &mut b,
        &[
            ("name", None, "billing sync"),
            ("role", None, "member"),
            ("credential", None, "secret"),
            ("public_key_file", Some(""), ""),
            ("public_key", None, ""),
        ],
    )
    .await;
    assert_page(&r, 201, "create with a secret");
    let secret = shown_secret(&r);
    assert!(secret.starts_with("kwsa_"), "a service-account secret: {secret}");
    let client_id = element_text(&r.text, "client-id").expect("the client id on the page");
    assert!(r.text.contains("will not be shown again"), "the warning: {}", r.text);
    assert!(r.text.contains("<script src=\"/assets/copy.js\"></script>"), "the copy button's script");
    assert!(r.text.contains("data-copy=\"secret\""), "a copy button");
    assert!(
        r.text.contains(&format!("curl -u \"{client_id}:{secret}\"")),
        "a curl example with the credentials: {}",
        r.text
    );
    assert!(r.text.contains("grant_type=client_credentials"), "a token request example");
    let sa = account_named(&app, &org, "billing sync").await;
    assert_eq!(sa.client_id, client_id);
    assert_eq!(sa.role, "member");

    // The secret works: as Basic on the API, and for a token.
    assert_eq!(app.me_status_auth(&client_basic(&client_id, &secret)).await, 200);
    let r = app.token(Some(&client_basic(&client_id, &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "client_credentials: {}", r.text);

    // Never again: the list shows its prefix only.
    let list = b.get("/admin/service-accounts").await;
    assert_page(&list, 200, "the list");
    assert!(list.text.contains("billing sync") && list.text.contains(&client_id), "{}", list.text);
    assert!(list.text.contains(&secret[..12]), "the display prefix: {}", list.text);
    assert!(!list.text.contains(&secret), "the secret is not on the list");
    for page in ADMIN_PAGES {
        assert!(!b.get(page).await.text.contains(&secret), "{page} does not show the secret");
    }

    // A urlencoded form works too; a missing name is refused with the form again.
    let csrf = b.csrf_from("/admin/service-accounts").await;
    let r = b
        .post_form(
            "/admin/service-accounts",
            &[("csrf", &csrf), ("name", "plain form"), ("role", "viewer"), ("credential", "secret")],
        )
        .await;
    assert_page(&r, 201, "a urlencoded form");
    assert!(shown_secret(&r).starts_with("kwsa_"));
    let r = create_with_form(&mut b, &[("name", None, ""), ("credential", None, "secret")]).await;
    assert_page(&r, 422, "no name");
    assert!(r.text.contains("class=\"error\""), "the reason: {}", r.text);
    // A role holding more than… (an admin holds everything) — an unknown role.
    let r = create_with_form(&mut b, &[("name", None, "x"), ("role", None, "wizard"), ("credential", None, "secret")])
        .await;
    assert_page(&r, 422, "an unknown role");
    assert!(r.text.contains("wizard"), "{}", r.text);
    assert_eq!(accounts(&app, &org).await.len(), 2, "no refused account was made");
}

async fn a_public_key_is_uploaded_or_pasted(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut b) = admin_in(&app, "acme").await;
    let ec = Signer::ec();
    let r = create_with_form(
        &mut b,
        &[
            ("name", None, "signer"),
            ("role", None, "viewer"),
            ("credential", None, "public_key"),
            ("public_key_file", Some("key.pem"), &ec.public_pem),
            ("public_key", None, ""),
        ],
    )
    .await;
    assert_page(&r, 201, "create with an uploaded key");
    assert!(element_text(&r.text, "secret").is_none(), "no secret was made: {}", r.text);
    assert!(!r.text.contains("<script"), "no script without a secret");
    assert!(r.text.contains("ES256"), "the registered key: {}", r.text);
    let sa = account_named(&app, &org, "signer").await;
    assert!(sa.secrets.is_empty(), "no client secret");
    assert_eq!(sa.public_keys.len(), 1);
    let kid = sa.public_keys[0].kid().to_owned();
    let list = b.get("/admin/service-accounts").await;
    assert!(list.text.contains(&kid) && list.text.contains("ES256"), "kid and alg on the list: {}", list.text);

    // The key signs in.
    let jwt = ec.sign(Some(&kid), &assertion_claims(&sa.client_id, &token_endpoint()));
    let r = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER_ASSERTION),
                ("client_assertion", &jwt),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "private_key_jwt with the uploaded key: {}", r.text);

    // Pasted JWK.
    let r = create_with_form(
        &mut b,
        &[
            ("name", None, "pasted"),
            ("credential", None, "public_key"),
            ("public_key_file", Some(""), ""),
            ("public_key", None, ED25519_PUBLIC_JWK),
        ],
    )
    .await;
    assert_page(&r, 201, "create with a pasted JWK");
    assert_eq!(account_named(&app, &org, "pasted").await.public_keys[0].alg().as_str(), "EdDSA");

    // No key, or not a key.
    let r = create_with_form(
        &mut b,
        &[("name", None, "nokey"), ("credential", None, "public_key"), ("public_key_file", Some(""), "")],
    )
    .await;
    assert_page(&r, 422, "no key given");
    let r = create_with_form(
        &mut b,
        &[
            ("name", None, "badkey"),
            ("credential", None, "public_key"),
            ("public_key", None, "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"),
        ],
    )
    .await;
    assert_page(&r, 422, "not a key");
    assert!(r.text.contains("public key"), "{}", r.text);
    // A file that is not text.
    let csrf = b.csrf_from("/admin/service-accounts").await;
    let (ct, body) = multipart_bytes(&[
        ("csrf", None, csrf.as_bytes()),
        ("name", None, b"binary"),
        ("credential", None, b"public_key"),
        ("public_key_file", Some("k.der"), b"\xff\xfe\x00\x01"),
    ]);
    let r = b.post_raw("/admin/service-accounts", &ct, body).await;
    assert_page(&r, 400, "a binary file");
    assert_eq!(accounts(&app, &org).await.len(), 2, "no refused account was made");
}

async fn rotate_with_and_without_grace(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut b) = admin_in(&app, "acme").await;
    let r = create_with_form(&mut b, &[("name", None, "bot"), ("credential", None, "secret")]).await;
    let first = shown_secret(&r);
    let sa = account_named(&app, &org, "bot").await;
    let list = b.get("/admin/service-accounts").await;
    assert_eq!(select_options(&list.text, "grace_seconds"), Some(vec!["0".into(), "3600".into(), "86400".into()]));
    let csrf = input_value(&list.text, "csrf").unwrap();
    let rotate = format!("/admin/service-accounts/{}/rotate", sa.id);

    let r = b.post_form(&rotate, &[("csrf", &csrf), ("grace_seconds", "0")]).await;
    assert_page(&r, 200, "rotate now");
    let second = shown_secret(&r);
    assert_ne!(first, second);
    assert!(r.text.contains("will not be shown again"));
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &first)).await, 401, "the old secret stops at once");
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &second)).await, 200, "the new one works");

    let r = b.post_form(&rotate, &[("csrf", &csrf), ("grace_seconds", "3600")]).await;
    assert_page(&r, 200, "rotate with an hour's grace");
    let third = shown_secret(&r);
    assert!(r.text.contains("keeps working until"), "the grace is told: {}", r.text);
    assert_eq!(
        app.me_status_auth(&client_basic(&sa.client_id, &second)).await,
        200,
        "the old one keeps working an hour"
    );
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &third)).await, 200);
    let list = b.get("/admin/service-accounts").await;
    assert!(!list.text.contains(&third) && !list.text.contains(&second), "no secret on the list");
    assert!(list.text.contains("stops"), "the old secret's end is shown: {}", list.text);

    let r = b.post_form(&rotate, &[("csrf", &csrf), ("grace_seconds", "99999999")]).await;
    assert_page(&r, 422, "too long a grace");
    let r = b.post_form(&rotate, &[("csrf", &csrf), ("grace_seconds", "soon")]).await;
    assert_page(&r, 400, "not a number");
}

async fn delete_after_confirmation(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut b) = admin_in(&app, "acme").await;
    let r = create_with_form(&mut b, &[("name", None, "doomed"), ("credential", None, "secret")]).await;
    let secret = shown_secret(&r);
    let sa = account_named(&app, &org, "doomed").await;
    let path = format!("/admin/service-accounts/{}/delete", sa.id);
    let confirm = b.get(&path).await;
    assert_page(&confirm, 200, "the confirmation");
    assert_plain_page(&confirm, "the confirmation");
    assert!(confirm.text.contains("cannot be undone") && confirm.text.contains("doomed"), "{}", confirm.text);
    let csrf = input_value(&confirm.text, "csrf").unwrap();
    assert_page(&b.post_form(&path, &[("csrf", &csrf)]).await, 400, "without confirm=yes");
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &secret)).await, 200, "still there");
    let r = b.post_form(&path, &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(location(&r), "/admin/service-accounts?done=deleted");
    assert_eq!(app.me_status_auth(&client_basic(&sa.client_id, &secret)).await, 401, "its secret fails at once");
    assert!(accounts(&app, &org).await.is_empty());
    let list = b.get("/admin/service-accounts?done=deleted").await;
    assert!(list.text.contains("was deleted") && !list.text.contains("doomed"), "{}", list.text);
    assert_page(&b.post_form(&path, &[("csrf", &csrf), ("confirm", "yes")]).await, 404, "deleted twice");
}

async fn a_role_change_applies_at_once(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin, mut b) = admin_in(&app, "acme").await;
    let bob = app.person(&org, "bob@acme.test", "viewer").await;
    let key = app.key(&bob, None).await;
    let (status, perms) = check(&app, &key).await;
    assert_eq!(status, 200);
    assert!(!perms.clone().unwrap_or_default().contains("service_accounts:read"), "a viewer: {perms:?}");

    let csrf = b.csrf_from("/admin/members").await;
    let role = format!("/admin/members/{}/role", bob.user_id());
    let r = b.post_form(&role, &[("csrf", &csrf), ("role", "member")]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(location(&r), "/admin/members?done=role");
    let (_, perms) = check(&app, &key).await;
    assert!(perms.clone().unwrap_or_default().contains("service_accounts:read"), "a member at once: {perms:?}");
    let r = b.post_form(&role, &[("csrf", &csrf), ("role", "admin")]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(check(&app, &key).await.1.as_deref(), Some("*"), "an admin at once");
    let page = b.get("/admin/members?done=role").await;
    assert!(page.text.contains("role was changed"), "{}", page.text);

    assert_page(&b.post_form(&role, &[("csrf", &csrf), ("role", "wizard")]).await, 422, "an unknown role");
    assert_page(&b.post_form(&role, &[("csrf", &csrf)]).await, 422, "no role");
    // Not oneself.
    let own = format!("/admin/members/{}/role", admin.user_id());
    let r = b.post_form(&own, &[("csrf", &csrf), ("role", "viewer")]).await;
    assert_page(&r, 400, "demoting oneself");
    assert!(r.text.contains("your own role"), "{}", r.text);
    assert_page(&b.get(&format!("/admin/members/{}/remove", admin.user_id())).await, 400, "removing oneself (page)");
    let r = b
        .post_form(&format!("/admin/members/{}/remove", admin.user_id()), &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_page(&r, 400, "removing oneself");
    assert!(r.text.contains("remove yourself"), "{}", r.text);
    assert_eq!(app.store.role_of(&org.id, &admin.user_id()).await.unwrap().as_deref(), Some("admin"));

    // Removal: confirmed, at once.
    let remove = format!("/admin/members/{}/remove", bob.user_id());
    let confirm = b.get(&remove).await;
    assert_page(&confirm, 200, "the confirmation");
    assert!(confirm.text.contains("bob@acme.test"), "{}", confirm.text);
    assert_page(&b.post_form(&remove, &[("csrf", &csrf)]).await, 400, "without confirm=yes");
    assert_eq!(check(&app, &key).await.0, 200);
    let r = b.post_form(&remove, &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(check(&app, &key).await.0, 401, "bob's key fails at once");
    assert!(!b.get("/admin/members").await.text.contains("bob@acme.test"));
    assert_page(&b.post_form(&remove, &[("csrf", &csrf), ("confirm", "yes")]).await, 404, "removed twice");

    // The audit log tells it, by the admin through the web.
    let audit = b.get("/admin/audit?action=member.role_changed").await;
    assert_page(&audit, 200, "audit");
    assert_eq!(audit.text.matches("<code>member.role_changed</code>").count(), 2, "{}", audit.text);
    assert!(audit.text.contains(&admin.user_id()) && audit.text.contains("web_session"), "{}", audit.text);
}

/// A member who is a service account is deleted on its own page, not removed here.
async fn a_service_account_member_links_to_its_page(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut b) = admin_in(&app, "acme").await;
    create_with_form(&mut b, &[("name", None, "robot"), ("role", None, "viewer"), ("credential", None, "secret")])
        .await;
    let sa = account_named(&app, &org, "robot").await;
    let page = b.get("/admin/members").await;
    assert!(page.text.contains("robot") && page.text.contains("service account"), "{}", page.text);
    assert!(page.text.contains(&format!("/admin/service-accounts/{}/delete", sa.id)), "{}", page.text);
    assert_page(&b.get(&format!("/admin/members/{}/remove", sa.id)).await, 400, "remove an account as a member");
    // Its role can change here.
    let csrf = input_value(&page.text, "csrf").unwrap();
    let r = b.post_form(&format!("/admin/members/{}/role", sa.id), &[("csrf", &csrf), ("role", "member")]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(account_named(&app, &org, "robot").await.role, "member");
}

async fn another_organizations_ids_are_not_found(db: &TestDb) {
    let app = spawn_app(db).await;
    let (acme, alice, mut b) = admin_in(&app, "acme").await;
    let (globex, _, mut gb) = admin_in(&app, "globex").await;
    let gina = app.person(&globex, "gina@globex.test", "member").await;
    let r = create_with_form(&mut gb, &[("name", None, "globex-bot"), ("credential", None, "secret")]).await;
    let g_secret = shown_secret(&r);
    let gsa = account_named(&app, &globex, "globex-bot").await;
    // The same person in both organizations, acting in acme (their first).
    app.join(&globex, &alice.user, "admin").await;
    let r = b.get("/admin/members").await;
    assert!(r.text.contains("Members of acme"), "{}", r.text);

    let csrf = b.csrf_from("/admin/members").await;
    for id in [gina.user_id(), gsa.id.to_string(), "usr_nope".into(), "sa_nope".into(), "nonsense".into()] {
        assert_page(
            &b.post_form(&format!("/admin/members/{id}/role"), &[("csrf", &csrf), ("role", "viewer")]).await,
            404,
            &format!("role of {id}"),
        );
        assert_page(&b.get(&format!("/admin/members/{id}/remove")).await, 404, &format!("remove page of {id}"));
        assert_page(
            &b.post_form(&format!("/admin/members/{id}/remove"), &[("csrf", &csrf), ("confirm", "yes")]).await,
            404,
            &format!("remove {id}"),
        );
    }
    for id in [gsa.id.to_string(), gina.user_id(), "sa_nope".into(), "nonsense".into()] {
        assert_page(
            &b.get(&format!("/admin/service-accounts/{id}/delete")).await,
            404,
            &format!("delete page of {id}"),
        );
        assert_page(
            &b.post_form(&format!("/admin/service-accounts/{id}/delete"), &[("csrf", &csrf), ("confirm", "yes")]).await,
            404,
            &format!("delete {id}"),
        );
        assert_page(
            &b.post_form(&format!("/admin/service-accounts/{id}/rotate"), &[("csrf", &csrf), ("grace_seconds", "0")])
                .await,
            404,
            &format!("rotate {id}"),
        );
    }
    assert_eq!(
        app.store.role_of(&globex.id, &gina.user_id()).await.unwrap().as_deref(),
        Some("member"),
        "gina untouched"
    );
    assert_eq!(app.me_status_auth(&client_basic(&gsa.client_id, &g_secret)).await, 200, "globex's account untouched");
    assert_eq!(accounts(&app, &globex).await[0].secrets.len(), 1, "not rotated");

    // And no acme page shows globex's things.
    for page in ADMIN_PAGES {
        let r = b.get(page).await;
        assert_page(&r, 200, page);
        for theirs in ["gina@globex.test", "globex-bot", gsa.id.as_str(), gina.user.id.as_str()] {
            assert!(!r.text.contains(theirs), "{page} shows globex's {theirs}: {}", r.text);
        }
    }
    let r = b.get(&format!("/admin/audit?actor={}", gina.user_id())).await;
    assert!(r.text.contains("No events"), "{}", r.text);
    let _ = acme;
}

async fn every_admin_form_needs_its_csrf(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, _, mut b) = admin_in(&app, "acme").await;
    let bob = app.person(&org, "bob@acme.test", "viewer").await;
    create_with_form(&mut b, &[("name", None, "bot"), ("credential", None, "secret")]).await;
    let sa = account_named(&app, &org, "bot").await;
    let csrf = b.csrf_from("/admin/members").await;
    let wrong = format!("{}x", &csrf[..csrf.len() - 1]);
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/admin/members/{}/role", bob.user_id()), vec![("role", "admin")]),
        (format!("/admin/members/{}/remove", bob.user_id()), vec![("confirm", "yes")]),
        ("/admin/service-accounts".into(), vec![("name", "sneaky"), ("credential", "secret")]),
        (format!("/admin/service-accounts/{}/rotate", sa.id), vec![("grace_seconds", "0")]),
        (format!("/admin/service-accounts/{}/delete", sa.id), vec![("confirm", "yes")]),
    ];
    for (path, fields) in &forms {
        assert_page(&b.post_form(path, fields).await, 403, &format!("{path} without csrf"));
        let mut with_wrong = vec![("csrf", wrong.as_str())];
        with_wrong.extend(fields.iter().copied());
        assert_page(&b.post_form(path, &with_wrong).await, 403, &format!("{path} with a wrong csrf"));
        // A right field without the cookie (another browser's form).
        let mut with_right = vec![("csrf", csrf.as_str())];
        with_right.extend(fields.iter().copied());
        let mut stranger = app.browser();
        assert_eq!(stranger.post_form(path, &with_right).await.status, 403, "{path} without the cookie");
    }
    // The multipart create form too.
    let (ct, body) = multipart(&[("name", None, "sneaky"), ("credential", None, "secret")]);
    assert_page(&b.post_raw("/admin/service-accounts", &ct, body).await, 403, "multipart without csrf");
    let (ct, body) = multipart(&[("csrf", None, &wrong), ("name", None, "sneaky"), ("credential", None, "secret")]);
    assert_page(&b.post_raw("/admin/service-accounts", &ct, body).await, 403, "multipart with a wrong csrf");

    assert_eq!(app.store.role_of(&org.id, &bob.user_id()).await.unwrap().as_deref(), Some("viewer"), "bob untouched");
    let left = accounts(&app, &org).await;
    assert_eq!(left.len(), 1, "nothing made, nothing deleted");
    assert_eq!(left[0].secrets.len(), 1, "not rotated");
}

async fn the_audit_log_pages_and_filters(db: &TestDb) {
    let app = spawn_app(db).await;
    let (org, admin, mut b) = admin_in(&app, "acme").await;
    let bob = app.person(&org, "bob@acme.test", "viewer").await;
    for _ in 0..55 {
        app.key(&bob, None).await;
    }
    let r = create_with_form(&mut b, &[("name", None, "bot"), ("credential", None, "secret")]).await;
    let secret = shown_secret(&r);

    let first = b.get("/admin/audit").await;
    assert_page(&first, 200, "the first page");
    let rows = |r: &Reply| r.text.matches("<tr>").count() - 1; // less the header row
    assert_eq!(rows(&first), 50, "50 a page");
    assert!(
        first.text.find("<code>service_account.created</code>").unwrap()
            < first.text.find("<code>api_key.created</code>").unwrap(),
        "newest first"
    );
    let next =
        tags(&first.text, "a").into_iter().find(|a| a.get("rel").is_some_and(|r| r == "next")).expect("a next link")
            ["href"]
            .clone();
    assert!(query_param(&next, "before").is_some_and(|b| b.starts_with("evt_")), "{next}");
    let second = b.get(&next).await;
    assert_page(&second, 200, "the next page");
    let total = app.store.audit_events(&org.id, None, 200).await.unwrap().len();
    assert_eq!(rows(&second), total - 50, "the rest");
    assert!(!second.text.contains("rel=\"next\""), "the last page has no next link");
    assert!(second.text.contains("Newest events"), "a way back");

    let only = b.get("/admin/audit?action=service_account.created").await;
    assert_eq!(rows(&only), 1, "{}", only.text);
    let by_admin = b.get(&format!("/admin/audit?actor={}", admin.user_id())).await;
    assert_eq!(rows(&by_admin), 1, "the admin did one thing: {}", by_admin.text);
    assert_eq!(
        input_value(&by_admin.text, "actor").as_deref(),
        Some(admin.user_id().as_str()),
        "the filter is kept in the form"
    );
    let both = b.get(&format!("/admin/audit?action=api_key.created&actor={}", admin.user_id())).await;
    assert!(both.text.contains("No events match"), "{}", both.text);
    assert_page(&b.get("/admin/audit?before=garbage").await, 400, "a bad cursor");

    for r in [&first, &second, &only, &by_admin] {
        assert!(!r.text.contains(&secret), "no secret in the audit log");
        assert_plain_page(r, "audit");
    }
}

async fn the_plan_limit_names_the_plan(db: &TestDb) {
    let app = spawn_app_tables(db, "[service_accounts]\nmin_plan = \"pro\"").await;
    let org = app.store.create_org(&Slug::parse("small").unwrap(), "small", Plan::Free).await.unwrap();
    app.person(&org, "owner@small.test", "owner").await;
    let mut b = app.signed_in("owner@small.test").await;
    let r = create_with_form(&mut b, &[("name", None, "bot"), ("credential", None, "secret")]).await;
    assert_page(&r, 403, "a free organization");
    assert!(r.text.contains("pro") && r.text.contains("free"), "names the plans: {}", r.text);
    assert!(element_text(&r.text, "secret").is_none());
    assert!(accounts(&app, &org).await.is_empty());
}

both_backends!(
    an_admin_sees_the_admin_pages,
    a_viewer_and_a_member_cannot_reach_admin_pages,
    a_service_account_secret_is_shown_once_and_works,
    a_public_key_is_uploaded_or_pasted,
    rotate_with_and_without_grace,
    delete_after_confirmation,
    a_role_change_applies_at_once,
    a_service_account_member_links_to_its_page,
    another_organizations_ids_are_not_found,
    every_admin_form_needs_its_csrf,
    the_audit_log_pages_and_filters,
    the_plan_limit_names_the_plan,
);
