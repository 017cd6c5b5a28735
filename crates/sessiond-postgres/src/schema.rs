//! The tables in their own PostgreSQL schema (namespace), created and
//! migrated by the store itself: `schema_version` holds the version, and
//! `MIGRATIONS[n]` takes version `n` to `n + 1`, all in one transaction
//! under an advisory lock, so instances starting together migrate once.

use sessiond_engine::StoreError;
use tokio_postgres::Client;

use crate::errors::from_pg;

/// Schema version this build writes.
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Advisory lock key (class, object) that serializes migrations.
const MIGRATION_LOCK: (i32, i32) = (0x5345_5353, 1);

/// Migrations in order; `{s}` stands for the schema's quoted name.
const MIGRATIONS: [&str; 7] = [
    // Only the token's hash is kept, never the token: `token_hash` is the
    // unique key introspection reads by. The per-user index serves listing,
    // counting and eviction in `created_at, id` order; the expiry sweep
    // walks the index on the earlier deadline. Times are Unix milliseconds,
    // as the engine keeps them. JWT mode: `token_hash` holds the refresh
    // family's digest; the refresh state is the current and previous token
    // hashes, the current one wrapped under the previous, its generation and
    // issue time.
    "CREATE TABLE {s}.sessions (
        id                  text    NOT NULL PRIMARY KEY,
        user_id             text    NOT NULL,
        role                text,
        data                text    NOT NULL,
        device              text    NOT NULL,
        token_hash          bytea   NOT NULL UNIQUE,
        created_at          bigint  NOT NULL,
        last_seen_at        bigint  NOT NULL,
        expires_at          bigint  NOT NULL,
        absolute_expires_at bigint  NOT NULL,
        idle_ttl_ms         bigint  NOT NULL,
        mode                text    NOT NULL,
        refresh_hash        bytea,
        refresh_previous    bytea,
        refresh_wrapped     bytea,
        refresh_generation  bigint,
        refresh_rotated_at  bigint
     );
     CREATE INDEX sessions_by_user ON {s}.sessions (user_id, created_at, id);
     CREATE INDEX sessions_by_deadline ON {s}.sessions (LEAST(expires_at, absolute_expires_at));",
    // Lifecycle events with their reasons, written with each change: read
    // by user newest first, pruned by age.
    "CREATE TABLE {s}.history (
        seq         bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at          bigint  NOT NULL,
        kind        text    NOT NULL
                    CHECK (kind IN ('created', 'rotated', 'refreshed', 'revoked', 'expired')),
        reason      text,
        session_id  text    NOT NULL,
        user_id     text    NOT NULL,
        device_kind text,
        ip          text
     );
     CREATE INDEX history_by_user ON {s}.history (user_id, seq);
     CREATE INDEX history_by_time ON {s}.history (at);",
    // The history becomes the event feed (see `feed`): every change, the
    // lifecycle ones and data updates, extensions and connections, each
    // with the time it was written and the id of the transaction that wrote
    // it. The feed is read in `(xid, seq)` order up to the oldest
    // transaction still running, so a row can never appear behind a reader;
    // the rows from before the upgrade get xid 0 and come first, in `seq`
    // order. The history is the lifecycle kinds of it, still read by
    // `(user_id, seq)`. `event_floor` is the position of the newest event
    // that has left the feed: a reader resuming from before it has missed
    // events. The identity sequence carries over, so no `seq` comes back.
    "ALTER TABLE {s}.history RENAME TO events;
     ALTER INDEX {s}.history_pkey RENAME TO events_pkey;
     ALTER INDEX {s}.history_by_user RENAME TO events_by_user;
     ALTER INDEX {s}.history_by_time RENAME TO events_by_time;
     ALTER SEQUENCE {s}.history_seq_seq RENAME TO events_seq_seq;
     ALTER TABLE {s}.events DROP CONSTRAINT history_kind_check;
     ALTER TABLE {s}.events
        ADD COLUMN recorded_at bigint,
        ADD COLUMN xid bigint NOT NULL DEFAULT 0;
     UPDATE {s}.events SET recorded_at = at;
     ALTER TABLE {s}.events
        ALTER COLUMN recorded_at SET NOT NULL,
        ALTER COLUMN xid SET DEFAULT (pg_current_xact_id()::text)::bigint,
        ADD CONSTRAINT events_kind_check
            CHECK (kind IN ('created', 'rotated', 'refreshed', 'data_updated', 'extended',
                            'revoked', 'expired', 'connection_opened', 'connection_closed'));
     CREATE INDEX events_by_xid ON {s}.events (xid, seq);
     CREATE INDEX events_by_user_xid ON {s}.events (user_id, xid, seq);
     CREATE TABLE {s}.event_floor (
        id  integer NOT NULL PRIMARY KEY CHECK (id = 1),
        xid bigint  NOT NULL,
        seq bigint  NOT NULL
     );
     INSERT INTO {s}.event_floor (id, xid, seq) VALUES (1, 0, 0);",
    // Live connections on sessions (a WebSocket, say), each with its own
    // expiry that heartbeats move: read by user for presence, closed by the
    // sweep in expiry order. A session's connections go in the statement
    // that deletes the session, whichever one it is (revoke, eviction,
    // refresh-token reuse, the sweep): the foreign key cascades, and so
    // never leaves a connection without its session.
    "CREATE TABLE {s}.connections (
        session_id    text    NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
        connection_id text    NOT NULL,
        user_id       text    NOT NULL,
        node          text,
        opened_at     bigint  NOT NULL,
        last_seen_at  bigint  NOT NULL,
        expires_at    bigint  NOT NULL,
        PRIMARY KEY (session_id, connection_id)
     );
     CREATE INDEX connections_by_user ON {s}.connections (user_id);
     CREATE INDEX connections_by_expiry ON {s}.connections (expires_at);",
    // Each user's not-before mark (see `ops::revoke_issued_before`): a
    // create of a session older than it is refused. Written and read under
    // the user's advisory lock; swept at `expires_at`.
    "CREATE TABLE {s}.not_before (
        user_id    text   NOT NULL PRIMARY KEY,
        at         bigint NOT NULL,
        expires_at bigint NOT NULL
     );
     CREATE INDEX not_before_by_expiry ON {s}.not_before (expires_at);",
    // How and when the user last authenticated, as JSON
    // (`sessiond_engine::AuthContext`); NULL in rows written before: aal1,
    // no methods, at `created_at`.
    "ALTER TABLE {s}.sessions ADD COLUMN auth text;",
    // Step-ups and re-authentications become events (`authenticated`).
    "ALTER TABLE {s}.events
        DROP CONSTRAINT events_kind_check,
        ADD CONSTRAINT events_kind_check
            CHECK (kind IN ('created', 'rotated', 'refreshed', 'data_updated', 'extended',
                            'revoked', 'expired', 'connection_opened', 'connection_closed',
                            'authenticated'));",
];

