//! The `connections` table: live connections on sessions, each with its
//! own expiry (a heartbeat moves it), their `connection_opened` and
//! `connection_closed` events, the sweep of expired ones, and presence.

use rusqlite::{Connection as Db, OptionalExtension, Row, params};
use sessiond_engine::{
    Beaten, Connection, ConnectionBeat, ConnectionId, DevicePresence, EventKind, Presence,
    SessionId, StoreError, Timestamp,
};

use crate::error::from_sqlite;
use crate::history::{self, Subject};
use crate::ops;

/// Most expired connections one sweep transaction closes.
pub(crate) const SWEEP_BATCH: u64 = 1000;

const COLUMNS: &str = "session_id, connection_id, node, opened_at, last_seen_at, expires_at";

/// Register or keep alive `beat`'s connection, if its session is live.
pub(crate) fn beat(
    db: &Db,
    beat: &ConnectionBeat,
    now: Timestamp,
) -> Result<Option<Beaten>, StoreError> {
    let Some(session) = ops::get(db, &beat.session_id, now)? else {
        return Ok(None);
    };
    let deadline = session.expires_at.min(session.absolute_expires_at);
    let ttl = i64::try_from(beat.ttl_ms).unwrap_or(i64::MAX);
    let expires_at = Timestamp::from_millis(now.as_millis().saturating_add(ttl)).min(deadline);
    let found = one(db, &beat.session_id, &beat.connection_id)?;
    let subject = Subject::of(&session);
    if let Some(old) = found.as_ref().filter(|c| c.expires_at > now) {
        db.prepare_cached(
            "UPDATE connections SET last_seen_at = ?1, expires_at = ?2, node = coalesce(?3, node)
             WHERE session_id = ?4 AND connection_id = ?5",
        )
        .and_then(|mut s| {
            s.execute(params![
                now.as_millis(),
                expires_at.as_millis(),
                beat.node,
                beat.session_id.as_str(),
                beat.connection_id.as_str(),
            ])
        })
        .map_err(from_sqlite)?;
        return Ok(Some(Beaten {
            connection: Connection {
                node: beat.node.clone().or_else(|| old.node.clone()),
                last_seen_at: now,
                expires_at,
                ..old.clone()
            },
            opened: false,
        }));
    }
    if let Some(dead) = &found {
        // Expired before the sweep came by: it closed then.
        history::record(
            db,
            now,
            dead.expires_at,
            EventKind::ConnectionClosed,
            Some("expired"),
            &subject,
        )?;
    }
    db.prepare_cached(
        "INSERT OR REPLACE INTO connections
            (session_id, connection_id, user_id, node, opened_at, last_seen_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            beat.session_id.as_str(),
            beat.connection_id.as_str(),
            session.user_id,
            beat.node,
            now.as_millis(),
            expires_at.as_millis(),
        ])
    })
    .map_err(from_sqlite)?;
    history::record(db, now, now, EventKind::ConnectionOpened, None, &subject)?;
    Ok(Some(Beaten {
        connection: Connection {
            session_id: beat.session_id.clone(),
            connection_id: beat.connection_id.clone(),
            node: beat.node.clone(),
            opened_at: now,
            last_seen_at: now,
            expires_at,
        },
        opened: true,
    }))
}

/// Close a connection; `true` if it was live.
pub(crate) fn close(
    db: &Db,
    session_id: &SessionId,
    connection_id: &ConnectionId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(found) = one(db, session_id, connection_id)? else {
        return Ok(false);
    };
    db.prepare_cached("DELETE FROM connections WHERE session_id = ?1 AND connection_id = ?2")
        .and_then(|mut s| s.execute(params![session_id.as_str(), connection_id.as_str()]))
        .map_err(from_sqlite)?;
    let live = found.expires_at > now;
    // Its session is live: a session's removal takes its connections.
    if let Some(session) = ops::get(db, session_id, now)? {
        let (at, reason) = if live {
            (now, "closed")
        } else {
            (found.expires_at, "expired")
        };
        history::record(
            db,
            now,
            at,
            EventKind::ConnectionClosed,
            Some(reason),
            &Subject::of(&session),
        )?;
    }
    Ok(live)
}

