//! The HTTP side of the device-flow client: one reqwest client that refuses redirects and
//! bounds every request, the check of `--server`, and what a failed request or an answer
//! that is not OAuth means, in words for the person at the terminal.
//!
//! [`Transport`] is the HTTP client the `oauth2` requests run on. Besides sending, it
//! remembers the status of the last answer — `oauth2` reports an answer it cannot parse
//! without its status, and "a redirect" or "not a keyward server" needs it — and counts
//! network failures in a row, which the polling loop gives up after.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

/// Every request's own bound; the whole login is bounded by the code's `expires_in`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The error of one request as the `oauth2` crate carries it.
pub type RequestError = HttpClientError<reqwest::Error>;

/// reqwest, set up for talking to a keyward server: a timeout on every request, the CLI's
/// user agent, and no redirects — one would be followed with a POST turned GET, or to
/// another host (and `oauth2` advises against following them).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("keyward-cli/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot set up the HTTP client")
}

/// The server URL as given to `--server`, checked and without a trailing slash. Plain
/// `http://` to a host that is not local is allowed, with a warning.
pub fn server_base(server: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(server)
        .map_err(|_| anyhow!("--server {server:?} is not a URL; write e.g. https://keys.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--server {server:?} is not an http(s) URL; write e.g. https://keys.example.com");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server {server:?}: give the server's base URL, without ?query or #fragment");
    }
    if url.scheme() == "http" && !is_loopback(url.host_str().unwrap_or_default()) {
        eprintln!("warning: {server} is plain http: the tokens cross the network unencrypted");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A server-supplied string made safe for a terminal: control characters (escape
/// sequences) dropped.
pub fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Why a request failed, short: the innermost cause ("Connection refused (os error
/// 111)", "invalid peer certificate: …"). reqwest's messages name the URL, never a form
/// field or a header, so no secret is in them.
pub fn network_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// [`network_reason`] for an error as `oauth2` wraps it.
pub fn request_reason(e: &RequestError) -> String {
    match e {
        HttpClientError::Reqwest(e) => network_reason(e),
        other => other.to_string(),
    }
}

pub fn unreachable(url: &str, reason: &str) -> anyhow::Error {
    anyhow!("cannot reach {url}: {reason}")
}

/// An answer with no usable OAuth body: a redirect (the server's address is another one)
/// or something that is not a keyward server.
pub fn unexpected(url: &str, status: u16) -> anyhow::Error {
    if (300..400).contains(&status) {
        anyhow!("{url} answered {status} (a redirect); give --server the server's final address (https?)")
    } else {
        anyhow!("{url} answered {status} with no OAuth answer; is this a keyward server?")
    }
}

/// The HTTP client under the `oauth2` requests (see the module's documentation).
pub struct Transport {
    http: reqwest::Client,
    last_status: AtomicU16,
    failures: AtomicU32,
    last_failure: Mutex<String>,
}

impl Transport {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, last_status: AtomicU16::new(0), failures: AtomicU32::new(0), last_failure: Mutex::default() }
    }

    /// The plain client, for requests that are not OAuth (`/api/v1/me`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The status of the last answer; 0 before any.
    pub fn last_status(&self) -> u16 {
        self.last_status.load(Ordering::Relaxed)
    }

    /// Requests that failed at the network level since the last answer.
    pub fn failures_in_a_row(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the last failed request failed.
    pub fn last_failure(&self) -> String {
        self.last_failure.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Explains an error of an `oauth2` request that did not come from the server's OAuth
    /// answer: the network, or an answer that is not OAuth.
    pub fn explain<TE: oauth2::ErrorResponse>(
        &self,
        url: &str,
        e: oauth2::RequestTokenError<RequestError, TE>,
        server_said: impl FnOnce(TE) -> anyhow::Error,
    ) -> anyhow::Error {
        match e {
            oauth2::RequestTokenError::ServerResponse(answer) => server_said(answer),
            oauth2::RequestTokenError::Request(e) => unreachable(url, &request_reason(&e)),
            // No status: the request was never sent (oauth2 could not build it).
            oauth2::RequestTokenError::Other(why) if self.last_status() == 0 => anyhow!("cannot ask {url}: {why}"),
            oauth2::RequestTokenError::Parse(..) | oauth2::RequestTokenError::Other(_) => {
                unexpected(url, self.last_status())
            }
        }
    }
}

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = RequestError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            self.last_status.store(0, Ordering::Relaxed);
            match self.http.call(request).await {
                Ok(response) => {
                    self.last_status.store(response.status().as_u16(), Ordering::Relaxed);
                    self.failures.store(0, Ordering::Relaxed);
                    Ok(response)
                }
                Err(e) => {
                    if let Ok(mut last) = self.last_failure.lock() {
                        *last = request_reason(&e);
                    }
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_url_is_checked_and_trimmed() {
        assert_eq!(server_base("https://keys.example.com/").unwrap(), "https://keys.example.com");
        assert_eq!(server_base("http://127.0.0.1:7070").unwrap(), "http://127.0.0.1:7070");
        assert_eq!(server_base("https://example.com/keyward/").unwrap(), "https://example.com/keyward");
        assert!(server_base("keys.example.com").is_err());
        assert!(server_base("ftp://keys.example.com").is_err());
        assert!(server_base("https://keys.example.com/?a=b").is_err());
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("[::1]"));
        assert!(!is_loopback("keys.example.com"));
    }

    #[test]
    fn answers_that_are_not_oauth_are_explained() {
        let redirect = unexpected("https://k/oauth/token", 302).to_string();
        assert!(redirect.contains("a redirect") && redirect.contains("final address"), "{redirect}");
        let other = unexpected("https://k/oauth/token", 404).to_string();
        assert!(other.contains("404") && other.contains("keyward server"), "{other}");
        assert_eq!(printable("a\u{1b}[31mb\u{7}"), "a[31mb", "no escape sequences reach the terminal");
    }

    #[tokio::test]
    async fn network_failures_are_counted_until_an_answer() {
        // A port nobody listens on: connection refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let transport = Transport::new(http_client().unwrap());
        let request = || oauth2::http::Request::get(format!("http://127.0.0.1:{port}/")).body(Vec::new()).unwrap();
        assert!(transport.call(request()).await.is_err());
        assert!(transport.call(request()).await.is_err());
        assert_eq!(transport.failures_in_a_row(), 2);
        assert_eq!(transport.last_status(), 0);
        assert!(transport.last_failure().to_lowercase().contains("refused"), "{}", transport.last_failure());
    }
}
