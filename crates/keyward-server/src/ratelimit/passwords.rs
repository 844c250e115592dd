//! At most a few password hashes at once, so memory stays bounded under any flood.
//!
//! argon2id needs a 19 MiB work area per check. Unbounded, a burst of sign-ins ran one
//! check per blocking thread (up to 512), and the allocator kept the memory after the
//! burst. Here a semaphore admits `password_hashes` checks at a time; each runs on a
//! blocking thread with a work area taken from a pool of at most that many (so memory
//! for hashing is `password_hashes` × 19 MiB, allocated once). A check that cannot start
//! within `password_hash_wait` is refused ([`Busy`]: the caller answers `503` with
//! `Retry-After`). The permit and the work area travel into the blocking task, so a
//! request that goes away mid-check cannot let more checks run than the bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_core::password::{self, Block};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// No check could start in time.
#[derive(Debug)]
pub struct Busy;

pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    wait: Duration,
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
    metrics: Arc<Metrics>,
}

impl PasswordChecks {
    pub fn new(concurrency: usize, wait: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
            areas: Arc::new(Mutex::new(Vec::new())),
            metrics,
        }
    }

    /// Whether `password` matches the PHC string `phc`, checked off the async runtime.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Busy> {
        let permit = match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                self.metrics.password_checks_refused.inc();
                return Err(Busy);
            }
        };
        self.metrics.password_checks.inc();
        let areas = self.areas.clone();
        let check = tokio::task::spawn_blocking(move || {
            let mut area = areas.lock().expect("not poisoned").pop().unwrap_or_default();
            let matches = password::verify_in(&password, &phc, &mut area);
            areas.lock().expect("not poisoned").push(area);
            drop(permit);
            matches
        });
        // A failed join is a panic inside argon2: a mismatch, never a sign-in.
        Ok(check.await.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_wait_for_a_permit_and_are_refused_after_the_wait() {
        let metrics = Arc::new(Metrics::default());
        let checks = Arc::new(PasswordChecks::new(1, Duration::from_millis(1), metrics.clone()));
        let phc = password::hash("pw");
        assert!(checks.verify("pw".into(), phc.clone()).await.unwrap());
        assert!(!checks.verify("nope".into(), phc.clone()).await.unwrap());
        assert_eq!(checks.areas.lock().unwrap().len(), 1, "one work area, reused");
        // Hold the only permit: the next check cannot start within its 1 ms.
        let held = checks.permits.clone().acquire_owned().await.unwrap();
        assert!(checks.verify("pw".into(), phc).await.is_err());
        drop(held);
        assert_eq!(metrics.password_checks.get(), 2);
        assert_eq!(metrics.password_checks_refused.get(), 1);
    }
}
