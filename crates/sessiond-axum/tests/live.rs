//! Live sockets over a real server and a real WebSocket client: a socket
//! is registered in presence, kept alive, closed within a second of its
//! session being revoked elsewhere, closed when the session expires, and
//! leaves presence when the client closes it; over the engine in this
//! process (on the embedded store and on Redis) and over a remote sessiond.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Router};
use futures_util::{SinkExt as _, StreamExt as _};
use sessiond_api::{ConnectionView, SessionView};
use sessiond_axum::{
    BackendError, CookieSettings, EngineBackend, Error, LiveOptions, LiveSocket, LiveSockets,
    LoggedIn, Message, NewLogin, RemoteBackend, Session, SessionBackend, SessionContext,
    SessionEnds, SessionLayer, WebSocketUpgrade,
};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{Aal, Engine, Policy, RevokeReason, RolePolicy, SessionData, SessionId};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

const API_KEY: &str = "sdk_live-test-key-0123456789";
/// Idle timeout of role `short`.
const SHORT_IDLE: Duration = Duration::from_secs(2);
/// What the product promises between a revocation and the socket's close.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// The engine in the app's process, over the embedded store.
    Engine,
    /// The engine in the app's process, over a private Redis.
    EngineOnRedis,
    /// A sessiond server on the same embedded store, over HTTP.
    Remote,
    /// The engine, but a backend whose session ends never arrive: only the
    /// heartbeats can tell the session is gone.
    Deaf,
}

/// An app with a WebSocket route behind the layer, served on a port.
struct LiveApp {
    addr: SocketAddr,
    /// The engine over the app's store, acting as another instance would.
    engine: Engine,
    live: LiveSockets,
    server: Option<sessiond::server::RunningServer>,
    _dir: TempDir,
    _redis: Option<sessiond_testkit::redis_server::RedisServer>,
}

fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.roles.insert(
        "short".into(),
        RolePolicy {
            idle_ttl: SHORT_IDLE,
            ..RolePolicy::default()
        },
    );
    policy
}

