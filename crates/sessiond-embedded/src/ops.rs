//! The SQL of each store operation, as functions on one connection. Writes
//! run on the writer thread inside its transaction (one savepoint each), so a
//! read-modify-write here is atomic; reads run on any reader.

use rusqlite::{Connection, OptionalExtension, Params, params};
use sessiond_engine::{
    Authentication, DataUpdate, EventKind, IssuedBefore, LimitPolicy, Mode, NewSession,
    RefreshOutcome, RefreshRequest, RefreshState, RefreshStep, RevokeReason, RotateTarget, Session,
    SessionId, StoreError, Timestamp, TokenDigest, TokenHash, TouchRule, data_size,
};

use crate::codec::{self, COLUMNS, RawRow};
use crate::error::from_sqlite;
use crate::history::{self, REMOVED, Subject};
use sessiond_engine::store::json_text;

/// Condition of a live row; every query using it binds `:now`.
const LIVE: &str = "expires_at > :now AND absolute_expires_at > :now";

fn one(conn: &Connection, sql: &str, params: impl Params) -> Result<Option<Session>, StoreError> {
    let raw = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, RawRow::read).optional())
        .map_err(from_sqlite)?;
    raw.map(RawRow::decode).transpose()
}

fn many(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<Session>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    let raws = stmt
        .query_map(params, RawRow::read)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(from_sqlite)?;
    raws.into_iter().map(RawRow::decode).collect()
}

/// The live session with this id.
pub(crate) fn get(
    conn: &Connection,
    id: &SessionId,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = :id AND {LIVE}");
    one(
        conn,
        &sql,
        rusqlite::named_params! {":id": id.as_str(), ":now": now.as_millis()},
    )
}

/// The live session whose token has this digest.
pub(crate) fn by_token(
    conn: &Connection,
    token: &TokenDigest,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE token_hash = :hash AND {LIVE}");
    let found = one(
        conn,
        &sql,
        rusqlite::named_params! {":hash": &token.hash.as_bytes()[..], ":now": now.as_millis()},
    )?;
    // A token names its owner's shard; one that disagrees with the session
    // it hashes to is not that session's token.
    Ok(found.filter(|s| s.id.shard() == token.shard))
}

/// Introspection that records activity: re-reads the session (it may have
/// been revoked or rotated since a reader saw it) and touches it if due.
pub(crate) fn introspect_touch(
    conn: &Connection,
    token: &TokenDigest,
    rule: TouchRule,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let Some(mut s) = by_token(conn, token, now)? else {
        return Ok(None);
    };
    if s.touch_due(rule, now) {
        s.expires_at = s.slid_deadline(s.idle_ttl_ms, now);
        s.last_seen_at = now;
        conn.prepare_cached("UPDATE sessions SET last_seen_at = ?1, expires_at = ?2 WHERE id = ?3")
            .and_then(|mut stmt| {
                stmt.execute(params![
                    now.as_millis(),
                    s.expires_at.as_millis(),
                    s.id.as_str()
                ])
            })
            .map_err(from_sqlite)?;
    }
    Ok(Some(s))
}

