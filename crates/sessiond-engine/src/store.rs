//! The `Store` contract: its methods are the session lifecycle operations
//! themselves, not get/put primitives, so each backend makes every operation
//! atomic in its own way (one Lua script, one SQL transaction).

// The engine has validated and decided everything before it calls a store:
// ids, token hashes, deadlines and limits arrive ready to apply. A store must
// treat a session whose `expires_at` or `absolute_expires_at` is at or before
// `now` as absent, whatever its own expiry machinery has done so far.

use std::fmt;

use async_trait::async_trait;

use crate::authentication::Authentication;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::events::{EventPage, EventQuery};
use crate::history::HistoryEvent;
use crate::id::SessionId;
use crate::listing::{SessionPage, SessionQuery};
use crate::policy::LimitPolicy;
use crate::presence::{Beaten, ConnectionBeat, ConnectionId, Presence};
use crate::session::{DataUpdate, RevokeReason, Session, TouchRule};
use crate::token::{TokenDigest, TokenHash};

/// One node of a store made of several, for readiness reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHealth {
    /// `host:port`.
    pub address: String,
    /// `master` or `replica`.
    pub role: String,
    /// `online`, or what the store reports instead (`fail`, `loading`…).
    pub health: String,
    /// The group of nodes holding the same data (a Cluster shard: a master
    /// and its replicas); the store serves all of its data while every
    /// group that holds data has an online master.
    pub group: u32,
    /// Whether its group holds data now (a failed-over master forms a group
    /// of its own that holds none until it returns as a replica).
    pub holds_data: bool,
}

/// A session to insert, with everything the engine decided about it.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The complete record.
    pub session: Session,
    /// Digest of its token (shard tag equals `session.id.shard()`); for a
    /// JWT-mode session, its refresh family's digest
    /// ([`crate::RefreshToken::family_digest`]), filed the same way.
    pub token: TokenDigest,
    /// JWT mode (`session.mode == Mode::Jwt`): hash of the first refresh
    /// token; generation 0, rotated at `session.created_at`.
    pub refresh: Option<TokenHash>,
    /// Most live sessions the user may hold, this one included.
    pub max_sessions: u32,
    /// What to do when the user is at the limit.
    pub limit_policy: LimitPolicy,
}

/// Which session a rotation applies to.
#[derive(Clone, Debug)]
pub enum RotateTarget {
    /// By public id, whatever its current token (operator action).
    Id(SessionId),
    /// Only if this is still its current token (compare-and-swap: of many
    /// concurrent rotations presenting the same token, exactly one wins).
    Token(TokenDigest),
}

/// A refresh-token rotation, decided by the engine.
#[derive(Clone, Debug)]
pub struct RefreshRequest {
    /// The family of the presented token (found like a token digest).
    pub family: TokenDigest,
    /// Hash of the presented refresh token.
    pub presented: TokenHash,
    /// Hash of the successor, used if `presented` is the current token.
    pub successor: TokenHash,
    /// The successor wrapped under the presented token
    /// ([`crate::RefreshToken::wrap`]); stored as it is.
    pub wrapped_successor: [u8; 32],
    /// How long a retired token still gets its successor back.
    pub reuse_grace_ms: u64,
}

/// What a refresh did.
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshOutcome {
    /// `presented` was the current token: `successor` is current now,
    /// `presented` is the previous one (wrapping `successor`), the generation
    /// went up by one, `rotated_at = now`, and the session was touched
    /// (`last_seen_at = now`, idle deadline slid by its own idle timeout).
    Rotated {
        /// The session after the rotation.
        session: Session,
        /// The new generation (the first refresh token is generation 0).
        generation: u64,
    },
    /// `presented` is the previous token and `now < rotated_at +
    /// reuse_grace_ms`: nothing changed; here is what its rotation produced.
    Replayed {
        /// The session, unchanged.
        session: Session,
        /// Generation of the current token.
        generation: u64,
        /// When the current token was issued.
        rotated_at: Timestamp,
        /// The current token wrapped under the presented one.
        wrapped_successor: [u8; 32],
    },
    /// A token of this live session's family that is neither current nor
    /// within the grace period: the session was revoked (reason
    /// `refresh_token_reuse`).
    Reused {
        /// The revoked session.
        session_id: SessionId,
    },
    /// No live JWT-mode session has this family.
    Unknown,
}

/// The JSON text a SQL store keeps for a session's `data` or `device`
/// (`what` names it in the error; encoding these types cannot fail in
/// practice, but a store must not panic).
pub fn json_text<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))
}

/// A millisecond count as a SQL `bigint`/`INTEGER` (saturating).
pub fn sql_millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A JWT-mode session's refresh state as a store that decides refreshes in
/// Rust keeps it (read under a lock, in the transaction that applies the
/// step it leads to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshState {
    /// Hash of the current refresh token.
    pub current: TokenHash,
    /// Hash of the token it replaced, if any.
    pub previous: Option<TokenHash>,
    /// The current token wrapped under `previous`.
    pub wrapped: Option<[u8; 32]>,
    /// Generation of the current token.
    pub generation: u64,
    /// When the current token was issued.
    pub rotated_at: Timestamp,
}

