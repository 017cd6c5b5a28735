//! The SQL of every operation, written once for the store's schema when it
//! opens (the schema name is a checked identifier), so each text is prepared
//! once per connection and reused.
//!
//! Every change to a session also sends `pg_notify(channel, hex(token
//! hash))` in the same statement or transaction: PostgreSQL delivers it on
//! commit, and the near-cache of every instance drops that record.

use sessiond_engine::{EventKind, HistoryKind};

use crate::rows::{COLUMNS, CONNECTION_COLUMNS};

/// Columns of a removed session row, for a `DELETE … RETURNING`, in the
/// order `history::removed` reads them.
pub(crate) const REMOVED: &str =
    "id, user_id, device, created_at, LEAST(expires_at, absolute_expires_at) AS deadline";

/// Live at `$now`: every query using it binds `now` at the position given.
fn live(now: &str) -> String {
    format!("expires_at > {now} AND absolute_expires_at > {now}")
}

/// [`live`] of the sessions row named `table`.
fn live_of(table: &str, now: &str) -> String {
    format!("{table}.expires_at > {now} AND {table}.absolute_expires_at > {now}")
}

/// [`Statements::list_window`] of sessions table `t`, the window narrowed by
/// `narrow`: one walk of an index in id order, each row's columns masked
/// unless it is live and passes the filters.
fn list_window(t: &str, narrow: &str) -> String {
    let masked: Vec<String> = COLUMNS
        .split(',')
        .map(|c| format!("CASE WHEN w.hit THEN w.{} END", c.trim()))
        .collect();
    format!(
        "SELECT {}, w.id
         FROM (SELECT {COLUMNS}, {} AND ($4::bigint IS NULL OR created_at > $4)
                AND ($5::text IS NULL OR device::json ->> 'kind' = $5)
                AND ($6::text IS NULL OR device::json ->> 'ip' = $6)
                AND (NOT $7::boolean OR strpos(device::json ->> 'ip', ':') > 0) AS hit
               FROM {t} WHERE id > $1 {narrow} ORDER BY id LIMIT $2) AS w
         ORDER BY w.id",
        masked.join(", "),
        live("$3")
    )
}

