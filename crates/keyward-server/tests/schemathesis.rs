//! The OpenAPI document tells the truth: Schemathesis (a property-based API tester, from
//! PyPI) reads `GET /api/v1/openapi.json` from a running server, generates requests for
//! every operation — valid ones, and invalid ones of every kind — and checks each answer
//! against the document: no `5xx`, a status the operation declares, the declared content
//! type, headers and body schema, `4xx` for data the schema forbids, `401` without the
//! credential, `405` with `Allow` for undeclared methods. Any failure fails the test,
//! with Schemathesis's report (each failure with a `curl` line to reproduce it).
//!
//! # What runs
//!
//! A server on port 0 over a fresh database (SQLite, and PostgreSQL as everywhere), with
//! an organization, its owner, and two keys of the owner's: the run's key, naming every
//! permission of the catalogue, and a spare. Then two runs of `st run`:
//!
//! - **with the key** in the API-key header, given to Schemathesis as the `api_key`
//!   scheme's value so that it knows which header is the credential (its `ignored_auth`
//!   check repeats requests without it). The run creates, rolls and revokes keys and
//!   service accounts as it likes; `schemathesis/hooks.py` keeps it from revoking or
//!   rolling its own key (such a request is sent for the spare key instead);
//! - **without any credential**: Schemathesis makes up values for each security scheme.
//!
//! The checks are Schemathesis's defaults (all of them) less the two that
//! `schemathesis/schemathesis.toml` switches off, and says why.
//!
//! # Size
//!
//! Each run generates at most [`MAX_EXAMPLES`] cases per operation and phase (about 1,600
//! requests in a minute), and is killed after [`DEADLINE`]. `KEYWARD_SCHEMATHESIS_EXAMPLES`
//! overrides the count for a longer local run; Schemathesis prints the seed of each run,
//! and `KEYWARD_SCHEMATHESIS_SEED` repeats one.
//!
//! # Finding Schemathesis
//!
//! `KEYWARD_SCHEMATHESIS` names the `st` executable; otherwise `target/ci-venv/bin/st`,
//! the virtual environment `.ci/run` makes with the pinned version [`PINNED`]. Without
//! it (or with another version, whose flags may differ) the test prints why and passes —
//! except with `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use keyward_core::domain::{Email, Plan, Slug};
use keyward_server::deployment::Deployment;
use keyward_server::keys::{self, Creator, KeyRequest};
use keyward_server::{Server, Settings};
use keyward_store::testing::TestDb;
use keyward_store::{Actor, Principal};

/// The Schemathesis version `.ci/run` installs; this test's flags are written for it.
const PINNED: &str = "4.32.5";
/// Cases per operation and phase.
const MAX_EXAMPLES: u32 = 10;
/// The longest one run may take before it is killed and the test fails.
const DEADLINE: Duration = Duration::from_secs(300);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (with a printed reason) or, in CI, fails.
fn unavailable(why: String) {
    if in_ci() {
        panic!("Schemathesis is required in CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis")
}

/// The `st` executable of the pinned version, or why there is none.
async fn schemathesis() -> Result<PathBuf, String> {
    let st = match std::env::var_os("KEYWARD_SCHEMATHESIS") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ci-venv/bin/st"),
    };
    let out = tokio::process::Command::new(&st).arg("--version").output().await.map_err(|e| {
        format!("{} cannot be run ({e}); .ci/run installs it (pip install schemathesis=={PINNED})", st.display())
    })?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.split_whitespace().any(|w| w == PINNED) {
        return Err(format!("{} is {:?}, not schemathesis {PINNED}", st.display(), version.trim()));
    }
    Ok(st)
}

