//! The engine: validates input, generates ids and tokens, computes deadlines
//! from the role policy, and drives one store with a bounded wait per call.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::authentication::{
    Aal, AuthContext, AuthRequirement, Authentication, MAX_METHODS, valid_method,
};
use crate::binding::{BindTo, OnMismatch, Presenter};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::device::Device;
use crate::error::{Error, StoreError};
use crate::events::{EventPage, EventQuery};
use crate::history::HistoryEvent;
use crate::id::{SessionId, ShardTag};
use crate::listing::{
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, SessionCursor, SessionFilter, SessionPage, SessionQuery,
};
use crate::policy::Policy;
use crate::presence::{Beaten, ConnectionBeat, ConnectionId, Presence};
use crate::refresh::RefreshToken;
use crate::session::Mode;
use crate::session::{DataUpdate, RevokeReason, Session, SessionData, TouchRule, data_size};
use crate::store::{IssuedBefore, NewSession, RefreshOutcome, RefreshRequest, RotateTarget, Store};
use crate::token::SessionToken;

/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Longest role name accepted, in bytes.
pub const MAX_ROLE_BYTES: usize = 64;
/// Longest TTL accepted for a session (400 days).
pub const MAX_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// Events in a page of history when the caller names no limit.
pub const DEFAULT_HISTORY_LIMIT: u32 = 100;
/// Most events in one read of the event feed.
pub const MAX_EVENTS_LIMIT: u32 = 1000;
/// Most events in one page of history.
pub const MAX_HISTORY_LIMIT: u32 = 1000;
/// How far past the engine's clock a time the app sends (`issued_before`,
/// `authenticated_at`) may lie: clocks of the app's servers and this one
/// disagree a little.
pub const MAX_CLOCK_LEAD: Duration = Duration::from_secs(60);

/// Input of [`Engine::create`].
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    /// The app's user id, 1..=256 bytes, no control characters.
    pub user_id: String,
    /// Role whose policy applies; `None` for the default role.
    pub role: Option<String>,
    /// Initial app data.
    pub data: SessionData,
    /// Client user agent, parsed into device facts.
    pub user_agent: Option<String>,
    /// Client IP address.
    pub ip: Option<String>,
    /// Idle timeout instead of the role's.
    pub idle_ttl: Option<Duration>,
    /// Absolute lifetime instead of the role's.
    pub absolute_ttl: Option<Duration>,
    /// The assurance level the user's authentication reached (default
    /// `aal1`).
    pub aal: Option<Aal>,
    /// The methods the user authenticated with (e.g. `pwd`, `otp`).
    pub amr: Vec<String>,
    /// When the user authenticated (default: now); not in the future.
    pub authenticated_at: Option<Timestamp>,
}

/// The secret a new session's client gets: hand it over, never log it.
#[derive(Debug)]
enum Credential {
    Session(SessionToken),
    Refresh(RefreshToken),
}

/// Result of [`Engine::create`].
#[derive(Debug)]
pub struct Created {
    /// The new session.
    pub session: Session,
    /// Its token: hand it to the client, never log it.
    pub token: SessionToken,
    /// Sessions evicted to stay within `max_sessions`.
    pub evicted: Vec<SessionId>,
}

/// Result of [`Engine::create_jwt`].
#[derive(Debug)]
pub struct CreatedJwt {
    /// The new session (mode JWT).
    pub session: Session,
    /// Its first refresh token (generation 0, issued at `created_at`): hand
    /// it to the client, never log it.
    pub refresh_token: RefreshToken,
    /// Sessions evicted to stay within `max_sessions`.
    pub evicted: Vec<SessionId>,
}

/// Result of a rotation.
#[derive(Debug)]
pub struct Rotated {
    /// The session, unchanged but for its token.
    pub session: Session,
    /// The new token; the old one no longer works.
    pub token: SessionToken,
}

/// Result of [`Engine::refresh`].
#[derive(Debug)]
pub struct Refreshed {
    /// The session.
    pub session: Session,
    /// The current refresh token (the same one to every caller of a grace
    /// replay).
    pub refresh_token: RefreshToken,
    /// Its generation: 0 for the first token of the session.
    pub generation: u64,
    /// When it was issued (the access token's `iat`).
    pub issued_at: Timestamp,
    /// Whether this call rotated (`false`: a replay within the grace period).
    pub rotated: bool,
}

