//! Live sockets: WebSockets tied to their session. [`LiveSockets`] registers
//! each socket as a connection of its session, keeps it alive with
//! heartbeats, and closes it within a second of the session ending anywhere.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use sessiond_engine::SessionId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{BackendError, SessionBackend};
use crate::context::Session;
use crate::error::{Error, InvalidSettings};

/// Close code sent when the socket's session ended (revoked, signed out,
/// expired): an application code, so a client can tell it from a network
/// failure and send the user to sign in.
pub const CLOSE_SESSION_ENDED: u16 = 4001;

/// Close code sent when no heartbeat could confirm the session for a whole
/// connection TTL (the session store is unreachable): "try again later".
pub const CLOSE_UNCONFIRMED: u16 = 1013;

/// A connection's TTL unless [`LiveOptions`] says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// A connection's heartbeat interval unless [`LiveOptions`] says otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);

/// Longest the helper waits to send the Close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// First wait before following the session ends again; doubles up to
/// [`MAX_FOLLOW_WAIT`].
const FIRST_FOLLOW_WAIT: Duration = Duration::from_millis(100);
const MAX_FOLLOW_WAIT: Duration = Duration::from_secs(30);

/// A subscription that lived this long was healthy: the next one starts
/// with [`FIRST_FOLLOW_WAIT`] again.
const HEALTHY_FOLLOW: Duration = Duration::from_secs(30);

/// After (re)subscribing, registered sessions are checked once this much
/// later, by then the subscription is live: an end that came before it is
/// not in the stream.
const SWEEP_DELAY: Duration = Duration::from_millis(250);

/// Sessions checked at once by that sweep.
const SWEEP_CONCURRENCY: usize = 8;

/// How a hub keeps its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveOptions {
    /// A connection ends this long after its last heartbeat (1 s to 1 h):
    /// a crashed app instance's sockets leave presence by then. A socket
    /// is also closed when no heartbeat could confirm its session for this
    /// long.
    pub ttl: Duration,
    /// Heartbeat interval: at most half the TTL, so one late heartbeat
    /// never lets a live connection lapse.
    pub heartbeat: Duration,
    /// This app instance's name, recorded on its connections (1 to 128
    /// characters from `A-Z a-z 0-9 _ . : -`).
    pub node: Option<String>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            heartbeat: DEFAULT_HEARTBEAT,
            node: None,
        }
    }
}

impl LiveOptions {
    fn validate(&self) -> Result<(), InvalidSettings> {
        if self.ttl < Duration::from_secs(1)
            || self.ttl > sessiond_engine::presence::MAX_CONNECTION_TTL
        {
            return Err(InvalidSettings(
                "the connection TTL must be between 1 second and 1 hour".into(),
            ));
        }
        if self.heartbeat.is_zero() || self.heartbeat > self.ttl / 2 {
            return Err(InvalidSettings(
                "the heartbeat interval must be above zero and at most half the TTL".into(),
            ));
        }
        if let Some(node) = &self.node
            && !well_formed_node(node)
        {
            return Err(InvalidSettings(format!(
                "node {node:?}: expected 1 to 128 characters from A-Z a-z 0-9 _ . : -"
            )));
        }
        Ok(())
    }
}

