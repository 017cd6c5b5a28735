//! `sessiond serve`: open the store, bind, serve until SIGTERM/SIGINT, then
//! finish in-flight requests and close the store.

use std::net::SocketAddr;
use std::sync::Arc;

use sessiond_engine::Store;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::access_tokens::AccessTokens;
use crate::app::{admin_router, router};
use crate::config::Config;
use crate::metrics::{Metrics, StoreMetrics};
use crate::state::{AppState, MeteredStore};
use crate::stores;
use crate::{api_key, connections};

/// How often the signing key file is checked for a rotation.
const KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the live-sessions gauge is recounted.
const LIVE_GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Telemetry, metrics or API key set-up failed.
    #[error("{0}")]
    Setup(String),
    /// The store could not be opened.
    #[error("cannot open the store {store}: {reason}")]
    Store {
        /// Where (password masked).
        store: String,
        /// Why.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// A server running in this process (tests use it; `serve` runs one until a
/// signal).
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound `admin_listen` address, when there is one.
    pub admin_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stop accepting, finish in-flight requests (within the drain
    /// timeout), close the store.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Bind `config.listen`, open the store `config` names and start serving in
/// the background. Nothing is written (data directory, API key, store) before
/// the address is bound, so a busy port leaves no trace.
pub async fn start(config: Config) -> Result<RunningServer, ServeError> {
    let listener = bind(&config).await?;
    let opened = stores::open(&config, stores::Caching::AsConfigured)
        .await
        .map_err(|e| ServeError::Store {
            store: crate::config::describe_store(&config.store_url()),
            reason: e.to_string(),
        })?;
    launch(config, listener, opened).await
}

/// [`start`] over a store opened by the caller (a decorated one, say);
/// `config.store_url()` only names it in logs.
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServeError> {
    let listener = bind(&config).await?;
    let opened = stores::Opened { store, cache: None };
    launch(config, listener, opened).await
}

/// The listeners of `listen` and of `admin_listen` (when set).
struct Listeners {
    main: TcpListener,
    admin: Option<TcpListener>,
}

async fn bind(config: &Config) -> Result<Listeners, ServeError> {
    let main = bind_one(&config.listen).await?;
    let admin = match &config.admin_listen {
        Some(addr) => Some(bind_one(addr).await?),
        None => None,
    };
    Ok(Listeners { main, admin })
}

/// Bind `listen` (`HOST:PORT`; a host name is resolved, and its first
/// address that can be bound is).
async fn bind_one(listen: &str) -> Result<TcpListener, ServeError> {
    let bind_error = |e: std::io::Error| ServeError::Bind {
        addr: listen.to_owned(),
        reason: e.to_string(),
    };
    let addrs = tokio::net::lookup_host(listen).await.map_err(bind_error)?;
    let mut last = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_error(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to bind")
    })))
}

async fn launch(
    config: Config,
    listeners: Listeners,
    opened: stores::Opened,
) -> Result<RunningServer, ServeError> {
    let local = |l: &TcpListener, name: &str| {
        l.local_addr().map_err(|e| ServeError::Bind {
            addr: name.to_owned(),
            reason: e.to_string(),
        })
    };
    let addr = local(&listeners.main, &config.listen)?;
    let admin_addr = match &listeners.admin {
        Some(l) => Some(local(l, config.admin_listen.as_deref().unwrap_or(""))?),
        None => None,
    };
    let metrics = Metrics::install().map_err(ServeError::Setup)?;
    crate::data_dir::prepare(&config.data_dir)
        .map_err(|e| ServeError::Setup(format!("data directory: {e}")))?;
    let key =
        api_key::load_or_create(&config).map_err(|e| ServeError::Setup(format!("API key: {e}")))?;
    let tokens =
        AccessTokens::open(&config).map_err(|e| ServeError::Setup(format!("signing keys: {e}")))?;
    let metered = Arc::new(MeteredStore::new(opened.store, StoreMetrics::default()));
    let state = AppState::new(&config, metered.clone(), opened.cache, key, metrics, tokens);
    // `sessiond keys rotate` rewrites the key file: pick the change up.
    let key_state = state.clone();
    let key_task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
            key_state.tokens.reload_if_changed();
        }
    });
    // The live-sessions gauge may need a scan of the store: refresh it in the
    // background, never on the /metrics request path. The first count is
    // awaited so the gauge exists once the server answers.
    let refresher = state.engine.clone();
    let _ = refresher.count_live().await;
    let gauge_task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(LIVE_GAUGE_INTERVAL).await;
            let _ = refresher.count_live().await;
        }
    });
    let app = router(state.clone(), &config);
    let streams = state.stopping.clone();
    let limits = config.connection_limits();
    let (stop, stopped) = oneshot::channel::<()>();
    let (stopping, stop_signal) = watch::channel(false);
    let stopped_for = move || {
        let mut signal = stop_signal.clone();
        async move {
            let _ = signal.wait_for(|stop| *stop).await;
        }
    };
    let admin_task = listeners.admin.map(|listener| {
        let app = admin_router(state, &config);
        tokio::spawn(connections::serve(listener, app, limits, stopped_for()))
    });
    let store_desc = crate::config::describe_store(&config.store_url());
    let main_stopped = stopped_for();
    let task = tokio::spawn(async move {
        tokio::spawn(async move {
            let _ = stopped.await;
            // Event streams end first, so their connections can drain.
            streams.send_replace(true);
            let _ = stopping.send(true);
        });
        connections::serve(listeners.main, app, limits, main_stopped).await;
        if let Some(admin) = admin_task {
            let _ = admin.await;
        }
        gauge_task.abort();
        key_task.abort();
        if let Err(e) = sessiond_engine::Store::close(metered.as_ref()).await {
            tracing::warn!(error = %e, "closing the store");
        }
        tracing::info!("stopped");
    });
    match admin_addr {
        Some(admin) => tracing::info!(%addr, %admin, store = %store_desc, "listening"),
        None => tracing::info!(%addr, store = %store_desc, "listening"),
    }
    Ok(RunningServer {
        addr,
        admin_addr,
        stop: Some(stop),
        task,
    })
}

/// Run until SIGTERM or SIGINT, then shut down gracefully.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    crate::telemetry::init(config.log.format).map_err(ServeError::Setup)?;
    let server = start(config).await?;
    println!("sessiond listening on http://{}", server.addr);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
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
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