/// The statements, for one schema and notification channel.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `$1` id, `$2` now.
    pub get: String,
    /// `$1` token hash, `$2` now.
    pub by_token: String,
    /// Touch if nothing changed it since it was read: `$1` id, `$2`
    /// `last_seen_at` as read, `$3` now, `$4` channel.
    pub touch: String,
    /// Serializes the user-wide operations of one user: `$1` user id.
    pub lock_user: String,
    /// `$1` user, `$2` now.
    pub count_user: String,
    /// The user's mark unless it has ended: `$1` user, `$2` now; selects `at`.
    pub not_before: String,
    /// Raise the user's mark (never lower it): `$1` user, `$2` mark, `$3`
    /// its end.
    pub set_not_before: String,
    /// Delete the user's sessions created before `$2` but `$3`: `$1` user,
    /// `$4` channel; selects the [`REMOVED`] columns.
    pub delete_user_before: String,
    /// Delete the marks ended at `$1`.
    pub sweep_not_before: String,
    /// Evict the oldest: `$1` user, `$2` now, `$3` how many, `$4` channel;
    /// selects the [`REMOVED`] columns.
    pub evict: String,
    /// `$1`..`$16` the row.
    pub insert: String,
    /// For update: `$1` id, `$2` now; selects [`COLUMNS`] and the token hash.
    pub lock_by_id: String,
    /// `$1` id, `$2` data, `$3` channel.
    pub set_data: String,
    /// Move the idle deadline of a row locked by [`Statements::lock_by_id`]:
    /// `$1` id, `$2` deadline, `$3` channel.
    pub set_expiry: String,
    /// Set the authentication context of a row locked by
    /// [`Statements::lock_by_id`]: `$1` id, `$2` context, `$3` channel.
    pub set_auth: String,
    /// For update: `$1` token hash, `$2` now; selects [`COLUMNS`] and the
    /// refresh state.
    pub lock_by_token: String,
    /// Give a new token: `$1` id, `$2` new token hash, `$3` channel, `$4`
    /// the old hash; the session becomes opaque.
    pub set_token: String,
    /// Refresh rotation: `$1` id, `$2` successor hash, `$3` wrapped,
    /// `$4` generation, `$5` now, `$6` channel.
    pub set_refresh: String,
    /// `$1` id, `$2` channel; selects the [`REMOVED`] columns.
    pub delete: String,
    /// `$1` user, `$2` excepted id or null, `$3` channel; selects the
    /// [`REMOVED`] columns.
    pub delete_user: String,
    /// `$1` user, `$2` now.
    pub list_user: String,
    /// One window of the listing of all users' sessions (see
    /// [`sessiond_engine::KeysetWalk`]): the `$2` ids after `$1` in id order
    /// (a walk of the primary key), each last in its row, after the
    /// [`COLUMNS`] of its session when that is live at `$3` and passes the
    /// filters: created after `$4`, device kind `$5`, IP text `$6` (an IPv4
    /// address has one spelling), an IPv6 IP when `$7` (the walk compares
    /// the addresses); a null filter passes all.
    pub list_window: String,
    /// [`Statements::list_window`] of one user's sessions, `$8` (a walk of
    /// the user's index).
    pub list_window_user: String,
    /// `$1` now.
    pub count_live: String,
    /// `$1` now, `$2` batch size; deletes dead rows oldest deadline first,
    /// selecting the [`REMOVED`] columns.
    pub sweep: String,
    /// Record events: `$1`..`$7` arrays of at, kind, reason, session id,
    /// user id, device kind, IP; `$8` the time they are written. Each row
    /// takes the id of the writing transaction (the column's default).
    pub record: String,
    /// A page of a user's lifecycle events: `$1` user, `$2` below this seq,
    /// `$3` at or after this time, `$4` limit.
    pub history_page: String,
    /// `$1` events before this time, `$2` batch size; only events at or
    /// below the feed's floor (which have left the feed).
    pub prune: String,
    /// A read of the feed in one snapshot: `$1`, `$2` the position to read
    /// after (null: the floor), `$3` limit. Every row holds the horizon
    /// (the snapshot's xmin), the floor and the newest `seq` handed out,
    /// then an event's columns (null when no event follows).
    pub feed: String,
    /// [`Statements::feed`] of one user: `$4` the user.
    pub feed_user: String,
    /// Serializes the retirements of this schema's events, for the rest of
    /// the transaction (an advisory lock: it writes nothing, so a
    /// retirement with nothing to do takes no transaction id).
    pub lock_retire: String,
    /// The floor: selects xid, seq.
    pub floor: String,
    /// The oldest events after the floor `$1`, `$2` whose transactions have
    /// ended, up to `$3`: xid, seq, recorded_at, and the newest `seq`
    /// handed out.
    pub retire_scan: String,
    /// `$1` xid, `$2` seq.
    pub set_floor: String,
    /// Delete the events between the old floor `$1`, `$2` (excluded) and
    /// the new one `$3`, `$4` that the history does not keep.
    pub delete_retired: String,
    /// For update: `$1` session id, `$2` connection id; selects the
    /// connection's node, opened_at, expires_at.
    pub lock_connection: String,
    /// Insert or overwrite a connection: `$1` session id, `$2` connection
    /// id, `$3` user, `$4` node, `$5` opened_at, `$6` last_seen_at, `$7`
    /// expires_at.
    pub put_connection: String,
    /// Delete a connection: `$1` session id, `$2` connection id, `$3` now;
    /// selects [`COLUMNS`] of its session when live (null otherwise), then
    /// the connection's expires_at. No row when there was none.
    pub close_connection: String,
    /// `$1` now, `$2` batch size; deletes expired connections, earliest
    /// expiry first, skipping those another transaction holds, selecting
    /// session id, connection id, expires_at, and the user id and device of
    /// the session when it is live (null otherwise).
    pub sweep_connections: String,
    /// `$1` user, `$2` now: each live session ([`COLUMNS`]), newest first
    /// (by `created_at`, then id), once per live connection (oldest first)
    /// or once with nulls when it has none, followed by the connection's
    /// [`CONNECTION_COLUMNS`].
    pub presence: String,
}

