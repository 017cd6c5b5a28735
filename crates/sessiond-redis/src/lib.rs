//! A Redis [`Store`] for sessiond: an introspection is one plain `GET` (plus
//! a script when a touch is due), every write is one Lua script run in one
//! round trip, every key of an operation sits in the user's Cluster hash
//! slot, and Redis TTLs back up the liveness rules the engine and the scripts
//! apply.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sessiond_engine::StoreError> {
//! use sessiond_redis::{RedisOptions, RedisStore};
//! let store = RedisStore::connect("redis://localhost/", RedisOptions::default()).await?;
//! # drop(store); Ok(()) }
//! ```
//!
//! Key schema (`P` = key prefix, `B` = the user's bucket, `T` = the user's
//! shard tag, `th` = the start of a token hash; see `keys`):
//! - `Pv3:{B}:T:r:<th>`: the session record of a token, one MessagePack value;
//! - `Pv3:{B}:T:i`: the tag's index of sessions, scored by idle deadline;
//! - `Pv3:{B}:T:c`, `Pv3:{B}:T:k`: the tag's live connections;
//! - `Pv3:{B}:e`: the bucket's event stream (see `feed`);
//! - `Pv3:{B}:x`: the bucket's tags, which the sweep and the listing of all
//!   users' sessions (see `listing`) walk.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod channel_socket;
mod clients;
mod codec;
mod connection;
mod errors;
mod feed;
mod keys;
mod listing;
mod presence;
mod record;
mod scripts;
mod sentinel_link;
mod sweeper;
mod topology;
mod tracking;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessiond_engine::{
    Authentication, Beaten, CacheSource, Clock, ConnectionBeat, ConnectionId, DataUpdate,
    EventPage, EventQuery, EventRetention, HistoryEvent, IssuedBefore, LimitPolicy, NearCache,
    NewSession, Presence, RefreshOutcome, RefreshRequest, RevokeReason, RotateTarget, Session,
    SessionId, SessionPage, SessionQuery, ShardTag, Store, StoreError, SystemClock, Timestamp,
    TokenDigest, TokenHash, TouchRule, TrackedRead,
};

use crate::codec::Reply;
use crate::connection::{Connection, Retry};
use crate::keys::{KeySchema, id_random};
use crate::scripts::SCRIPTS;
use crate::sweeper::Sweeper;
pub use crate::topology::{Topology, UrlError};
pub use crate::tracking::CONNECTION_NAME as NEAR_CACHE_CONNECTION_NAME;
use crate::tracking::Tracking;

/// What [`Store::history`] answers on Redis ([`StoreError::Unsupported`]).
pub const HISTORY_UNSUPPORTED: &str =
    "history needs a SQL store (embedded or PostgreSQL): the Redis store keeps no history";

/// Settings of a [`RedisStore`].
#[derive(Clone)]
pub struct RedisOptions {
    /// Prefix of every key (default `sessiond:`). Must not contain `{` or `}`:
    /// the shard tag after it is the key's Cluster hash tag.
    pub key_prefix: String,
    /// Bound on connecting and on every call (default 2 s); past it a call
    /// fails with [`StoreError::Unavailable`].
    pub timeout: Duration,
    /// CA certificates (PEM) trusted for `rediss://` instead of the system's
    /// roots (e.g. a private CA of a managed Redis). `None`: the system's.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Replicas that every revoking write (revoke, revoke a user's sessions,
    /// rotate, refresh) must reach before it is acknowledged, checked with
    /// `WAIT` in the same round trip; fewer within half the timeout is
    /// [`StoreError::Unavailable`]. 0 (the default): the master's
    /// acknowledgement is enough, and a failover may lose the last writes.
    pub wait_replicas: u32,
    /// How long, and how many, events the feed keeps ([`Store::events`]);
    /// older ones are retired by the sweep. Default: 24 hours, a million.
    pub event_retention: EventRetention,
    /// Whether writes record their events (default: yes). Without them the
    /// feed stays empty.
    pub record_events: bool,
    /// Clock of the background sweep (operations use the `now` they are
    /// given). Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How often the sweep removes sessions and connections whose deadline
    /// passed (recording their events) and retires old events;
    /// [`Duration::ZERO`] turns it off. Default: 1 s. Redis drops what the
    /// sweep has not removed 10 s after its deadline, without an event.
    pub sweep_interval: Duration,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(Vec::len))
            .field("wait_replicas", &self.wait_replicas)
            .field("event_retention", &self.event_retention)
            .field("record_events", &self.record_events)
            .field("sweep_interval", &self.sweep_interval)
            .finish_non_exhaustive()
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "sessiond:".to_owned(),
            timeout: Duration::from_secs(2),
            tls_ca_pem: None,
            wait_replicas: 0,
            event_retention: EventRetention::default(),
            record_events: true,
            clock: Arc::new(SystemClock),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// The background sweep's task, stopped when the last clone of the store
