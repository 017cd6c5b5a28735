//! The on-disk layout: connection settings (WAL, `synchronous=FULL`), the
//! `sessions` and `events` tables and their indexes, and migrations keyed
//! by `user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sessiond_engine::StoreError;

use crate::error::from_sqlite;

/// Name of the database file inside the store's directory.
pub(crate) const DB_FILE: &str = "sessions.db";

/// The database file and the journal files SQLite keeps beside it in WAL
/// mode.
pub(crate) fn files(dir: &Path) -> [std::path::PathBuf; 3] {
    [
        dir.join(DB_FILE),
        dir.join(format!("{DB_FILE}-wal")),
        dir.join(format!("{DB_FILE}-shm")),
    ]
}

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: more than the store uses.
const STATEMENT_CACHE: usize = 32;

/// Schema version this build writes; `PRAGMA user_version` holds it.
pub(crate) const SCHEMA_VERSION: i64 = 9;

/// Migrations in order: `MIGRATIONS[n]` takes version `n` to `n + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // Only the token's hash is kept, never the token. Expiry is swept through
    // the index on the earlier of both deadlines, so a sweep costs in
    // proportion to what it deletes; the per-user index serves listing,
    // counting and eviction in `created_at, id` order.
    "CREATE TABLE sessions (
        id                  TEXT    NOT NULL PRIMARY KEY,
        user_id             TEXT    NOT NULL,
        role                TEXT,
        data                TEXT    NOT NULL,
        device              TEXT    NOT NULL,
        token_hash          BLOB    NOT NULL UNIQUE,
        created_at          INTEGER NOT NULL,
        last_seen_at        INTEGER NOT NULL,
        expires_at          INTEGER NOT NULL,
        absolute_expires_at INTEGER NOT NULL,
        idle_ttl_ms         INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX sessions_by_user ON sessions (user_id, created_at, id);
     CREATE INDEX sessions_by_deadline ON sessions (min(expires_at, absolute_expires_at));",
    // JWT mode: `token_hash` holds the refresh family's digest; the refresh
    // state is the current and previous token hashes, the current one wrapped
    // under the previous, its generation and issue time.
    "ALTER TABLE sessions ADD COLUMN mode TEXT NOT NULL DEFAULT 'opaque';
     ALTER TABLE sessions ADD COLUMN refresh_hash BLOB;
     ALTER TABLE sessions ADD COLUMN refresh_previous BLOB;
     ALTER TABLE sessions ADD COLUMN refresh_wrapped BLOB;
     ALTER TABLE sessions ADD COLUMN refresh_generation INTEGER;
     ALTER TABLE sessions ADD COLUMN refresh_rotated_at INTEGER;",
    // Bumped by every write transaction that changes rows (see `changes`).
    "CREATE TABLE changes (
        id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
     ) STRICT;
     INSERT INTO changes (id, generation) VALUES (1, 0);",
    // Lifecycle events (see `history`), written in the same savepoint as
    // their change. AUTOINCREMENT: a `seq` is never handed out twice, even
    // after the newest events are pruned, so a cursor never skips an event.
    // Read by user in `seq` order; pruned by age through the index on `at`.
    "CREATE TABLE history (
        seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        kind        TEXT    NOT NULL
                    CHECK (kind IN ('created', 'rotated', 'refreshed', 'revoked', 'expired')),
        reason      TEXT,
        session_id  TEXT    NOT NULL,
        user_id     TEXT    NOT NULL,
        device_kind TEXT,
        ip          TEXT
     ) STRICT;
     CREATE INDEX history_by_user ON history (user_id, seq);
     CREATE INDEX history_by_time ON history (at);",
    // The history becomes the event feed (see `feed`): every change, the
    // lifecycle ones and data updates, extensions and connections, in the
    // order recorded, each with the time it was written. The history is the
    // lifecycle kinds of it. `event_floor` is the newest `seq` that has left
    // the feed: a reader resuming from before it has missed events. The
    // `seq` high-water mark carries over, so no `seq` is handed out twice.
    "CREATE TABLE events (
        seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        recorded_at INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        kind        TEXT    NOT NULL
                    CHECK (kind IN ('created', 'rotated', 'refreshed', 'data_updated', 'extended',
                                    'revoked', 'expired', 'connection_opened', 'connection_closed')),
        reason      TEXT,
        session_id  TEXT    NOT NULL,
        user_id     TEXT    NOT NULL,
        device_kind TEXT,
        ip          TEXT
     ) STRICT;
     INSERT INTO sqlite_sequence (name, seq)
        SELECT 'events', seq FROM sqlite_sequence WHERE name = 'history';
     INSERT INTO events (seq, recorded_at, at, kind, reason, session_id, user_id, device_kind, ip)
        SELECT seq, at, at, kind, reason, session_id, user_id, device_kind, ip FROM history;
     DROP TABLE history;
     CREATE INDEX events_by_user ON events (user_id, seq);
     CREATE INDEX events_by_time ON events (at);
     CREATE TABLE event_floor (
        id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL
     ) STRICT;
     INSERT INTO event_floor (id, seq) VALUES (1, 0);",
    // Live connections (see `connections`), each with its own expiry, read
    // by user for presence and swept by expiry. A session's connections go
    // in the same statement as the session, whichever write removes it.
    "CREATE TABLE connections (
        session_id    TEXT    NOT NULL,
        connection_id TEXT    NOT NULL,
        user_id       TEXT    NOT NULL,
        node          TEXT,
        opened_at     INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        PRIMARY KEY (session_id, connection_id)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX connections_by_user ON connections (user_id);
     CREATE INDEX connections_by_expiry ON connections (expires_at);
     CREATE TRIGGER a_session_takes_its_connections AFTER DELETE ON sessions
     BEGIN
        DELETE FROM connections WHERE session_id = OLD.id;
     END;",
    // Each user's not-before mark (see `ops::revoke_issued_before`): a
    // create of a session older than it is refused. Swept at `expires_at`.
    "CREATE TABLE not_before (
        user_id    TEXT    NOT NULL PRIMARY KEY,
        at         INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX not_before_by_expiry ON not_before (expires_at);",
    // How and when the user last authenticated, as JSON
    // (`sessiond_engine::AuthContext`); NULL in rows written before: aal1,
    // no methods, at `created_at`.
    "ALTER TABLE sessions ADD COLUMN auth TEXT;",
    // Step-ups and re-authentications become events (`authenticated`).
    // SQLite cannot change a CHECK in place: the table is rebuilt, every
    // event keeps its `seq`, and the `seq` high-water mark carries over
    // (it may be past the newest event left), so no `seq` is reused.
    "CREATE TABLE events_v9 (
        seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        recorded_at INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        kind        TEXT    NOT NULL
                    CHECK (kind IN ('created', 'rotated', 'refreshed', 'data_updated', 'extended',
                                    'revoked', 'expired', 'connection_opened', 'connection_closed',
                                    'authenticated')),
        reason      TEXT,
        session_id  TEXT    NOT NULL,
        user_id     TEXT    NOT NULL,
        device_kind TEXT,
        ip          TEXT
     ) STRICT;
     INSERT INTO events_v9 (seq, recorded_at, at, kind, reason, session_id, user_id, device_kind, ip)
        SELECT seq, recorded_at, at, kind, reason, session_id, user_id, device_kind, ip FROM events;
     DELETE FROM sqlite_sequence WHERE name = 'events_v9';
     UPDATE sqlite_sequence SET name = 'events_v9' WHERE name = 'events';
     DROP TABLE events;
     ALTER TABLE events_v9 RENAME TO events;
     CREATE INDEX events_by_user ON events (user_id, seq);
     CREATE INDEX events_by_time ON events (at);",
];