/// A node name the store accepts.
fn well_formed_node(node: &str) -> bool {
    (1..=sessiond_engine::presence::MAX_NODE_LEN).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Why a live connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveEnd {
    /// Its session ended: revoked (logout, signed out from another device,
    /// an admin) or expired, here or on another instance.
    SessionEnded,
    /// No heartbeat could confirm the session for a whole TTL: the store is
    /// unreachable, and the session may have ended meanwhile (fail closed).
    Unconfirmed,
}

impl LiveEnd {
    /// The Close frame a socket gets for this end.
    pub fn close_frame(self) -> CloseFrame {
        match self {
            Self::SessionEnded => CloseFrame {
                code: CLOSE_SESSION_ENDED,
                reason: Utf8Bytes::from_static("session ended"),
            },
            Self::Unconfirmed => CloseFrame {
                code: CLOSE_UNCONFIRMED,
                reason: Utf8Bytes::from_static("session could not be confirmed"),
            },
        }
    }
}

/// The live sockets of one app: make one when the app starts and share it
/// (clones are cheap). It follows the ends of sessions through one shared
/// subscription to the backend, started with the first connection and
/// started again when it fails.
#[derive(Clone)]
pub struct LiveSockets {
    hub: Arc<Hub>,
}

impl fmt::Debug for LiveSockets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSockets")
            .field("options", &self.hub.shared.options)
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}

struct Hub {
    shared: Arc<Shared>,
    /// The task following session ends, once started.
    follower: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.follower).take() {
            task.abort();
        }
    }
}

/// What the follower task and the connections share.
struct Shared {
    backend: Arc<dyn SessionBackend>,
    options: LiveOptions,
    /// Session → the connections open on it here.
    watchers: Mutex<HashMap<SessionId, Vec<Watcher>>>,
    next_key: AtomicU64,
}

struct Watcher {
    key: u64,
    end: Arc<watch::Sender<Option<LiveEnd>>>,
}

/// A poisoned lock still holds consistent data here (every change is one
/// insert or removal): carry on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Record `end` once; later ends do not replace the first.
fn finish(end: &watch::Sender<Option<LiveEnd>>, why: LiveEnd) {
    end.send_if_modified(|current| {
        if current.is_none() {
            *current = Some(why);
            true
        } else {
            false
        }
    });
}

impl Shared {
    /// Every connection of session `id` here ends.
    fn end_session(&self, id: &SessionId) {
        if let Some(list) = lock(&self.watchers).get(id) {
            for watcher in list {
                finish(&watcher.end, LiveEnd::SessionEnded);
            }
        }
    }

    fn register(&self, id: &SessionId, end: Arc<watch::Sender<Option<LiveEnd>>>) -> u64 {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        lock(&self.watchers)
            .entry(id.clone())
            .or_default()
            .push(Watcher { key, end });
        key
    }

    fn unregister(&self, id: &SessionId, key: u64) {
        let mut watchers = lock(&self.watchers);
        if let Some(list) = watchers.get_mut(id) {
            list.retain(|w| w.key != key);
            if list.is_empty() {
                watchers.remove(id);
            }
        }
    }

    /// End the registered sessions that are no longer live: those that
    /// ended before the subscription could see it.
    async fn sweep(&self) {
        let ids: Vec<SessionId> = lock(&self.watchers).keys().cloned().collect();
        futures_util::stream::iter(ids)
            .for_each_concurrent(SWEEP_CONCURRENCY, |id| async move {
                match self.backend.get(&id).await {
                    Ok(None) => self.end_session(&id),
                    Ok(Some(_)) => {}
                    // The heartbeats will tell.
                    Err(e) => tracing::debug!(session_id = %id, error = %e, "live sweep"),
                }
            })
            .await;
    }
}

/// Follow session ends for as long as the hub lives, subscribing again
/// (after a wait that doubles up to 30 s) when the subscription fails.
async fn follow(shared: Arc<Shared>) {
    let mut wait = FIRST_FOLLOW_WAIT;
    loop {
        let started = Instant::now();
        match shared.backend.session_ends().await {
            Ok(mut ends) => {
                let sweeper = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(SWEEP_DELAY).await;
                    sweeper.sweep().await;
                });
                while let Some(item) = ends.next().await {
                    match item {
                        Ok(id) => {
                            wait = FIRST_FOLLOW_WAIT;
                            shared.end_session(&id);
                        }
                        Err(e) => tracing::warn!(error = %e, "following session ends"),
                    }
                }
                tracing::warn!("the stream of session ends stopped; following it again");
            }
            Err(e) => tracing::warn!(error = %e, "cannot follow session ends"),
        }
        if started.elapsed() >= HEALTHY_FOLLOW {
            wait = FIRST_FOLLOW_WAIT;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_FOLLOW_WAIT);
    }
}

