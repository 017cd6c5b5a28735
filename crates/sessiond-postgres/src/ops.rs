//! Each store operation as SQL on one connection: a single statement where
//! one is enough, else one transaction whose row or advisory lock keeps it
//! free of read-modify-write races (which one, operation by operation, is
//! said at each function).

use deadpool_postgres::{Client, GenericClient};
use sessiond_engine::store::json_text;
use sessiond_engine::{
    Authentication, Beaten, Connection, ConnectionBeat, ConnectionId, DataUpdate, DevicePresence,
    EventKind, HistoryEvent, IssuedBefore, LimitPolicy, Mode, NewSession, Presence, RefreshOutcome,
    RefreshRequest, RefreshState, RefreshStep, RevokeReason, RotateTarget, Session, SessionId,
    StoreError, Timestamp, TokenDigest, TokenHash, TouchRule, data_size,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::errors::{corrupt, from_pg, is_transient};
use crate::history::{Events, removed as removed_rows};
use crate::rows::{COLUMN_COUNT, decode, decode_connection, millis};
use crate::statements::Statements;

/// Why an operation failed: the database (maybe worth another try), or a
/// decision of the store.
#[derive(Debug)]
pub(crate) enum Failure {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Failure {
    /// Whether running the whole operation again may succeed (a deadlock or
    /// serialization failure rolled it back).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Self::Db(e) if is_transient(e))
    }

    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Self::Db(e) => from_pg(&e),
            Self::Store(e) => e,
        }
    }
}

pub(crate) type Outcome<T> = Result<T, Failure>;

/// `N` bound parameters, for statements sent together (pipelined: only
/// statements whose order does not matter, since the futures that send them
/// are polled in no fixed order).
type Params<'a, const N: usize> = [&'a (dyn ToSql + Sync); N];

/// What every operation needs besides its connection.
pub(crate) struct Ctx<'a> {
    pub sql: &'a Statements,
    /// The notification channel of this schema.
    pub channel: &'a str,
}

