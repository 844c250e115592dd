//! `bcrypt_secrets N [COST]`: N legacy client credentials for `bench/token.sh`, one per
//! line as `CLIENT_ID SECRET BCRYPT_HASH` — what a previous system would hand over for
//! `keyward serviceaccount import --bcrypt-hash`. The secrets are 32 hex characters from
//! the OS (not keyward-shaped, as an imported secret is); the hashes are `$2b$COST$…`
//! (default cost 10), made with the `bcrypt` crate. On stderr: the time one hash took,
//! `bcrypt cost C: M ms per hash` — the price of one bcrypt computation on this machine,
//! for comparison with the server's first use of such a secret.

use std::io::{Read, Write};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().expect("usage: bcrypt_secrets N [COST]").parse()?;
    let cost: u32 = args.next().map(|c| c.parse()).transpose()?.unwrap_or(10);
    let mut random = vec![0u8; 16 * n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let mut out = std::io::stdout().lock();
    let mut times = Vec::with_capacity(n);
    for (i, bytes) in random.chunks(16).enumerate() {
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let started = std::time::Instant::now();
        let hash = bcrypt::hash_with_result(&secret, cost)?.format_for_version(bcrypt::Version::TwoB);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        writeln!(out, "legacy-client-{i:03} {secret} {hash}")?;
    }
    times.sort_by(f64::total_cmp);
    if let Some(median) = times.get(times.len() / 2) {
        eprintln!("bcrypt cost {cost}: {median:.2} ms per hash");
    }
    Ok(())
}