/// What [`Engine::check_binding`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingCheck {
    /// The presenter matches (or the role binds nothing).
    Kept,
    /// It does not, and the role flags: the session stays, marked risky.
    Flagged(Vec<BindTo>),
    /// It does not, and the role revokes: the session is gone.
    Revoked(Vec<BindTo>),
}

/// Result of [`Engine::history`]: one page of a user's lifecycle events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// Newest first.
    pub events: Vec<HistoryEvent>,
    /// Present when older events follow: pass it as the next call's
    /// `cursor`. An opaque string (today the `seq` of the page's last
    /// event, in decimal).
    pub next_cursor: Option<String>,
}

/// The session engine over one store.
#[derive(Clone, Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// An engine on the wall clock.
    pub fn new(store: Arc<dyn Store>, policy: Policy) -> Self {
        Self::with_clock(store, policy, Arc::new(SystemClock))
    }

    /// An engine on the given clock (tests move a [`crate::ManualClock`]).
    pub fn with_clock(store: Arc<dyn Store>, policy: Policy, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            policy: Arc::new(policy),
            clock,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Current time by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Run one store call, failing as unavailable past `store_timeout`.
    async fn call<T>(&self, op: impl Future<Output = Result<T, StoreError>>) -> Result<T, Error> {
        let limit = self.policy.store_timeout;
        match tokio::time::timeout(limit, op).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::timed_out(limit)),
        }
    }

    /// Create an opaque-mode session for a user the app has authenticated.
    pub async fn create(&self, req: CreateRequest) -> Result<Created, Error> {
        let (session, credential, evicted) = self.create_in(req, Mode::Opaque).await?;
        match credential {
            Credential::Session(token) => Ok(Created {
                session,
                token,
                evicted,
            }),
            Credential::Refresh(_) => Err(Error::Corrupt("wrong credential kind".into())),
        }
    }

    /// Create a JWT-mode session: its client gets a refresh token and signed
    /// access tokens (signed by the caller).
    pub async fn create_jwt(&self, req: CreateRequest) -> Result<CreatedJwt, Error> {
        let (session, credential, evicted) = self.create_in(req, Mode::Jwt).await?;
        match credential {
            Credential::Refresh(refresh_token) => Ok(CreatedJwt {
                session,
                refresh_token,
                evicted,
            }),
            Credential::Session(_) => Err(Error::Corrupt("wrong credential kind".into())),
        }
    }

    async fn create_in(
        &self,
        req: CreateRequest,
        mode: Mode,
    ) -> Result<(Session, Credential, Vec<SessionId>), Error> {
        validate_user_id(&req.user_id)?;
        if let Some(role) = &req.role
            && (role.is_empty()
                || role.len() > MAX_ROLE_BYTES
                || role.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "role",
                format!("1..={MAX_ROLE_BYTES} bytes, no control characters"),
            ));
        }
        let role_policy = *self
            .policy
            .role(req.role.as_deref())
            .ok_or_else(|| Error::invalid("role", "not a configured role"))?;
        reject_reserved(&req.data)?;
        let size = data_size(&req.data);
        if size > self.policy.max_data_bytes {
            return Err(Error::DataTooLarge {
                size,
                max: self.policy.max_data_bytes,
            });
        }
        if let Some(ip) = &req.ip
            && ip.parse::<IpAddr>().is_err()
        {
            return Err(Error::invalid("ip", "an IPv4 or IPv6 address"));
        }
        let absolute_ttl =
            validate_ttl("absolute_ttl", req.absolute_ttl)?.unwrap_or(role_policy.absolute_ttl);
        let idle_ttl = validate_ttl("idle_ttl", req.idle_ttl)?
            .unwrap_or(role_policy.idle_ttl)
            .min(absolute_ttl);

        let now = self.now();
        let auth = validate_auth_context(req.aal, req.amr, req.authenticated_at, now)?;
        let shard = ShardTag::of_user(&req.user_id);
        let (credential, digest, refresh) = match mode {
            Mode::Opaque => {
                let token = SessionToken::generate(&shard);
                let digest = token.digest();
                (Credential::Session(token), digest, None)
            }
            Mode::Jwt => {
                let token = RefreshToken::generate(&shard);
                let (digest, hash) = (token.family_digest(), token.hash());
                (Credential::Refresh(token), digest, Some(hash))
            }
        };
        let session = Session {
            id: SessionId::generate(&shard),
            user_id: req.user_id,
            role: req.role,
            data: req.data,
            device: Device::from_request(req.user_agent.as_deref(), req.ip.as_deref()),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(idle_ttl),
            absolute_expires_at: now.plus(absolute_ttl),
            idle_ttl_ms: millis(idle_ttl),
            mode,
            auth,
        };
        let new = NewSession {
            session,
            token: digest,
            refresh,
            max_sessions: role_policy.max_sessions.max(1),
            limit_policy: self.policy.limit_policy,
        };
        let evicted = self.call(self.store.create(&new, now)).await?;
        tracing::debug!(session_id = %new.session.id, evicted = evicted.len(), "session created");
        Ok((new.session, credential, evicted))
    }

    /// The live session a token proves, recording activity when `touch` is set
    /// (coalesced by the touch interval). A token that is not even shaped like
    /// one is an [`Error::Invalid`] on field `token`; a well-formed token of no
    /// live session is `Ok(None)`.
    pub async fn introspect(&self, token: &str, touch: bool) -> Result<Option<Session>, Error> {
        let token = parse_token(token)?;
        let rule = touch.then(|| TouchRule {
            interval_ms: millis(self.policy.touch_interval),
        });
        self.call(self.store.introspect(&token.digest(), rule, self.now()))
            .await
    }

    /// A live session by id.
    pub async fn get(&self, id: &str) -> Result<Session, Error> {
        let id = parse_id(id)?;
        self.call(self.store.get(&id, self.now()))
            .await?
            .ok_or(Error::NotFound)
    }

    /// Merge into or replace a session's data; expiry is unchanged.
    pub async fn update_data(&self, id: &str, update: DataUpdate) -> Result<Session, Error> {
        let id = parse_id(id)?;
        let max = self.policy.max_data_bytes;
        let incoming = match &update {
            DataUpdate::Merge(d) | DataUpdate::Replace(d) => {
                reject_reserved(d)?;
                data_size(d)
            }
        };
        if incoming > max {
            return Err(Error::DataTooLarge {
                size: incoming,
                max,
            });
        }
        self.call(self.store.update_data(&id, &update, max, self.now()))
            .await?
            .ok_or(Error::NotFound)
    }

    /// Extend a session's idle deadline by `idle_ttl` (default: its own idle
    /// timeout) from now, never past its absolute deadline and never shorter.
    pub async fn extend(&self, id: &str, idle_ttl: Option<Duration>) -> Result<Session, Error> {
        let id = parse_id(id)?;
        let ttl_ms = validate_ttl("idle_ttl", idle_ttl)?.map(millis);
        self.call(self.store.extend(&id, ttl_ms, self.now()))
            .await?
            .ok_or(Error::NotFound)
    }

    /// Record a new authentication of a session's user (a step-up or a
    /// re-authentication): its level rises to `aal` (never falls), `method`
    /// joins its `amr`, and `authenticated_at` becomes now. The token stays.
    pub async fn authenticate(&self, id: &str, aal: Aal, method: &str) -> Result<Session, Error> {
        let id = parse_id(id)?;
        if !valid_method(method) {
            return Err(Error::invalid(
                "method",
                "1 to 32 characters from A-Z a-z 0-9 _ . : -",
            ));
        }
        let auth = Authentication {
            aal,
            method: method.to_owned(),
        };
        let session = self
            .call(self.store.authenticate(&id, &auth, self.now()))
            .await?
            .ok_or(Error::NotFound)?;
        tracing::debug!(session_id = %session.id, aal = %session.auth.aal, "authentication recorded");
        Ok(session)
    }

    /// Compare `presenter` with the device `session` was created on, by the
    /// binding of its role: a mismatch revokes it (reason
    /// `binding_mismatch`) or flags it, as the role says.
    pub async fn check_binding(
        &self,
        session: &Session,
        presenter: &Presenter<'_>,
    ) -> Result<BindingCheck, Error> {
        let Some(binding) = self.policy.binding(session.role.as_deref()) else {
            return Ok(BindingCheck::Kept);
        };
        let broken = binding.mismatches(&session.device, presenter);
        if broken.is_empty() {
            return Ok(BindingCheck::Kept);
        }
        match binding.on_mismatch {
            OnMismatch::Flag => Ok(BindingCheck::Flagged(broken)),
            OnMismatch::Revoke => {
                self.call(self.store.revoke(
                    &session.id,
                    &RevokeReason::BindingMismatch,
                    self.now(),
                ))
                .await?;
                tracing::info!(session_id = %session.id, "session presented off its binding: revoked");
                Ok(BindingCheck::Revoked(broken))
            }
        }
    }

    /// Whether `session`'s authentication meets `requirement` now:
    /// [`Error::AuthRequirement`] says what is short.
    pub fn check_auth(
        &self,
        session: &Session,
        requirement: &AuthRequirement,
    ) -> Result<(), Error> {
        if requirement.is_empty() {
            return Ok(());
        }
        requirement
            .check(&session.auth, self.now())
            .map_err(Error::AuthRequirement)
    }

    /// Give a session a new token by id; the old token is dead at once.
    pub async fn rotate(&self, id: &str) -> Result<Rotated, Error> {
        let id = parse_id(id)?;
        let token = SessionToken::generate(&id.shard());
        self.rotated(RotateTarget::Id(id), token).await
    }

    /// Give the session of `token` a new token, only if `token` is still its
    /// current one: of concurrent rotations with one token exactly one wins.
    pub async fn rotate_token(&self, token: &str) -> Result<Rotated, Error> {
        let old = parse_token(token)?.digest();
        let token = SessionToken::generate(&old.shard);
        self.rotated(RotateTarget::Token(old), token).await
    }

    async fn rotated(&self, target: RotateTarget, token: SessionToken) -> Result<Rotated, Error> {
        let new_hash = token.digest().hash;
        let session = self
            .call(self.store.rotate(&target, &new_hash, self.now()))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Rotated { session, token })
    }

    /// Rotate a refresh token: the presented current token gives a new one
    /// (the session's activity is recorded); the previous one presented again
    /// within `reuse_grace` gives the same new one back; any other token of
    /// the family revokes the session ([`Error::RefreshTokenReused`]). A token
    /// of no live session is [`Error::NotFound`]; one not shaped like a
    /// refresh token, [`Error::Invalid`].
    pub async fn refresh(&self, token: &str, reuse_grace: Duration) -> Result<Refreshed, Error> {
        let presented = RefreshToken::parse(token)
            .ok_or_else(|| Error::invalid("refresh_token", "not a refresh token"))?;
        let successor = presented.successor();
        let request = RefreshRequest {
            family: presented.family_digest(),
            presented: presented.hash(),
            successor: successor.hash(),
            wrapped_successor: presented.wrap(&successor),
            reuse_grace_ms: millis(reuse_grace),
        };
        let now = self.now();
        match self.call(self.store.refresh(&request, now)).await? {
            RefreshOutcome::Rotated {
                session,
                generation,
            } => Ok(Refreshed {
                session,
                refresh_token: successor,
                generation,
                issued_at: now,
                rotated: true,
            }),
            RefreshOutcome::Replayed {
                session,
                generation,
                rotated_at,
                wrapped_successor,
            } => Ok(Refreshed {
                session,
                refresh_token: presented.unwrap_successor(&wrapped_successor),
                generation,
                issued_at: rotated_at,
                rotated: false,
            }),
            RefreshOutcome::Reused { session_id } => {
                tracing::warn!(session_id = %session_id, "retired refresh token presented again: session revoked");
                Err(Error::RefreshTokenReused)
            }
            RefreshOutcome::Unknown => Err(Error::NotFound),
        }
    }

    /// Revoke one session. `Ok(false)` when it was already gone.
    pub async fn revoke(&self, id: &str, reason: RevokeReason) -> Result<bool, Error> {
        let Some(id) = SessionId::parse(id) else {
            return Ok(false);
        };
        let removed = self
            .call(self.store.revoke(&id, &reason, self.now()))
            .await?;
        if removed {
            tracing::debug!(session_id = %id, reason = %reason, "session revoked");
        }
        Ok(removed)
    }

    /// The user's live sessions, newest first.
    pub async fn list_user(&self, user_id: &str) -> Result<Vec<Session>, Error> {
        validate_user_id(user_id)?;
        self.call(self.store.list_user(user_id, self.now())).await
    }

    /// A page of the live sessions of all users that `filter` matches
    /// (every filter given must hold): at most `limit` (1..=1000, default
    /// 100), after the place `cursor` names (the `next_cursor` of an
    /// earlier page). Paging from no cursor until `next_cursor` is `None`
    /// gives every session that stayed live all along exactly once,
    /// whatever comes and goes meanwhile; a page may hold fewer than
    /// `limit`, even none, and still have a `next_cursor` (the store bounds
    /// the work of a page). Sessions come in the store's order, not by
    /// creation time.
    pub async fn list_sessions(
        &self,
        filter: SessionFilter,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<SessionPage, Error> {
        if let Some(user_id) = &filter.user_id {
            validate_user_id(user_id)?;
        }
        let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("a whole number from 1 to {MAX_LIST_LIMIT}"),
            ));
        }
        let after = cursor
            .map(|c| {
                SessionCursor::parse(c)
                    .ok_or_else(|| Error::invalid("cursor", "the next_cursor of an earlier page"))
            })
            .transpose()?;
        let query = SessionQuery {
            filter,
            limit,
            after,
        };
        self.call(self.store.list_sessions(&query, self.now()))
            .await
    }

    /// Number of the user's live sessions.
    pub async fn count_user(&self, user_id: &str) -> Result<u64, Error> {
        validate_user_id(user_id)?;
        self.call(self.store.count_user(user_id, self.now())).await
    }

    /// Revoke every session of the user except `except`; returns their ids.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: RevokeReason,
    ) -> Result<Vec<SessionId>, Error> {
        validate_user_id(user_id)?;
        let except = except.map(parse_except).transpose()?;
        self.call(
            self.store
                .revoke_user(user_id, except.as_ref(), &reason, self.now()),
        )
        .await
    }

    /// Revoke every session of the user created before `issued_before`
    /// except `except` (reason `reason`), and refuse from then on what was
    /// issued before it: a create whose session would be older is
    /// [`Error::IssuedBeforeRevocation`], and [`Engine::access_session`]
    /// refuses access tokens issued before it. The user's mark only moves
    /// forward and is kept for the longest absolute lifetime of any role
    /// after `issued_before`. `issued_before` may lie at most
    /// [`MAX_CLOCK_LEAD`] past the engine's clock.
    pub async fn revoke_issued_before(
        &self,
        user_id: &str,
        issued_before: Timestamp,
        except: Option<&str>,
        reason: RevokeReason,
    ) -> Result<Vec<SessionId>, Error> {
        validate_user_id(user_id)?;
        let except = except.map(parse_except).transpose()?;
        let now = self.now();
        if issued_before > now.plus(MAX_CLOCK_LEAD) {
            return Err(Error::invalid(
                "issued_before",
                "a time at most a minute past the server's clock",
            ));
        }
        let revocation = IssuedBefore {
            user_id: user_id.to_owned(),
            before: issued_before,
            except,
            reason,
            mark_ttl_ms: millis(self.policy.longest_absolute_ttl()),
        };
        let revoked = self
            .call(self.store.revoke_issued_before(&revocation, now))
            .await?;
        let (issued_before, reason) = (revocation.before, revocation.reason);
        tracing::debug!(revoked = revoked.len(), issued_before = %issued_before, reason = %reason, "sessions issued before a time revoked");
        Ok(revoked)
    }

    /// The live session an access token names (`sid`), issued at
    /// `issued_at` (its `iat`). [`Error::NotFound`] when the session is gone,
    /// or when the token was issued before the user's not-before mark by a
    /// session created before it (a session created at or after the mark
    /// issued all of its tokens after it).
    pub async fn access_session(&self, id: &str, issued_at: Timestamp) -> Result<Session, Error> {
        let session = self.get(id).await?;
        let mark = self
            .call(self.store.not_before(&session.user_id, self.now()))
            .await?;
        match mark {
            Some(mark) if session.created_at < mark && issued_at < mark => Err(Error::NotFound),
            _ => Ok(session),
        }
    }

    /// A page of the user's lifecycle events with their reasons, newest
    /// first: `limit` of them (1..=1000, default 100), older than the page
    /// `cursor` names (a `next_cursor` of an earlier page). A store that
    /// keeps no history answers [`Error::Unsupported`].
    pub async fn history(
        &self,
        user_id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, Error> {
        validate_user_id(user_id)?;
        let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("a whole number from 1 to {MAX_HISTORY_LIMIT}"),
            ));
        }
        let before = cursor.map(parse_cursor).transpose()?;
        // One more than asked: whether older events follow, without a
        // last, empty page.
        let mut events = self
            .call(self.store.history(user_id, limit + 1, before, self.now()))
            .await?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_cursor = more
            .then(|| events.last().map(|e| e.seq.to_string()))
            .flatten();
        Ok(HistoryPage {
            events,
            next_cursor,
        })
    }

    /// A read of the event feed (see [`crate::events`]): at most
    /// `query.limit` events (1..=1000) after `query.from`, of one user and
    /// some kinds if the query says so. A cursor from before events that
    /// have left the feed is [`Error::CursorExpired`]; a store that keeps no
    /// feed answers [`Error::Unsupported`].
    pub async fn events(&self, query: &EventQuery) -> Result<EventPage, Error> {
        if let Some(user_id) = &query.user_id {
            validate_user_id(user_id)?;
        }
        if !(1..=MAX_EVENTS_LIMIT).contains(&query.limit) {
            return Err(Error::invalid(
                "limit",
                format!("a whole number from 1 to {MAX_EVENTS_LIMIT}"),
            ));
        }
        self.call(self.store.events(query, self.now())).await
    }

    /// Register a connection on a live session, or keep it alive: it ends
    /// `ttl` (1 s to 1 h, default 60 s) after this heartbeat, or with its
    /// session. [`Error::NotFound`] when the session is not live.
    pub async fn beat_connection(
        &self,
        session_id: &str,
        connection_id: &str,
        node: Option<String>,
        ttl: Option<Duration>,
    ) -> Result<Beaten, Error> {
        let session_id = parse_id(session_id)?;
        let connection_id = parse_connection_id(connection_id)?;
        if node
            .as_deref()
            .is_some_and(|n| !crate::presence::well_formed(n, crate::presence::MAX_NODE_LEN))
        {
            return Err(Error::invalid(
                "node",
                "1 to 128 characters from A-Z a-z 0-9 _ . : -",
            ));
        }
        let ttl = ttl.unwrap_or(crate::presence::DEFAULT_CONNECTION_TTL);
        if ttl < Duration::from_secs(1) || ttl > crate::presence::MAX_CONNECTION_TTL {
            return Err(Error::invalid("ttl", "between 1 second and 1 hour"));
        }
        let beat = ConnectionBeat {
            session_id,
            connection_id,
            node,
            ttl_ms: millis(ttl),
        };
        self.call(self.store.beat_connection(&beat, self.now()))
            .await?
            .ok_or(Error::NotFound)
    }

    /// Close a connection; `true` if it was live.
    pub async fn close_connection(
        &self,
        session_id: &str,
        connection_id: &str,
    ) -> Result<bool, Error> {
        let connection_id = parse_connection_id(connection_id)?;
        let Some(session_id) = SessionId::parse(session_id) else {
            return Ok(false);
        };
        self.call(
            self.store
                .close_connection(&session_id, &connection_id, self.now()),
        )
        .await
    }

    /// Whether the user is online, on which devices, last seen when.
    pub async fn presence(&self, user_id: &str) -> Result<Presence, Error> {
        validate_user_id(user_id)?;
        self.call(self.store.presence(user_id, self.now())).await
    }

    /// Number of live sessions of all users (statistics; may scan the store).
    pub async fn count_live(&self) -> Result<u64, Error> {
        self.call(self.store.count_live(self.now())).await
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.call(self.store.ping()).await
    }

    /// The state of each node of the store, if it has several.
    pub async fn nodes(&self) -> Result<Vec<crate::NodeHealth>, Error> {
        self.call(self.store.nodes()).await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The session an id names. An id of any other shape names no session:
/// [`Error::NotFound`], as for a well-formed one that does not exist, so
/// that callers cannot tell which ids are well formed.
fn parse_id(id: &str) -> Result<SessionId, Error> {
    SessionId::parse(id).ok_or(Error::NotFound)
}

/// An id to spare (`except`): a malformed one is bad input, lest a typo
/// revoke the session its sender meant to keep.
fn parse_except(id: &str) -> Result<SessionId, Error> {
    SessionId::parse(id)
        .ok_or_else(|| Error::invalid("id", "a session id (33 base64url characters)"))
}

/// A history cursor: the decimal `seq` a page ended at.
fn parse_cursor(cursor: &str) -> Result<u64, Error> {
    cursor
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| cursor.parse().ok())
        .flatten()
        .ok_or_else(|| Error::invalid("cursor", "the next_cursor of an earlier page"))
}

