//! The real binary under a sign-in flood: 200 sign-ins at once, each for another e-mail
//! from another address (through a trusted proxy, so no per-address or per-e-mail limit
//! stops them before the password hash). Password checks run a few at a time in reused
//! work areas, so the server's peak resident memory (`VmHWM`) stays under 300 MB; the
//! unbounded server reached gigabytes. Every answer is a 401, or a 503 with
//! `Retry-After` for those that could not get a check in time — never a 5xx otherwise.
//!
//! SQLite only: memory for hashing does not depend on the database.

mod common;

use std::sync::{Arc, Barrier};

use common::Kw;
use keyward_store::testing::TestDb;
use reqwest::blocking::Client;

const ATTEMPTS: usize = 200;
const LIMIT_KB: u64 = 300 * 1024;

/// A field of `/proc/<pid>/status`, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The hidden `csrf` field of a page.
fn csrf_field(page: &str) -> String {
    let at = page.find("name=\"csrf\"").expect("a csrf field");
    let rest = &page[at..];
    let value = &rest[rest.find("value=\"").unwrap() + 7..];
    value[..value.find('"').unwrap()].to_owned()
}

#[test]
fn two_hundred_sign_ins_at_once_keep_memory_bounded() {
    let db = TestDb::sqlite();
    let kw = Kw::new(&db);
    let served = kw.serve_with(&[("KEYWARD_RATE_LIMITS__TRUSTED_PROXIES", "127.0.0.1")]);
    let pid = served.pid();
    let start_rss = status_kb(pid, "VmRSS:");
    let barrier = Arc::new(Barrier::new(ATTEMPTS));
    let threads: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let base = served.base.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let address = format!("10.{}.{}.1", i / 200, i % 200);
                let http = Client::builder().cookie_store(true).build().unwrap();
                let page = http.get(format!("{base}/login")).send().unwrap().text().unwrap();
                let csrf = csrf_field(&page);
                barrier.wait();
                let res = http
                    .post(format!("{base}/login"))
                    .header("X-Forwarded-For", address)
                    .form(&[("csrf", csrf.as_str()), ("email", &format!("p{i}@example.com")), ("password", "guess")])
                    .send()
                    .unwrap();
                let status = res.status().as_u16();
                let retry = res.headers().get("retry-after").is_some();
                (status, retry)
            })
        })
        .collect();
    let answers: Vec<(u16, bool)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let (peak, rss) = (status_kb(pid, "VmHWM:"), status_kb(pid, "VmRSS:"));
    let wrong = answers.iter().filter(|(s, _)| *s == 401).count();
    let busy = answers.iter().filter(|(s, _)| *s == 503).count();
    eprintln!(
        "sign-in flood: {ATTEMPTS} at once: {wrong} checked (401), {busy} refused (503); \
         VmRSS {start_rss} kB before, {rss} kB after, VmHWM {peak} kB"
    );
    assert_eq!(wrong + busy, ATTEMPTS, "only 401 and 503: {answers:?}");
    assert!(wrong > 0, "some passwords were checked");
    assert!(answers.iter().filter(|(s, _)| *s == 503).all(|(_, retry)| *retry), "every 503 carries Retry-After");
    assert!(peak < LIMIT_KB, "peak resident memory {peak} kB is over {LIMIT_KB} kB");
    served.stop();
}
