//! Where sessions live: the [`SessionBackend`] the layer calls, and its
//! implementation by the engine in this process (a remote sessiond is in
//! `remote`).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;
use sessiond_api::{ConnectionView, Secret, SessionView};
use sessiond_engine::{
    Aal, CreateRequest, DataUpdate, Engine, Error as EngineError, EventCursor, EventKind,
    EventKinds, EventQuery, EventsFrom, RevokeReason, SessionData, SessionId,
};

/// The ids of sessions that end (revoked or expired) from the moment the
/// stream was made, in the order they ended; an error item says the
/// backend could not be read for a while (the stream goes on unless it
/// ends: then whoever follows it subscribes again).
pub type SessionEnds = Pin<Box<dyn Stream<Item = Result<SessionId, BackendError>> + Send>>;

/// How often [`EngineBackend`]'s [`SessionBackend::session_ends`] looks for
/// new events when it found none.
pub const ENGINE_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Longest wait between two reads of the feed while the store fails.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// A login to record: who, and on what device.
#[derive(Clone, Debug, Default)]
pub struct NewLogin {
    /// The app's user id.
    pub user_id: String,
    /// Role whose policy applies (`None`: the default role).
    pub role: Option<String>,
    /// Initial data.
    pub data: SessionData,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The assurance level the user's authentication reached (`None`:
    /// `aal1`).
    pub aal: Option<Aal>,
    /// The methods the user authenticated with (`pwd`, `otp`…).
    pub amr: Vec<String>,
}

/// A new session and the token that proves it.
#[derive(Debug)]
pub struct LoggedIn {
    /// The session.
    pub session: SessionView,
    /// Its token: goes into the cookie, never into a log.
    pub token: Secret,
    /// Older sessions of the user ended to respect `max_sessions`.
    pub evicted: Vec<SessionId>,
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The store or the sessiond server cannot be reached: fail closed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// Input the backend refused (e.g. an empty user id).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The `reject` policy: the user is at `max_sessions`.
    #[error("the user has too many sessions: {0}")]
    LimitReached(String),
    /// The user's sessions issued before a later time were revoked while
    /// this create was under way (retry it).
    #[error("issued before a revocation: {0}")]
    IssuedBeforeRevocation(String),
    /// The session's data would exceed its size limit.
    #[error("session data too large: {0}")]
    DataTooLarge(String),
    /// Anything else (a bug or a misconfiguration, e.g. a wrong API key).
    #[error("session backend error: {0}")]
    Other(String),
}

/// The operations the layer needs. Each is one store operation (one round
/// trip for a remote sessiond).
#[async_trait]
pub trait SessionBackend: Send + Sync + fmt::Debug + 'static {
    /// The live session `token` proves, recording activity (the backend
    /// coalesces touches). `None` for unknown, malformed or dead tokens.
    async fn load(&self, token: &str) -> Result<Option<SessionView>, BackendError>;

    /// Start a session.
    async fn create(&self, login: NewLogin) -> Result<LoggedIn, BackendError>;

    /// A live session by id.
    async fn get(&self, id: &SessionId) -> Result<Option<SessionView>, BackendError>;

    /// Merge `changes` into the session's data (a `null` value removes the
    /// key), atomically in the store. `None` if the session is gone.
    async fn merge_data(
        &self,
        id: &SessionId,
        changes: SessionData,
    ) -> Result<Option<SessionView>, BackendError>;

    /// Record a new authentication of the session's user: `aal` raises its
    /// level (never lowers it), `method` joins its methods, and its
    /// authentication time becomes now. `None` if the session is gone.
    async fn authenticate(
        &self,
        id: &SessionId,
        aal: Aal,
        method: &str,
    ) -> Result<Option<SessionView>, BackendError>;

    /// End a session (also fine when it is already gone).
    async fn revoke(&self, id: &SessionId, reason: RevokeReason) -> Result<(), BackendError>;

    /// The user's live sessions, newest first.
    async fn list_user(&self, user_id: &str) -> Result<Vec<SessionView>, BackendError>;

    /// End all of the user's sessions but `except`; how many ended.
    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: RevokeReason,
    ) -> Result<u64, BackendError>;

    /// Register a live connection (a WebSocket) on a live session, or keep
    /// it alive (a heartbeat): it ends `ttl` after this call unless another
    /// heartbeat comes, or with its session. `node` names the app instance
    /// holding it. `None` when the session is not live.
    async fn beat_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
        node: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<ConnectionView>, BackendError>;

    /// Close a connection (also fine when it is already gone).
    async fn close_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
    ) -> Result<(), BackendError>;

    /// Follow the sessions that end from now on (revoked or expired), of
    /// every user: once this returns, no such end is missed by the stream.
    async fn session_ends(&self) -> Result<SessionEnds, BackendError>;
}

/// Sessions in this process: the engine over an embedded or Redis store.
#[derive(Clone, Debug)]
pub struct EngineBackend {
    engine: Engine,
}

impl EngineBackend {
    /// A backend over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

impl From<EngineError> for BackendError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(m) => Self::Unavailable(m),
            EngineError::Invalid { .. } => Self::Invalid(e.to_string()),
            EngineError::LimitReached { .. } => Self::LimitReached(e.to_string()),
            EngineError::IssuedBeforeRevocation => Self::IssuedBeforeRevocation(e.to_string()),
            EngineError::DataTooLarge { .. } => Self::DataTooLarge(e.to_string()),
            other => Self::Other(other.to_string()),
        }
    }
}

