//! Where sessions live: the [`SessionBackend`] the layer calls, and its
//! implementation by the engine in this process (a remote sessiond is in
//! `remote`).

use std::fmt;

use async_trait::async_trait;
use sessiond_api::{Secret, SessionView};
use sessiond_engine::{
    CreateRequest, DataUpdate, Engine, Error as EngineError, RevokeReason, SessionData, SessionId,
};

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
}
