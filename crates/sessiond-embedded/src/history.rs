//! The `events` table, written by the write operations inside their own
//! savepoint (so an event exists exactly when its change does), and the
//! history it holds: its lifecycle events, read a page at a time newest
//! first and pruned past the retention once they have left the feed.

use std::sync::LazyLock;

use rusqlite::{Connection, Params, params};
use sessiond_engine::history::{RemovedRow, device_facts};
use sessiond_engine::{
    EventKind, HistoryEvent, HistoryKind, RevokeReason, Session, SessionId, StoreError, Timestamp,
};

use crate::error::from_sqlite;
use crate::event_row::RawEvent;

/// Most events one prune transaction deletes: as many as a sweep's batch
/// of sessions (`sweeper::SWEEP_BATCH`; a test there keeps them equal), so
/// the sweep schedule reads a full batch of either the same way.
pub(crate) const PRUNE_BATCH: u64 = 1000;

/// A page of a user's events older than `:before`, newest first: a walk
/// down the `(user_id, seq)` index that stops after `:limit` rows. The
/// history is the lifecycle kinds of the feed ([`HistoryKind::ALL`]).
pub(crate) static PAGE_SQL: LazyLock<String> = LazyLock::new(|| {
    let lifecycle: Vec<_> = HistoryKind::ALL
        .iter()
        .map(|kind| format!("'{kind}'"))
        .collect();
    format!(
        "SELECT seq, at, kind, reason, session_id, user_id, device_kind, ip
         FROM events
         WHERE user_id = :user AND seq < :before AND at >= :since
           AND kind IN ({})
         ORDER BY seq DESC
         LIMIT :limit",
        lifecycle.join(", ")
    )
});

/// Deletes up to `?2` events from before `?1` that have left the feed
/// (`seq` at most `?3`, the feed's floor), oldest first through the index
/// on `at`: the cost grows with what is pruned, not the table.
pub(crate) const PRUNE_SQL: &str = "DELETE FROM events WHERE seq IN (
        SELECT seq FROM events WHERE at < ?1 AND seq <= ?3 ORDER BY at LIMIT ?2)";

/// The session an event is about, as the event records it.
#[derive(Debug)]
pub(crate) struct Subject<'a> {
    id: &'a SessionId,
    user_id: &'a str,
    device_kind: Option<String>,
    ip: Option<String>,
}

impl<'a> Subject<'a> {
    /// A session at hand.
    pub(crate) fn of(session: &'a Session) -> Self {
        let (device_kind, ip) = device_facts(&session.device);
        Self {
            id: &session.id,
            user_id: &session.user_id,
            device_kind,
            ip,
        }
    }
}

/// Record one event, written at `now`, in the writer's open transaction.
pub(crate) fn record(
    conn: &Connection,
    now: Timestamp,
    at: Timestamp,
    kind: EventKind,
    reason: Option<&str>,
    subject: &Subject<'_>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (recorded_at, at, kind, reason, session_id, user_id, device_kind, ip)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            now.as_millis(),
            at.as_millis(),
            kind.as_str(),
            reason,
            subject.id.as_str(),
            subject.user_id,
            subject.device_kind,
            subject.ip,
        ])
    })
    .map_err(from_sqlite)?;
    Ok(())
}

/// Columns of a removed session row that [`removed_rows`] reads, for a
/// `DELETE … RETURNING`.
pub(crate) const REMOVED: &str =
    "id, user_id, device, created_at, min(expires_at, absolute_expires_at)";

/// Record the end of a removed session (see [`RemovedRow::ending`]) in the
/// writer's open transaction; its id when the stored one is well formed.
pub(crate) fn record_end(
    conn: &Connection,
    row: &RemovedRow,
    reason: &RevokeReason,
    now: Timestamp,
) -> Result<Option<SessionId>, StoreError> {
    let Some(id) = row.id() else {
        return Ok(None);
    };
    let end = row.ending(&id, reason, now);
    let subject = Subject {
        id: end.session_id,
        user_id: end.user_id,
        device_kind: end.device_kind.clone(),
        ip: end.ip.clone(),
    };
    record(
        conn,
        now,
        end.at,
        end.kind.into(),
        Some(end.reason),
        &subject,
    )?;
    Ok(Some(id))
}

/// Run a `DELETE … RETURNING` of the [`REMOVED`] columns; the rows come
/// back oldest first (by creation, then id).
pub(crate) fn removed_rows(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<RemovedRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    let mut rows = stmt
        .query_map(params, |row| {
            Ok(RemovedRow {
                raw_id: row.get(0)?,
                user_id: row.get(1)?,
                device: row.get(2)?,
                created_at: row.get(3)?,
                deadline: row.get(4)?,
            })
        })
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)?;
    RemovedRow::sort_by_creation(&mut rows);
    Ok(rows)
}

