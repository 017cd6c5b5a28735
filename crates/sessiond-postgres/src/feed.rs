//! The event feed: reads of the `events` table in `(xid, seq)` order after a
//! cursor (`p.<xid>.<seq>`), up to the oldest transaction still running, and
//! its retention: the floor, the position of the newest retired event.

use std::fmt;

use deadpool_postgres::{Client, GenericClient};
use sessiond_engine::history::retention_cutoff;
use sessiond_engine::{
    Event, EventCursor, EventKind, EventPage, EventQuery, EventRetention, EventsFrom, SessionId,
    StoreError, Timestamp,
};
use tokio_postgres::Row;

use crate::errors::from_pg;
use crate::ops::{Outcome, rows};
use crate::statements::Statements;

/// What a cursor of this store starts with.
const CURSOR_PREFIX: &str = "p.";

/// Most events one retention step moves past the floor.
pub(crate) const RETENTION_BATCH: u64 = 1000;

/// A place in the feed: right after the event written as `seq` by the
/// transaction `xid`. `(horizon, 0)` is right before every event of the
/// transactions from `horizon` on (a `seq` is never below 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    xid: i64,
    seq: i64,
}

impl Position {
    fn cursor(self) -> EventCursor {
        EventCursor::numbered(
            &format!("{CURSOR_PREFIX}{}.", self.xid),
            u64::try_from(self.seq).unwrap_or_default(),
        )
    }

    /// The position a cursor of this store names; only the exact text this
    /// store writes is one.
    fn parse(cursor: &EventCursor) -> Result<Self, StoreError> {
        let text = cursor.as_str();
        text.strip_prefix(CURSOR_PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(xid, seq)| {
                Some(Self {
                    xid: xid.parse().ok()?,
                    seq: seq.parse().ok()?,
                })
            })
            .filter(|p| p.xid >= 0 && p.seq >= 0 && p.to_string() == text)
            .ok_or_else(|| StoreError::InvalidCursor("not one of this PostgreSQL store".to_owned()))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CURSOR_PREFIX}{}.{}", self.xid, self.seq)
    }
}

/// A read of the feed: one statement, so the horizon, the floor and the
/// rows are of one snapshot. Only events of transactions below the horizon
/// (the snapshot's oldest running transaction) are read: every transaction
/// below it has ended, so no event can later appear before the cursor
/// handed out. [`EventsFrom::Now`] is the position `(horizon, 0)`: after it
/// come exactly the events not yet readable, those of transactions that
/// are running, that ended after an older one still running, or that have
/// not started.
pub(crate) async fn read(
    c: &impl GenericClient,
    sql: &Statements,
    query: &EventQuery,
) -> Outcome<EventPage> {
    let asked = match &query.from {
        EventsFrom::After(cursor) => Some(Position::parse(cursor)?),
        EventsFrom::Oldest | EventsFrom::Now => None,
    };
    // `Now` reads no rows: none can follow it yet.
    let limit = match query.from {
        EventsFrom::Now => 0,
        _ => i64::from(query.limit),
    };
    let (xid, seq) = (asked.map(|p| p.xid), asked.map(|p| p.seq));
    let found = match &query.user_id {
        None => rows(c, &sql.feed, &[&xid, &seq, &limit]).await?,
        Some(user) => rows(c, &sql.feed_user, &[&xid, &seq, &limit, user]).await?,
    };
    let first = found
        .first()
        .ok_or_else(|| StoreError::Corrupt("the event floor has no row".to_owned()))?;
    let number = |i: usize, column: &str| {
        first
            .try_get::<_, i64>(i)
            .map_err(|e| StoreError::Corrupt(format!("event feed: bad {column}: {e}")))
    };
    let horizon = number(0, "horizon")?;
    let floor = Position {
        xid: number(1, "floor xid")?,
        seq: number(2, "floor seq")?,
    };
    let head = number(3, "newest seq")?;
    let now = Position {
        xid: horizon,
        seq: 0,
    };
    let after = match (&query.from, asked) {
        (EventsFrom::Now, _) => now,
        (_, None) => floor,
        (_, Some(p)) if p < floor => {
            return Err(StoreError::CursorExpired(format!(
                "events after it have left the feed (past its retention); the oldest kept \
                 follows {floor}"
            ))
            .into());
        }
        (_, Some(p)) if p > now || p.seq > head => {
            return Err(StoreError::InvalidCursor(
                "past the newest event of this store".to_owned(),
            )
            .into());
        }
        (_, Some(p)) => p,
    };
    let mut last = after;
    let mut events = Vec::new();
    let mut read = 0;
    for row in &found {
        let Some(event) = FeedRow::read(row)? else {
            continue;
        };
        read += 1;
        last = event.position;
        let event = event.decode()?;
        if query.kinds.contains(event.kind) {
            events.push(event);
        }
    }
    // Fewer than asked: every event before the horizon that the query
    // selects has been read, so the cursor moves up to the horizon (past
    // other users' events too, which a filtered read does not see).
    if read < limit && last < now {
        last = now;
    }
    Ok(EventPage {
        events,
        cursor: last.cursor(),
    })
}

