//! What the gateway removes from and adds to the headers it forwards.
//!
//! Request: hop-by-hop headers (RFC 9110 §7.6.1) and those the `Connection` header
//! names go; so do `Host` (set to the upstream's), `Expect` (answered here), every client-sent
//! `X-Keyward-*` header (the upstream trusts them, so a client must never choose
//! them), the credential (`Authorization` and the API-key header) unless
//! `pass_authorization`, and a client's `X-Forwarded-*` unless
//! `trust_forwarded_headers`. Then the identity and `X-Forwarded-*` are added.
//! Response: hop-by-hop headers go; the server side frames the body itself.

use std::net::SocketAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::auth::Identity;
use crate::http::identity::Rendered;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The protocol a request asks to switch to (`Connection: upgrade` + `Upgrade`).
pub(super) fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned()).flatten()
}

/// Removes hop-by-hop headers and the ones `Connection` names. `TE: trailers` is kept:
/// it is the one `TE` value an HTTP/1.1 upstream may rely on (gRPC-web, for one).
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    if headers.get(header::TE).is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers")) {
        headers.remove(header::TE);
    }
}

/// What the request-side rewrite needs to know.
pub(super) struct Forwarding<'a> {
    pub identity: Option<&'a Identity>,
    pub peer: SocketAddr,
    /// The protocol being switched to, for an upgrade request.
    pub upgrade: Option<HeaderValue>,
    pub pass_authorization: bool,
    pub trust_forwarded: bool,
    pub api_key_header: &'a HeaderName,
}

/// Rewrites a client's request headers, in place, into the upstream's.
pub(super) fn rewrite_request(headers: &mut HeaderMap, host: Option<HeaderValue>, f: Forwarding<'_>) {
    remove_hop_by_hop(headers);
    headers.remove(header::HOST);
    // `Expect: 100-continue` was answered to the client by keyward's side of the
    // exchange when the body was first read; the upstream gets the body straight away.
    headers.remove(header::EXPECT);
    // Client-sent identity headers: scanned only when there is one, which is rare.
    if headers.keys().any(|name| name.as_str().starts_with("x-keyward-")) {
        let spoofed: Vec<HeaderName> =
            headers.keys().filter(|name| name.as_str().starts_with("x-keyward-")).cloned().collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
    if !f.pass_authorization {
        headers.remove(header::AUTHORIZATION);
        headers.remove(f.api_key_header);
    }
    if let Some(identity) = f.identity {
        for (name, value) in Rendered::identity_headers(identity.grant()) {
            headers.insert(name.clone(), value.clone());
        }
    }
    let peer = f.peer.ip().to_string();
    let prior_for = if f.trust_forwarded { headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) } else { None };
    let forwarded_for = match prior_for {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer,
    };
    if let Ok(value) = HeaderValue::try_from(forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !(f.trust_forwarded && headers.contains_key(X_FORWARDED_PROTO)) {
        // The gateway listens in plain HTTP; TLS, if any, ends in front of it, and that
        // proxy's own X-Forwarded-Proto is kept only when it is trusted.
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !(f.trust_forwarded && headers.contains_key(X_FORWARDED_HOST)) {
        match host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(X_FORWARDED_HOST),
        };
    }
    if let Some(protocol) = f.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Rewrites the upstream's response headers, in place, into the client's. A `101`
/// keeps `Connection`/`Upgrade`: they are the switch itself.
pub(super) fn rewrite_response(headers: &mut HeaderMap, switching: bool) {
    let upgrade = if switching { headers.get(header::UPGRADE).cloned() } else { None };
    remove_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarding(api_key_header: &HeaderName, pass: bool, trust: bool) -> Forwarding<'_> {
        Forwarding {
            identity: None,
            peer: "10.1.2.3:4567".parse().unwrap(),
            upgrade: None,
            pass_authorization: pass,
            trust_forwarded: trust,
            api_key_header,
        }
    }

    fn request_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "api.example.com"),
            ("authorization", "Bearer kw_secret"),
            ("x-api-key", "kw_secret"),
            ("x-keyward-principal", "admin"),
            ("X-Keyward-Anything", "x"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "hop"),
            ("te", "gzip"),
            ("x-forwarded-for", "6.6.6.6"),
            ("accept", "text/event-stream"),
            ("expect", "100-continue"),
        ] {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_credential_and_spoofed_identity_never_reach_the_upstream() {
        let name = HeaderName::from_static("x-api-key");
        let mut h = request_headers();
        let host = h.get(header::HOST).cloned();
        rewrite_request(&mut h, host, forwarding(&name, false, false));
        for gone in [
            "authorization",
            "x-api-key",
            "x-keyward-principal",
            "x-keyward-anything",
            "connection",
            "x-private",
            "te",
            "host",
            "expect",
        ] {
            assert!(!h.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(h["x-forwarded-for"], "10.1.2.3", "an untrusted client's X-Forwarded-For is replaced");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["accept"], "text/event-stream");
    }

    #[test]
    fn pass_authorization_and_trusted_forwarding_keep_what_they_name() {
        let name = HeaderName::from_static("x-api-key");
        let mut h = request_headers();
        rewrite_request(&mut h, None, forwarding(&name, true, true));
        assert_eq!(h["authorization"], "Bearer kw_secret");
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.1.2.3");
        assert!(!h.contains_key("x-keyward-principal"), "spoofed identity is stripped even then");
    }

    #[test]
    fn upgrades_are_detected_and_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_of(&h).unwrap(), "websocket");
        rewrite_response(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        h.remove(header::CONNECTION);
        assert!(upgrade_of(&h).is_none());
    }
}