/// The server and what the runs need to know about it.
struct Target {
    base: String,
    run_key: String,
    run_key_id: String,
    spare_key_id: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn target(db: &TestDb) -> Target {
    let store = db.store().await;
    let settings = Settings::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\nusage_flush_interval = \"1s\"\n",
        db.url
    ))
    .expect("valid settings");
    let roles = settings.roles.clone();
    let secrets = settings.secrets.clone();
    let org = store.create_org(&Slug::parse("acme").unwrap(), "Acme", Plan::Pro).await.unwrap();
    let owner = store.create_user(&Email::parse("owner@acme.test").unwrap(), "Owner", None).await.unwrap();
    let principal = Principal::user(&owner.id);
    store.add_member(&org.id, &principal, "owner", &Actor::cli()).await.unwrap();
    let holds = roles.permissions_of("owner");
    let every: Vec<String> = roles.catalogue().iter().map(|p| p.as_str().to_owned()).collect();
    let mut made = Vec::new();
    for (name, permissions) in [("schemathesis", Some(every)), ("spare", None)] {
        let req = KeyRequest { name: name.into(), permissions, expires_at: None };
        let creator = Creator { holds: &holds, restricted: false };
        let (key, secret) = keys::create(
            &Deployment { store: &store, secrets: &secrets, roles: &roles, min_plan: Plan::Free },
            &org.id,
            &principal,
            &creator,
            &req,
            &Actor::cli(),
        )
        .await
        .unwrap();
        made.push((key.id.to_string(), secret.expose().to_owned()));
    }
    let server = Server::build(settings).await.expect("the server starts");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let [(run_key_id, run_key), (spare_key_id, _)] = <[_; 2]>::try_from(made).unwrap();
    Target { base, run_key, run_key_id, spare_key_id, _stop: stop }
}

/// One `st run`; `Err` holds the report of a failed run.
async fn run(st: &Path, target: &Target, with_key: bool, dir: &Path) -> Result<String, String> {
    let examples = std::env::var("KEYWARD_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.to_string());
    let config = dir.join(if with_key { "with-key.toml" } else { "anonymous.toml" });
    // The shared settings, plus the credential for the keyed run. The key itself stays
    // in the environment: the file names the variable.
    let mut text = std::fs::read_to_string(here().join("schemathesis.toml")).expect("schemathesis.toml");
    if with_key {
        text.insert_str(0, "[auth.openapi.api_key]\napi_key = \"${KEYWARD_RUN_KEY}\"\n\n");
    }
    std::fs::write(&config, text).unwrap();
    let mut cmd = tokio::process::Command::new(st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", target.base))
        .args(["--max-examples", &examples])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--warnings", "off"])
        .current_dir(dir)
        .env("SCHEMATHESIS_HOOKS", here().join("hooks.py"))
        .env("KEYWARD_RUN_KEY", &target.run_key)
        .env("KEYWARD_RUN_KEY_ID", &target.run_key_id)
        .env("KEYWARD_SPARE_KEY_ID", &target.spare_key_id)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Ok(seed) = std::env::var("KEYWARD_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out = match tokio::time::timeout(DEADLINE, cmd.output()).await {
        Ok(out) => out.expect("st runs"),
        Err(_) => return Err(format!("the run did not finish within {DEADLINE:?}")),
    };
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

async fn conforms(db: &TestDb) {
    let st = match schemathesis().await {
        Ok(st) => st,
        Err(why) => return unavailable(why),
    };
    let target = target(db).await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let doc: serde_json::Value =
        http.get(format!("{}/api/v1/openapi.json", target.base)).send().await.unwrap().json().await.unwrap();
    // Every operation but the document's own route, which Schemathesis leaves out.
    let operations: usize =
        doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum::<usize>() - 1;
    for with_key in [true, false] {
        let backend = if db.url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
        let what = format!("{backend}, {}", if with_key { "with the key" } else { "without a credential" });
        let started = Instant::now();
        match run(&st, &target, with_key, dir.path()).await {
            Ok(report) => {
                println!("schemathesis {what}: passed in {:.0?}\n{report}", started.elapsed());
                // A run that reached no operation would pass too: it must have tested them all.
                let tested = format!("Tested: {operations}\n");
                assert!(report.contains(&tested), "{what}: not all {operations} operations were tested:\n{report}");
            }
            Err(report) => panic!("schemathesis {what} failed after {:.0?}:\n{report}", started.elapsed()),
        }
    }
    // The run's key survived its run.
    let me = http.get(format!("{}/api/v1/me", target.base)).header("x-api-key", &target.run_key).send().await.unwrap();
    assert_eq!(me.status(), 200, "the run's own key still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    conforms(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    conforms(&db).await;
}
