//! Live connections and presence: a connection (a WebSocket, say) is kept
//! on a session with its own expiry, refreshed by heartbeats, and a user is
//! online while one of their sessions has a live connection.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::device::Device;
use crate::id::SessionId;

/// Longest connection id.
pub const MAX_CONNECTION_ID_LEN: usize = 128;

/// Longest node name.
pub const MAX_NODE_LEN: usize = 128;

/// How long a connection lives without a heartbeat unless the caller says.
pub const DEFAULT_CONNECTION_TTL: Duration = Duration::from_secs(60);

/// Longest a connection may live without a heartbeat.
pub const MAX_CONNECTION_TTL: Duration = Duration::from_secs(3600);

/// A connection id: 1 to [`MAX_CONNECTION_ID_LEN`] characters from
/// `A-Z a-z 0-9 _ . : -` (the app's own socket id, say).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// The id, if `s` is a well-formed one.
    pub fn parse(s: &str) -> Option<Self> {
        well_formed(s, MAX_CONNECTION_ID_LEN).then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` is 1 to `max` characters from `A-Z a-z 0-9 _ . : -`.
pub(crate) fn well_formed(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A connection to register or keep alive (its heartbeat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionBeat {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its id, unique within the session.
    pub connection_id: ConnectionId,
    /// The app node that holds it, if the app says.
    pub node: Option<String>,
    /// It ends by itself this long after the last heartbeat.
    pub ttl_ms: u64,
}

/// A live connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its id.
    pub connection_id: ConnectionId,
    /// The app node that holds it.
    pub node: Option<String>,
    /// When it was registered.
    pub opened_at: Timestamp,
    /// Its last heartbeat.
    pub last_seen_at: Timestamp,
    /// When it ends without another heartbeat (never after its session's
    /// deadline: it ends with its session).
    pub expires_at: Timestamp,
}

/// What a heartbeat did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beaten {
    /// The connection as it is now.
    pub connection: Connection,
    /// Whether it was new (`connection_opened` recorded).
    pub opened: bool,
}

/// One of a user's live sessions, with its live connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePresence {
    /// The session.
    pub session_id: SessionId,
    /// Its device.
    pub device: Device,
    /// Its last recorded activity.
    pub last_seen_at: Timestamp,
    /// Its live connections, oldest first.
    pub connections: Vec<Connection>,
}

/// Whether a user is online, on which devices, and when they were last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    /// The user's live sessions, most recently seen first.
    pub devices: Vec<DevicePresence>,
}

impl DevicePresence {
    /// The latest activity of the session or of any of its connections.
    pub fn latest_activity(&self) -> Timestamp {
        self.connections
            .iter()
            .map(|c| c.last_seen_at)
            .fold(self.last_seen_at, Ord::max)
    }
}

impl Presence {
    /// A user's presence from their live sessions in any order: the most
    /// recently active first (a stable sort: equals keep their order).
    pub fn of_devices(mut devices: Vec<DevicePresence>) -> Self {
        devices.sort_by_key(|d| std::cmp::Reverse(d.latest_activity()));
        Self { devices }
    }

    /// Online: some live session has a live connection.
    pub fn online(&self) -> bool {
        self.devices.iter().any(|d| !d.connections.is_empty())
    }

    /// The latest activity of any live session or connection.
    pub fn last_seen_at(&self) -> Option<Timestamp> {
        self.devices
            .iter()
            .map(DevicePresence::latest_activity)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_are_short_plain_text() {
        assert!(ConnectionId::parse("ws-1:node.a_B").is_some());
        assert!(ConnectionId::parse(&"a".repeat(MAX_CONNECTION_ID_LEN)).is_some());
        for bad in ["", "a b", "a/b", "é", "a\n"] {
            assert!(ConnectionId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(ConnectionId::parse(&"a".repeat(MAX_CONNECTION_ID_LEN + 1)).is_none());
    }
}