/// What a refresh does to a live JWT-mode session, by [`RefreshState::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshStep {
    /// `presented` is current: make `successor` current at this generation.
    Rotate {
        /// The new generation.
        generation: u64,
    },
    /// `presented` is the previous token, within its grace period: change
    /// nothing and hand back what its rotation produced.
    Replay {
        /// The current token wrapped under the presented one.
        wrapped_successor: [u8; 32],
    },
    /// A retired token past its grace: revoke the session.
    Reuse,
}

impl RefreshState {
    /// The state from the columns a SQL store keeps it in (hashes and the
    /// wrapped successor as 32-byte blobs, generation and issue time as
    /// integers); `Err` names the column that does not decode.
    pub fn from_columns(
        current: Option<Vec<u8>>,
        previous: Option<Vec<u8>>,
        wrapped: Option<Vec<u8>>,
        generation: Option<i64>,
        rotated_at: Option<i64>,
    ) -> Result<Self, &'static str> {
        let blob = |bytes: Vec<u8>, what| <[u8; 32]>::try_from(bytes).map_err(|_| what);
        Ok(Self {
            current: TokenHash::from_bytes(blob(current.ok_or("hash")?, "hash")?),
            previous: previous
                .map(|b| blob(b, "previous hash").map(TokenHash::from_bytes))
                .transpose()?,
            wrapped: wrapped.map(|b| blob(b, "wrapped successor")).transpose()?,
            generation: generation
                .and_then(|g| u64::try_from(g).ok())
                .ok_or("generation")?,
            rotated_at: Timestamp::from_millis(rotated_at.ok_or("rotated_at")?),
        })
    }

    /// The step a refresh presenting `request.presented` takes at `now`.
    pub fn step(&self, request: &RefreshRequest, now: Timestamp) -> RefreshStep {
        if self.current == request.presented {
            return RefreshStep::Rotate {
                generation: self.generation.saturating_add(1),
            };
        }
        let within_grace = i128::from(now.as_millis())
            < i128::from(self.rotated_at.as_millis()) + i128::from(request.reuse_grace_ms);
        match self.wrapped {
            Some(wrapped_successor)
                if self.previous.as_ref() == Some(&request.presented) && within_grace =>
            {
                RefreshStep::Replay { wrapped_successor }
            }
            _ => RefreshStep::Reuse,
        }
    }
}

/// A revocation of everything a user was issued before a time
/// ([`Store::revoke_issued_before`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedBefore {
    /// The user.
    pub user_id: String,
    /// Sessions created before this go, and are refused from now on.
    pub before: Timestamp,
    /// The one session to spare, if any.
    pub except: Option<SessionId>,
    /// Why (recorded with each `revoked` event).
    pub reason: RevokeReason,
    /// How long the user's not-before mark lasts after `before`.
    pub mark_ttl_ms: u64,
}

impl IssuedBefore {
    /// When the mark ends: `before + mark_ttl_ms`.
    pub fn mark_end(&self) -> Timestamp {
        let ttl = i64::try_from(self.mark_ttl_ms).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.before.as_millis().saturating_add(ttl))
    }
}