fn parse_connection_id(id: &str) -> Result<ConnectionId, Error> {
    ConnectionId::parse(id).ok_or_else(|| {
        Error::invalid(
            "connection_id",
            "1 to 128 characters from A-Z a-z 0-9 _ . : -",
        )
    })
}

fn parse_token(token: &str) -> Result<SessionToken, Error> {
    SessionToken::parse(token).ok_or_else(|| Error::invalid("token", "a session token"))
}

fn validate_user_id(user_id: &str) -> Result<(), Error> {
    if user_id.is_empty()
        || user_id.len() > MAX_USER_ID_BYTES
        || user_id.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "user_id",
            format!("1..={MAX_USER_ID_BYTES} bytes, no control characters"),
        ));
    }
    Ok(())
}

/// App data may not hold a string that looks sealed at rest.
fn reject_reserved(data: &SessionData) -> Result<(), Error> {
    if crate::sealed::format::has_reserved_value(data) {
        return Err(Error::invalid(
            "data",
            format!(
                "values that are not strings starting with {:?} (reserved for data sealed at rest)",
                crate::sealed::format::PREFIX
            ),
        ));
    }
    Ok(())
}

/// The authentication context of a new session at `now`.
fn validate_auth_context(
    aal: Option<Aal>,
    amr: Vec<String>,
    authenticated_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<AuthContext, Error> {
    if amr.len() > MAX_METHODS || !amr.iter().all(|m| valid_method(m)) {
        return Err(Error::invalid(
            "amr",
            format!(
                "at most {MAX_METHODS} methods, each 1 to 32 characters from A-Z a-z 0-9 _ . : -"
            ),
        ));
    }
    let at = match authenticated_at {
        // Clocks of the app's servers and this one disagree a little.
        Some(at) if at > now.plus(MAX_CLOCK_LEAD) => {
            return Err(Error::invalid(
                "authenticated_at",
                "a time at most a minute past the server's clock",
            ));
        }
        Some(at) => at.min(now),
        None => now,
    };
    let mut methods: Vec<String> = Vec::with_capacity(amr.len());
    for m in amr {
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    Ok(AuthContext {
        authenticated_at: at,
        aal: aal.unwrap_or_default(),
        amr: methods,
    })
}

fn validate_ttl(field: &'static str, ttl: Option<Duration>) -> Result<Option<Duration>, Error> {
    match ttl {
        Some(t) if t < Duration::from_secs(1) || t > MAX_TTL => {
            Err(Error::invalid(field, "between 1 second and 400 days"))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_decimal_sequence_numbers() {
        assert_eq!(parse_cursor("0"), Ok(0));
        assert_eq!(parse_cursor("42"), Ok(42));
        assert_eq!(parse_cursor("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.5",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert!(
                matches!(
                    parse_cursor(bad),
                    Err(Error::Invalid {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }
}