impl Statements {
    /// The statements for tables in `schema`.
    pub(crate) fn new(schema: &str) -> Self {
        let t = format!("{schema}.sessions");
        let e = format!("{schema}.events");
        let c = format!("{schema}.connections");
        let lifecycle = kind_list(HistoryKind::ALL.into_iter().map(EventKind::from));
        let notify =
            |hash: &str, channel: &str| format!("pg_notify({channel}, encode({hash}, 'hex'))");
        Self {
            get: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1 AND {}", live("$2")),
            by_token: format!(
                "SELECT {COLUMNS} FROM {t} WHERE token_hash = $1 AND {}",
                live("$2")
            ),
            touch: format!(
                "WITH u AS (
                    UPDATE {t} SET last_seen_at = $3,
                        expires_at = GREATEST(expires_at, LEAST($3 + idle_ttl_ms, absolute_expires_at))
                    WHERE id = $1 AND last_seen_at = $2 AND {}
                    RETURNING {COLUMNS}, token_hash)
                 SELECT {COLUMNS}, {} FROM u",
                live("$3"),
                notify("token_hash", "$4")
            ),
            lock_user: "SELECT pg_advisory_xact_lock(1397052243, hashtext($1))".to_owned(),
            count_user: format!(
                "SELECT count(*) FROM {t} WHERE user_id = $1 AND {}",
                live("$2")
            ),
            evict: format!(
                "WITH d AS (
                    DELETE FROM {t} WHERE id IN (
                        SELECT id FROM {t} WHERE user_id = $1 AND {}
                        ORDER BY created_at, id LIMIT $3)
                    RETURNING {REMOVED}, token_hash)
                 SELECT id, user_id, device, created_at, deadline, {} FROM d",
                live("$2"),
                notify("token_hash", "$4")
            ),
            insert: format!(
                "INSERT INTO {t} (id, user_id, role, data, device, token_hash, created_at,
                    last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms, mode,
                    refresh_hash, refresh_generation, refresh_rotated_at, auth)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            lock_by_id: format!(
                "SELECT {COLUMNS}, token_hash FROM {t} WHERE id = $1 AND {} FOR UPDATE",
                live("$2")
            ),
            set_data: format!(
                "WITH u AS (UPDATE {t} SET data = $2 WHERE id = $1 RETURNING token_hash)
                 SELECT {} FROM u",
                notify("token_hash", "$3")
            ),
            set_expiry: format!(
                "WITH u AS (UPDATE {t} SET expires_at = $2 WHERE id = $1 RETURNING token_hash)
                 SELECT {} FROM u",
                notify("token_hash", "$3")
            ),
            set_auth: format!(
                "WITH u AS (UPDATE {t} SET auth = $2 WHERE id = $1 RETURNING token_hash)
                 SELECT {} FROM u",
                notify("token_hash", "$3")
            ),
            lock_by_token: format!(
                "SELECT {COLUMNS}, refresh_hash, refresh_previous, refresh_wrapped,
                        refresh_generation, refresh_rotated_at
                 FROM {t} WHERE token_hash = $1 AND {} FOR UPDATE",
                live("$2")
            ),
            set_token: format!(
                "WITH u AS (
                    UPDATE {t} SET token_hash = $2, mode = 'opaque', refresh_hash = NULL,
                        refresh_previous = NULL, refresh_wrapped = NULL,
                        refresh_generation = NULL, refresh_rotated_at = NULL
                    WHERE id = $1 RETURNING {COLUMNS})
                 SELECT {COLUMNS}, {} FROM u",
                notify("$4::bytea", "$3")
            ),
            set_refresh: format!(
                "WITH u AS (
                    UPDATE {t} SET refresh_previous = refresh_hash, refresh_hash = $2,
                        refresh_wrapped = $3, refresh_generation = $4, refresh_rotated_at = $5,
                        last_seen_at = $5,
                        expires_at = GREATEST(expires_at, LEAST($5 + idle_ttl_ms, absolute_expires_at))
                    WHERE id = $1 RETURNING {COLUMNS}, token_hash)
                 SELECT {COLUMNS}, {} FROM u",
                notify("token_hash", "$6")
            ),
            delete: format!(
                "WITH d AS (DELETE FROM {t} WHERE id = $1 RETURNING {REMOVED}, token_hash)
                 SELECT id, user_id, device, created_at, deadline, {} FROM d",
                notify("token_hash", "$2")
            ),
            not_before: format!(
                "SELECT at FROM {schema}.not_before WHERE user_id = $1 AND expires_at > $2"
            ),
            set_not_before: format!(
                "INSERT INTO {schema}.not_before AS n (user_id, at, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET
                    at = GREATEST(n.at, excluded.at),
                    expires_at = GREATEST(n.expires_at, excluded.expires_at)"
            ),
            delete_user_before: format!(
                "WITH d AS (DELETE FROM {t} WHERE user_id = $1 AND created_at < $2
                    AND id IS DISTINCT FROM $3
                    RETURNING {REMOVED}, token_hash)
                 SELECT id, user_id, device, created_at, deadline, {} FROM d",
                notify("token_hash", "$4")
            ),
            sweep_not_before: format!("DELETE FROM {schema}.not_before WHERE expires_at <= $1"),
            delete_user: format!(
                "WITH d AS (DELETE FROM {t} WHERE user_id = $1 AND id IS DISTINCT FROM $2
                    RETURNING {REMOVED}, token_hash)
                 SELECT id, user_id, device, created_at, deadline, {} FROM d",
                notify("token_hash", "$3")
            ),
            list_user: format!(
                "SELECT {COLUMNS} FROM {t} WHERE user_id = $1 AND {}
                 ORDER BY created_at DESC, id DESC",
                live("$2")
            ),
            list_window: list_window(&t, ""),
            list_window_user: list_window(&t, "AND user_id = $8"),
            count_live: format!(
                "SELECT count(*) FROM {t} WHERE LEAST(expires_at, absolute_expires_at) > $1"
            ),
            sweep: format!(
                "DELETE FROM {t} WHERE id IN (
                    SELECT id FROM {t} WHERE LEAST(expires_at, absolute_expires_at) <= $1
                    ORDER BY LEAST(expires_at, absolute_expires_at) LIMIT $2)
                 RETURNING {REMOVED}"
            ),
            record: format!(
                "INSERT INTO {e} (recorded_at, at, kind, reason, session_id, user_id,
                    device_kind, ip)
                 SELECT $8::bigint, u.* FROM UNNEST($1::bigint[], $2::text[], $3::text[],
                    $4::text[], $5::text[], $6::text[], $7::text[]) AS u"
            ),
            history_page: format!(
                "SELECT seq, at, kind, reason, session_id, user_id, device_kind, ip
                 FROM {e}
                 WHERE user_id = $1 AND seq < $2 AND at >= $3 AND kind IN ({lifecycle})
                 ORDER BY seq DESC LIMIT $4"
            ),
            prune: format!(
                "DELETE FROM {e} WHERE seq IN (
                    SELECT seq FROM {e}
                    WHERE at < $1
                      AND (xid, seq) <= (SELECT xid, seq FROM {schema}.event_floor WHERE id = 1)
                    ORDER BY at LIMIT $2)"
            ),
            feed: feed(schema, ""),
            feed_user: feed(schema, "user_id = $4 AND "),
            lock_retire: format!(
                "SELECT pg_advisory_xact_lock({RETIRE_LOCK_CLASS}, hashtext('{schema}'))"
            ),
            floor: format!("SELECT xid, seq FROM {schema}.event_floor WHERE id = 1"),
            retire_scan: format!(
                "SELECT e.xid, e.seq, e.recorded_at, m.head
                 FROM (SELECT {HORIZON} AS horizon, {} AS head) m
                 CROSS JOIN LATERAL (
                    SELECT xid, seq, recorded_at FROM {e}
                    WHERE (xid, seq) > ($1, $2) AND xid < m.horizon
                    ORDER BY xid, seq LIMIT $3) e
                 ORDER BY e.xid, e.seq",
                head(schema)
            ),
            set_floor: format!("UPDATE {schema}.event_floor SET xid = $1, seq = $2 WHERE id = 1"),
            delete_retired: format!(
                "DELETE FROM {e}
                 WHERE (xid, seq) > ($1, $2) AND (xid, seq) <= ($3, $4) AND kind IN ({})",
                kind_list(EventKind::ALL.into_iter().filter(|k| !k.in_history()))
            ),
            lock_connection: format!(
                "SELECT node, opened_at, expires_at FROM {c}
                 WHERE session_id = $1 AND connection_id = $2 FOR UPDATE"
            ),
            put_connection: format!(
                "INSERT INTO {c} (session_id, connection_id, user_id, node, opened_at,
                    last_seen_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (session_id, connection_id) DO UPDATE SET
                    user_id = EXCLUDED.user_id, node = EXCLUDED.node,
                    opened_at = EXCLUDED.opened_at, last_seen_at = EXCLUDED.last_seen_at,
                    expires_at = EXCLUDED.expires_at"
            ),
            close_connection: format!(
                "WITH d AS (
                    DELETE FROM {c} WHERE session_id = $1 AND connection_id = $2
                    RETURNING expires_at)
                 SELECT s.*, d.expires_at
                 FROM d LEFT JOIN (SELECT {COLUMNS} FROM {t} WHERE id = $1 AND {}) s ON true",
                live("$3")
            ),
            // The rows are locked as they are selected, and a row that a
            // heartbeat moved since the statement's snapshot is checked
            // again as it is now (READ COMMITTED), so a connection kept
            // alive is never closed; the outer condition says so once more.
            // `SKIP LOCKED` leaves the rows another transaction holds (a
            // heartbeat's, a close's) to it or to the next sweep instead of
            // waiting for them.
            sweep_connections: format!(
                "WITH d AS (
                    DELETE FROM {c} WHERE (session_id, connection_id) IN (
                        SELECT session_id, connection_id FROM {c} WHERE expires_at <= $1
                        ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                      AND expires_at <= $1
                    RETURNING session_id, connection_id, expires_at)
                 SELECT d.session_id, d.connection_id, d.expires_at, s.user_id, s.device
                 FROM d LEFT JOIN {t} s ON s.id = d.session_id AND {}",
                live_of("s", "$1")
            ),
            presence: format!(
                "WITH s AS (SELECT {COLUMNS} FROM {t} WHERE user_id = $1 AND {}),
                      c AS (SELECT session_id, {CONNECTION_COLUMNS} FROM {c}
                            WHERE user_id = $1 AND expires_at > $2)
                 SELECT s.*, c.connection_id, c.node, c.opened_at, c.last_seen_at, c.expires_at
                 FROM s LEFT JOIN c ON c.session_id = s.id
                 ORDER BY s.created_at DESC, s.id DESC, c.opened_at, c.connection_id",
                live("$2")
            ),
        }
    }
}

