//! `auth_micro DATABASE_URL KEYS_FILE`: the warm authentication path alone, in process:
//! headers in, identity out, against a seeded store, rotating over the sampled keys.
//! Prints nanoseconds per authentication beside the cost of the cheapest step it
//! contains (parsing the header), measured in the same run.

use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue};
use keyward_server::Settings;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (url, keys_file) = (args.next().expect("DATABASE_URL"), args.next().expect("KEYS_FILE"));
    let settings = Settings::from_toml(&format!("database_url = \"{url}\"\nlisten = \"127.0.0.1:0\""))?;
    let server = keyward_server::Server::build(settings.clone()).await?;
    let auth = &server.state().auth;
    let headers: Vec<HeaderMap> = std::fs::read_to_string(keys_file)?
        .lines()
        .map(|k| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {k}")).unwrap());
            h
        })
        .collect();
    for h in &headers {
        auth.authenticate(h).await.expect("warm-up: every key is valid");
    }
    const N: usize = 1_000_000;
    let start = Instant::now();
    for i in 0..N {
        let identity = auth.authenticate(&headers[i % headers.len()]).await.expect("valid");
        std::hint::black_box(identity);
    }
    let full = start.elapsed().as_nanos() as f64 / N as f64;
    let start = Instant::now();
    for i in 0..N {
        let h = &headers[i % headers.len()];
        let parsed = keyward_core::credential::parse(
            h.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
            None,
            &settings.secrets,
        );
        std::hint::black_box(parsed).ok();
    }
    let parse = start.elapsed().as_nanos() as f64 / N as f64;
    println!("warm authenticate: {full:.0} ns/op; header parse alone: {parse:.0} ns/op; ratio {:.1}", full / parse);
    Ok(())
}
