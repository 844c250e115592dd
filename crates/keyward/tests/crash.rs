//! Durability: `kill -9` of the server during a burst of key creations and
//! revocations. After a restart, every creation that was acknowledged (201) is present
//! and works, and every acknowledged revocation (204) is still revoked.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bearer, Kw};
use keyward_store::testing::TestDb;

both_backends!(acknowledged_writes_survive_kill_9);

#[derive(Default)]
struct Acknowledged {
    created: Vec<(String, String)>,
    revoked: Vec<String>,
    /// Revocations sent but not acknowledged (the kill came first): either outcome is
    /// correct for these.
    in_flight: Vec<String>,
}

fn acknowledged_writes_survive_kill_9(db: &TestDb) {
    let kw = Kw::new(db);
    kw.ok(&["org", "create", "acme"]);
    kw.ok(&["user", "create", "ci@example.com", "--org", "acme", "--role", "admin"]);
    let admin = kw.ok(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "ci@example.com",
        "--name",
        "burst",
        "--permission",
        "api_keys:write",
        "--permission",
        "projects:read",
    ]);
    let server = kw.serve();
    let base = server.base.clone();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (base, admin, acked, stop) = (base.clone(), admin.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let mut mine: Vec<String> = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // Every third step revokes one of this worker's earlier keys.
                    if i % 3 == 2 {
                        if let Some(id) = mine.pop() {
                            match http.delete(format!("{base}/api/v1/api-keys/{id}")).bearer_auth(&admin).send() {
                                Ok(r) if r.status() == 204 => acked.lock().unwrap().revoked.push(id),
                                Ok(r) => panic!("revoke answered {}", r.status()),
                                Err(_) => {
                                    // The server is gone; it may or may not have committed.
                                    acked.lock().unwrap().in_flight.push(id);
                                    break;
                                }
                            }
                            continue;
                        }
                    }
                    let body = serde_json::json!({ "name": format!("w{w}-{i}"), "permissions": ["projects:read"] });
                    match http.post(format!("{base}/api/v1/api-keys")).bearer_auth(&admin).json(&body).send() {
                        Ok(r) if r.status() == 201 => {
                            let v: serde_json::Value = match r.json() {
                                Ok(v) => v,
                                Err(_) => break, // killed mid-body: not acknowledged
                            };
                            let id = v["id"].as_str().unwrap().to_owned();
                            acked.lock().unwrap().created.push((id.clone(), v["key"].as_str().unwrap().to_owned()));
                            mine.push(id);
                        }
                        Ok(r) => panic!("create answered {}", r.status()),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.created.len() >= 10 && !acked.revoked.is_empty(),
        "the burst did work: {} created, {} revoked",
        acked.created.len(),
        acked.revoked.len()
    );
    eprintln!("kill -9 after {} acknowledged creations and {} revocations", acked.created.len(), acked.revoked.len());

    let server = kw.serve();
    let listed: serde_json::Value =
        serde_json::from_str(&kw.ok(&["key", "list", "--org", "acme", "--include-revoked", "--json"])).unwrap();
    let listed = listed["data"].as_array().unwrap().clone();
    for (id, secret) in &acked.created {
        let row =
            listed.iter().find(|k| k["id"] == id.as_str()).unwrap_or_else(|| panic!("acknowledged key {id} lost"));
        let (h, v) = bearer(secret);
        let status = server.status("/api/v1/me", (h, &v));
        let revoked = row["revoked_at"].is_string();
        assert_eq!(status, if revoked { 401 } else { 200 }, "{id}: the server agrees with the database");
        if acked.revoked.contains(id) {
            assert!(revoked, "acknowledged revocation of {id} lost");
        } else if !acked.in_flight.contains(id) {
            assert!(!revoked, "{id} was never revoked");
        }
    }
    server.stop();
}
