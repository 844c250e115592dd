//! The gateway: a second listener that puts keyward in front of an existing HTTP API
//! (or an MCP server) with no code in it. Every request is authenticated exactly as on
//! the management API, checked against the configured rules, cleaned of client-sent
//! identity headers and (unless `pass_authorization`) of the credential, and forwarded
//! to the upstream with the four `X-Keyward-*` headers `/auth/check` answers with.
//!
//! Bodies stream both ways frame by frame (server-sent events, chunked responses and
//! large uploads are never collected in memory), `Upgrade` requests (WebSocket) are
//! tunnelled once both sides have switched protocols, and connections to the upstream
//! are kept alive and pooled: opening one per request would cost more than the whole
//! authentication.
//!
//! # Layout
//!
//! - its settings: the `[gateway]` table, checked by `config::gateway` into [`GatewaySettings`].
//! - `body`: the response body type: the upstream's, streamed, or one of ours.
//! - `headers`: what is removed from and added to a forwarded request and response.
//! - `proxy`: authenticate, apply the rules, forward, map upstream failures to 502/504.
//! - `tunnel`: the byte copy between the two upgraded connections.

mod body;
mod headers;
mod proxy;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;

use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderValue, Method, Request, Response};
use axum::response::IntoResponse;
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::gateway::GatewaySettings;

use crate::http::error::ApiError;
use crate::http::protected_resource;
use crate::state::AppState;

/// How long an idle pooled connection to the upstream is kept. Below the usual 60 s
/// or more of upstream servers' keep-alive timeouts, so keyward closes first and rarely
/// reuses a connection the upstream is closing.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The gateway's shared state: one per server, cloned (an `Arc`) into every request.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

struct Inner {
    /// The server's state: the same [`crate::auth::Authenticator`] and grant cache as
    /// the management API, so a revocation reaches both listeners at once.
    app: AppState,
    settings: GatewaySettings,
    /// The gateway's public URL, no trailing slash.
    public_url: String,
    /// `{public_url}/.well-known/oauth-protected-resource`, or `None` when
    /// `oauth.metadata = false`.
    metadata_url: Option<String>,
    /// The upstream's scheme and authority, and its path prefix without trailing slash
    /// (often empty), parsed once.
    upstream_scheme: Scheme,
    upstream_authority: Authority,
    upstream_prefix: String,
    /// The `Host` header sent upstream (the client would format it on every request).
    upstream_host: HeaderValue,
    client: Client<HttpConnector, Limited<Incoming>>,
}

impl Gateway {
    /// The gateway for `app`, whose settings must hold a `[gateway]` table; `bound` is
    /// the address its listener got (the default public URL is made from it).
    pub fn new(app: AppState, bound: SocketAddr) -> anyhow::Result<Self> {
        let settings = app.settings.gateway.clone().ok_or_else(|| anyhow::anyhow!("no [gateway] table"))?;
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{bound}"));
        let metadata_url = app.settings.oauth_metadata.then(|| protected_resource::metadata_url(&public_url));
        let upstream_scheme = Scheme::try_from(settings.upstream.scheme())?;
        let upstream_authority =
            Authority::try_from(&settings.upstream[url::Position::BeforeHost..url::Position::AfterPort])?;
        let upstream_prefix = settings.upstream.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        // Small writes (a response head, an SSE event) must leave at once.
        connector.set_nodelay(true);
        let upstream_host = HeaderValue::from_str(upstream_authority.as_str())?;
        // `Host` is set by the proxy from `upstream_host`, saving a format per request.
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE_TIMEOUT).set_host(false).build(connector);
        Ok(Self(Arc::new(Inner {
            app,
            settings,
            public_url,
            metadata_url,
            upstream_scheme,
            upstream_authority,
            upstream_prefix,
            upstream_host,
            client,
        })))
    }

    /// The gateway's public URL (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.0.public_url
    }

    /// Serves `listener` until `shutdown` completes, then stops accepting, asks every
    /// open connection to finish its exchange and close, and returns once they have.
    /// (Upgraded tunnels run on their own and end when either side closes.)
    ///
    /// Plain hyper rather than an axum router: the gateway has two routes, and every
    /// layer on the forwarding path costs on each request.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        // Every connection task holds a receiver; `closed()` completes when all are gone.
        let (stop, stopping) = watch::channel(false);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, don't spin.
                        tracing::warn!(error = %e, "the gateway cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = Service { gateway: self.clone(), peer };
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(connection);
                let result = tokio::select! {
                    result = connection.as_mut() => result,
                    _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a gateway connection ended with an error");
                }
                drop(stopping);
            });
        }
        drop(listener);
        let _ = stop.send(true);
        drop(stopping);
        stop.closed().await;
        Ok(())
    }
}

/// One client connection's service: the gateway and the peer's address.
#[derive(Clone)]
struct Service {
    gateway: Gateway,
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<body::GatewayBody>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let Service { gateway, peer } = self.clone();
        Box::pin(async move {
            // One line per request, as on the main listener: method, path (not the
            // query, which an upstream API may use for secrets), status, latency. Never
            // headers: they carry the credential. Nothing is copied when INFO is off.
            let log = tracing::enabled!(tracing::Level::INFO)
                .then(|| (req.method().clone(), req.uri().path().to_owned(), std::time::Instant::now()));
            let path = req.uri().path();
            let response = match path.strip_prefix(protected_resource::PATH) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    if req.method() == Method::GET || req.method() == Method::HEAD {
                        let resource = format!("{}{}", gateway.0.public_url, rest);
                        resource_document(&gateway, &resource)
                    } else {
                        ApiError::MethodNotAllowed.into_response()
                    }
                    .map(body::GatewayBody::Local)
                }
                _ => proxy::forward(&gateway.0, peer, req).await,
            };
            if let Some((method, path, started)) = log {
                let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                tracing::info!(%method, path, status = response.status().as_u16(), latency_us, "gateway request");
            }
            Ok(response)
        })
    }
}

/// The RFC 9728 document for the upstream: `resource` is the gateway's public URL, or
/// for the path form (`/.well-known/oauth-protected-resource/mcp`, RFC 9728 §3.1, which
/// MCP clients try when a challenge named no document) that URL plus the path.
fn resource_document(gw: &Gateway, resource: &str) -> axum::response::Response {
    if gw.0.metadata_url.is_none() {
        return ApiError::NotFound.into_response();
    }
    let settings = &gw.0.app.settings;
    protected_resource::document(resource, &settings.public_url, &settings.roles)
}
