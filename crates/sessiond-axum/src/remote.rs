//! [`RemoteBackend`]: sessions kept by a shared sessiond server, reached over
//! HTTP through `sessiond-client` (the `remote` feature).

use std::sync::Arc;

use async_trait::async_trait;
use sessiond_api::{CreateSession, SessionView};
use sessiond_client::{Client, Error as ClientError};
use sessiond_engine::{RevokeReason, SessionData, SessionId};

use crate::backend::{BackendError, LoggedIn, NewLogin, SessionBackend};

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
                ..CreateSession::default()
            })
            .await?;
        Ok(LoggedIn {
            session: created.session,
            token: created.token,
            evicted: created.evicted,
        })
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
}
