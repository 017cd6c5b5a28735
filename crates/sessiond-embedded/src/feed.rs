//! The event feed: reads of the `events` table in `seq` order after a
//! cursor (`e.<seq>`), and its retention: the floor, the newest `seq` that
//! has left the feed, which the background sweep moves up.

use rusqlite::{Connection, OptionalExtension, params};
use sessiond_engine::{
    Event, EventCursor, EventKind, EventPage, EventQuery, EventRetention, EventsFrom, SessionId,
    StoreError, Timestamp,
};

use crate::error::from_sqlite;
use crate::event_row::{EVENT_COLUMNS, RawEvent};

/// What a cursor of this store starts with.
const CURSOR_PREFIX: &str = "e.";

/// Most events one retention step moves past the floor.
pub(crate) const RETENTION_BATCH: u64 = 1000;

/// The cursor of the position right after event `seq` (never negative:
/// AUTOINCREMENT starts at 1).
fn cursor(seq: i64) -> EventCursor {
    EventCursor::numbered(CURSOR_PREFIX, u64::try_from(seq).unwrap_or_default())
}

/// The `seq` a cursor of this store names.
fn cursor_seq(cursor: &EventCursor) -> Result<i64, StoreError> {
    cursor
        .as_str()
        .strip_prefix(CURSOR_PREFIX)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| StoreError::InvalidCursor("not one of this embedded store".to_owned()))
}

/// The newest `seq` that has left the feed.
pub(crate) fn floor(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT seq FROM event_floor WHERE id = 1")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map_err(from_sqlite)
}

/// The newest `seq` ever handed out (0 before the first event), also when
/// that event has since been pruned.
fn head(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
        .map(Option::unwrap_or_default)
        .map_err(from_sqlite)
}

/// A read of the feed, in one read transaction so that the floor and the
/// rows are of one moment.
pub(crate) fn read(conn: &Connection, query: &EventQuery) -> Result<EventPage, StoreError> {
    let tx = conn.unchecked_transaction().map_err(from_sqlite)?;
    let floor = floor(&tx)?;
    let head = head(&tx)?;
    let after = match &query.from {
        EventsFrom::Oldest => floor,
        EventsFrom::Now => head,
        EventsFrom::After(c) => {
            let seq = cursor_seq(c)?;
            if seq < floor {
                return Err(StoreError::CursorExpired(format!(
                    "events after it have left the feed (past its retention); the oldest kept \
                     follows e.{floor}"
                )));
            }
            if seq > head {
                return Err(StoreError::InvalidCursor(
                    "past the newest event of this store".to_owned(),
                ));
            }
            seq
        }
    };
    let limit = i64::from(query.limit);
    let rows = match &query.user_id {
        None => collect(
            &tx,
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            params![after, limit],
        ),
        Some(user) => collect(
            &tx,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE user_id = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2"
            ),
            params![after, limit, user],
        ),
    }?;
    drop(tx);
    // Fewer than asked: every event up to the newest that the query
    // selects has been read, so the cursor moves up to the newest (past
    // other users' events too, which a filtered read does not see).
    let last = if rows.len() < query.limit as usize {
        head
    } else {
        rows.last().map_or(after, |r| r.seq)
    };
    let events = rows
        .into_iter()
        .map(decode)
        .filter(|e| e.as_ref().map_or(true, |e| query.kinds.contains(e.kind)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventPage {
        events,
        cursor: cursor(last),
    })
}

fn collect(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RawEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    stmt.query_map(params, RawEvent::read)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)
}

/// Move the floor past up to [`RETENTION_BATCH`] events that are older than
/// the retention at `now`, or past its count, and delete those of them the
/// history does not keep; returns how many it moved past.
pub(crate) fn retire_batch(
    conn: &Connection,
    retention: &EventRetention,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let old_floor = floor(conn)?;
    let by_count =
        head(conn)?.saturating_sub(i64::try_from(retention.max_events).unwrap_or(i64::MAX));
    let cutoff = sessiond_engine::history::retention_cutoff(now, retention.max_age).as_millis();
    let limit = i64::try_from(RETENTION_BATCH).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached("SELECT seq, recorded_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
        .map_err(from_sqlite)?;
    let oldest = stmt
        .query_map(params![old_floor, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)?;
    let leaving = oldest
        .iter()
        .take_while(|(seq, recorded_at)| *recorded_at < cutoff || *seq <= by_count)
        .count();
    let Some(&(new_floor, _)) = leaving.checked_sub(1).and_then(|i| oldest.get(i)) else {
        return Ok(0);
    };
    conn.prepare_cached("UPDATE event_floor SET seq = ?1 WHERE id = 1")
        .and_then(|mut s| s.execute([new_floor]))
        .map_err(from_sqlite)?;
    conn.prepare_cached(
        "DELETE FROM events WHERE seq > ?1 AND seq <= ?2
         AND kind IN ('data_updated', 'extended', 'connection_opened', 'connection_closed')",
    )
    .and_then(|mut s| s.execute([old_floor, new_floor]))
    .map_err(from_sqlite)?;
    Ok(leaving as u64)
}

/// The feed's view of an event row.
fn decode(row: RawEvent) -> Result<Event, StoreError> {
    let corrupt = |column: &str| StoreError::Corrupt(format!("event {}: column {column}", row.seq));
    Ok(Event {
        cursor: cursor(row.seq),
        at: Timestamp::from_millis(row.at),
        kind: EventKind::parse(&row.kind).ok_or_else(|| corrupt("kind"))?,
        session_id: SessionId::parse(&row.session_id).ok_or_else(|| corrupt("session_id"))?,
        reason: row.reason,
        user_id: row.user_id,
        device_kind: row.device_kind,
        ip: row.ip,
    })
}