impl LiveSockets {
    /// Live sockets over `backend` (the one the [`crate::SessionLayer`]
    /// uses: [`crate::EngineBackend`] and `RemoteBackend` are cheap to
    /// clone). Nothing runs until the first connection.
    pub fn new(
        backend: impl SessionBackend,
        options: LiveOptions,
    ) -> Result<Self, InvalidSettings> {
        options.validate()?;
        Ok(Self {
            hub: Arc::new(Hub {
                shared: Arc::new(Shared {
                    backend: Arc::new(backend),
                    options,
                    watchers: Mutex::new(HashMap::new()),
                    next_key: AtomicU64::new(0),
                }),
                follower: Mutex::new(None),
            }),
        })
    }

    /// Connections open through this hub now.
    pub fn open_connections(&self) -> usize {
        lock(&self.hub.shared.watchers).values().map(Vec::len).sum()
    }

    /// Start following session ends, unless that is under way.
    fn ensure_following(&self) {
        let mut follower = lock(&self.hub.follower);
        if follower.as_ref().is_none_or(JoinHandle::is_finished) {
            *follower = Some(tokio::spawn(follow(self.hub.shared.clone())));
        }
    }

    /// Register a connection on `session` (a random connection id) and
    /// keep it alive until the returned guard is dropped; the guard's
    /// [`LiveConnection::ended`] resolves when the session ends. A session
    /// that ended before it could be registered gives a guard that has
    /// ended already. Fails when the backend cannot be reached.
    pub async fn connect(&self, session: &Session) -> Result<LiveConnection, BackendError> {
        self.ensure_following();
        let shared = &self.hub.shared;
        let session_id = session.id().clone();
        let connection_id = new_connection_id()?;
        let (end, _) = watch::channel(None);
        let end = Arc::new(end);
        // Registered before the first heartbeat: an end that comes after
        // that heartbeat found the session live is always seen.
        let key = shared.register(&session_id, end.clone());
        let mut connection = LiveConnection {
            hub: self.hub.clone(),
            session_id,
            connection_id,
            key,
            end,
            heartbeat: None,
        };
        let beaten = shared
            .backend
            .beat_connection(
                &connection.session_id,
                &connection.connection_id,
                shared.options.node.as_deref(),
                shared.options.ttl,
            )
            .await?;
        if beaten.is_none() {
            finish(&connection.end, LiveEnd::SessionEnded);
            return Ok(connection);
        }
        connection.heartbeat = Some(tokio::spawn(heartbeat(
            shared.clone(),
            connection.session_id.clone(),
            connection.connection_id.clone(),
            connection.end.clone(),
        )));
        Ok(connection)
    }

    /// Answer a WebSocket upgrade on `session`'s behalf: register the
    /// connection (503 when the backend cannot be reached), then run
    /// `handler` with the socket. When the session ends, the handler is
    /// stopped and the socket gets a Close frame
    /// ([`CLOSE_SESSION_ENDED`], "session ended"); when the handler
    /// returns, the socket is closed normally. Either way the connection is
    /// closed in the backend.
    pub async fn upgrade<H, F>(
        &self,
        ws: WebSocketUpgrade,
        session: &Session,
        handler: H,
    ) -> Response
    where
        H: FnOnce(LiveSocket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        match self.connect(session).await {
            Ok(connection) => ws.on_upgrade(move |socket| serve(socket, connection, handler)),
            Err(e) => Error::Backend(e).into_response(),
        }
    }
}