/// Move the floor past up to [`RETENTION_BATCH`] events, oldest first, that
/// were recorded before the retention at `now` or lie beyond its count, and
/// delete those of them the history does not keep; returns how many it
/// moved past. One transaction under the schema's retirement lock, so
/// retirements run one at a time; only events of ended transactions are
/// retired, so none can appear behind the floor.
pub(crate) async fn retire_batch(
    c: &mut Client,
    sql: &Statements,
    retention: &EventRetention,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let tx = c.transaction().await.map_err(|e| from_pg(&e))?;
    let number = |row: &Row, i: usize| row.try_get::<_, i64>(i).map_err(|e| from_pg(&e));
    // One after the other: the floor is read once the lock is held.
    tx.execute(&sql.lock_retire, &[])
        .await
        .map_err(|e| from_pg(&e))?;
    let floor_row = tx
        .query_one(&sql.floor, &[])
        .await
        .map_err(|e| from_pg(&e))?;
    let old_floor = Position {
        xid: number(&floor_row, 0)?,
        seq: number(&floor_row, 1)?,
    };
    let batch = i64::try_from(RETENTION_BATCH).unwrap_or(i64::MAX);
    let oldest = tx
        .query(&sql.retire_scan, &[&old_floor.xid, &old_floor.seq, &batch])
        .await
        .map_err(|e| from_pg(&e))?;
    let cutoff = retention_cutoff(now, retention.max_age).as_millis();
    let max_events = i64::try_from(retention.max_events).unwrap_or(i64::MAX);
    let mut new_floor = None;
    let mut leaving = 0;
    for row in &oldest {
        let (seq, recorded_at, head) = (number(row, 1)?, number(row, 2)?, number(row, 3)?);
        // Beyond the count: more than `max_events` were handed out after it.
        if recorded_at >= cutoff && seq > head.saturating_sub(max_events) {
            break;
        }
        new_floor = Some(Position {
            xid: number(row, 0)?,
            seq,
        });
        leaving += 1;
    }
    let Some(new_floor) = new_floor else {
        tx.commit().await.map_err(|e| from_pg(&e))?;
        return Ok(0);
    };
    tx.execute(&sql.set_floor, &[&new_floor.xid, &new_floor.seq])
        .await
        .map_err(|e| from_pg(&e))?;
    tx.execute(
        &sql.delete_retired,
        &[
            &old_floor.xid,
            &old_floor.seq,
            &new_floor.xid,
            &new_floor.seq,
        ],
    )
    .await
    .map_err(|e| from_pg(&e))?;
    tx.commit().await.map_err(|e| from_pg(&e))?;
    Ok(leaving)
}