/// Open the connection that does every write, in WAL mode with full syncs.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(from_sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(from_sqlite)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(from_sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "sqlite refused WAL mode for {} (got {mode})",
            path.display()
        )));
    }
    // FULL: a commit is on disk (WAL fsynced) before it returns.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(from_sqlite)?;
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(from_sqlite)?;
    Ok(conn)
}

/// Open a connection that only reads.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(from_sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(from_sqlite)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "query_only", true)
        .map_err(from_sqlite)?;
    Ok(conn)
}

/// Bring the schema to [`SCHEMA_VERSION`], in one transaction. Refuses a
/// database written by a newer build.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(from_sqlite)?;
    let outcome = migrate_in_transaction(conn);
    let end = if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = conn.execute_batch(end).map_err(from_sqlite);
    outcome.and(ended)
}

fn migrate_in_transaction(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(from_sqlite)?;
    let start = usize::try_from(version)
        .ok()
        .filter(|v| *v <= MIGRATIONS.len())
        .ok_or_else(|| {
            StoreError::Unavailable(format!(
                "database schema version {version} is not one this build knows (up to {SCHEMA_VERSION})"
            ))
        })?;
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        conn.execute_batch(sql).map_err(from_sqlite)?;
        tracing::info!(version = step + 1, "embedded store schema migrated");
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(from_sqlite)
}

