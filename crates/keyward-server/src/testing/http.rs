//! Replies read whole (status, headers, text, JSON), the assertions every suite makes on
//! them, and the encodings requests need (HTTP Basic, form bodies).

use base64::Engine;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::RequestBuilder;
use serde_json::Value;

pub fn basic(pair: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: Value,
}

pub async fn send(rb: RequestBuilder) -> Reply {
    let res = rb.send().await.expect("the request reaches the server");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("the body can be read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, text, body }
}

impl Reply {
    /// Asserts an error answer: `status`, JSON `{"error": code, "error_description": text}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(self.body["error"], code, "error code; body: {}", self.text);
        assert!(
            self.body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
            "error_description; body: {}",
            self.text
        );
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content type {ct:?}");
        self
    }

    /// Asserts the answer to a missing credential: 401, both challenges, no `error`.
    #[track_caller]
    pub fn assert_missing_credential(&self) -> &Self {
        self.assert_error(401, "unauthorized");
        let c = self.challenges();
        assert_eq!(c.len(), 2, "two challenges: {c:?}");
        assert!(c[0].starts_with("Bearer realm=\"keyward\""), "{c:?}");
        assert!(!c[0].contains("error="), "no error attribute: {c:?}");
        assert_eq!(c[1], "Basic realm=\"keyward\"", "{c:?}");
        self
    }

    /// Asserts the answer to a present but wrong credential: 401 `invalid_token`.
    #[track_caller]
    pub fn assert_invalid_token(&self) -> &Self {
        self.assert_error(401, "invalid_token");
        let c = self.challenges();
        assert_eq!(c.len(), 2, "two challenges: {c:?}");
        assert!(c[0].starts_with("Bearer realm=\"keyward\", error=\"invalid_token\""), "{c:?}");
        assert_eq!(c[1], "Basic realm=\"keyward\"", "{c:?}");
        self
    }

    /// Asserts 403 `insufficient_scope` with the Bearer challenge saying so.
    #[track_caller]
    pub fn assert_insufficient_scope(&self) -> &Self {
        self.assert_error(403, "insufficient_scope");
        let c = self.challenges();
        assert!(c.iter().any(|c| c.starts_with("Bearer realm=\"keyward\", error=\"insufficient_scope\"")), "{c:?}");
        self
    }

    pub fn challenges(&self) -> Vec<String> {
        self.headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("challenges are text").to_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().expect("header is text").to_owned())
    }

    /// Asserts `Cache-Control: no-store` and `Pragma: no-cache` (OAuth token answers).
    #[track_caller]
    pub fn assert_no_store(&self) -> &Self {
        let cc = self.header("cache-control").unwrap_or_default();
        assert!(cc.to_ascii_lowercase().contains("no-store"), "Cache-Control {cc:?}; body {}", self.text);
        let pragma = self.header("pragma").unwrap_or_default();
        assert!(pragma.to_ascii_lowercase().contains("no-cache"), "Pragma {pragma:?}; body {}", self.text);
        self
    }

    /// Asserts an OAuth error: `status`, JSON `{error, error_description}`, no-store.
    #[track_caller]
    pub fn assert_oauth_error(&self, status: u16, code: &str) -> &Self {
        self.assert_error(status, code);
        self.assert_no_store()
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// `application/x-www-form-urlencoded` text of `pairs`.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A form-encoded component (RFC 6749 §2.3.1 encodes client id and secret so before
/// base64).
pub fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `Authorization: Basic` with client credentials encoded per RFC 6749 §2.3.1.
pub fn client_basic(client_id: &str, secret: &str) -> String {
    basic(&format!("{}:{}", form_encode(client_id), form_encode(secret)))
}
