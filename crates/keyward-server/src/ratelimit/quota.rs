//! What a limited answer says about its limit: the `RateLimit-Policy` and `RateLimit`
//! headers of the IETF httpapi draft ("RateLimit header fields for HTTP", structured
//! fields: `"name";q=600;w=60` and `"name";r=599;t=42`), and `Retry-After` on a `429`.

use std::time::Duration;

use std::cell::RefCell;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::{seconds, Rate};

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// One limit's state for one request: its name and rate, what is left, and when the
/// window resets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// The policy's name in the headers (`per-credential`, `failed-auth`, …).
    pub policy: &'static str,
    pub rate: Rate,
    pub remaining: u32,
    pub reset: Duration,
}

impl Quota {
    /// Sets `RateLimit-Policy` and `RateLimit`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let policy = format!("\"{}\";q={};w={}", self.policy, self.rate.max, self.rate.window.as_secs().max(1));
        let state = format!("\"{}\";r={};t={}", self.policy, self.remaining, seconds(self.reset));
        if let (Ok(p), Ok(s)) = (HeaderValue::from_str(&policy), HeaderValue::from_str(&state)) {
            headers.insert(RATELIMIT_POLICY, p);
            headers.insert(RATELIMIT, s);
        }
    }

    /// [`apply`](Self::apply) and `Retry-After`, for a refusal.
    pub fn apply_refused(&self, headers: &mut HeaderMap) {
        self.apply(headers);
        headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds(self.reset)));
    }
}

tokio::task_local! {
    /// The quota a request used within its limit, for its answer's headers.
    static ANSWERED: RefCell<Option<Quota>>;
}

/// Notes the quota of the request being handled: its answer gets the `RateLimit`
/// headers (see [`with_headers`]).
pub fn remember(quota: Quota) {
    let _ = ANSWERED.try_with(|q| *q.borrow_mut() = Some(quota));
}

/// Runs a request's handling so that a quota it [`remember`]s lands on its answer.
pub async fn with_headers(
    handling: impl std::future::Future<Output = axum::response::Response>,
) -> axum::response::Response {
    ANSWERED
        .scope(RefCell::new(None), async {
            let mut response = handling.await;
            if let Some(quota) = ANSWERED.with(|q| q.borrow_mut().take()) {
                if !response.headers().contains_key(RATELIMIT) {
                    quota.apply(response.headers_mut());
                }
            }
            response
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_draft() {
        let q = Quota {
            policy: "per-credential",
            rate: Rate { max: 600, window: Duration::from_secs(60) },
            remaining: 0,
            reset: Duration::from_millis(41_200),
        };
        let mut h = HeaderMap::new();
        q.apply_refused(&mut h);
        assert_eq!(h["ratelimit-policy"], "\"per-credential\";q=600;w=60");
        assert_eq!(h["ratelimit"], "\"per-credential\";r=0;t=42");
        assert_eq!(h["retry-after"], "42");
    }
}