/// goes.
struct SweepTask(Option<tokio::task::JoinHandle<()>>);

impl Drop for SweepTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Sessions in Redis. Cheap to clone; clones share one multiplexed connection
/// that reconnects by itself after Redis restarts (and, once a near-cache is
/// attached, its invalidation channel).
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    keys: KeySchema,
    tracking: Arc<OnceLock<Tracking>>,
    sweeper: Sweeper,
    _sweep_task: Arc<SweepTask>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URL: it may hold a password.
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.keys.prefix())
            .field("timeout", &self.conn.timeout())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connect to the Redis at `url` (`redis://[user:password@]host:port/db`).
    /// Succeeds or fails within `options.timeout`; a bad URL or a key prefix
    /// with braces fails at once. All failures are [`StoreError::Unavailable`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let keys = KeySchema::new(&options.key_prefix).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "key prefix {:?} contains '{{' or '}}'; Redis would take it as the hash tag",
                options.key_prefix
            ))
        })?;
        let conn = Connection::open(
            url,
            options.timeout,
            options.tls_ca_pem.as_deref(),
            &SCRIPTS.all(),
        )
        .await?
        .with_wait_replicas(options.wait_replicas);
        let retention_ms =
            u64::try_from(options.event_retention.max_age.as_millis()).unwrap_or(u64::MAX / 2);
        let sweeper = Sweeper {
            conn: conn.clone(),
            keys: keys.clone(),
            retention_arg: if options.record_events {
                retention_ms.to_string()
            } else {
                String::new()
            },
            retention: options.event_retention,
        };
        let task = (!options.sweep_interval.is_zero()).then(|| {
            sweeper
                .clone()
                .start(options.clock.clone(), options.sweep_interval)
        });
        Ok(Self {
            conn,
            keys,
            tracking: Arc::new(OnceLock::new()),
            sweeper,
            _sweep_task: Arc::new(SweepTask(task)),
        })
    }

    /// Remove every session and connection dead at `now`, recording their
    /// events, as the background sweep does; how many sessions.
    pub async fn sweep(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.sweeper.sweep(now).await
    }

    /// Retire the events past the feed's retention and size bound, as the
    /// background sweep does; how many.
    pub async fn retire_events(&self) -> Result<u64, StoreError> {
        self.sweeper.retire().await
    }

    /// Script arguments that start with the tag's base, the time and the
    /// feed's retention.
    fn args(&self, tag: &ShardTag, now: Timestamp) -> Args {
        let mut a = Args(Vec::with_capacity(8));
        a.push(self.keys.base(tag));
        a.push(now.as_millis().to_string());
        a.push(self.sweeper.retention_arg.as_str());
        a
    }
}