impl LiveApp {
    /// Heartbeats every 500 ms.
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Duration::from_millis(500)).await
    }

    async fn start_with(backend: Backend, heartbeat: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, redis): (Arc<dyn sessiond_engine::Store>, _) = match backend {
            Backend::EngineOnRedis => {
                let redis =
                    tokio::task::spawn_blocking(sessiond_testkit::redis_server::RedisServer::start)
                        .await
                        .unwrap();
                let store = sessiond_redis::RedisStore::connect(
                    &redis.url(),
                    sessiond_redis::RedisOptions::default(),
                )
                .await
                .unwrap();
                (Arc::new(store), Some(redis))
            }
            _ => {
                let store =
                    EmbeddedStore::open(dir.path().join("store"), EmbeddedOptions::default())
                        .await
                        .unwrap();
                (Arc::new(store), None)
            }
        };
        let engine = Engine::new(store.clone(), policy());
        let options = LiveOptions {
            ttl: Duration::from_secs(10),
            heartbeat,
            node: Some("test-node".into()),
        };
        let (layer, live, server) = match backend {
            Backend::Engine | Backend::EngineOnRedis => {
                let backend = EngineBackend::new(engine.clone());
                (
                    SessionLayer::new(backend.clone()),
                    LiveSockets::new(backend, options).unwrap(),
                    None,
                )
            }
            Backend::Deaf => {
                let backend = Deaf(EngineBackend::new(engine.clone()));
                (
                    SessionLayer::new(backend.clone()),
                    LiveSockets::new(backend, options).unwrap(),
                    None,
                )
            }
            Backend::Remote => {
                let mut config = sessiond::config::Config {
                    listen: "127.0.0.1:0".into(),
                    store: Some(format!("embedded:{}", dir.path().join("store").display())),
                    data_dir: dir.path().join("data"),
                    api_key: Some(API_KEY.into()),
                    ..sessiond::config::Config::default()
                };
                config.roles.insert(
                    "short".into(),
                    sessiond::config::RoleConfig {
                        idle_ttl: SHORT_IDLE,
                        ..sessiond::config::RoleConfig::default()
                    },
                );
                let server = sessiond::server::start_with_store(config, store.clone())
                    .await
                    .unwrap();
                let client =
                    sessiond_client::Client::new(&format!("http://{}", server.addr), API_KEY)
                        .unwrap();
                let backend = RemoteBackend::new(client);
                (
                    SessionLayer::new(backend.clone()),
                    LiveSockets::new(backend, options).unwrap(),
                    Some(server),
                )
            }
        };
        let cookie = CookieSettings {
            name: "sid".into(),
            ..CookieSettings::default()
        };
        let app = Router::new()
            .route("/login", post(login))
            .route("/ws", get(socket))
            .with_state(live.clone())
            .layer(layer.with_cookie(cookie).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            addr,
            engine,
            live,
            server,
            _dir: dir,
            _redis: redis,
        }
    }

    /// Log `user` in with `role` (empty: none); the session token.
    async fn login(&self, user: &str, role: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("http://{}/login", self.addr))
            .form(&[("user", user), ("role", role)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        let token = cookie
            .strip_prefix("sid=")
            .and_then(|c| c.split(';').next())
            .unwrap();
        token.to_owned()
    }

    /// The upgrade request, with the session cookie if any, and headers.
    fn request(
        &self,
        token: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> tungstenite::handshake::client::Request {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("cookie", format!("sid={token}").parse().unwrap());
        }
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        request
    }

    /// Open a socket on `token`'s session and check that it echoes.
    async fn connect(&self, token: &str) -> Client {
        let (mut ws, response) = tokio_tungstenite::connect_async(self.request(Some(token), &[]))
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        ws.send(tungstenite::Message::text("ping")).await.unwrap();
        match next(&mut ws).await {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), "ping"),
            other => panic!("expected the echo, got {other:?}"),
        }
        ws
    }

    /// The status an upgrade attempt is refused with.
    async fn refused(&self, token: Option<&str>, headers: &[(&'static str, &str)]) -> u16 {
        match tokio_tungstenite::connect_async(self.request(token, headers)).await {
            Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
            Ok(_) => panic!("the upgrade was accepted"),
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }

    /// The live connections of `user` in presence, by session.
    async fn connections(&self, user: &str) -> Vec<(SessionId, String, Option<String>)> {
        let presence = self.engine.presence(user).await.unwrap();
        presence
            .devices
            .into_iter()
            .flat_map(|d| {
                d.connections
                    .into_iter()
                    .map(|c| (c.session_id, c.connection_id.as_str().to_owned(), c.node))
            })
            .collect()
    }

    async fn session_of(&self, token: &str) -> SessionId {
        self.engine
            .introspect(token, false)
            .await
            .unwrap()
            .expect("a live session")
            .id
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    role: String,
}

async fn login(ctx: SessionContext, Form(f): Form<LoginForm>) -> Result<String, Error> {
    let role = (!f.role.is_empty()).then_some(f.role.as_str());
    Ok(ctx.login(&f.user, role).await?.id().to_string())
}

/// The app's WebSocket route: an echo, through the helper.
async fn socket(
    State(live): State<LiveSockets>,
    ws: WebSocketUpgrade,
    session: Session,
) -> axum::response::Response {
    live.upgrade(ws, &session, echo).await
}

async fn echo(mut socket: LiveSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(text) = message
            && socket.send(Message::Text(text)).await.is_err()
        {
            return;
        }
    }
}

/// The next frame from the server (pings answered by the client itself).
async fn next(ws: &mut Client) -> tungstenite::Message {
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(other) => panic!("the socket ended without a frame: {other:?}"),
        Err(_) => panic!("nothing from the server in 10 s"),
    }
}

/// Wait for the server's Close frame; how long it took from `since`.
async fn closed_by_server(ws: &mut Client, since: Instant) -> Duration {
    match next(ws).await {
        tungstenite::Message::Close(Some(frame)) => {
            let elapsed = since.elapsed();
            assert_eq!(frame.code, CloseCode::Library(4001), "{frame:?}");
            assert_eq!(frame.reason.as_str(), "session ended");
            elapsed
        }
        other => panic!("expected a Close frame, got {other:?}"),
    }
}

async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The core case: sockets show in presence; revoking one session through
/// the store (as another app instance would) closes that session's sockets
/// within a second, with 4001 "session ended", and no other socket.
async fn revocation_closes_the_sessions_sockets(backend: Backend) {
    let app = LiveApp::start(backend).await;
    let laptop = app.login("alice", "").await;
    let phone = app.login("alice", "").await;
    let laptop_id = app.session_of(&laptop).await;
    let phone_id = app.session_of(&phone).await;
    let mut tab1 = app.connect(&laptop).await;
    let mut tab2 = app.connect(&laptop).await;
    let mut on_phone = app.connect(&phone).await;

    let connections = app.connections("alice").await;
    assert_eq!(connections.len(), 3, "{connections:?}");
    for (_, connection_id, node) in &connections {
        assert!(connection_id.starts_with("ws-"), "{connection_id}");
        assert_eq!(node.as_deref(), Some("test-node"));
    }
    assert_eq!(
        connections.iter().filter(|c| c.0 == laptop_id).count(),
        2,
        "{connections:?}"
    );
    assert!(app.engine.presence("alice").await.unwrap().online());
    assert_eq!(app.live.open_connections(), 3);

    // Revoked elsewhere: the feed is the only way this app learns of it.
    let revoked = Instant::now();
    app.engine
        .revoke(laptop_id.as_str(), RevokeReason::RevokedByUser)
        .await
        .unwrap();
    let first = closed_by_server(&mut tab1, revoked).await;
    let second = closed_by_server(&mut tab2, revoked).await;
    eprintln!("{backend:?}: sockets closed {first:?} and {second:?} after the revocation");
    assert!(first < CLOSE_WITHIN && second < CLOSE_WITHIN);

    // The phone's socket is untouched and still echoes.
    on_phone
        .send(tungstenite::Message::text("still here"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut on_phone).await,
        tungstenite::Message::text("still here")
    );
    let connections = app.connections("alice").await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(connections[0].0, phone_id);
    eventually(
        "the closed sockets unregistered",
        Duration::from_secs(2),
        async || app.live.open_connections() == 1,
    )
    .await;

    // A second revocation, of the other session, closes its socket too:
    // the one subscription keeps serving.
    let revoked = Instant::now();
    app.engine
        .revoke(phone_id.as_str(), RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    let third = closed_by_server(&mut on_phone, revoked).await;
    eprintln!("{backend:?}: the last socket closed {third:?} after its revocation");
    assert!(third < CLOSE_WITHIN);
    assert!(!app.engine.presence("alice").await.unwrap().online());
    app.stop().await;
}

/// A socket the client closes leaves presence; heartbeats keep an open one
/// there past its first TTL's worth of heartbeats.
async fn a_socket_closed_by_the_client_leaves_presence(backend: Backend) {
    let app = LiveApp::start(backend).await;
    let token = app.login("bob", "").await;
    let mut ws = app.connect(&token).await;
    let first = app.engine.presence("bob").await.unwrap();
    let opened = first.devices[0].connections[0].clone();

    // Heartbeats every 500 ms move the connection's expiry.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = app.engine.presence("bob").await.unwrap();
    let beaten = &later.devices[0].connections[0];
    assert_eq!(beaten.connection_id, opened.connection_id);
    assert!(
        beaten.expires_at > opened.expires_at,
        "{beaten:?} after {opened:?}"
    );

    ws.close(None).await.unwrap();
    // The server answers the close, then the stream ends.
    while let Some(Ok(_)) = ws.next().await {}
    eventually(
        "the connection left presence",
        Duration::from_secs(3),
        async || !app.engine.presence("bob").await.unwrap().online(),
    )
    .await;
    assert_eq!(app.live.open_connections(), 0);
    // The session itself lives on.
    assert!(
        app.engine
            .introspect(&token, false)
            .await
            .unwrap()
            .is_some()
    );
    app.stop().await;
}

/// A session that expires (idle timeout) closes its socket: the store's
/// sweep ends it and records `expired`, and the socket follows (heartbeats
/// are 5 s apart here, so it is the feed that tells).
async fn an_expired_session_closes_its_socket(backend: Backend) {
    let app = LiveApp::start_with(backend, Duration::from_secs(5)).await;
    let token = app.login("carol", "short").await;
    let mut ws = app.connect(&token).await;
    let session = app
        .engine
        .get(app.session_of(&token).await.as_str())
        .await
        .unwrap();
    let expires_at = session.expires_at.as_millis();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let since = Instant::now();
    let elapsed = closed_by_server(&mut ws, since).await;
    let late = now() - expires_at;
    eprintln!("{backend:?}: the socket closed {late} ms after its session's idle deadline");
    assert!(late >= 0, "closed {late} ms before the deadline");
    // The store's sweep runs every second; the feed is read every 200 ms
    // (250 ms by a remote sessiond).
    assert!(late < 3000, "closed {late} ms after the deadline");
    assert!(elapsed < SHORT_IDLE + Duration::from_secs(3));
    assert!(!app.engine.presence("carol").await.unwrap().online());
    app.stop().await;
}

/// An upgrade needs a session (401 without one, or with a dead one), and a
/// cookie-authenticated one must come from the app's own origin.
async fn upgrades_need_a_session_from_this_site(backend: Backend) {
    let app = LiveApp::start(backend).await;
    assert_eq!(app.refused(None, &[]).await, 401);
    assert_eq!(app.refused(Some("sds_not-a-real-token"), &[]).await, 401);
    let token = app.login("dave", "").await;
    assert_eq!(
        app.refused(Some(&token), &[("origin", "https://evil.example")])
            .await,
        403
    );
    assert_eq!(
        app.refused(Some(&token), &[("sec-fetch-site", "cross-site")])
            .await,
        403
    );
    assert_eq!(app.live.open_connections(), 0);
    assert!(!app.engine.presence("dave").await.unwrap().online());
    // From the app's own page it opens.
    let origin = format!("http://{}", app.addr);
    let (ws, response) =
        tokio_tungstenite::connect_async(app.request(Some(&token), &[("origin", &origin)]))
            .await
            .unwrap();
    assert_eq!(response.status(), 101);
    drop(ws);
    app.stop().await;
}

macro_rules! live_tests {
    ($($case:ident),* $(,)?) => {
        mod engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Engine).await;
                }
            )*
        }
        mod remote {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Remote).await;
                }
            )*
        }
        mod engine_on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::EngineOnRedis).await;
                }
            )*
        }
    };
}