/// `Ok(None)` for "no such session" answers.
fn found<T>(r: Result<T, EngineError>) -> Result<Option<T>, BackendError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(EngineError::NotFound | EngineError::Invalid { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl SessionBackend for EngineBackend {
    async fn load(&self, token: &str) -> Result<Option<SessionView>, BackendError> {
        Ok(found(self.engine.introspect(token, true).await)?
            .flatten()
            .map(SessionView::from))
    }

    async fn create(&self, login: NewLogin) -> Result<LoggedIn, BackendError> {
        let created = self
            .engine
            .create(CreateRequest {
                user_id: login.user_id,
                role: login.role,
                data: login.data,
                user_agent: login.user_agent,
                ip: login.ip,
                aal: login.aal,
                amr: login.amr,
                ..CreateRequest::default()
            })
            .await?;
        Ok(LoggedIn {
            session: created.session.into(),
            token: Secret::new(created.token.expose()),
            evicted: created.evicted,
        })
    }

    async fn get(&self, id: &SessionId) -> Result<Option<SessionView>, BackendError> {
        Ok(found(self.engine.get(id.as_str()).await)?.map(SessionView::from))
    }

    async fn merge_data(
        &self,
        id: &SessionId,
        changes: SessionData,
    ) -> Result<Option<SessionView>, BackendError> {
        let update = DataUpdate::Merge(changes);
        Ok(found(self.engine.update_data(id.as_str(), update).await)?.map(SessionView::from))
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        aal: Aal,
        method: &str,
    ) -> Result<Option<SessionView>, BackendError> {
        let session = self.engine.authenticate(id.as_str(), aal, method).await;
        Ok(found(session)?.map(SessionView::from))
    }

    async fn revoke(&self, id: &SessionId, reason: RevokeReason) -> Result<(), BackendError> {
        found(self.engine.revoke(id.as_str(), reason).await).map(|_| ())
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<SessionView>, BackendError> {
        let sessions = self.engine.list_user(user_id).await?;
        Ok(sessions.into_iter().map(SessionView::from).collect())
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: RevokeReason,
    ) -> Result<u64, BackendError> {
        let except = except.map(SessionId::as_str);
        let ids = self.engine.revoke_user(user_id, except, reason).await?;
        Ok(ids.len() as u64)
    }

    async fn beat_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
        node: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<ConnectionView>, BackendError> {
        let beaten = self
            .engine
            .beat_connection(
                id.as_str(),
                connection_id,
                node.map(str::to_owned),
                Some(ttl),
            )
            .await;
        match beaten {
            Ok(b) => Ok(Some(b.connection.into())),
            Err(EngineError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn close_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
    ) -> Result<(), BackendError> {
        self.engine
            .close_connection(id.as_str(), connection_id)
            .await?;
        Ok(())
    }

    async fn session_ends(&self) -> Result<SessionEnds, BackendError> {
        // Fix the starting point now, not at the first poll: an end that
        // happens in between is in the stream.
        let head = self.engine.events(&ends_query(EventsFrom::Now)).await?;
        let follower = FeedFollower {
            engine: self.engine.clone(),
            cursor: head.cursor,
            pending: VecDeque::new(),
            wait: None,
            retry_wait: ENGINE_POLL_INTERVAL,
            finished: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            follower,
            |mut f| async move { f.next().await.map(|item| (item, f)) },
        )))
    }
}

/// A read of the ends (revoked, expired) of every user's sessions.
fn ends_query(from: EventsFrom) -> EventQuery {
    EventQuery {
        from,
        user_id: None,
        kinds: EventKinds::of([EventKind::Revoked, EventKind::Expired]),
        limit: sessiond_engine::engine::MAX_EVENTS_LIMIT,
    }
}

/// The engine's event feed read from a cursor, polled while it is quiet.
struct FeedFollower {
    engine: Engine,
    cursor: EventCursor,
    /// Ends read but not given out yet.
    pending: VecDeque<SessionId>,
    /// Wait this long before the next read.
    wait: Option<Duration>,
    /// Wait after a failed read; doubles up to [`MAX_RETRY_WAIT`].
    retry_wait: Duration,
    finished: bool,
}

impl FeedFollower {
    async fn next(&mut self) -> Option<Result<SessionId, BackendError>> {
        loop {
            if let Some(id) = self.pending.pop_front() {
                return Some(Ok(id));
            }
            if self.finished {
                return None;
            }
            if let Some(wait) = self.wait.take() {
                tokio::time::sleep(wait).await;
            }
            let query = ends_query(EventsFrom::After(self.cursor.clone()));
            match self.engine.events(&query).await {
                Ok(page) => {
                    self.retry_wait = ENGINE_POLL_INTERVAL;
                    self.cursor = page.cursor;
                    if page.events.is_empty() {
                        self.wait = Some(ENGINE_POLL_INTERVAL);
                    }
                    self.pending
                        .extend(page.events.into_iter().map(|e| e.session_id));
                }
                // The store is away for now: the cursor stays, so nothing
                // is skipped once it answers again.
                Err(EngineError::Unavailable(m)) => {
                    self.wait = Some(self.retry_wait);
                    self.retry_wait = (self.retry_wait * 2).min(MAX_RETRY_WAIT);
                    return Some(Err(BackendError::Unavailable(m)));
                }
                // The cursor left the feed, or the store keeps none: this
                // stream cannot go on without skipping ends.
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}