/// Keep the connection alive every `heartbeat`; a heartbeat that finds the
/// session gone ends it, and so do failed heartbeats for a whole TTL.
async fn heartbeat(
    shared: Arc<Shared>,
    session_id: SessionId,
    connection_id: String,
    end: Arc<watch::Sender<Option<LiveEnd>>>,
) {
    let options = &shared.options;
    let mut confirmed = Instant::now();
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + options.heartbeat,
        options.heartbeat,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if end.borrow().is_some() {
            return;
        }
        let beaten = shared
            .backend
            .beat_connection(
                &session_id,
                &connection_id,
                options.node.as_deref(),
                options.ttl,
            )
            .await;
        match beaten {
            Ok(Some(_)) => confirmed = Instant::now(),
            Ok(None) => {
                finish(&end, LiveEnd::SessionEnded);
                return;
            }
            Err(e) => {
                tracing::warn!(session_id = %session_id, error = %e, "connection heartbeat failed");
                if confirmed.elapsed() >= options.ttl {
                    finish(&end, LiveEnd::Unconfirmed);
                    return;
                }
            }
        }
    }
}

/// `ws-` and 128 random bits in hex.
fn new_connection_id() -> Result<String, BackendError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| BackendError::Other(format!("no randomness for a connection id: {e}")))?;
    let mut id = String::with_capacity(3 + 32);
    id.push_str("ws-");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// A connection registered on a session, kept alive while it is held.
/// Dropping it stops the heartbeats and closes the connection in the
/// background.
pub struct LiveConnection {
    hub: Arc<Hub>,
    session_id: SessionId,
    connection_id: String,
    key: u64,
    end: Arc<watch::Sender<Option<LiveEnd>>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl fmt::Debug for LiveConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveConnection")
            .field("session_id", &self.session_id)
            .field("connection_id", &self.connection_id)
            .field("end", &self.end())
            .finish_non_exhaustive()
    }
}

impl LiveConnection {
    /// The session it is on.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// Its connection id (as presence shows it).
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// Why it ended, if it has.
    pub fn end(&self) -> Option<LiveEnd> {
        *self.end.borrow()
    }

    /// Resolves when the session ends (or cannot be confirmed any more).
    pub async fn ended(&self) -> LiveEnd {
        let mut end = self.end.subscribe();
        loop {
            if let Some(why) = *end.borrow_and_update() {
                return why;
            }
            // The sender lives as long as `self`: this never fails.
            if end.changed().await.is_err() {
                return LiveEnd::SessionEnded;
            }
        }
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let shared = &self.hub.shared;
        shared.unregister(&self.session_id, self.key);
        if self.end() == Some(LiveEnd::SessionEnded) {
            // Gone with its session already.
            return;
        }
        // Without a runtime (shutting down) it expires after its TTL.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = shared.clone();
            let session_id = self.session_id.clone();
            let connection_id = std::mem::take(&mut self.connection_id);
            runtime.spawn(async move {
                if let Err(e) = shared
                    .backend
                    .close_connection(&session_id, &connection_id)
                    .await
                {
                    tracing::debug!(session_id = %session_id, error = %e, "closing a connection");
                }
            });
        }
    }
}

/// Run `handler` on the socket until it returns or the session ends.
async fn serve<H, F>(socket: WebSocket, connection: LiveConnection, handler: H)
where
    H: FnOnce(LiveSocket) -> F,
    F: Future<Output = ()>,
{
    let (sink, receiver) = socket.split();
    let sender = LiveSender {
        sink: Arc::new(tokio::sync::Mutex::new(Some(sink))),
    };
    let socket = LiveSocket {
        receiver,
        sender: sender.clone(),
        session_id: connection.session_id.clone(),
        connection_id: connection.connection_id.clone(),
    };
    let mut task = Box::pin(handler(socket));
    let end = tokio::select! {
        biased;
        why = connection.ended() => Some(why),
        () = &mut task => None,
    };
    // Stopped where it is; the socket is the helper's alone from here.
    drop(task);
    if tokio::time::timeout(CLOSE_WAIT, sender.close(end.map(LiveEnd::close_frame)))
        .await
        .is_err()
    {
        tracing::debug!(session_id = %connection.session_id, "the close frame could not be sent in time");
    }
    drop(connection);
}

