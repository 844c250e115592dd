//! Building and running the server: connect, migrate, bind (port 0 works, which is how
//! tests run it), serve until told to stop, then drain requests and write the last
//! usage batch.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use keyward_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{follow, Authenticator, GrantCache};
use crate::config::Settings;
use crate::gateway::Gateway;
use crate::http::web::csrf::CsrfKey;
use crate::metrics::Metrics;
use crate::state::{AppState, Shared};
use crate::usage::UsageRecorder;

pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// The gateway's listener and state, when `[gateway]` is configured.
    gateway: Option<(TcpListener, Gateway)>,
}

/// How long in-flight gateway exchanges may go on after the main server has drained.
/// Streams (SSE, WebSockets) can last for ever; they are cut after this.
const GATEWAY_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

impl Server {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store =
            Store::connect(&settings.database_url).await.context("cannot connect to the database (database_url)")?;
        store.migrate().await.context("cannot apply database migrations")?;
        let cache = Arc::new(GrantCache::new(settings.cache_capacity, settings.cache_ttl, settings.negative_cache_ttl));
        let usage = Arc::new(UsageRecorder::default());
        let metrics = Arc::new(Metrics::default());
        follow::subscribe(&store, cache.clone());
        let auth = Authenticator::new(store.clone(), &settings, cache, usage.clone(), metrics.clone());
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {} (listen)", settings.listen))?;
        let gateway_listen = settings.gateway.as_ref().map(|g| g.listen);
        let csrf = CsrfKey::load(&store).await.context("cannot read or store the CSRF key")?;
        let redis = match &settings.rate_limits.redis_url {
            Some(url) => Some(Arc::new(
                crate::ratelimit::redis::RedisCounters::connect(
                    url,
                    &settings.rate_limits.redis_namespace,
                    metrics.clone(),
                )
                .await
                .context("cannot open the Redis client (rate_limits.redis_url)")?,
            )),
            None => None,
        };
        let limits = crate::state::Limits::new(&settings.rate_limits, metrics.clone(), redis);
        let state = AppState::new(Shared { settings, store, auth, usage, metrics, limits, csrf });
        let gateway = match gateway_listen {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (gateway.listen)"))?;
                let gateway = Gateway::new(state.clone(), listener.local_addr()?)?;
                Some((listener, gateway))
            }
        };
        Ok(Self { listener, state, gateway })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The gateway's bound address, when `[gateway]` is configured.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|(l, _)| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and writes
    /// the pending usage batch.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state;
        let (stop, stopped) = watch::channel(false);
        let follower = tokio::spawn(follow::follow(
            state.store.clone(),
            state.auth.cache().clone(),
            state.metrics.clone(),
            state.settings.change_poll_interval,
            stopped.clone(),
        ));
        let purger = tokio::spawn(crate::purge::run(
            state.store.clone(),
            state.settings.purge.clone(),
            state.metrics.clone(),
            stopped.clone(),
        ));
        let flusher = tokio::spawn(flush_usage(state.clone(), stopped));
        // One shutdown signal, seen by both listeners.
        let (quit, quitting) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = quit.send(true);
        });
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let gateway = self.gateway.map(|(listener, gateway)| {
            tracing::info!(addr = %listener.local_addr().expect("bound"), upstream = %gateway_upstream(&state), "keyward gateway listening");
            tokio::spawn(gateway.serve(listener, signal(quitting.clone())))
        });
        tracing::info!(addr = %self.listener.local_addr()?, "keyward listening");
        axum::serve(
            self.listener,
            crate::http::router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(signal(quitting))
        .await
        .context("the server failed")?;
        if let Some(mut gateway) = gateway {
            match tokio::time::timeout(GATEWAY_DRAIN, &mut gateway).await {
                Ok(result) => result.context("the gateway task failed")?.context("the gateway failed")?,
                Err(_) => {
                    tracing::warn!("gateway streams still open after {GATEWAY_DRAIN:?}; closing them");
                    gateway.abort();
                }
            }
        }
        let _ = stop.send(true);
        let _ = follower.await;
        let _ = flusher.await;
        // A pass in progress is cut after a while; its deletes are idempotent.
        let mut purger = purger;
        if tokio::time::timeout(crate::purge::STOP_WAIT, &mut purger).await.is_err() {
            purger.abort();
        }
        state.usage.flush(&state.store).await;
        state.store.close().await;
        tracing::info!("keyward stopped");
        Ok(())
    }
}

fn gateway_upstream(state: &AppState) -> String {
    state.settings.gateway.as_ref().map(|g| g.upstream.to_string()).unwrap_or_default()
}

async fn flush_usage(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(state.settings.usage_flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => state.usage.flush(&state.store).await,
            _ = stopped.changed() => return,
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Installs the log subscriber: `RUST_LOG` filters (default `info`, with sqlx quiet).
pub fn init_tracing(format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}
