//! `sessiond-demo`: serve the demo site, with sessions in an embedded store
//! (default), in Redis, or in a running sessiond.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use sessiond_axum::{CookieSettings, EngineBackend, RemoteBackend, SessionLayer};
use sessiond_demo::live::Live;
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{Engine, Store};
use sessiond_redis::{RedisOptions, RedisStore};

#[derive(Parser)]
#[command(about = "The sessiond demo site")]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Session store: `embedded:DIR` or a `redis://` / `rediss://` URL.
    #[arg(long, default_value = "embedded:./demo-data")]
    store: String,
    /// Use a running sessiond at this URL instead of a store of our own.
    #[arg(long)]
    sessiond: Option<String>,
    /// The sessiond's admin API key (with --sessiond).
    #[arg(long, env = "SESSIOND_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Send the cookie over plain HTTP too (only for http:// other than
    /// localhost; browsers accept Secure cookies on localhost).
    #[arg(long)]
    insecure_cookie: bool,
}

async fn open_store(url: &str) -> Result<Arc<dyn Store>, String> {
    if let Some(dir) = url.strip_prefix("embedded:") {
        let store = EmbeddedStore::open(dir, EmbeddedOptions::default())
            .await
            .map_err(|e| format!("store {url}: {e}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let store = RedisStore::connect(url, RedisOptions::default())
            .await
            .map_err(|e| format!("store {url}: {e}"))?;
        return Ok(Arc::new(store));
    }
    Err(format!(
        "store {url:?}: use embedded:DIR, redis:// or rediss://"
    ))
}

async fn run(args: Args) -> Result<(), String> {
    let (layer, live) = match &args.sessiond {
        Some(url) => {
            let key = args
                .api_key
                .as_deref()
                .ok_or("--sessiond needs --api-key (or SESSIOND_API_KEY)")?;
            let client = sessiond_client::Client::new(url, key).map_err(|e| e.to_string())?;
            let live = Live::over_sessiond(client.clone()).map_err(|e| e.to_string())?;
            (SessionLayer::new(RemoteBackend::new(client)), live)
        }
        None => {
            let store = open_store(&args.store).await?;
            let engine = Engine::new(store, sessiond_demo::policy());
            let live = Live::over_engine(engine.clone()).map_err(|e| e.to_string())?;
            (SessionLayer::new(EngineBackend::new(engine)), live)
        }
    };
    let live = live.if_supported().await;
    if live.is_none() {
        tracing::info!(
            "the session store keeps no connections: pages do not follow their session live, \
             and devices show no presence"
        );
    }
    let cookie = CookieSettings {
        name: "demo_session".into(),
        secure: !args.insecure_cookie,
        ..CookieSettings::default()
    };
    let layer = layer.with_cookie(cookie).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("demo site on http://{addr}/ (users: alice/wonderland, bob/builder)");
    let app = sessiond_demo::app(layer, live).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        // Colours only on a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiond-demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