impl RedisStore {
    /// Judge the record `raw` read for `token`: liveness is decided here,
    /// from the fields of the one read.
    fn live(
        &self,
        raw: Option<&[u8]>,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Found, StoreError> {
        let Some(raw) = raw else {
            return Ok(Found::None);
        };
        let (session, _) = record::decode(raw, &token.shard)?;
        if !session.is_live(now) {
            return Ok(Found::None);
        }
        Ok(match touch.filter(|rule| session.touch_due(*rule, now)) {
            Some(rule) => Found::TouchDue(rule),
            None => Found::Live(session),
        })
    }

    /// Record activity on the record at `key` (the touch script re-checks
    /// liveness and the interval).
    async fn touch(
        &self,
        key: String,
        token: &TokenDigest,
        rule: TouchRule,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let mut args = self.args(&token.shard, now);
        args.push(rule.interval_ms.to_string());
        let reply = self
            .conn
            .eval(&SCRIPTS.touch, &[key], &args.0, Retry::Never)
            .await?;
        codec::maybe_session(&reply, &token.shard)
    }
}

/// What one read of a token's record found.
#[allow(clippy::large_enum_variant)] // lives on the stack for one call; a box would allocate per read
enum Found {
    None,
    Live(Session),
    TouchDue(TouchRule),
}

/// Arguments of a script call.
struct Args(Vec<Vec<u8>>);

impl Args {
    fn push(&mut self, value: impl Into<Vec<u8>>) -> &mut Self {
        self.0.push(value.into());
        self
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let s = &new.session;
        let tag = s.id.shard();
        let keys = [
            self.keys.record_in(&tag, &new.token.hash),
            self.keys.index(&tag),
        ];
        let policy = match new.limit_policy {
            LimitPolicy::EvictOldest => "evict",
            LimitPolicy::Reject => "reject",
        };
        let mut args = self.args(&tag, now);
        args.push(s.user_id.as_str())
            .push(new.max_sessions.max(1).to_string())
            .push(policy)
            .push(record::encode(s, new.refresh.as_ref())?);
        let reply = self
            .conn
            .eval(&SCRIPTS.create, &keys, &args.0, Retry::Never)
            .await?;
        match codec::tagged(&reply)? {
            Reply::Rest(evicted) => codec::id_list(evicted),
            Reply::Limit => Err(StoreError::LimitReached {
                max: new.max_sessions,
            }),
            Reply::IssuedBefore => Err(StoreError::IssuedBeforeRevocation),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.keys.record(token);
        let raw = self.conn.get(&key).await.inspect_err(|e| {
            tracing::debug!(token_hash = %token.hash.short(), error = %e, "introspection failed");
        })?;
        match self.live(raw.as_deref(), token, touch, now)? {
            Found::None => Ok(None),
            Found::Live(session) => Ok(Some(session)),
            Found::TouchDue(rule) => self.touch(key, token, rule, now).await,
        }
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let tag = id.shard();
        let mut args = self.args(&tag, now);
        args.push(id_random(id));
        let reply = self
            .conn
            .eval(&SCRIPTS.get, &[self.keys.index(&tag)], &args.0, Retry::Once)
            .await?;
        codec::maybe_session(&reply, &tag)
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let tag = id.shard();
        let (mode, data, null_deletes) = match update {
            DataUpdate::Merge(d) => ("merge", d, true),
            DataUpdate::Replace(d) => ("replace", d, false),
        };
        let mut args = self.args(&tag, now);
        args.push(id_random(id))
            .push(max_data_bytes.to_string())
            .push(mode);
        codec::push_data_pairs(&mut args.0, data, null_deletes)?;
        let reply = self
            .conn
            .eval(
                &SCRIPTS.update_data,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Never,
            )
            .await?;
        match codec::tagged(&reply)? {
            Reply::Record(raw) => Ok(Some(codec::session(raw, &tag)?)),
            Reply::None => Ok(None),
            Reply::TooLarge(size) => Err(StoreError::DataTooLarge {
                size,
                max: max_data_bytes,
            }),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let tag = id.shard();
        let mut args = self.args(&tag, now);
        args.push(id_random(id))
            .push(idle_ttl_ms.map(|t| t.to_string()).unwrap_or_default());
        let reply = self
            .conn
            .eval(
                &SCRIPTS.extend,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Never,
            )
            .await?;
        codec::maybe_session(&reply, &tag)
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let tag = id.shard();
        let mut args = self.args(&tag, now);
        args.push(id_random(id))
            .push(auth.aal.level().to_string())
            .push(auth.method.clone());
        let reply = self
            .conn
            .eval(
                &SCRIPTS.authenticate,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Never,
            )
            .await?;
        codec::maybe_session(&reply, &tag)
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let (tag, mode, which) = match target {
            RotateTarget::Id(id) => (id.shard(), "id", id_random(id).to_owned()),
            RotateTarget::Token(old) => (old.shard.clone(), "token", keys::th(&old.hash)),
        };
        let keys = [self.keys.record_in(&tag, new_token), self.keys.index(&tag)];
        let mut args = self.args(&tag, now);
        args.push(mode).push(which);
        let reply = self
            .conn
            .eval_revoking(&SCRIPTS.rotate, &keys, &args.0)
            .await?;
        codec::maybe_session(&reply, &tag)
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        let family = &request.family;
        let mut args = self.args(&family.shard, now);
        args.push(request.presented.to_base64())
            .push(request.successor.to_base64())
            .push(URL_SAFE_NO_PAD.encode(request.wrapped_successor))
            .push(request.reuse_grace_ms.to_string());
        let reply = self
            .conn
            .eval_revoking(&SCRIPTS.refresh, &[self.keys.record(family)], &args.0)
            .await?;
        codec::refresh_outcome(&reply, &family.shard)
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let tag = id.shard();
        let mut args = self.args(&tag, now);
        args.push(id_random(id)).push(reason.as_str());
        let reply = self
            .conn
            .eval_revoking(&SCRIPTS.revoke, &[self.keys.index(&tag)], &args.0)
            .await?;
        let removed = codec::integer(&reply)? == 1;
        if removed {
            tracing::trace!(session_id = %id, reason = %reason, "session removed from redis");
        }
        Ok(removed)
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let tag = ShardTag::of_user(user_id);
        let args = self.args(&tag, now);
        let reply = self
            .conn
            .eval(
                &SCRIPTS.list_tag,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Once,
            )
            .await?;
        match codec::tagged(&reply)? {
            Reply::Rest(records) => codec::user_sessions(records, user_id, &tag),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError> {
        listing::page(
            &self.conn,
            &self.keys,
            &self.sweeper.retention_arg,
            query,
            now,
        )
        .await
    }

    async fn count_live(&self, _now: Timestamp) -> Result<u64, StoreError> {
        // Records expire with their idle deadline (Redis TTL), so the keys
        // present are the live sessions, give or take the last second.
        self.conn.count_keys(&self.keys.all_records_pattern()).await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let n = self.list_user(user_id, now).await?.len();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let tag = ShardTag::of_user(user_id);
        let mut args = self.args(&tag, now);
        args.push(user_id)
            .push(except.map(|id| id.as_str().to_owned()).unwrap_or_default())
            .push(reason.as_str());
        let reply = self
            .conn
            .eval_revoking(&SCRIPTS.revoke_user, &[self.keys.index(&tag)], &args.0)
            .await?;
        codec::id_list(codec::array(&reply)?)
    }

    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let r = revocation;
        let tag = ShardTag::of_user(&r.user_id);
        let mut args = self.args(&tag, now);
        args.push(r.user_id.as_str())
            .push(r.before.as_millis().to_string())
            .push(r.mark_end().as_millis().to_string())
            .push(r.except.as_ref().map(|id| id.as_str()).unwrap_or_default())
            .push(r.reason.as_str());
        let keys = [self.keys.index(&tag), self.keys.not_before(&tag)];
        let reply = self
            .conn
            .eval_revoking(&SCRIPTS.revoke_issued_before, &keys, &args.0)
            .await?;
        codec::id_list(codec::array(&reply)?)
    }

    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let tag = ShardTag::of_user(user_id);
        let mut args = self.args(&tag, now);
        args.push(user_id);
        let keys = [self.keys.not_before(&tag)];
        let reply = self
            .conn
            .eval(&SCRIPTS.not_before, &keys, &args.0, Retry::Once)
            .await?;
        match reply {
            redis::Value::Nil => Ok(None),
            redis::Value::Int(ms) => Ok(Some(Timestamp::from_millis(ms))),
            other => Err(StoreError::Corrupt(format!(
                "unexpected reply to not_before: {other:?}"
            ))),
        }
    }

    async fn history(
        &self,
        _user_id: &str,
        _limit: u32,
        _before: Option<u64>,
        _now: Timestamp,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        // Redis keeps live sessions only: an audit trail that outlives them
        // belongs in a durable, queryable store.
        Err(StoreError::Unsupported(HISTORY_UNSUPPORTED.to_owned()))
    }

    async fn events(&self, query: &EventQuery, _now: Timestamp) -> Result<EventPage, StoreError> {
        feed::read(&self.conn, &self.keys, query, &self.sweeper.retention).await
    }

    async fn beat_connection(
        &self,
        beat: &ConnectionBeat,
        now: Timestamp,
    ) -> Result<Option<Beaten>, StoreError> {
        let tag = beat.session_id.shard();
        let mut args = self.args(&tag, now);
        args.push(id_random(&beat.session_id))
            .push(beat.connection_id.as_str())
            .push(beat.node.clone().unwrap_or_default())
            .push(beat.ttl_ms.to_string());
        let reply = self
            .conn
            .eval(
                &SCRIPTS.beat,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Never,
            )
            .await?;
        presence::beaten(&reply, beat)
    }

    async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &ConnectionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let tag = session_id.shard();
        let mut args = self.args(&tag, now);
        args.push(id_random(session_id))
            .push(connection_id.as_str());
        let reply = self
            .conn
            .eval(
                &SCRIPTS.close_connection,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Once,
            )
            .await?;
        Ok(codec::integer(&reply)? == 1)
    }

    async fn presence(&self, user_id: &str, now: Timestamp) -> Result<Presence, StoreError> {
        let tag = ShardTag::of_user(user_id);
        let mut args = self.args(&tag, now);
        args.push(user_id);
        let reply = self
            .conn
            .eval(
                &SCRIPTS.presence,
                &[self.keys.index(&tag)],
                &args.0,
                Retry::Once,
            )
            .await?;
        presence::presence(&reply, &tag)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }

    async fn nodes(&self) -> Result<Vec<sessiond_engine::NodeHealth>, StoreError> {
        Ok(self
            .conn
            .nodes()
            .await?
            .into_iter()
            .map(|n| sessiond_engine::NodeHealth {
                address: format!("{}:{}", n.host, n.port),
                role: n.role,
                health: n.health,
                group: n.shard,
                holds_data: n.has_slots,
            })
            .collect())
    }

    async fn close(&self) -> Result<(), StoreError> {
        if let Some(tracking) = self.tracking.get() {
            tracking.stop();
        }
        Ok(())
    }
}

#[async_trait]
impl CacheSource for RedisStore {
    fn cache_key(&self, token: &TokenDigest) -> Vec<u8> {
        self.keys.record(token).into_bytes()
    }

