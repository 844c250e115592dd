//! Forwarding one request: authenticate (unless the path is public), apply the rules,
//! rewrite the headers, stream the body to the upstream and its answer back.
//!
//! Upstream failures become JSON errors: no connection → `502 bad_gateway`, no
//! response head within `response_timeout` → `504 gateway_timeout`, a request body
//! over `max_body_size` → `413`. Once the response head has been sent, a failure can
//! only cut the stream, as with any proxy.

use std::error::Error as _;
use std::net::SocketAddr;

use axum::http::uri::PathAndQuery;
use axum::http::{header, Request, Response, StatusCode, Uri, Version};
use axum::response::IntoResponse;
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;

use super::body::GatewayBody;
use super::headers::{self, Forwarding};
use super::{tunnel, Inner};
use crate::http::error::ApiError;

/// An answer of keyward's own.
fn local(error: ApiError) -> Response<GatewayBody> {
    error.into_response().map(GatewayBody::Local)
}

/// Every request that is not for the gateway's own document.
pub(super) async fn forward(gw: &Inner, peer: SocketAddr, mut req: Request<Incoming>) -> Response<GatewayBody> {
    let public = gw.settings.public_paths.is_match(req.uri().path());
    let identity = if public {
        None
    } else {
        let from = gw.app.settings.rate_limits.trusted_proxies.client(peer.ip(), req.headers());
        match gw.app.auth.authenticate_from(req.headers(), Some(from)).await {
            Ok(identity) => Some(identity),
            Err(rejection) => {
                let metadata = gw.metadata_url.as_deref();
                return ApiError::from(rejection).into_response_with_metadata(metadata).map(GatewayBody::Local);
            }
        }
    };
    let mut quota = None;
    if let Some(identity) = &identity {
        use crate::ratelimit::credential::Verdict;
        match gw.app.limits.credentials.check(identity.grant()).await {
            Verdict::Over(q) => return local(ApiError::RateLimited(Box::new(q))),
            Verdict::Within(q) => quota = Some(q),
            Verdict::Unlimited => {}
        }
        // Every matching rule must hold, so adding a rule can only narrow access.
        for rule in gw.settings.rules.iter().filter(|r| r.matches(req.method(), req.uri().path())) {
            if let Err(e) = identity.require(&rule.permission) {
                return local(e.into());
            }
        }
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gw.settings.max_body_size) {
        return local(ApiError::PayloadTooLarge);
    }

    let upgrade = headers::upgrade_of(req.headers());
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let uri = upstream_path(&gw.upstream_prefix, &parts.uri).and_then(|path_and_query| {
        Uri::builder()
            .scheme(gw.upstream_scheme.clone())
            .authority(gw.upstream_authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    });
    parts.uri = match uri {
        Some(uri) => uri,
        None => return local(ApiError::BadRequest("the request target cannot be forwarded".into())),
    };
    // The upstream is spoken to in HTTP/1.1 whatever the client used.
    parts.version = Version::HTTP_11;
    let host = parts.headers.get(header::HOST).cloned();
    headers::rewrite_request(
        &mut parts.headers,
        host,
        Forwarding {
            identity: identity.as_ref(),
            peer,
            upgrade,
            pass_authorization: gw.settings.pass_authorization,
            trust_forwarded: gw.settings.trust_forwarded_headers,
            api_key_header: &gw.app.settings.api_key_header,
        },
    );
    parts.headers.insert(header::HOST, gw.upstream_host.clone());
    let body = Limited::new(body, body_limit(gw.settings.max_body_size));
    let upstream_req = Request::from_parts(parts, body);

    let mut response = match tokio::time::timeout(gw.settings.response_timeout, gw.client.request(upstream_req)).await {
        Err(_elapsed) => return local(ApiError::GatewayTimeout),
        Ok(Err(e)) => return local(upstream_error(&e)),
        Ok(Ok(response)) => response,
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    headers::rewrite_response(response.headers_mut(), switching);
    if switching {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel::run(client_upgrade, upstream_upgrade));
            return response.map(|_| GatewayBody::Local(axum::body::Body::empty()));
        }
        // A 101 nobody asked for cannot be honoured.
        return local(ApiError::BadGateway("the upstream switched protocols unasked"));
    }
    if let Some(q) = quota {
        q.apply(response.headers_mut());
    }
    response.map(GatewayBody::Upstream)
}

/// `max_body_size` as the `usize` `Limited` counts in (saturating on 32-bit targets).
fn body_limit(max: u64) -> usize {
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// The upstream's path for a request: the upstream URL's own path prefix, then the
/// request's path and query as sent.
fn upstream_path(prefix: &str, uri: &Uri) -> Option<PathAndQuery> {
    let original = uri.path_and_query().map(PathAndQuery::as_str).unwrap_or("/");
    if prefix.is_empty() {
        return uri.path_and_query().cloned().or_else(|| Some(PathAndQuery::from_static("/")));
    }
    PathAndQuery::try_from(format!("{prefix}{original}")).ok()
}

/// Maps a client error to the answer; logs the cause (it names no header or secret).
fn upstream_error(e: &hyper_util::client::legacy::Error) -> ApiError {
    let mut source = e.source();
    while let Some(cause) = source {
        if cause.is::<LengthLimitError>() {
            return ApiError::PayloadTooLarge;
        }
        source = cause.source();
    }
    if e.is_connect() {
        tracing::warn!(error = %format_chain(e), "the gateway's upstream cannot be reached");
        ApiError::BadGateway("the upstream cannot be reached")
    } else {
        tracing::warn!(error = %format_chain(e), "the gateway's upstream failed");
        ApiError::BadGateway("the upstream failed to answer")
    }
}

fn format_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_prefix_goes_in_front_of_the_path_and_query() {
        let uri: Uri = "/v1/items?a=b".parse().unwrap();
        assert_eq!(upstream_path("", &uri).unwrap(), "/v1/items?a=b");
        assert_eq!(upstream_path("/api", &uri).unwrap(), "/api/v1/items?a=b");
    }
}