live_tests!(
    revocation_closes_the_sessions_sockets,
    a_socket_closed_by_the_client_leaves_presence,
    an_expired_session_closes_its_socket,
    upgrades_need_a_session_from_this_site,
);

/// Without the feed, the heartbeat still finds the session gone: the
/// socket closes within a heartbeat interval (500 ms here) of a revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_that_finds_the_session_gone_closes_the_socket() {
    let app = LiveApp::start(Backend::Deaf).await;
    let token = app.login("erin", "").await;
    let mut ws = app.connect(&token).await;
    let revoked = Instant::now();
    app.engine
        .revoke(app.session_of(&token).await.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    let elapsed = closed_by_server(&mut ws, revoked).await;
    eprintln!("heartbeat only: the socket closed {elapsed:?} after the revocation");
    assert!(elapsed < CLOSE_WITHIN, "{elapsed:?}");
    app.stop().await;
}

/// The engine backend whose stream of session ends never yields.
#[derive(Clone, Debug)]
struct Deaf(EngineBackend);

#[async_trait]
impl SessionBackend for Deaf {
    async fn load(&self, token: &str) -> Result<Option<SessionView>, BackendError> {
        self.0.load(token).await
    }
    async fn create(&self, login: NewLogin) -> Result<LoggedIn, BackendError> {
        self.0.create(login).await
    }
    async fn get(&self, id: &SessionId) -> Result<Option<SessionView>, BackendError> {
        self.0.get(id).await
    }
    async fn merge_data(
        &self,
        id: &SessionId,
        changes: SessionData,
    ) -> Result<Option<SessionView>, BackendError> {
        self.0.merge_data(id, changes).await
    }
    async fn authenticate(
        &self,
        id: &SessionId,
        aal: Aal,
        method: &str,
    ) -> Result<Option<SessionView>, BackendError> {
        self.0.authenticate(id, aal, method).await
    }
    async fn revoke(&self, id: &SessionId, reason: RevokeReason) -> Result<(), BackendError> {
        self.0.revoke(id, reason).await
    }
    async fn list_user(&self, user_id: &str) -> Result<Vec<SessionView>, BackendError> {
        self.0.list_user(user_id).await
    }
    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: RevokeReason,
    ) -> Result<u64, BackendError> {
        self.0.revoke_user(user_id, except, reason).await
    }
    async fn beat_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
        node: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<ConnectionView>, BackendError> {
        self.0.beat_connection(id, connection_id, node, ttl).await
    }
    async fn close_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
    ) -> Result<(), BackendError> {
        self.0.close_connection(id, connection_id).await
    }
    async fn session_ends(&self) -> Result<SessionEnds, BackendError> {
        Ok(Box::pin(futures_util::stream::pending()))
    }
}