/// A session backend. Every method is one atomic operation; every method
/// returns [`StoreError::Unavailable`] (never hangs) when the backend is down.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Insert a session. The limit applies to all of the user's live sessions
    /// (whatever their role), with the new session's role's `max_sessions`.
    /// If the user already has `max_sessions` live sessions:
    /// with `EvictOldest`, revoke the oldest (by `created_at`) until there is
    /// room and return their ids; with `Reject`, insert nothing and return
    /// [`StoreError::LimitReached`]. The live count never exceeds the limit,
    /// however many creates race. If the user's not-before mark (see
    /// [`Store::revoke_issued_before`]) is after `new.session.created_at`,
    /// insert nothing and return [`StoreError::IssuedBeforeRevocation`]: of a
    /// create and a revocation that race, either the create sees the mark or
    /// the revocation removes the session.
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError>;

    /// The live session whose token has this digest, touched by `touch` if
    /// given and due.
    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// A live session by id.
    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// Apply a data update atomically; expiry is unchanged. Fails with
    /// [`StoreError::DataTooLarge`] (changing nothing) if the resulting data
    /// would measure over `max_data_bytes` by [`crate::data_size`].
    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Push the idle deadline to `max(expires_at, min(now + ttl,
    /// absolute_expires_at))` where `ttl` is `idle_ttl_ms` or, when `None`,
    /// the session's own `idle_ttl_ms`.
    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Record a new authentication of the session's user
    /// ([`crate::AuthContext::after`]): raise its level, add the method,
    /// move `authenticated_at` to `now`. Token, data and deadlines are
    /// unchanged. Event: `authenticated`, reason the method. `None` when the
    /// session is not live.
    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Replace the session's token hash with `new_token`; the old token stops
    /// working at once. A JWT-mode session becomes an opaque one: its
    /// refresh family ends (every refresh token stops working).
    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Rotate a JWT-mode session's refresh token (see [`RefreshOutcome`]).
    /// Of many concurrent refreshes presenting the same current token,
    /// exactly one is `Rotated`.
    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError>;

    /// Remove a session. `true` if a live session was removed.
    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The user's live sessions, newest first (by `created_at`, then id).
    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError>;

    /// Number of the user's live sessions.
    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Remove all of the user's sessions but `except`; returns the removed ids.
    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Remove the user's live sessions created before `revocation.before`
    /// (all but `except`), recording `revoked` with its reason for each as
    /// [`Store::revoke_user`] does, and raise the user's not-before mark to
    /// `before` in the same atomic step: from then on [`Store::create`]
    /// refuses a session created before the mark. The mark only moves
    /// forward (the later of the old and the new one is kept) and lasts
    /// until [`IssuedBefore::mark_end`] (or the old mark's end, if later);
    /// after that it is gone. Returns the removed ids.
    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// The user's not-before mark, if one is set and has not ended by `now`.
    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError>;

    /// A page of the live sessions of all users that `query.filter`
    /// matches, in an order of the store's own that sessions coming and
    /// going do not change: at most `query.limit` of them after the place
    /// `query.after` names, and the cursor of the next page (`None` at the
    /// end). A walk from no cursor to the end gives every session that
    /// stayed live all along exactly once, whatever was created, revoked or
    /// rotated meanwhile. A store bounds the work of one page
    /// ([`crate::listing::LIST_SCAN_BUDGET`] sessions examined): a page
    /// may then hold fewer than the limit, even none, and still have a
    /// cursor. Text this store could not have made is
    /// [`StoreError::InvalidCursor`].
    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError>;

    /// Number of live sessions of all users, for statistics. May cost time
    /// proportional to the number of sessions (it is not on a request path);
    /// a store may count sessions that expired less than a second ago.
    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// The user's lifecycle events, newest first (by `seq`, descending): at
    /// most `limit` of them, and only those with `seq < before` when
    /// `before` is given (the `seq` of the last event of the previous page).
    ///
    /// A store that keeps history records, in the same transaction as the
    /// change itself, so an event exists exactly when its change does:
    /// - `create`: `revoked` (reason `evicted_max_sessions`) for each
    ///   session evicted, oldest first, then `created`;
    /// - `rotate`: `rotated`;
    /// - `refresh`: `refreshed` when it rotated (not on a grace replay);
    ///   `revoked` (reason `refresh_token_reuse`) when it found reuse;
    /// - `revoke`, `revoke_user`, `revoke_issued_before`: `revoked` with the reason given, for each
    ///   session that was live (a removed row whose deadline had passed is
    ///   `expired` instead);
    /// - its expiry sweep: `expired` (reason `expired`, at the deadline that
    ///   passed) for each session it removes.
    ///
    /// Data updates, touches and extensions are not recorded. Events older
    /// than the store's retention at `now` may be left out before they are
    /// pruned. A store that keeps no history answers
    /// [`StoreError::Unsupported`].
    async fn history(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<u64>,
        now: Timestamp,
    ) -> Result<Vec<HistoryEvent>, StoreError>;

    /// A read of the event feed (see [`crate::events`]): the events after
    /// `query.from` in the order they were recorded, at most `query.limit`,
    /// of `query.user_id` and `query.kinds` only.
    ///
    /// A store that keeps a feed records each event in the same atomic step
    /// as its change (the events of [`Store::history`], and `data_updated`
    /// for `update_data`, `extended` for `extend`), keeps them for its
    /// [`crate::events::EventRetention`], and hands out every event exactly
    /// once to a reader that resumes from the cursor of the last page. A
    /// cursor from before events that have since left the feed is
    /// [`StoreError::CursorExpired`]; text this store could not have made
    /// is [`StoreError::InvalidCursor`]. A store that keeps no feed answers
    /// [`StoreError::Unsupported`].
    async fn events(&self, query: &EventQuery, now: Timestamp) -> Result<EventPage, StoreError>;

    /// Register a connection on its live session, or keep it alive (a
    /// heartbeat): it then ends `beat.ttl_ms` after `now`, or with its
    /// session, whichever comes first. A new connection (or one whose
    /// expiry had passed) records `connection_opened`; `None` when the
    /// session is not live. A store removes a session's connections in the
    /// same atomic step as the session (revocation, expiry).
    async fn beat_connection(
        &self,
        beat: &ConnectionBeat,
        now: Timestamp,
    ) -> Result<Option<Beaten>, StoreError>;

    /// Close a connection, recording `connection_closed` (reason `closed`);
    /// `true` if it was live. A connection whose expiry passes is closed by
    /// the store's sweep (reason `expired`, at its expiry).
    async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &ConnectionId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The user's live sessions with their live connections.
    async fn presence(&self, user_id: &str, now: Timestamp) -> Result<Presence, StoreError>;

    /// Check that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The state of each node of a store made of several (a Redis Cluster),
    /// as the store sees it now; empty for a store of one.
    async fn nodes(&self) -> Result<Vec<NodeHealth>, StoreError>;

    /// Finish pending work and release the backend (graceful shutdown). Later
    /// calls may fail as unavailable. The default does nothing.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
