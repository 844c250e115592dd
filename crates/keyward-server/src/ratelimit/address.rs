//! The client address that per-address limits count for.
//!
//! It is the TCP peer, unless the peer is a trusted proxy (`rate_limits.trusted_proxies`,
//! see [`super::proxies`]):
//! then `X-Forwarded-For` is read from the right — each proxy appends the address it
//! received from — and the first hop that is not itself trusted is the client. Hops to
//! the left of it were written by the client and are never believed. With no trusted
//! proxies (the default) the header is ignored, so a client cannot pick its own address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

pub use super::proxies::TrustedProxies;
use crate::state::AppState;

/// The client's address, put in each request's extensions by [`layer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

tokio::task_local! {
    /// The request's client address, for code that sees only headers and a body (the
    /// OAuth endpoints' client authentication).
    static CURRENT: Option<IpAddr>;
}

/// The client address of the request being handled, when known.
pub fn current() -> Option<IpAddr> {
    CURRENT.try_with(|ip| *ip).ok().flatten()
}

/// Middleware: computes the [`ClientAddress`] once per request, into the request's
/// extensions and [`current`] (absent when the server runs without connection info, as
/// in-process callers of the router may); and puts the `RateLimit` headers of a quota
/// the request used on its answer ([`super::quota::with_headers`]).
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| state.settings.rate_limits.trusted_proxies.client(peer.ip(), req.headers()));
    if let Some(ip) = ip {
        req.extensions_mut().insert(ClientAddress(ip));
    }
    CURRENT.scope(ip, super::quota::with_headers(next.run(req))).await
}