/// A WebSocket on a live session, for the handler given to
/// [`LiveSockets::upgrade`].
pub struct LiveSocket {
    receiver: SplitStream<WebSocket>,
    sender: LiveSender,
    session_id: SessionId,
    connection_id: String,
}

impl fmt::Debug for LiveSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSocket")
            .field("session_id", &self.session_id)
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}

impl LiveSocket {
    /// The next message from the client; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.receiver.next().await
    }

    /// Send a message to the client.
    pub async fn send(&self, message: Message) -> Result<(), axum::Error> {
        self.sender.send(message).await
    }

    /// A handle that sends on this socket from another task.
    pub fn sender(&self) -> LiveSender {
        self.sender.clone()
    }

    /// The session the socket is on.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// Its connection id (as presence shows it).
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

/// Sends on a [`LiveSocket`]; clones share the socket. Sending fails once
/// the socket is closed.
#[derive(Clone)]
pub struct LiveSender {
    sink: Arc<tokio::sync::Mutex<Option<SplitSink<WebSocket, Message>>>>,
}

impl fmt::Debug for LiveSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSender").finish_non_exhaustive()
    }
}

impl LiveSender {
    /// Send a message to the client.
    pub async fn send(&self, message: Message) -> Result<(), axum::Error> {
        match self.sink.lock().await.as_mut() {
            Some(sink) => sink.send(message).await,
            None => Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the socket is closed",
            ))),
        }
    }

    /// Send `frame` (or a plain Close) and let go of the socket.
    async fn close(&self, frame: Option<CloseFrame>) {
        let Some(mut sink) = self.sink.lock().await.take() else {
            return;
        };
        let closed = match frame {
            Some(frame) => sink.send(Message::Close(Some(frame))).await,
            None => sink.close().await,
        };
        if let Err(e) = closed {
            // The client went first: nothing left to tell it.
            tracing::debug!(error = %e, "closing a live socket");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(LiveOptions::default().validate().is_ok());
        let bad = [
            LiveOptions {
                ttl: Duration::from_millis(500),
                heartbeat: Duration::from_millis(100),
                node: None,
            },
            LiveOptions {
                ttl: Duration::from_secs(7200),
                ..LiveOptions::default()
            },
            LiveOptions {
                heartbeat: Duration::ZERO,
                ..LiveOptions::default()
            },
            LiveOptions {
                heartbeat: Duration::from_secs(31),
                ..LiveOptions::default()
            },
            LiveOptions {
                node: Some(String::new()),
                ..LiveOptions::default()
            },
            LiveOptions {
                node: Some("node a".into()),
                ..LiveOptions::default()
            },
        ];
        for options in bad {
            assert!(options.validate().is_err(), "{options:?}");
        }
        let named = LiveOptions {
            node: Some("app-1.eu:7".into()),
            ..LiveOptions::default()
        };
        assert!(named.validate().is_ok());
    }

    #[test]
    fn connection_ids_are_random_and_well_formed() {
        let a = new_connection_id().unwrap_or_default();
        let b = new_connection_id().unwrap_or_default();
        assert_ne!(a, b);
        assert_eq!(a.len(), 35);
        assert!(sessiond_engine::ConnectionId::parse(&a).is_some(), "{a}");
    }

    #[test]
    fn a_first_end_is_kept() {
        let (end, _) = watch::channel(None);
        finish(&end, LiveEnd::Unconfirmed);
        finish(&end, LiveEnd::SessionEnded);
        assert_eq!(*end.borrow(), Some(LiveEnd::Unconfirmed));
        assert_eq!(LiveEnd::SessionEnded.close_frame().code, 4001);
        assert_eq!(LiveEnd::SessionEnded.close_frame().reason, "session ended");
    }
}