    fn start_invalidations(&self, cache: Arc<NearCache>) {
        let Some(target) = self.conn.tracking_target() else {
            return;
        };
        let tracking = Tracking::start(
            target,
            self.conn.tls_ca_pem(),
            self.conn.timeout(),
            cache,
            &self.keys.schema_prefix(),
        );
        if self.tracking.set(tracking).is_err() {
            tracing::warn!("the near-cache invalidation channel was already started");
        }
    }

    fn sync_channel(&self) -> bool {
        self.tracking.get().is_some_and(Tracking::quiet)
    }

    async fn introspect_tracked(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<TrackedRead, StoreError> {
        let key = self.keys.record(token);
        let tracked = match self.tracking.get() {
            // Every change to a record is broadcast (a cluster): an
            // ordinary read is followed as well.
            Some(tracking) if tracking.broadcasts() => Some(self.conn.get(&key).await),
            Some(tracking) => tracking.get(&key).await,
            None => None,
        };
        let Some(raw) = tracked else {
            // No channel to follow the read: an ordinary introspection.
            let session = self.introspect(token, touch, now).await?;
            return Ok(TrackedRead {
                session,
                cacheable: false,
            });
        };
        let raw = raw.inspect_err(|e| {
            tracing::debug!(token_hash = %token.hash.short(), error = %e, "introspection failed");
        })?;
        Ok(match self.live(raw.as_deref(), token, touch, now)? {
            Found::None => TrackedRead {
                session: None,
                cacheable: true,
            },
            Found::Live(session) => TrackedRead {
                session: Some(session),
                cacheable: true,
            },
            Found::TouchDue(rule) => TrackedRead {
                session: self.touch(key, token, rule, now).await?,
                cacheable: false,
            },
        })
    }
}