/// Make the directory entries of files created in `dir` durable. Some file
/// systems cannot sync a directory; that is logged, not fatal.
pub(crate) fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot sync directory");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fresh() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::TempDir::new().unwrap();
        let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
        (dir, conn)
    }

    /// A database as a build of schema `version` left it.
    fn at_version(version: usize) -> (tempfile::TempDir, Connection) {
        let (dir, conn) = fresh();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", i64::try_from(version).unwrap())
            .unwrap();
        (dir, conn)
    }

    #[test]
    fn migration_is_idempotent_and_sets_the_version() {
        let (_dir, conn) = fresh();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn a_version_1_database_upgrades_and_keeps_its_rows() {
        let (_dir, conn) = at_version(1);
        conn.execute(
            "INSERT INTO sessions VALUES ('i', 'u', NULL, '{}', '{}', x'00', 1, 2, 3, 4, 5)",
            [],
        )
        .unwrap();
        migrate(&conn).unwrap();
        let (mode, refresh): (String, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT mode, refresh_hash FROM sessions WHERE id = 'i'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((mode.as_str(), refresh), ("opaque", None));
    }

    #[test]
    fn a_version_3_database_upgrades_keeps_its_rows_and_gains_history() {
        let (_dir, conn) = at_version(3);
        conn.execute(
            "INSERT INTO sessions (id, user_id, data, device, token_hash, created_at,
                                   last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms)
             VALUES ('i', 'u', '{}', '{}', x'00', 1, 2, 3, 4, 5)",
            [],
        )
        .unwrap();
        assert!(
            conn.prepare("SELECT seq FROM events").is_err(),
            "no history before the upgrade"
        );
        migrate(&conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let kept: String = conn
            .query_row("SELECT user_id FROM sessions WHERE id = 'i'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, "u");
        let events: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 0, "history starts with the upgrade");
        // The table takes only the known kinds.
        let insert = |kind: &str| {
            conn.execute(
                "INSERT INTO events (recorded_at, at, kind, session_id, user_id)
                 VALUES (1, 1, ?1, 's', 'u')",
                [kind],
            )
        };
        insert("created").unwrap();
        insert("data_updated").unwrap();
        assert!(insert("updated").is_err());
    }

    #[test]
    fn a_version_4_history_becomes_the_event_feed_with_its_seqs() {
        let (_dir, conn) = at_version(4);
        for seq in 1..=3 {
            conn.execute(
                "INSERT INTO history (at, kind, reason, session_id, user_id)
                 VALUES (?1, 'revoked', 'logout', 's', 'u')",
                [seq * 10],
            )
            .unwrap();
        }
        // The newest is pruned: its seq must still never come back.
        conn.execute("DELETE FROM history WHERE seq = 3", [])
            .unwrap();
        migrate(&conn).unwrap();
        let rows: Vec<(i64, i64, i64, String)> = conn
            .prepare("SELECT seq, recorded_at, at, reason FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, 10, 10, "logout".to_owned()),
                (2, 20, 20, "logout".to_owned())
            ]
        );
        let next: i64 = conn
            .query_row(
                "INSERT INTO events (recorded_at, at, kind, session_id, user_id)
                 VALUES (1, 1, 'created', 's', 'u') RETURNING seq",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(next, 4);
        let floor: i64 = conn
            .query_row("SELECT seq FROM event_floor", [], |r| r.get(0))
            .unwrap();
        assert_eq!(floor, 0);
    }

    #[test]
    fn a_version_8_feed_takes_authenticated_events_and_keeps_its_seqs() {
        let (_dir, conn) = at_version(8);
        let insert = |kind: &str| {
            conn.query_row(
                "INSERT INTO events (recorded_at, at, kind, reason, session_id, user_id, ip)
                 VALUES (5, 7, ?1, 'why', 's', 'u', '192.0.2.1') RETURNING seq",
                [kind],
                |r| r.get::<_, i64>(0),
            )
        };
        assert!(insert("authenticated").is_err(), "not a version 8 kind");
        for _ in 0..3 {
            insert("revoked").unwrap();
        }
        // The newest is pruned: its seq must still never come back.
        conn.execute("DELETE FROM events WHERE seq = 3", [])
            .unwrap();
        migrate(&conn).unwrap();
        let rows: Vec<(i64, i64, i64, String, String, Option<String>)> = conn
            .prepare("SELECT seq, recorded_at, at, kind, reason, ip FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let kept = |seq| {
            (
                seq,
                5,
                7,
                "revoked".to_owned(),
                "why".to_owned(),
                Some("192.0.2.1".to_owned()),
            )
        };
        assert_eq!(rows, vec![kept(1), kept(2)]);
        assert_eq!(insert("authenticated").unwrap(), 4);
        assert!(insert("stepped_up").is_err(), "still only the known kinds");
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(indexes, ["events_by_time", "events_by_user"]);
    }

    #[test]
    fn event_seqs_are_never_reused_after_pruning() {
        let (_dir, conn) = fresh();
        migrate(&conn).unwrap();
        let insert = || {
            conn.query_row(
                "INSERT INTO events (recorded_at, at, kind, session_id, user_id)
                 VALUES (1, 1, 'created', 's', 'u') RETURNING seq",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        };
        let first = insert();
        let second = insert();
        conn.execute("DELETE FROM events", []).unwrap();
        assert!(insert() > second && second > first);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (_dir, conn) = fresh();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&conn), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn sweeps_and_user_queries_use_their_indexes() {
        let (_dir, conn) = fresh();
        migrate(&conn).unwrap();
        let plan = |sql: &str| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let sweep = plan(
            crate::sweeper::SWEEP_SQL
                .replace("?1", "0")
                .replace("?2", "10")
                .as_str(),
        );
        assert!(sweep.contains("sessions_by_deadline"), "{sweep}");
        let list = plan(
            "SELECT id FROM sessions WHERE user_id = 'u' AND expires_at > 0 \
             ORDER BY created_at DESC, id DESC",
        );
        assert!(
            list.contains("sessions_by_user") && !list.contains("TEMP B-TREE"),
            "{list}"
        );
        // A page of history walks the user's index backwards from the
        // cursor: no scan, no sort.
        let page = plan(
            &crate::history::PAGE_SQL
                .replace(":user", "'u'")
                .replace(":before", "100")
                .replace(":since", "0")
                .replace(":limit", "10"),
        );
        assert!(
            page.contains("SEARCH events USING INDEX events_by_user (user_id=? AND seq<?)")
                && !page.contains("TEMP B-TREE"),
            "{page}"
        );
        let prune = plan(
            &crate::history::PRUNE_SQL
                .replace("?1", "0")
                .replace("?2", "10")
                .replace("?3", "5"),
        );
        assert!(
            prune.contains("events_by_time") && !prune.contains("SCAN events"),
            "{prune}"
        );
    }
}
