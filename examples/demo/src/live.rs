//! Live pages: each signed-in page holds a WebSocket on its session, closed
//! by the server when the session ends, and "Your devices" shows which of a
//! user's sessions hold one now (presence).

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use sessiond_axum::{
    EngineBackend, InvalidSettings, LiveOptions, LiveSocket, LiveSockets, Message, RemoteBackend,
    SessionId,
};
use sessiond_engine::Engine;

/// How often a page's socket is pinged (browsers answer by themselves).
const PING_EVERY: Duration = Duration::from_secs(20);

/// A socket that answered nothing for this long is gone (its device lost
/// the network without closing it): it is closed, and leaves presence.
const SILENT_LIMIT: Duration = Duration::from_secs(50);

/// The live sockets of the site, and where presence is read: the same
/// sessions as the site's [`sessiond_axum::SessionLayer`].
#[derive(Clone, Debug)]
pub struct Live {
    sockets: LiveSockets,
    presence: PresenceSource,
}

/// Where presence is read.
#[derive(Clone, Debug)]
enum PresenceSource {
    /// The engine in this process.
    Engine(Engine),
    /// A running sessiond (`GET /v1/users/{user_id}/presence`).
    Sessiond(sessiond_client::Client),
}

/// Why presence could not be read.
#[derive(Debug)]
pub enum PresenceError {
    /// The store keeps no connections (Redis, for now).
    Unsupported,
    /// The store or sessiond failed.
    Failed(String),
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("the session store keeps no connections"),
            Self::Failed(e) => write!(f, "presence: {e}"),
        }
    }
}

impl Live {
    /// Live pages over the engine in this process (the one the layer's
    /// `EngineBackend` runs).
    pub fn over_engine(engine: Engine) -> Result<Self, InvalidSettings> {
        Ok(Self {
            sockets: LiveSockets::new(EngineBackend::new(engine.clone()), LiveOptions::default())?,
            presence: PresenceSource::Engine(engine),
        })
    }

    /// Live pages over a running sessiond (the one the layer's
    /// `RemoteBackend` calls).
    pub fn over_sessiond(client: sessiond_client::Client) -> Result<Self, InvalidSettings> {
        Ok(Self {
            sockets: LiveSockets::new(RemoteBackend::new(client.clone()), LiveOptions::default())?,
            presence: PresenceSource::Sessiond(client),
        })
    }

    /// These live pages, if the store keeps connections: `None` when it
    /// says it does not. A store that cannot be reached now is given the
    /// benefit of the doubt.
    pub async fn if_supported(self) -> Option<Self> {
        match self.online("demo-probe").await {
            Err(PresenceError::Unsupported) => None,
            Ok(_) | Err(PresenceError::Failed(_)) => Some(self),
        }
    }

    /// The sockets, for [`LiveSockets::upgrade`].
    pub fn sockets(&self) -> &LiveSockets {
        &self.sockets
    }

    /// The ids of `user_id`'s sessions that hold a live connection now.
    pub async fn online(&self, user_id: &str) -> Result<HashSet<SessionId>, PresenceError> {
        match &self.presence {
            PresenceSource::Engine(engine) => match engine.presence(user_id).await {
                Ok(p) => Ok(p
                    .devices
                    .into_iter()
                    .filter(|d| !d.connections.is_empty())
                    .map(|d| d.session_id)
                    .collect()),
                Err(sessiond_engine::Error::Unsupported(_)) => Err(PresenceError::Unsupported),
                Err(e) => Err(PresenceError::Failed(e.to_string())),
            },
            PresenceSource::Sessiond(client) => match client.presence(user_id).await {
                Ok(p) => Ok(p
                    .devices
                    .into_iter()
                    .filter(|d| d.online)
                    .map(|d| d.session_id)
                    .collect()),
                Err(sessiond_client::Error::Server { status: 501, .. }) => {
                    Err(PresenceError::Unsupported)
                }
                Err(e) => Err(PresenceError::Failed(e.to_string())),
            },
        }
    }
}

/// Serve a page's socket: the page says nothing, the server only pings it.
/// Returns (and the socket closes) when the page goes, or answers nothing
/// for [`SILENT_LIMIT`]; the session's end is handled by [`LiveSockets`].
pub async fn serve_page(mut socket: LiveSocket) {
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = pings.tick() => {
                if heard.elapsed() >= SILENT_LIMIT
                    || socket.send(Message::Ping(Bytes::new())).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