/// Up to `limit` of the user's events with `seq < before`, recorded at or
/// after `since`, newest first.
pub(crate) fn page(
    conn: &Connection,
    user_id: &str,
    limit: u32,
    before: Option<u64>,
    since: Timestamp,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(&PAGE_SQL).map_err(from_sqlite)?;
    let rows = stmt
        .query_map(
            rusqlite::named_params! {
                ":user": user_id,
                ":before": before,
                ":since": since.as_millis(),
                ":limit": i64::from(limit),
            },
            RawEvent::read,
        )
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)?;
    rows.into_iter().map(RawEvent::decode).collect()
}

impl RawEvent {
    /// The history's view of the row.
    fn decode(self) -> Result<HistoryEvent, StoreError> {
        let corrupt = |column: &str| {
            StoreError::Corrupt(format!("history event {}: column {column}", self.seq))
        };
        Ok(HistoryEvent {
            seq: u64::try_from(self.seq).map_err(|_| corrupt("seq"))?,
            at: Timestamp::from_millis(self.at),
            kind: HistoryKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?,
            session_id: SessionId::parse(&self.session_id).ok_or_else(|| corrupt("session_id"))?,
            reason: self.reason,
            user_id: self.user_id,
            device_kind: self.device_kind,
            ip: self.ip,
        })
    }
}

