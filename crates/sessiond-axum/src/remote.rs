//! [`RemoteBackend`]: sessions kept by a shared sessiond server, reached over
//! HTTP through `sessiond-client` (the `remote` feature).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use sessiond_api::{ConnectionView, CreateSession, SessionView};
use sessiond_client::{Client, Error as ClientError, EventsRequest, StartAt};
use sessiond_engine::{Aal, EventKind, RevokeReason, SessionData, SessionId};

use crate::backend::{BackendError, LoggedIn, NewLogin, SessionBackend, SessionEnds};

/// Sessions kept by a shared sessiond server, reached over HTTP.
#[derive(Clone, Debug)]
pub struct RemoteBackend {
    client: Arc<Client>,
}

impl RemoteBackend {
    /// A backend calling the sessiond at the client's base URL.
    pub fn new(client: Client) -> Self {
        Self {
            client: Arc::new(client),
        }
    }
}

impl From<ClientError> for BackendError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid { .. } => Self::Invalid(e.to_string()),
            ClientError::LimitReached { .. } => Self::LimitReached(e.to_string()),
            ClientError::IssuedBeforeRevocation { .. } => {
                Self::IssuedBeforeRevocation(e.to_string())
            }
            ClientError::TooLarge { .. } => Self::DataTooLarge(e.to_string()),
            e if e.is_unavailable() => Self::Unavailable(e.to_string()),
            e => Self::Other(e.to_string()),
        }
    }
}

/// `Ok(None)` for 404.
fn remote_found<T>(r: Result<T, ClientError>) -> Result<Option<T>, BackendError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl SessionBackend for RemoteBackend {
    async fn load(&self, token: &str) -> Result<Option<SessionView>, BackendError> {
        Ok(self.client.introspect(token, true).await?)
    }

    async fn create(&self, login: NewLogin) -> Result<LoggedIn, BackendError> {
        let created = self
            .client
            .create(&CreateSession {
                user_id: login.user_id,
                role: login.role,
                data: Some(login.data),
                user_agent: login.user_agent,
                ip: login.ip,
                aal: login.aal,
                amr: (!login.amr.is_empty()).then_some(login.amr),
                ..CreateSession::default()
            })
            .await?;
        Ok(LoggedIn {
            session: created.session,
            token: created.token,
            evicted: created.evicted,
        })
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        aal: Aal,
        method: &str,
    ) -> Result<Option<SessionView>, BackendError> {
        remote_found(self.client.authenticate(id, aal, method).await)
    }

    async fn get(&self, id: &SessionId) -> Result<Option<SessionView>, BackendError> {
        remote_found(self.client.get(id).await)
    }

    async fn merge_data(
        &self,
        id: &SessionId,
        changes: SessionData,
    ) -> Result<Option<SessionView>, BackendError> {
        remote_found(self.client.update_data(id, &changes, true).await)
    }

    async fn revoke(&self, id: &SessionId, reason: RevokeReason) -> Result<(), BackendError> {
        Ok(self.client.revoke(id, Some(reason.as_str())).await?)
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<SessionView>, BackendError> {
        Ok(self.client.list_user(user_id).await?)
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: RevokeReason,
    ) -> Result<u64, BackendError> {
        Ok(self
            .client
            .revoke_user(user_id, except, Some(reason.as_str()))
            .await?)
    }

    async fn beat_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
        node: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<ConnectionView>, BackendError> {
        let beaten = self
            .client
            .beat_connection(id, connection_id, node, Some(ttl))
            .await;
        Ok(remote_found(beaten)?.map(|(connection, _opened)| connection))
    }

    async fn close_connection(
        &self,
        id: &SessionId,
        connection_id: &str,
    ) -> Result<(), BackendError> {
        Ok(self.client.close_connection(id, connection_id).await?)
    }

    /// The server's event feed (`GET /v1/events`), which resumes by itself
    /// after a disconnect; it starts where the server is when the stream
    /// first connects, which is at its first poll.
    async fn session_ends(&self) -> Result<SessionEnds, BackendError> {
        let events = self.client.events(&EventsRequest {
            start: StartAt::Now,
            user_id: None,
            types: vec![EventKind::Revoked, EventKind::Expired],
        })?;
        Ok(Box::pin(events.map(|event| {
            event.map(|e| e.session_id).map_err(BackendError::from)
        })))
    }
}