pub(crate) async fn rows(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Outcome<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

async fn one_session(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Outcome<Option<Session>> {
    match rows(c, sql, params).await?.first() {
        Some(row) => Ok(Some(decode(row)?)),
        None => Ok(None),
    }
}

/// The live session with this id. One indexed `SELECT`.
pub(crate) async fn get(
    c: &Client,
    x: &Ctx<'_>,
    id: &SessionId,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    one_session(c, &x.sql.get, &[&id.as_str(), &now.as_millis()]).await
}

/// The live session whose token has this digest. One indexed `SELECT`.
pub(crate) async fn by_token(
    c: &impl GenericClient,
    x: &Ctx<'_>,
    token: &TokenDigest,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    let found = one_session(
        c,
        &x.sql.by_token,
        &[&&token.hash.as_bytes()[..], &now.as_millis()],
    )
    .await?;
    // A token names its owner's shard; one that disagrees with the session
    // it hashes to is not that session's token.
    Ok(found.filter(|s| s.id.shard() == token.shard))
}

/// Introspection: one `SELECT`; when the touch is due, one conditional
/// `UPDATE` that applies only if nobody touched or removed the row since
/// (else the row is read again), so a touch never revives a revoked session.
pub(crate) async fn introspect(
    c: &Client,
    x: &Ctx<'_>,
    token: &TokenDigest,
    touch: Option<TouchRule>,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    let Some(session) = by_token(c, x, token, now).await? else {
        return Ok(None);
    };
    match touch {
        Some(rule) if session.touch_due(rule, now) => {
            let touched = one_session(
                c,
                &x.sql.touch,
                &[
                    &session.id.as_str(),
                    &session.last_seen_at.as_millis(),
                    &now.as_millis(),
                    &x.channel,
                ],
            )
            .await?;
            match touched {
                Some(s) => Ok(Some(s)),
                // Touched by a racing request, or gone: what is there now.
                None => by_token(c, x, token, now).await,
            }
        }
        _ => Ok(Some(session)),
    }
}

/// Create within the user's limit. One transaction under the user's
/// advisory lock (so concurrent creates count one after another, and a
/// racing [`revoke_issued_before`] either sees the row or is seen): check the
/// user's not-before mark, count, evict or refuse, insert.
pub(crate) async fn create(
    c: &mut Client,
    x: &Ctx<'_>,
    new: &NewSession,
    now: Timestamp,
) -> Outcome<Vec<SessionId>> {
    let s = &new.session;
    let tx = c.transaction().await?;
    // One after the other, not pipelined: the count must start (and take
    // its snapshot) once the lock is held.
    rows(&tx, &x.sql.lock_user, &[&s.user_id]).await?;
    let mark = rows(&tx, &x.sql.not_before, &[&s.user_id, &now.as_millis()]).await?;
    if let Some(row) = mark.first()
        && s.created_at.as_millis() < row.try_get::<_, i64>(0)?
    {
        return Err(StoreError::IssuedBeforeRevocation.into());
    }
    let count = rows(&tx, &x.sql.count_user, &[&s.user_id, &now.as_millis()]).await?;
    let live = count
        .first()
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?
        .unwrap_or(0);
    let live = u64::try_from(live).unwrap_or(0);
    let max = u64::from(new.max_sessions);
    let mut evicted = Vec::new();
    let mut events = Events::new(now);
    if live >= max {
        if new.limit_policy == LimitPolicy::Reject {
            return Err(StoreError::LimitReached {
                max: new.max_sessions,
            }
            .into());
        }
        let excess = i64::try_from(live - max + 1).unwrap_or(i64::MAX);
        let removed = rows(
            &tx,
            &x.sql.evict,
            &[&s.user_id, &now.as_millis(), &excess, &x.channel],
        )
        .await?;
        for row in removed_rows(&removed)? {
            evicted.extend(events.ended(&row, &RevokeReason::EvictedMaxSessions, now));
        }
    }
    events.session(now, EventKind::Created, s);
    let data = json_text("data", &s.data)?;
    let device = json_text("device", &s.device)?;
    let auth = json_text("auth", &s.auth)?;
    let refresh = new.refresh.as_ref().map(|h| &h.as_bytes()[..]);
    let generation = new.refresh.as_ref().map(|_| 0_i64);
    let rotated_at = new.refresh.as_ref().map(|_| s.created_at.as_millis());
    let insert = async {
        let stmt = tx.prepare_cached(&x.sql.insert).await?;
        tx.execute(
            &stmt,
            &[
                &s.id.as_str(),
                &s.user_id,
                &s.role,
                &data,
                &device,
                &&new.token.hash.as_bytes()[..],
                &s.created_at.as_millis(),
                &s.last_seen_at.as_millis(),
                &s.expires_at.as_millis(),
                &s.absolute_expires_at.as_millis(),
                &millis(s.idle_ttl_ms),
                &s.mode.as_str(),
                &refresh,
                &generation,
                &rotated_at,
                &auth,
            ],
        )
        .await
    };
    // Pipelined: the row and its history event in one round trip.
    tokio::try_join!(insert, events.write(&tx, x.sql))?;
    tx.commit().await?;
    Ok(evicted)
}

/// Apply a data update. One transaction: the row read `FOR UPDATE` (so
/// concurrent merges apply one after another, none lost), merged, measured,
/// written with its `data_updated` event.
pub(crate) async fn update_data(
    c: &mut Client,
    x: &Ctx<'_>,
    id: &SessionId,
    update: &DataUpdate,
    max_bytes: usize,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    let tx = c.transaction().await?;
    let Some(mut s) =
        one_session(&tx, &x.sql.lock_by_id, &[&id.as_str(), &now.as_millis()]).await?
    else {
        return Ok(None);
    };
    update.apply_to(&mut s.data);
    let size = data_size(&s.data);
    if size > max_bytes {
        return Err(StoreError::DataTooLarge {
            size,
            max: max_bytes,
        }
        .into());
    }
    let text = json_text("data", &s.data)?;
    let mut events = Events::new(now);
    events.session(now, EventKind::DataUpdated, &s);
    let set: Params<'_, 3> = [&id.as_str(), &text, &x.channel];
    // Pipelined: the data and its event in one round trip.
    tokio::try_join!(rows(&tx, &x.sql.set_data, &set), async {
        Ok(events.write(&tx, x.sql).await?)
    })?;
    tx.commit().await?;
    Ok(Some(s))
}

/// Slide the idle deadline by `idle_ttl_ms` (default: the session's own idle
/// timeout) from `now`, within the absolute one. One transaction: the row
/// read `FOR UPDATE` (so the deadline it is compared with is the one that
/// stays), then, only if the deadline moves, the new one written with its
/// `extended` event.
pub(crate) async fn extend(
    c: &mut Client,
    x: &Ctx<'_>,
    id: &SessionId,
    idle_ttl_ms: Option<u64>,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    let tx = c.transaction().await?;
    let Some(mut s) =
        one_session(&tx, &x.sql.lock_by_id, &[&id.as_str(), &now.as_millis()]).await?
    else {
        return Ok(None);
    };
    let expires_at = s.slid_deadline(idle_ttl_ms.unwrap_or(s.idle_ttl_ms), now);
    if expires_at == s.expires_at {
        // Nothing changes: no write, no event, no notification.
        tx.commit().await?;
        return Ok(Some(s));
    }
    s.expires_at = expires_at;
    let mut events = Events::new(now);
    events.session(now, EventKind::Extended, &s);
    let deadline = expires_at.as_millis();
    let set: Params<'_, 3> = [&id.as_str(), &deadline, &x.channel];
    // Pipelined: the deadline and its event in one round trip.
    tokio::try_join!(rows(&tx, &x.sql.set_expiry, &set), async {
        Ok(events.write(&tx, x.sql).await?)
    })?;
    tx.commit().await?;
    Ok(Some(s))
}

/// Record a new authentication ([`sessiond_engine::AuthContext::after`]).
/// One transaction: the row read `FOR UPDATE` (so concurrent step-ups
/// apply one after another), then its new context written with its
/// `authenticated` event.
pub(crate) async fn authenticate(
    c: &mut Client,
    x: &Ctx<'_>,
    id: &SessionId,
    auth: &Authentication,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    let tx = c.transaction().await?;
    let Some(mut s) =
        one_session(&tx, &x.sql.lock_by_id, &[&id.as_str(), &now.as_millis()]).await?
    else {
        return Ok(None);
    };
    s.auth = s.auth.after(auth, now);
    let text = json_text("auth", &s.auth)?;
    let mut events = Events::new(now);
    events.session_with_reason(now, EventKind::Authenticated, Some(&auth.method), &s);
    let set: Params<'_, 3> = [&id.as_str(), &text, &x.channel];
    // Pipelined: the context and its event in one round trip.
    tokio::try_join!(rows(&tx, &x.sql.set_auth, &set), async {
        Ok(events.write(&tx, x.sql).await?)
    })?;
    tx.commit().await?;
    Ok(Some(s))
}

/// Give the session a new token. One transaction: the row locked by id or
/// by its current token (a compare-and-swap: of concurrent rotations of one
/// token, the first to lock it wins; the others find the token gone), then
/// one `UPDATE`.
pub(crate) async fn rotate(
    c: &mut Client,
    x: &Ctx<'_>,
    target: &RotateTarget,
    new_token: &TokenHash,
    now: Timestamp,
) -> Outcome<Option<Session>> {
    let tx = c.transaction().await?;
    let found = match target {
        RotateTarget::Id(id) => {
            rows(&tx, &x.sql.lock_by_id, &[&id.as_str(), &now.as_millis()]).await?
        }
        RotateTarget::Token(token) => {
            rows(
                &tx,
                &x.sql.lock_by_token,
                &[&&token.hash.as_bytes()[..], &now.as_millis()],
            )
            .await?
        }
    };
    let Some(row) = found.first() else {
        return Ok(None);
    };
    let s = decode(row)?;
    let old_hash: Vec<u8> = match target {
        RotateTarget::Id(_) => row.try_get(COLUMN_COUNT)?,
        RotateTarget::Token(token) => {
            if s.id.shard() != token.shard {
                return Ok(None);
            }
            token.hash.as_bytes().to_vec()
        }
    };
    let mut events = Events::new(now);
    events.session(now, EventKind::Rotated, &s);
    let (id, token) = (s.id.as_str(), &new_token.as_bytes()[..]);
    let set: Params<'_, 4> = [&id, &token, &x.channel, &old_hash];
    // Pipelined: the new token and its history event in one round trip.
    let (rotated, ()) = tokio::try_join!(one_session(&tx, &x.sql.set_token, &set), async {
        Ok(events.write(&tx, x.sql).await?)
    },)?;
    tx.commit().await?;
    Ok(rotated)
}

/// Rotate a refresh token. One transaction: the row locked by the family
/// digest (so of concurrent refreshes one rotates and the others see its
/// result), the step decided by [`RefreshState::step`], then one `UPDATE` or
/// `DELETE`.
pub(crate) async fn refresh(
    c: &mut Client,
    x: &Ctx<'_>,
    req: &RefreshRequest,
    now: Timestamp,
) -> Outcome<RefreshOutcome> {
    let tx = c.transaction().await?;
    let found = rows(
        &tx,
        &x.sql.lock_by_token,
        &[&&req.family.hash.as_bytes()[..], &now.as_millis()],
    )
    .await?;
    let Some(row) = found.first() else {
        return Ok(RefreshOutcome::Unknown);
    };
    let s = decode(row)?;
    if s.mode != Mode::Jwt || s.id.shard() != req.family.shard {
        return Ok(RefreshOutcome::Unknown);
    }
    let state = refresh_state(row, s.id.as_str())?;
    let outcome = match state.step(req, now) {
        RefreshStep::Rotate { generation } => {
            let mut events = Events::new(now);
            events.session(now, EventKind::Refreshed, &s);
            let (id, successor, wrapped) = (
                s.id.as_str(),
                &req.successor.as_bytes()[..],
                &req.wrapped_successor[..],
            );
            let (generation_i64, now_ms) = (
                i64::try_from(generation).unwrap_or(i64::MAX),
                now.as_millis(),
            );
            let set: Params<'_, 6> = [
                &id,
                &successor,
                &wrapped,
                &generation_i64,
                &now_ms,
                &x.channel,
            ];
            // Pipelined: the rotation and its history event in one round trip.
            let (updated, ()) =
                tokio::try_join!(one_session(&tx, &x.sql.set_refresh, &set), async {
                    Ok(events.write(&tx, x.sql).await?)
                },)?;
            let updated =
                updated.ok_or_else(|| corrupt(s.id.as_str(), "row", "vanished under its lock"))?;
            RefreshOutcome::Rotated {
                session: updated,
                generation,
            }
        }
        RefreshStep::Replay { wrapped_successor } => RefreshOutcome::Replayed {
            generation: state.generation,
            rotated_at: state.rotated_at,
            wrapped_successor,
            session: s,
        },
        RefreshStep::Reuse => {
            let removed = rows(&tx, &x.sql.delete, &[&s.id.as_str(), &x.channel]).await?;
            let mut events = Events::new(now);
            for row in removed_rows(&removed)? {
                events.ended(&row, &RevokeReason::RefreshTokenReuse, now);
            }
            events.write(&tx, x.sql).await?;
            RefreshOutcome::Reused { session_id: s.id }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// The refresh columns that follow the session's in [`Statements::lock_by_token`].
fn refresh_state(row: &Row, at: &str) -> Result<RefreshState, StoreError> {
    let bad = |what: &str| corrupt(at, "refresh state", what);
    let blob = |i: usize| row.try_get::<_, Option<Vec<u8>>>(COLUMN_COUNT + i);
    let number = |i: usize| row.try_get::<_, Option<i64>>(COLUMN_COUNT + i);
    let columns = (|| {
        Ok::<_, tokio_postgres::Error>((blob(0)?, blob(1)?, blob(2)?, number(3)?, number(4)?))
    })()
    .map_err(|e| bad(&e.to_string()))?;
    let (current, previous, wrapped, generation, rotated_at) = columns;
    RefreshState::from_columns(current, previous, wrapped, generation, rotated_at).map_err(bad)
}

/// Remove a session. One transaction: one `DELETE`, and its history event;
/// `true` if it was live.
pub(crate) async fn revoke(
    c: &mut Client,
    x: &Ctx<'_>,
    id: &SessionId,
    reason: &RevokeReason,
    now: Timestamp,
) -> Outcome<bool> {
    let tx = c.transaction().await?;
    let removed = rows(&tx, &x.sql.delete, &[&id.as_str(), &x.channel]).await?;
    let mut events = Events::new(now);
    let mut was_live = false;
    for row in removed_rows(&removed)? {
        was_live |= row.was_live(now);
        events.ended(&row, reason, now);
    }
    events.write(&tx, x.sql).await?;
    tx.commit().await?;
    Ok(was_live)
}

/// Remove all of the user's sessions but one. One transaction: the user's
/// advisory lock (so it does not interleave with a create's count and
/// insert), one `DELETE`, and their history events.
pub(crate) async fn revoke_user(
    c: &mut Client,
    x: &Ctx<'_>,
    user_id: &str,
    except: Option<&SessionId>,
    reason: &RevokeReason,
    now: Timestamp,
) -> Outcome<Vec<SessionId>> {
    let tx = c.transaction().await?;
    rows(&tx, &x.sql.lock_user, &[&user_id]).await?;
    let removed = rows(
        &tx,
        &x.sql.delete_user,
        &[&user_id, &except.map(SessionId::as_str), &x.channel],
    )
    .await?;
    let revoked = record_ends(&tx, x, &removed, reason, now).await?;
    tx.commit().await?;
    Ok(revoked)
}

/// Raise the user's not-before mark and delete the sessions created before
/// it (but `except`), with their `revoked` events. One transaction under the
/// user's advisory lock, as [`create`] takes it: a create either committed
/// before (its session is deleted here) or reads the new mark.
pub(crate) async fn revoke_issued_before(
    c: &mut Client,
    x: &Ctx<'_>,
    r: &IssuedBefore,
    now: Timestamp,
) -> Outcome<Vec<SessionId>> {
    let tx = c.transaction().await?;
    rows(&tx, &x.sql.lock_user, &[&r.user_id]).await?;
    let (before, mark_end) = (r.before.as_millis(), r.mark_end().as_millis());
    rows(
        &tx,
        &x.sql.set_not_before,
        &[&r.user_id, &before, &mark_end],
    )
    .await?;
    let removed = rows(
        &tx,
        &x.sql.delete_user_before,
        &[
            &r.user_id,
            &before,
            &r.except.as_ref().map(SessionId::as_str),
            &x.channel,
        ],
    )
    .await?;
    let revoked = record_ends(&tx, x, &removed, &r.reason, now).await?;
    tx.commit().await?;
    Ok(revoked)
}

/// The user's not-before mark, unless it has ended. One `SELECT`.
pub(crate) async fn not_before(
    c: &Client,
    x: &Ctx<'_>,
    user_id: &str,
    now: Timestamp,
) -> Outcome<Option<Timestamp>> {
    let found = rows(c, &x.sql.not_before, &[&user_id, &now.as_millis()]).await?;
    Ok(found
        .first()
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?
        .map(Timestamp::from_millis))
}

/// The user's live sessions, newest first. One indexed `SELECT`.
pub(crate) async fn list_user(
    c: &Client,
    x: &Ctx<'_>,
    user_id: &str,
    now: Timestamp,
) -> Outcome<Vec<Session>> {
    let found = rows(c, &x.sql.list_user, &[&user_id, &now.as_millis()]).await?;
    Ok(found.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Count from a `SELECT count(*)`.
async fn count(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Outcome<u64> {
    let found = rows(c, sql, params).await?;
    let n = match found.first() {
        Some(row) => row.try_get::<_, i64>(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// How many live sessions the user has.
pub(crate) async fn count_user(
    c: &Client,
    x: &Ctx<'_>,
    user_id: &str,
    now: Timestamp,
) -> Outcome<u64> {
    count(c, &x.sql.count_user, &[&user_id, &now.as_millis()]).await
}

/// Live sessions of all users (a range scan of the deadline index).
pub(crate) async fn count_live(c: &Client, x: &Ctx<'_>, now: Timestamp) -> Outcome<u64> {
    count(c, &x.sql.count_live, &[&now.as_millis()]).await
}

/// Up to `limit` of the user's events with `seq < before`, recorded at or
/// after `since`, newest first: a walk down the `(user_id, seq)` index.
pub(crate) async fn history(
    c: &Client,
    x: &Ctx<'_>,
    user_id: &str,
    limit: u32,
    before: Option<u64>,
    since: Timestamp,
) -> Outcome<Vec<HistoryEvent>> {
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let found = rows(
        c,
        &x.sql.history_page,
        &[&user_id, &before, &since.as_millis(), &i64::from(limit)],
    )
    .await?;
    Ok(found
        .iter()
        .map(crate::history::decode)
        .collect::<Result<_, _>>()?)
}

/// Register a connection on its live session, or keep it alive. One
/// transaction: the session row read `FOR UPDATE` (so a revocation or the
/// expiry sweep waits for the connection, then takes it with the session,
/// and the beats of one session's connections apply one after another,
/// each deciding once whether it opens one); then the connection's row, if
/// there is one, read `FOR UPDATE` (so a close or the sweep removing it has
/// either committed, and this beat opens it anew, or waits for this one);
/// then the row written with its events. A row whose expiry has passed
/// counts as closed then: `connection_closed` (reason `expired`, at its
/// expiry) before the new `connection_opened`.
pub(crate) async fn beat_connection(
    c: &mut Client,
    x: &Ctx<'_>,
    beat: &ConnectionBeat,
    now: Timestamp,
) -> Outcome<Option<Beaten>> {
    let tx = c.transaction().await?;
    let (session_id, connection_id) = (beat.session_id.as_str(), beat.connection_id.as_str());
    let Some(session) =
        one_session(&tx, &x.sql.lock_by_id, &[&session_id, &now.as_millis()]).await?
    else {
        return Ok(None);
    };
    // One after the other, not pipelined: the connection is read (in a
    // snapshot of its own) once the session's lock is held, so it sees what
    // the beat before this one wrote.
    let found = rows(&tx, &x.sql.lock_connection, &[&session_id, &connection_id]).await?;
    let old = found
        .first()
        .map(|row| stored_connection(row, &session.id))
        .transpose()?;
    let deadline = session.expires_at.min(session.absolute_expires_at);
    let ttl = i64::try_from(beat.ttl_ms).unwrap_or(i64::MAX);
    let expires_at = Timestamp::from_millis(now.as_millis().saturating_add(ttl)).min(deadline);
    let mut events = Events::new(now);
    let (node, opened_at, opened) = match old {
        Some(live) if live.expires_at > now => {
            (beat.node.clone().or(live.node), live.opened_at, false)
        }
        old => {
            if let Some(dead) = old {
                // Expired before the sweep came by: it closed then.
                events.session_with_reason(
                    dead.expires_at,
                    EventKind::ConnectionClosed,
                    Some("expired"),
                    &session,
                );
            }
            events.session_with_reason(now, EventKind::ConnectionOpened, None, &session);
            (beat.node.clone(), now, true)
        }
    };
    let (opened_ms, now_ms, expires_ms) = (
        opened_at.as_millis(),
        now.as_millis(),
        expires_at.as_millis(),
    );
    let put: Params<'_, 7> = [
        &session_id,
        &connection_id,
        &session.user_id,
        &node,
        &opened_ms,
        &now_ms,
        &expires_ms,
    ];
    // Pipelined: the connection and its events in one round trip.
    tokio::try_join!(rows(&tx, &x.sql.put_connection, &put), async {
        Ok(events.write(&tx, x.sql).await?)
    })?;
    tx.commit().await?;
    Ok(Some(Beaten {
        connection: Connection {
            session_id: beat.session_id.clone(),
            connection_id: beat.connection_id.clone(),
            node,
            opened_at,
            last_seen_at: now,
            expires_at,
        },
        opened,
    }))
}

/// A connection's row as [`Statements::lock_connection`] reads it.
struct StoredConnection {
    node: Option<String>,
    opened_at: Timestamp,
    expires_at: Timestamp,
}

fn stored_connection(row: &Row, session_id: &SessionId) -> Result<StoredConnection, StoreError> {
    let bad = |field: &str, e: tokio_postgres::Error| {
        corrupt(
            session_id.as_str(),
            &format!("connection {field}"),
            &e.to_string(),
        )
    };
    Ok(StoredConnection {
        node: row.try_get(0).map_err(|e| bad("node", e))?,
        opened_at: Timestamp::from_millis(row.try_get(1).map_err(|e| bad("opened_at", e))?),
        expires_at: Timestamp::from_millis(row.try_get(2).map_err(|e| bad("expires_at", e))?),
    })
}

/// Close a connection; `true` if it was live. One transaction: one
/// `DELETE` that also reads the session when it is live (the connection's
/// row lock orders it with a heartbeat of the same connection: whichever
/// comes second sees what the first did, and a revocation that takes the
/// connection first leaves this one nothing to delete), then its
/// `connection_closed` (reason `closed`, or `expired` at its expiry when
/// that had passed). A connection of a session that is no longer live goes
/// without an event: the session's end covers it.
pub(crate) async fn close_connection(
    c: &mut Client,
    x: &Ctx<'_>,
    session_id: &SessionId,
    connection_id: &ConnectionId,
    now: Timestamp,
) -> Outcome<bool> {
    let tx = c.transaction().await?;
    let found = rows(
        &tx,
        &x.sql.close_connection,
        &[
            &session_id.as_str(),
            &connection_id.as_str(),
            &now.as_millis(),
        ],
    )
    .await?;
    let Some(row) = found.first() else {
        return Ok(false);
    };
    let expires_at = Timestamp::from_millis(
        row.try_get(COLUMN_COUNT)
            .map_err(|e| corrupt(session_id.as_str(), "connection expires_at", &e.to_string()))?,
    );
    let live = expires_at > now;
    let session_live = row
        .try_get::<_, Option<String>>(0)
        .map_err(|e| corrupt(session_id.as_str(), "id", &e.to_string()))?
        .is_some();
    if session_live {
        let session = decode(row)?;
        let (at, reason) = if live {
            (now, "closed")
        } else {
            (expires_at, "expired")
        };
        let mut events = Events::new(now);
        events.session_with_reason(at, EventKind::ConnectionClosed, Some(reason), &session);
        events.write(&tx, x.sql).await?;
    }
    tx.commit().await?;
    Ok(live)
}

/// The user's live sessions, most recently seen first (by the later of the
/// session's `last_seen_at` and its connections' heartbeats, then newest
/// first), each with its live connections, oldest first. One `SELECT`, so
/// sessions and connections are of one snapshot: the sessions by the
/// user's index, their connections by theirs.
pub(crate) async fn presence(
    c: &Client,
    x: &Ctx<'_>,
    user_id: &str,
    now: Timestamp,
) -> Outcome<Presence> {
    let found = rows(c, &x.sql.presence, &[&user_id, &now.as_millis()]).await?;
    let mut devices: Vec<DevicePresence> = Vec::new();
    for row in &found {
        // A session comes once per connection, its rows one after another.
        let id: String = row
            .try_get(0)
            .map_err(|e| corrupt("a row", "id", &e.to_string()))?;
        if devices.last().is_none_or(|d| d.session_id.as_str() != id) {
            let s = decode(row)?;
            devices.push(DevicePresence {
                session_id: s.id,
                device: s.device,
                last_seen_at: s.last_seen_at,
                connections: Vec::new(),
            });
        }
        if let Some(d) = devices.last_mut() {
            d.connections
                .extend(decode_connection(row, COLUMN_COUNT, &d.session_id)?);
        }
    }
    // Stable: among equals, the newest session first, as read.
    Ok(Presence::of_devices(devices))
}

/// Record the end of each removed row with `reason` in `tx`; the ids of
/// those that were live.
async fn record_ends(
    tx: &impl GenericClient,
    x: &Ctx<'_>,
    removed: &[Row],
    reason: &RevokeReason,
    now: Timestamp,
) -> Outcome<Vec<SessionId>> {
    let mut events = Events::new(now);
    let mut revoked = Vec::new();
    for row in removed_rows(removed)? {
        let id = events.ended(&row, reason, now);
        if row.was_live(now) {
            revoked.extend(id);
        }
    }
    events.write(tx, x.sql).await?;
    Ok(revoked)
}