/// An event of a [`Statements::feed`] row, not yet checked.
struct FeedRow {
    position: Position,
    at: i64,
    kind: String,
    reason: Option<String>,
    session_id: String,
    user_id: String,
    device_kind: Option<String>,
    ip: Option<String>,
}

impl FeedRow {
    /// The event of a row; `None` when the row holds only the horizon and
    /// the floor (nothing followed).
    fn read(row: &Row) -> Result<Option<Self>, StoreError> {
        let (xid, seq) = (row.try_get::<_, Option<i64>>(4), row.try_get(5));
        let (Some(xid), Some(seq)) = (
            xid.map_err(|e| bad_event("an event", "xid", &e))?,
            seq.map_err(|e| bad_event("an event", "seq", &e))?,
        ) else {
            return Ok(None);
        };
        let position = Position { xid, seq };
        let at = format!("event {position}");
        let text = |i: usize, name: &str| {
            row.try_get::<_, String>(i)
                .map_err(|e| bad_event(&at, name, &e))
        };
        let optional = |i: usize, name: &str| {
            row.try_get::<_, Option<String>>(i)
                .map_err(|e| bad_event(&at, name, &e))
        };
        Ok(Some(Self {
            position,
            at: row.try_get(6).map_err(|e| bad_event(&at, "at", &e))?,
            kind: text(7, "kind")?,
            reason: optional(8, "reason")?,
            session_id: text(9, "session_id")?,
            user_id: text(10, "user_id")?,
            device_kind: optional(11, "device_kind")?,
            ip: optional(12, "ip")?,
        }))
    }

    fn decode(self) -> Result<Event, StoreError> {
        let position = self.position;
        let corrupt = |column: &str| StoreError::Corrupt(format!("event {position}: bad {column}"));
        if position.xid < 0 || position.seq < 1 {
            return Err(corrupt("position"));
        }
        Ok(Event {
            cursor: position.cursor(),
            at: Timestamp::from_millis(self.at),
            kind: EventKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?,
            session_id: SessionId::parse(&self.session_id).ok_or_else(|| corrupt("session_id"))?,
            reason: self.reason,
            user_id: self.user_id,
            device_kind: self.device_kind,
            ip: self.ip,
        })
    }
}

fn bad_event(at: &str, column: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(format!("{at}: bad {column}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Position, StoreError> {
        let cursor = EventCursor::parse(text)
            .ok_or_else(|| StoreError::InvalidCursor("not a cursor at all".to_owned()))?;
        Position::parse(&cursor)
    }

    #[test]
    fn cursors_round_trip_and_only_their_exact_text_parses() {
        for (xid, seq) in [(0, 0), (0, 7), (731, 4), (i64::MAX, i64::MAX)] {
            let p = Position { xid, seq };
            assert_eq!(p.cursor().as_str(), format!("p.{xid}.{seq}"));
            assert_eq!(parse(p.cursor().as_str()).ok(), Some(p));
        }
        for bad in [
            "p.1",
            "p.1.",
            "p..1",
            "p.1.2.3",
            "e.1",
            "P.1.2",
            "p.-1.2",
            "p.1.-2",
            "p.+1.2",
            "p.01.2",
            "p.1.02",
            "p.1.2x",
            "p.9223372036854775808.1",
            "p.1.2 ",
        ] {
            assert!(
                matches!(parse(bad), Err(StoreError::InvalidCursor(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn positions_order_by_transaction_then_seq() {
        let p = |xid, seq| Position { xid, seq };
        // A later transaction's event comes after, whatever its seq.
        assert!(p(10, 99) < p(11, 1));
        assert!(p(10, 1) < p(10, 2));
        // The horizon position follows every event of earlier transactions
        // and precedes every event of its own.
        assert!(p(10, i64::MAX) < p(11, 0) && p(11, 0) < p(11, 1));
    }
}