/// Close up to [`SWEEP_BATCH`] connections expired at `now`, each recorded
/// as `connection_closed` (reason `expired`, at its expiry); how many.
pub(crate) fn sweep_batch(db: &Db, now: Timestamp) -> Result<u64, StoreError> {
    let limit = i64::try_from(SWEEP_BATCH).unwrap_or(i64::MAX);
    let mut stmt = db
        .prepare_cached(&format!(
            "DELETE FROM connections WHERE (session_id, connection_id) IN (
                SELECT session_id, connection_id FROM connections
                WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)
             RETURNING {COLUMNS}"
        ))
        .map_err(from_sqlite)?;
    let closed = stmt
        .query_map(params![now.as_millis(), limit], Raw::read)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)?;
    drop(stmt);
    let mut closed: Vec<Connection> = closed.into_iter().filter_map(Raw::decode).collect();
    closed.sort_by_key(|c| c.expires_at);
    for c in &closed {
        if let Some(session) = ops::get(db, &c.session_id, now)? {
            history::record(
                db,
                now,
                c.expires_at,
                EventKind::ConnectionClosed,
                Some("expired"),
                &Subject::of(&session),
            )?;
        }
    }
    Ok(closed.len() as u64)
}

/// The user's live sessions, most recently seen first, with their live
/// connections, oldest first.
pub(crate) fn presence(db: &Db, user_id: &str, now: Timestamp) -> Result<Presence, StoreError> {
    let sessions = ops::list_user(db, user_id, now)?;
    let mut stmt = db
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM connections WHERE user_id = ?1 AND expires_at > ?2
             ORDER BY opened_at, connection_id"
        ))
        .map_err(from_sqlite)?;
    let connections: Vec<Connection> = stmt
        .query_map(params![user_id, now.as_millis()], Raw::read)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)?
        .into_iter()
        .filter_map(Raw::decode)
        .collect();
    let devices: Vec<DevicePresence> = sessions
        .into_iter()
        .map(|s| DevicePresence {
            connections: connections
                .iter()
                .filter(|c| c.session_id == s.id)
                .cloned()
                .collect(),
            session_id: s.id,
            device: s.device,
            last_seen_at: s.last_seen_at,
        })
        .collect();
    Ok(Presence::of_devices(devices))
}

/// The connection row, live or not.
fn one(
    db: &Db,
    session_id: &SessionId,
    connection_id: &ConnectionId,
) -> Result<Option<Connection>, StoreError> {
    db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM connections WHERE session_id = ?1 AND connection_id = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![session_id.as_str(), connection_id.as_str()],
            Raw::read,
        )
        .optional()
    })
    .map(|raw| raw.and_then(Raw::decode))
    .map_err(from_sqlite)
}

/// A row as SQLite returned it.
struct Raw {
    session_id: String,
    connection_id: String,
    node: Option<String>,
    opened_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

impl Raw {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            session_id: row.get(0)?,
            connection_id: row.get(1)?,
            node: row.get(2)?,
            opened_at: row.get(3)?,
            last_seen_at: row.get(4)?,
            expires_at: row.get(5)?,
        })
    }

    /// The connection; `None` (and a warning) for a damaged row, which is
    /// left out of presence rather than failing it.
    fn decode(self) -> Option<Connection> {
        let parsed =
            SessionId::parse(&self.session_id).zip(ConnectionId::parse(&self.connection_id));
        if parsed.is_none() {
            tracing::warn!("a connection row with a malformed id");
        }
        let (session_id, connection_id) = parsed?;
        Some(Connection {
            session_id,
            connection_id,
            node: self.node,
            opened_at: Timestamp::from_millis(self.opened_at),
            last_seen_at: Timestamp::from_millis(self.last_seen_at),
            expires_at: Timestamp::from_millis(self.expires_at),
        })
    }
}