/// Whether `name` may name the schema: a lower-case identifier that needs no
/// quoting (and so cannot smuggle SQL into the statements built from it).
pub fn valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 40
}

/// Bring `schema` to [`SCHEMA_VERSION`]. Refuses a database written by a
/// newer build.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    migrate_to(client, schema, SCHEMA_VERSION).await
}

/// Bring `schema` to `target` (tests start from an older version).
pub(crate) async fn migrate_to(
    client: &mut Client,
    schema: &str,
    target: usize,
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(|e| from_pg(&e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
    )
    .await
    .map_err(|e| from_pg(&e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer NOT NULL);"
    ))
    .await
    .map_err(|e| from_pg(&e))?;
    let row = tx
        .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .await
        .map_err(|e| from_pg(&e))?;
    let current = match row {
        Some(row) => {
            let v: i32 = row.try_get(0).map_err(|e| from_pg(&e))?;
            usize::try_from(v).ok().filter(|v| *v <= SCHEMA_VERSION).ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "postgres schema {schema} is at version {v}, which this build does not know (up to {SCHEMA_VERSION})"
                ))
            })?
        }
        None => {
            tx.execute(
                &format!("INSERT INTO {schema}.schema_version (version) VALUES (0)"),
                &[],
            )
            .await
            .map_err(|e| from_pg(&e))?;
            0
        }
    };
    for (step, sql) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        tx.batch_execute(&sql.replace("{s}", schema))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "postgres migration to version {} failed: {}",
                    step + 1,
                    from_pg(&e)
                ))
            })?;
    }
    if target > current {
        let v = i32::try_from(target).unwrap_or(i32::MAX);
        tx.execute(
            &format!("UPDATE {schema}.schema_version SET version = $1"),
            &[&v],
        )
        .await
        .map_err(|e| from_pg(&e))?;
    }
    tx.commit().await.map_err(|e| from_pg(&e))
}

/// The version `schema` is at (0 when it has no tables yet).
pub(crate) async fn version(client: &Client, schema: &str) -> Result<usize, StoreError> {
    let exists = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.schema_version")],
        )
        .await
        .map_err(|e| from_pg(&e))?;
    if !exists.try_get::<_, bool>(0).map_err(|e| from_pg(&e))? {
        return Ok(0);
    }
    let row = client
        .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .await
        .map_err(|e| from_pg(&e))?;
    Ok(row
        .and_then(|r| r.try_get::<_, i32>(0).ok())
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["sessiond", "_x", "a1_b2"] {
            assert!(valid_schema_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "A",
            "a-b",
            "a;drop",
            "a b",
            "\"a\"",
            &"a".repeat(41),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