/// Insert a session within the user's limit; returns the evicted ids.
/// History: `revoked` (`evicted_max_sessions`) per eviction, then `created`.
pub(crate) fn create(
    conn: &Connection,
    new: &NewSession,
    now: Timestamp,
) -> Result<Vec<SessionId>, StoreError> {
    let s = &new.session;
    if not_before(conn, &s.user_id, now)?.is_some_and(|mark| s.created_at < mark) {
        return Err(StoreError::IssuedBeforeRevocation);
    }
    let live = count_user(conn, &s.user_id, now)?;
    let max = u64::from(new.max_sessions);
    let mut evicted = Vec::new();
    if live >= max {
        if new.limit_policy == LimitPolicy::Reject {
            return Err(StoreError::LimitReached {
                max: new.max_sessions,
            });
        }
        let excess = i64::try_from(live - max + 1).unwrap_or(i64::MAX);
        let sql = format!(
            "DELETE FROM sessions WHERE id IN (
                SELECT id FROM sessions WHERE user_id = :user AND {LIVE}
                ORDER BY created_at, id LIMIT :excess)
             RETURNING {REMOVED}"
        );
        let rows = history::removed_rows(
            conn,
            &sql,
            rusqlite::named_params! {":user": s.user_id, ":now": now.as_millis(), ":excess": excess},
        )?;
        for row in rows {
            evicted.extend(history::record_end(
                conn,
                &row,
                &RevokeReason::EvictedMaxSessions,
                now,
            )?);
        }
    }
    let data = json_text("data", &s.data)?;
    let device = json_text("device", &s.device)?;
    let auth = json_text("auth", &s.auth)?;
    conn.prepare_cached(
        "INSERT INTO sessions (id, user_id, role, data, device, token_hash, created_at, last_seen_at,
                               expires_at, absolute_expires_at, idle_ttl_ms, mode, refresh_hash,
                               refresh_generation, refresh_rotated_at, auth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            s.id.as_str(),
            s.user_id,
            s.role,
            data,
            device,
            &new.token.hash.as_bytes()[..],
            s.created_at.as_millis(),
            s.last_seen_at.as_millis(),
            s.expires_at.as_millis(),
            s.absolute_expires_at.as_millis(),
            codec::millis(s.idle_ttl_ms),
            s.mode.as_str(),
            new.refresh.as_ref().map(|h| &h.as_bytes()[..]),
            new.refresh.as_ref().map(|_| 0_i64),
            new.refresh.as_ref().map(|_| s.created_at.as_millis()),
            auth,
        ])
    })
    .map_err(from_sqlite)?;
    history::record(conn, now, now, EventKind::Created, None, &Subject::of(s))?;
    Ok(evicted)
}

/// Apply a data update if the result fits in `max_bytes`. Event:
/// `data_updated`.
pub(crate) fn update_data(
    conn: &Connection,
    id: &SessionId,
    update: &DataUpdate,
    max_bytes: usize,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let Some(mut s) = get(conn, id, now)? else {
        return Ok(None);
    };
    update.apply_to(&mut s.data);
    let size = data_size(&s.data);
    if size > max_bytes {
        return Err(StoreError::DataTooLarge {
            size,
            max: max_bytes,
        });
    }
    let text = json_text("data", &s.data)?;
    conn.prepare_cached("UPDATE sessions SET data = ?1 WHERE id = ?2")
        .and_then(|mut stmt| stmt.execute(params![text, s.id.as_str()]))
        .map_err(from_sqlite)?;
    history::record(
        conn,
        now,
        now,
        EventKind::DataUpdated,
        None,
        &Subject::of(&s),
    )?;
    Ok(Some(s))
}

/// Slide the idle deadline by `idle_ttl_ms` (default: the session's own idle
/// timeout) from `now`, within the absolute one. Event: `extended`, when
/// the deadline moved.
pub(crate) fn extend(
    conn: &Connection,
    id: &SessionId,
    idle_ttl_ms: Option<u64>,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let Some(mut s) = get(conn, id, now)? else {
        return Ok(None);
    };
    let expires_at = s.slid_deadline(idle_ttl_ms.unwrap_or(s.idle_ttl_ms), now);
    if expires_at != s.expires_at {
        s.expires_at = expires_at;
        conn.prepare_cached("UPDATE sessions SET expires_at = ?1 WHERE id = ?2")
            .and_then(|mut stmt| stmt.execute(params![expires_at.as_millis(), s.id.as_str()]))
            .map_err(from_sqlite)?;
        history::record(conn, now, now, EventKind::Extended, None, &Subject::of(&s))?;
    }
    Ok(Some(s))
}

/// Record a new authentication ([`sessiond_engine::AuthContext::after`]).
/// Event: `authenticated`, reason the method.
pub(crate) fn authenticate(
    conn: &Connection,
    id: &SessionId,
    auth: &Authentication,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let Some(mut s) = get(conn, id, now)? else {
        return Ok(None);
    };
    s.auth = s.auth.after(auth, now);
    let text = json_text("auth", &s.auth)?;
    conn.prepare_cached("UPDATE sessions SET auth = ?1 WHERE id = ?2")
        .and_then(|mut stmt| stmt.execute(params![text, s.id.as_str()]))
        .map_err(from_sqlite)?;
    history::record(
        conn,
        now,
        now,
        EventKind::Authenticated,
        Some(&auth.method),
        &Subject::of(&s),
    )?;
    Ok(Some(s))
}

