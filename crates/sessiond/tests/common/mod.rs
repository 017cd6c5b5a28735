//! Test support: a real sessiond router on a real socket in this process,
//! over a fresh embedded store, a private redis-server, or a fresh database
//! of a private PostgreSQL that the tests of one binary share.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use sessiond::config::Config;
use sessiond::server::{RunningServer, start};
use sessiond_testkit::Shared;
use sessiond_testkit::postgres_server::PostgresServer;
use sessiond_testkit::redis_server::RedisServer;
use tempfile::TempDir;

pub const API_KEY: &str = "sdk_test-api-key-0123456789";

/// `cmd` without any `SESSIOND_*` variable of this process (a developer's
/// own settings must not leak into the binary under test).
pub fn without_our_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.to_ascii_uppercase().starts_with("SESSIOND_"))
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Which store a test server runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Embedded,
    Redis,
    Postgres,
}

/// The PostgreSQL the tests of this binary share, each in a database of its
/// own.
static POSTGRES: Shared<PostgresServer> = Shared::new();

/// A running server and what it needs kept alive.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub redis: Option<RedisServer>,
    /// The PostgreSQL its store is a database of.
    pub postgres: Option<std::sync::Arc<PostgresServer>>,
    /// The store's URL.
    pub store_url: String,
    server: Option<RunningServer>,
    _dir: TempDir,
    /// Whatever else the store needs kept alive (a cluster, say).
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Start with the test defaults, adjusted by `tweak`.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        match backend {
            Backend::Redis => {
                let redis = tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .unwrap();
                Self::start_on(Some(redis.url()), Some(redis), tweak).await
            }
            Backend::Embedded => Self::start_on(None, None, tweak).await,
            Backend::Postgres => {
                let (postgres, url) = tokio::task::spawn_blocking(|| {
                    let server = POSTGRES.get(PostgresServer::start);
                    let url = server.fresh_database();
                    (server, url)
                })
                .await
                .unwrap();
                let mut server = Self::start_on(Some(url), None, tweak).await;
                server.postgres = Some(postgres);
                server
            }
        }
    }

    /// A second server on the same store as `other` (its own data
    /// directory, the same API key), adjusted by `tweak`.
    pub async fn beside(other: &TestServer, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut server = Self::start_on(Some(other.store_url.clone()), None, tweak).await;
        server.postgres.clone_from(&other.postgres);
        server
    }

    /// A server on the store at `url`, keeping `keep` alive as long as it
    /// runs, adjusted by `tweak`.
    pub async fn start_on_url(
        url: String,
        keep: impl std::any::Any + Send + Sync,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut server = Self::start_on(Some(url), None, tweak).await;
        server._keep = Some(Box::new(keep));
        server
    }

    /// A server on `store` (none: a fresh embedded store), keeping `redis`.
    /// The database of a PostgreSQL-backed server.
    pub fn database(&self) -> Option<&str> {
        self.postgres.as_ref()?;
        self.store_url.rsplit('/').next()
    }

    async fn start_on(
        store: Option<String>,
        redis: Option<RedisServer>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let on_server = store
            .as_deref()
            .is_some_and(|s| s.starts_with("redis") || s.starts_with("postgres"));
        let store_url =
            store.unwrap_or_else(|| format!("embedded:{}", dir.path().join("store").display()));
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            store: Some(store_url.clone()),
            data_dir: dir.path().join("data"),
            api_key: Some(API_KEY.into()),
            ..Config::default()
        };
        config.cookie.secure = false;
        // Redis and PostgreSQL outages (the fault tests) must turn into 503s
        // quickly. An
        // embedded write is an fsync, which can stall for seconds while the
        // kernel writes back a fresh build's binaries: keep the default there.
        if on_server {
            config.store_timeout = std::time::Duration::from_millis(500);
        }
        tweak(&mut config);
        let server = start(config).await.unwrap();
        Self {
            addr: server.addr,
            client: Client::builder().build().unwrap(),
            redis,
            postgres: None,
            store_url,
            server: Some(server),
            _dir: dir,
            _keep: None,
        }
    }

    /// The `admin_listen` address, when the server has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().and_then(|s| s.admin_addr)
    }

    /// `POST /v1/sessions/introspect` of `token`: whether it is active.
    pub async fn active(&self, token: &str) -> bool {
        let r = self
            .admin(Method::POST, "/v1/sessions/introspect")
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["active"].as_bool().unwrap()
    }

    /// The value of the sample `series` (name and labels as printed) in
    /// `/metrics`, if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .anon(Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// The embedded store's URL (for a server on the embedded store).
    pub fn embedded_store_url(&self) -> String {
        format!("embedded:{}", self._dir.path().join("store").display())
    }

    /// The server's data directory (API key, signing keys).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An admin request (API key set).
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(API_KEY)
    }

    /// A request with no credential.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Create a session for `user` and return (session json, token).
    pub async fn create(&self, user: &str) -> (Value, String) {
        let r = self
            .admin(Method::POST, "/v1/sessions")
            .json(&serde_json::json!({"user_id": user, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "ip": "192.0.2.7"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        (body["session"].clone(), token)
    }

    /// Rotate session `id` by id (admin); returns its new token.
    pub async fn rotate(&self, id: &str) -> String {
        let r = self
            .admin(Method::POST, &format!("/v1/sessions/{id}/rotate"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let rotated: Value = r.json().await.unwrap();
        rotated["token"].as_str().unwrap().to_owned()
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Assert `r` is a problem+json answer with `status`; returns its body.
pub async fn problem(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "body: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], status);
    for k in ["type", "title", "detail"] {
        assert!(body[k].is_string(), "problem without {k}: {body}");
    }
    body
}

/// One `#[tokio::test]` per case and backend.
#[macro_export]
macro_rules! every_store {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Embedded).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Redis).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}