/// Delete up to [`PRUNE_BATCH`] events recorded before `cutoff`; returns
/// how many.
pub(crate) fn prune_batch(conn: &Connection, cutoff: Timestamp) -> Result<u64, StoreError> {
    let limit = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
    let floor = crate::feed::floor(conn)?;
    let deleted = conn
        .prepare_cached(PRUNE_SQL)
        .and_then(|mut stmt| stmt.execute(params![cutoff.as_millis(), limit, floor]))
        .map_err(from_sqlite)?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sessiond_engine::ShardTag;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::TempDir::new().unwrap();
        let conn = crate::schema::open_writer(&dir.path().join(crate::schema::DB_FILE)).unwrap();
        crate::schema::migrate(&conn).unwrap();
        (dir, conn)
    }

    fn id(user: &str) -> SessionId {
        SessionId::generate(&ShardTag::of_user(user))
    }

    fn event(conn: &Connection, at: i64, kind: HistoryKind, session: &SessionId, user: &str) {
        let subject = Subject {
            id: session,
            user_id: user,
            device_kind: Some("desktop".into()),
            ip: Some("192.0.2.1".into()),
        };
        let at = Timestamp::from_millis(at);
        record(conn, at, at, kind.into(), None, &subject).unwrap();
    }

    fn seqs(events: &[HistoryEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    const ALL_TIME: Timestamp = Timestamp::from_millis(i64::MIN);

    #[test]
    fn pages_are_per_user_newest_first_before_the_cursor() {
        let (_dir, conn) = db();
        let (a, b) = (id("alice"), id("bob"));
        for at in 1..=5 {
            event(&conn, at, HistoryKind::Created, &a, "alice");
            event(&conn, at, HistoryKind::Created, &b, "bob");
        }
        let all = page(&conn, "alice", 100, None, ALL_TIME).unwrap();
        assert_eq!(all.len(), 5);
        assert!(
            all.iter()
                .all(|e| e.user_id == "alice" && e.session_id == a)
        );
        assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        assert_eq!(all[0].at, Timestamp::from_millis(5));
        assert_eq!(all[0].device_kind.as_deref(), Some("desktop"));
        assert_eq!(all[0].ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(all[0].reason, None);

        let first = page(&conn, "alice", 2, None, ALL_TIME).unwrap();
        assert_eq!(seqs(&first), seqs(&all[..2]));
        let next = page(&conn, "alice", 2, Some(first[1].seq), ALL_TIME).unwrap();
        assert_eq!(seqs(&next), seqs(&all[2..4]));
        let last = page(&conn, "alice", 2, Some(next[1].seq), ALL_TIME).unwrap();
        assert_eq!(seqs(&last), seqs(&all[4..]));
        assert!(
            page(&conn, "alice", 2, Some(0), ALL_TIME)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            page(&conn, "alice", 9, Some(u64::MAX), ALL_TIME).unwrap(),
            all
        );
        assert!(page(&conn, "carol", 9, None, ALL_TIME).unwrap().is_empty());
        // Events before `since` are past the retention: left out.
        let recent = page(&conn, "alice", 9, None, Timestamp::from_millis(4)).unwrap();
        assert_eq!(seqs(&recent), seqs(&all[..2]));
    }

    #[test]
    fn pruning_takes_the_oldest_in_bounded_batches() {
        let (_dir, conn) = db();
        let s = id("alice");
        let total = PRUNE_BATCH + 50;
        for at in 0..total {
            event(&conn, at as i64, HistoryKind::Created, &s, "alice");
        }
        let cutoff = Timestamp::from_millis(total as i64 - 10);
        // Only what has left the feed goes.
        assert_eq!(prune_batch(&conn, cutoff).unwrap(), 0);
        conn.execute("UPDATE event_floor SET seq = ?1", [total as i64])
            .unwrap();
        assert_eq!(prune_batch(&conn, cutoff).unwrap(), PRUNE_BATCH);
        assert_eq!(prune_batch(&conn, cutoff).unwrap(), 40);
        assert_eq!(prune_batch(&conn, cutoff).unwrap(), 0);
        let left = page(&conn, "alice", 1000, None, ALL_TIME).unwrap();
        assert_eq!(left.len(), 10);
        assert!(left.iter().all(|e| e.at >= cutoff));
    }

    #[test]
    fn the_page_reads_the_columns_a_raw_event_reads() {
        assert!(PAGE_SQL.contains(crate::event_row::EVENT_COLUMNS));
    }

    #[test]
    fn the_page_reads_every_lifecycle_kind_and_no_other() {
        for kind in EventKind::ALL {
            assert_eq!(
                PAGE_SQL.contains(&format!("'{kind}'")),
                kind.in_history(),
                "{kind}"
            );
        }
    }

    #[test]
    fn the_history_is_the_lifecycle_of_the_events_table() {
        let (_dir, conn) = db();
        let s = id("alice");
        event(&conn, 1, HistoryKind::Created, &s, "alice");
        let subject = Subject {
            id: &s,
            user_id: "alice",
            device_kind: None,
            ip: None,
        };
        let at = Timestamp::from_millis(2);
        for kind in [
            EventKind::DataUpdated,
            EventKind::Extended,
            EventKind::ConnectionOpened,
        ] {
            record(&conn, at, at, kind, None, &subject).unwrap();
        }
        event(&conn, 3, HistoryKind::Revoked, &s, "alice");
        let kinds: Vec<_> = page(&conn, "alice", 10, None, ALL_TIME)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, vec![HistoryKind::Revoked, HistoryKind::Created]);
    }

    #[test]
    fn a_damaged_event_is_corrupt_not_a_panic() {
        let (_dir, conn) = db();
        event(&conn, 1, HistoryKind::Created, &id("alice"), "alice");
        conn.execute("UPDATE events SET session_id = '../x'", [])
            .unwrap();
        assert!(matches!(
            page(&conn, "alice", 10, None, ALL_TIME),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn removed_rows_end_as_revoked_or_expired_and_survive_damage() {
        let (_dir, conn) = db();
        let insert = |id: &str, device: &str, deadline: i64| {
            conn.execute(
                "INSERT INTO sessions (id, user_id, data, device, token_hash, created_at,
                                       last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms)
                 VALUES (?1, 'alice', '{}', ?2, randomblob(32), 0, 0, ?3, ?3, 1)",
                params![id, device, deadline],
            )
            .unwrap();
        };
        let (live, dead, damaged) = (id("alice"), id("alice"), id("alice"));
        insert(
            live.as_str(),
            r#"{"user_agent":null,"ip":"192.0.2.9","kind":"mobile","os":null,"browser":null}"#,
            100,
        );
        insert(dead.as_str(), "{}", 40);
        insert(damaged.as_str(), "not json", 100);
        insert("malformed-id", "{}", 100);
        let now = Timestamp::from_millis(50);
        let rows = removed_rows(
            &conn,
            &format!("DELETE FROM sessions RETURNING {REMOVED}"),
            [],
        )
        .unwrap();
        assert_eq!(rows.len(), 4);
        for row in &rows {
            record_end(&conn, row, &RevokeReason::RevokedByAdmin, now).unwrap();
        }
        let events = page(&conn, "alice", 10, None, ALL_TIME).unwrap();
        assert_eq!(events.len(), 3, "the malformed id is not recorded");
        let of = |s: &SessionId| events.iter().find(|e| e.session_id == *s).unwrap();
        let e = of(&live);
        assert_eq!(
            (e.kind, e.reason.as_deref(), e.at),
            (HistoryKind::Revoked, Some("revoked_by_admin"), now)
        );
        assert_eq!(
            (e.device_kind.as_deref(), e.ip.as_deref()),
            (Some("mobile"), Some("192.0.2.9"))
        );
        let e = of(&dead);
        assert_eq!(
            (e.kind, e.reason.as_deref(), e.at),
            (
                HistoryKind::Expired,
                Some("expired"),
                Timestamp::from_millis(40)
            )
        );
        let e = of(&damaged);
        assert_eq!(e.kind, HistoryKind::Revoked);
        assert_eq!((e.device_kind.as_deref(), e.ip.as_deref()), (None, None));
    }
}