/// Give the target session a new token hash. History: `rotated`.
pub(crate) fn rotate(
    conn: &Connection,
    target: &RotateTarget,
    new_token: &TokenHash,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let found = match target {
        RotateTarget::Id(id) => get(conn, id, now)?,
        // Compare-and-swap: found only while this is still the current token;
        // the writer runs one operation at a time, so one rotation wins.
        RotateTarget::Token(token) => by_token(conn, token, now)?,
    };
    let Some(mut s) = found else {
        return Ok(None);
    };
    // A JWT-mode session becomes opaque: its refresh family ends.
    conn.prepare_cached(
        "UPDATE sessions SET token_hash = ?1, mode = 'opaque', refresh_hash = NULL,
                refresh_previous = NULL, refresh_wrapped = NULL, refresh_generation = NULL,
                refresh_rotated_at = NULL
         WHERE id = ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![&new_token.as_bytes()[..], s.id.as_str()]))
    .map_err(from_sqlite)?;
    s.mode = Mode::Opaque;
    history::record(conn, now, now, EventKind::Rotated, None, &Subject::of(&s))?;
    Ok(Some(s))
}

/// Rotate a JWT-mode session's refresh token (see [`RefreshOutcome`]).
/// History: `refreshed` on a rotation, `revoked` (`refresh_token_reuse`) on
/// reuse, nothing on a grace replay.
pub(crate) fn refresh(
    conn: &Connection,
    req: &RefreshRequest,
    now: Timestamp,
) -> Result<RefreshOutcome, StoreError> {
    let Some(mut s) = by_token(conn, &req.family, now)? else {
        return Ok(RefreshOutcome::Unknown);
    };
    if s.mode != Mode::Jwt {
        return Ok(RefreshOutcome::Unknown);
    }
    let state = conn
        .prepare_cached(
            "SELECT refresh_hash, refresh_previous, refresh_wrapped, refresh_generation,
                    refresh_rotated_at
             FROM sessions WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([s.id.as_str()], |r| {
                Ok((
                    r.get::<_, Option<Vec<u8>>>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
        })
        .map_err(from_sqlite)?;
    let (current, previous, wrapped, generation, rotated_at) = state;
    let state = RefreshState::from_columns(current, previous, wrapped, generation, rotated_at)
        .map_err(|what| {
            StoreError::Corrupt(format!("session {}: bad refresh {what}", s.id.as_str()))
        })?;
    match state.step(req, now) {
        RefreshStep::Rotate { generation } => {
            s.last_seen_at = now;
            s.expires_at = s.slid_deadline(s.idle_ttl_ms, now);
            conn.prepare_cached(
                "UPDATE sessions SET refresh_previous = refresh_hash, refresh_hash = ?1,
                        refresh_wrapped = ?2, refresh_generation = ?3, refresh_rotated_at = ?4,
                        last_seen_at = ?4, expires_at = ?5
                 WHERE id = ?6",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    &req.successor.as_bytes()[..],
                    &req.wrapped_successor[..],
                    i64::try_from(generation).unwrap_or(i64::MAX),
                    now.as_millis(),
                    s.expires_at.as_millis(),
                    s.id.as_str(),
                ])
            })
            .map_err(from_sqlite)?;
            history::record(conn, now, now, EventKind::Refreshed, None, &Subject::of(&s))?;
            Ok(RefreshOutcome::Rotated {
                session: s,
                generation,
            })
        }
        RefreshStep::Replay { wrapped_successor } => Ok(RefreshOutcome::Replayed {
            session: s,
            generation: state.generation,
            rotated_at: state.rotated_at,
            wrapped_successor,
        }),
        RefreshStep::Reuse => {
            // A retired token of this family, past its grace: end the session.
            revoke(conn, &s.id, &RevokeReason::RefreshTokenReuse, now)?;
            Ok(RefreshOutcome::Reused { session_id: s.id })
        }
    }
}

/// Delete a session (dead or alive); `true` if it was live. History:
/// `revoked` for `reason` if it was live (`expired` if its deadline had
/// passed but the sweep had not removed it yet).
pub(crate) fn revoke(
    conn: &Connection,
    id: &SessionId,
    reason: &RevokeReason,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let rows = history::removed_rows(
        conn,
        &format!("DELETE FROM sessions WHERE id = ?1 RETURNING {REMOVED}"),
        [id.as_str()],
    )?;
    let mut live = false;
    for row in rows {
        history::record_end(conn, &row, reason, now)?;
        live |= row.was_live(now);
    }
    Ok(live)
}

