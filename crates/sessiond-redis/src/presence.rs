//! Decoding of the connection scripts' replies: a heartbeat's connection and
//! a user's presence. A connection is stored as a MessagePack array of its
//! node (or `false`), opened at, last seen and expires at (ms).

use redis::Value;
use serde::Deserialize;
use sessiond_engine::{
    Beaten, Connection, ConnectionBeat, ConnectionId, DevicePresence, Presence, SessionId,
    ShardTag, StoreError, Timestamp,
};

use crate::codec::{self, Reply};
use crate::record;

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// A stored connection.
#[derive(Deserialize)]
struct Packed(record::Text, i64, i64, i64);

/// The heartbeat script's reply for `beat`: the connection, or `None` when
/// its session is not live.
pub(crate) fn beaten(v: &Value, beat: &ConnectionBeat) -> Result<Option<Beaten>, StoreError> {
    let rest = match codec::tagged(v)? {
        Reply::None => return Ok(None),
        Reply::Rest(rest) => rest,
        other => return Err(corrupt(format!("unexpected reply {other:?}"))),
    };
    let [opened, node, opened_at, last_seen, expires] = rest else {
        return Err(corrupt("heartbeat reply of the wrong shape"));
    };
    let node = match node {
        Value::Nil => None,
        other => Some(codec::text(other)?.to_owned()),
    };
    Ok(Some(Beaten {
        opened: codec::integer(opened)? == 1,
        connection: Connection {
            session_id: beat.session_id.clone(),
            connection_id: beat.connection_id.clone(),
            node,
            opened_at: Timestamp::from_millis(codec::integer(opened_at)?),
            last_seen_at: Timestamp::from_millis(codec::integer(last_seen)?),
            expires_at: Timestamp::from_millis(codec::integer(expires)?),
        },
    }))
}

/// The presence script's reply about tag `tag`.
pub(crate) fn presence(v: &Value, tag: &ShardTag) -> Result<Presence, StoreError> {
    let Reply::Rest(entries) = codec::tagged(v)? else {
        return Err(corrupt("unexpected reply to a presence read"));
    };
    let mut devices = Vec::with_capacity(entries.len());
    for entry in entries {
        let items = codec::array(entry)?;
        let (raw, conns) = items
            .split_first()
            .ok_or_else(|| corrupt("empty presence entry"))?;
        let session = codec::session(raw, tag)?;
        let mut connections = Vec::with_capacity(conns.len() / 2);
        for pair in conns.chunks_exact(2) {
            connections.push(connection(&session.id, &pair[0], &pair[1])?);
        }
        connections
            .sort_by(|a, b| (a.opened_at, &a.connection_id).cmp(&(b.opened_at, &b.connection_id)));
        devices.push(DevicePresence {
            session_id: session.id,
            device: session.device,
            last_seen_at: session.last_seen_at,
            connections,
        });
    }
    Ok(Presence::of_devices(devices))
}

fn connection(
    session_id: &SessionId,
    id: &Value,
    packed: &Value,
) -> Result<Connection, StoreError> {
    let connection_id =
        ConnectionId::parse(codec::text(id)?).ok_or_else(|| corrupt("malformed connection id"))?;
    let bytes = match packed {
        Value::BulkString(b) => b.as_slice(),
        other => return Err(corrupt(format!("expected a connection, got {other:?}"))),
    };
    let Packed(node, opened_at, last_seen_at, expires_at) = rmp_serde::from_slice(bytes)
        .map_err(|e| corrupt(format!("connection {}: {e}", connection_id.as_str())))?;
    Ok(Connection {
        session_id: session_id.clone(),
        connection_id,
        node: node.0,
        opened_at: Timestamp::from_millis(opened_at),
        last_seen_at: Timestamp::from_millis(last_seen_at),
        expires_at: Timestamp::from_millis(expires_at),
    })
}