/// Advisory lock class of retirements (the object is the schema's hash).
const RETIRE_LOCK_CLASS: i32 = 0x5345_5346;

/// The delivery horizon: the oldest transaction id still running when the
/// statement's snapshot was taken (every transaction below it has ended, so
/// no row below it can still appear).
const HORIZON: &str = "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint";

/// The newest `seq` handed out (0 before the first), also when its row is
/// gone or its transaction rolled back.
fn head(schema: &str) -> String {
    format!("COALESCE(pg_sequence_last_value('{schema}.events_seq_seq'), 0)")
}

/// A read of the feed (see [`Statements::feed`]); `user` is empty or a
/// condition on `$4` followed by `AND`.
fn feed(schema: &str, user: &str) -> String {
    format!(
        "WITH m AS (
            SELECT {HORIZON} AS horizon, f.xid AS floor_xid, f.seq AS floor_seq, {} AS head
            FROM {schema}.event_floor f WHERE f.id = 1)
         SELECT m.horizon, m.floor_xid, m.floor_seq, m.head, e.xid, e.seq, e.at, e.kind,
                e.reason, e.session_id, e.user_id, e.device_kind, e.ip
         FROM m LEFT JOIN LATERAL (
            SELECT xid, seq, at, kind, reason, session_id, user_id, device_kind, ip
            FROM {schema}.events
            WHERE {user}(xid, seq) > (COALESCE($1, m.floor_xid), COALESCE($2, m.floor_seq))
              AND xid < m.horizon
            ORDER BY xid, seq LIMIT $3) e ON true
         ORDER BY e.xid, e.seq",
        head(schema)
    )
}

/// `'a', 'b'` for an SQL `IN` list (the wire names are plain words).
fn kind_list(kinds: impl Iterator<Item = EventKind>) -> String {
    kinds
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