/// Delete every session of the user but `except`; returns the live ones
/// removed, oldest first. History as for [`revoke`], oldest first.
pub(crate) fn revoke_user(
    conn: &Connection,
    user_id: &str,
    except: Option<&SessionId>,
    reason: &RevokeReason,
    now: Timestamp,
) -> Result<Vec<SessionId>, StoreError> {
    let sql = format!(
        "DELETE FROM sessions WHERE user_id = :user AND id IS NOT :except
         RETURNING {REMOVED}"
    );
    let rows = history::removed_rows(
        conn,
        &sql,
        rusqlite::named_params! {":user": user_id, ":except": except.map(SessionId::as_str)},
    )?;
    record_ends(conn, rows, reason, now)
}

/// Delete the user's sessions created before `before` but `except`, and
/// raise the user's not-before mark to `before` (kept until `before +
/// mark_ttl_ms`, or the old mark's end if later); returns the live ones
/// removed, oldest first. History as for [`revoke`], oldest first.
pub(crate) fn revoke_issued_before(
    conn: &Connection,
    r: &IssuedBefore,
    now: Timestamp,
) -> Result<Vec<SessionId>, StoreError> {
    conn.prepare_cached(
        "INSERT INTO not_before (user_id, at, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id) DO UPDATE SET
            at = max(at, excluded.at), expires_at = max(expires_at, excluded.expires_at)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            r.user_id,
            r.before.as_millis(),
            r.mark_end().as_millis()
        ])
    })
    .map_err(from_sqlite)?;
    let sql = format!(
        "DELETE FROM sessions WHERE user_id = :user AND created_at < :before
            AND id IS NOT :except
         RETURNING {REMOVED}"
    );
    let rows = history::removed_rows(
        conn,
        &sql,
        rusqlite::named_params! {
            ":user": r.user_id,
            ":before": r.before.as_millis(),
            ":except": r.except.as_ref().map(SessionId::as_str),
        },
    )?;
    record_ends(conn, rows, &r.reason, now)
}

/// The user's not-before mark, unless it has ended by `now`.
pub(crate) fn not_before(
    conn: &Connection,
    user_id: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    conn.prepare_cached("SELECT at FROM not_before WHERE user_id = ?1 AND expires_at > ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![user_id, now.as_millis()], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|at| at.map(Timestamp::from_millis))
        .map_err(from_sqlite)
}

/// The user's live sessions, newest first.
pub(crate) fn list_user(
    conn: &Connection,
    user_id: &str,
    now: Timestamp,
) -> Result<Vec<Session>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = :user AND {LIVE}
         ORDER BY created_at DESC, id DESC"
    );
    many(
        conn,
        &sql,
        rusqlite::named_params! {":user": user_id, ":now": now.as_millis()},
    )
}

/// How many live sessions the user has.
pub(crate) fn count_user(
    conn: &Connection,
    user_id: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let sql = format!("SELECT count(*) FROM sessions WHERE user_id = :user AND {LIVE}");
    let n: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(
                rusqlite::named_params! {":user": user_id, ":now": now.as_millis()},
                |r| r.get(0),
            )
        })
        .map_err(from_sqlite)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Number of live sessions of all users (a range scan of the deadline index).
pub(crate) fn count_live(conn: &Connection, now: Timestamp) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM sessions WHERE min(expires_at, absolute_expires_at) > ?1",
        )
        .and_then(|mut stmt| stmt.query_row([now.as_millis()], |r| r.get(0)))
        .map_err(from_sqlite)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Check that the connection answers.
pub(crate) fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
        .map_err(from_sqlite)
        .map(drop)
}

/// Record the end of each removed row with `reason`; the ids of those that
/// were live.
fn record_ends(
    conn: &Connection,
    rows: Vec<sessiond_engine::history::RemovedRow>,
    reason: &RevokeReason,
    now: Timestamp,
) -> Result<Vec<SessionId>, StoreError> {
    let mut removed = Vec::new();
    for row in rows {
        let id = history::record_end(conn, &row, reason, now)?;
        if row.was_live(now) {
            removed.extend(id);
        }
    }
    Ok(removed)
}
