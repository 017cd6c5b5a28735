//! The PostgreSQL session store: the system of record for teams that run
//! PostgreSQL and no Redis. Every operation is one statement or one
//! transaction (see `ops` for which lock keeps each atomic), tables live in
//! their own schema that the store creates and migrates, only token hashes
//! are stored, dead rows are swept in bounded batches, and a near-cache in
//! front is kept honest by `LISTEN/NOTIFY` sent in the same transaction as
//! every change.
//!
//! Live connections on sessions (a WebSocket, say) are rows of their own,
//! each with an expiry that heartbeats move; a foreign key takes them with
//! their session's row, and the sweep closes the expired ones.
//!
//! Every change also writes its event (created, rotated, refreshed,
//! data_updated, extended, revoked with the reason, expired,
//! connection_opened, connection_closed) in its own
//! transaction, into one table that is both the event feed
//! ([`Store::events`], kept for [`PostgresOptions::event_retention`]) and
//! the history (its lifecycle events, kept for
//! [`PostgresOptions::history_retention`]).
//!
//! Transactions commit in another order than they take their `seq`, so the
//! feed is not read by `seq`: each event carries the id of the transaction
//! that wrote it, the feed is ordered by that id then `seq`, and a read
//! hands out only the events of transactions older than the oldest one still
//! running (every one of those has ended, so no event can later appear
//! before a cursor already handed out). The price: a long-running
//! transaction anywhere in the PostgreSQL cluster (any database, not only
//! this store's) that has written anything, and so holds a transaction id,
//! holds back the delivery of every event of the transactions that took
//! their ids after it, until it ends; so does a prepared (two-phase)
//! transaction. Nothing is lost, only late. Keep transactions short, and
//! watch for connections left idle in a transaction
//! (`idle_in_transaction_session_timeout` ends them).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod errors;
mod feed;
mod history;
mod listener;
mod listing;
mod ops;
mod rows;
mod schema;
mod statements;
mod sweeper;
mod target;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sessiond_engine::history::retention_cutoff;
use sessiond_engine::{
    Authentication, Beaten, CacheSource, Clock, ConnectionBeat, ConnectionId, DataUpdate,
    EventPage, EventQuery, EventRetention, HistoryEvent, IssuedBefore, NearCache, NewSession,
    NodeHealth, Presence, RefreshOutcome, RefreshRequest, RevokeReason, RotateTarget, Session,
    SessionId, SessionPage, SessionQuery, Store, StoreError, SystemClock, Timestamp, TokenDigest,
    TokenHash, TouchRule, TrackedRead,
};
use tokio::task::JoinHandle;

pub use schema::valid_schema_name;
pub use target::check_url;

use crate::errors::from_pool;
use crate::listener::Listener;
use crate::ops::{Ctx, Failure};
use crate::statements::Statements;
use crate::target::Target;

/// How a [`PostgresStore`] connects and behaves.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The PostgreSQL schema (namespace) that holds the tables; created if
    /// missing. A lower-case identifier. Default: `sessiond`.
    pub schema: String,
    /// Most connections in the pool. Default: 16.
    pub max_connections: usize,
    /// How long connecting, or waiting for a pooled connection, may take.
    /// Default: 2 s.
    pub timeout: Duration,
    /// PEM root certificates for TLS when the URL names no `sslrootcert`.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Clock of the background sweep (operations use the `now` they are
    /// given). Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How often dead rows are deleted (and history past its retention
    /// pruned); [`Duration::ZERO`] turns the sweep off. Default: 1 s.
    pub sweep_interval: Duration,
    /// How long history events are kept: older ones are left out of
    /// [`Store::history`] and pruned by the sweep. Default:
    /// [`sessiond_engine::history::DEFAULT_RETENTION`] (90 days).
    pub history_retention: Duration,
    /// How long, and how many, events the feed keeps ([`Store::events`]);
    /// older ones are retired by the sweep. Default: 24 hours, a million
    /// events. Never longer than `history_retention`, which the lifecycle
    /// events leave with.
    pub event_retention: EventRetention,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "sessiond".to_owned(),
            max_connections: 16,
            timeout: Duration::from_secs(2),
            tls_ca_pem: None,
            clock: Arc::new(SystemClock),
            sweep_interval: Duration::from_secs(1),
            history_retention: sessiond_engine::history::DEFAULT_RETENTION,
            event_retention: EventRetention::default(),
        }
    }
}

/// Sessions in PostgreSQL.
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Statements>,
    schema: String,
    /// The change notification channel of this schema.
    channel: String,
    /// For the invalidation channel's own connection.
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    timeout: Duration,
    history_retention: Duration,
    event_retention: EventRetention,
    listener: OnceLock<Listener>,
    sweeper: Option<JoinHandle<()>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("hosts", &self.config.get_hosts().len())
            .field("pool", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

/// Run an operation on a pooled connection, again (up to twice more) when
/// a concurrent transaction made PostgreSQL roll it back.
macro_rules! with_retry {
    ($self:ident, |$client:ident, $ctx:ident| $body:expr) => {{
        let $ctx = $self.ctx();
        let mut attempt = 0;
        loop {
            #[allow(unused_mut)]
            let mut $client = $self.client().await?;
            match $body.await {
                Err(f) if f.is_transient() && attempt < 2 => attempt += 1,
                other => break other.map_err(Failure::into_store),
            }
        }
    }};
}

impl PostgresStore {
    /// Connect to `url` (`postgres://` or `postgresql://`, with `sslmode`
    /// and `sslrootcert` as libpq reads them), create or migrate the schema,
    /// and start the expiry sweep.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if !valid_schema_name(&options.schema) {
            return Err(StoreError::Unavailable(format!(
                "postgres schema {:?} is not a lower-case identifier",
                options.schema
            )));
        }
        let Target { config, tls, .. } =
            target::parse(url, options.tls_ca_pem.as_deref(), options.timeout)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(|e| from_pool(&e))?;
            schema::migrate(&mut client, &options.schema).await?;
        }
        let sql = Arc::new(Statements::new(&options.schema));
        // A lifecycle event leaves the table with the history: the feed
        // cannot keep it longer.
        let event_retention = EventRetention {
            max_age: options
                .event_retention
                .max_age
                .min(options.history_retention),
            ..options.event_retention
        };
        let sweeper = (!options.sweep_interval.is_zero()).then(|| {
            sweeper::start(
                pool.clone(),
                sql.clone(),
                options.clock.clone(),
                options.sweep_interval,
                options.history_retention,
                event_retention,
            )
        });
        Ok(Self {
            pool,
            sql,
            channel: format!("{}_changes", options.schema),
            schema: options.schema,
            config,
            tls,
            timeout: options.timeout,
            history_retention: options.history_retention,
            event_retention,
            listener: OnceLock::new(),
            sweeper,
        })
    }

    /// Create `options.schema` at an older `version` of its tables (for
    /// tests that prove an upgrade keeps what the older version held).
    #[doc(hidden)]
    pub async fn create_schema_at(
        url: &str,
        options: &PostgresOptions,
        version: usize,
    ) -> Result<(), StoreError> {
        let Target { config, tls, .. } =
            target::parse(url, options.tls_ca_pem.as_deref(), options.timeout)?;
        let (mut client, connection) =
            config.connect(tls).await.map_err(|e| errors::from_pg(&e))?;
        let driver = tokio::spawn(connection);
        let migrated = schema::migrate_to(&mut client, &options.schema, version).await;
        drop(client);
        let _ = driver.await;
        migrated
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Delete every session dead at `clock`'s now, in batches with their
    /// `expired` events, then close every connection expired then, in
    /// batches with their `connection_closed` events; returns how many
    /// sessions (the background sweep runs the same).
    pub async fn sweep(&self, clock: &dyn Clock) -> Result<u64, StoreError> {
        let deleted = sweeper::sweep(&self.pool, &self.sql, clock)
            .await
            .map_err(StoreError::Unavailable)?;
        sweeper::close_expired(&self.pool, &self.sql, clock)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(deleted)
    }

    /// Retire the events past the feed's retention at `clock`'s now, then
    /// delete the history events past the history's, in batches; returns
    /// how many history events were deleted (the background sweep runs the
    /// same).
    pub async fn prune_history(&self, clock: &dyn Clock) -> Result<u64, StoreError> {
        sweeper::retire(&self.pool, &self.sql, clock, &self.event_retention)
            .await
            .map_err(StoreError::Unavailable)?;
        sweeper::prune(&self.pool, &self.sql, clock, self.history_retention)
            .await
            .map_err(StoreError::Unavailable)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        schema::version(&client, &self.schema).await
    }

    /// The query plan PostgreSQL picks for the statement an operation runs
    /// (`introspect`, `list_user`, `list_sessions`, `list_sessions_user`,
    /// `sweep`, `history`, `prune`, `feed`,
    /// `feed_user`, `retire`, `presence`, `sweep_connections`), for tests
    /// that prove they are index lookups.
    pub async fn explain(&self, operation: &str) -> Result<String, StoreError> {
        let (sql, params): (&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]) = match operation {
            "introspect" => (&self.sql.by_token, &[&&[0u8; 32][..], &0_i64]),
            "list_user" => (&self.sql.list_user, &[&"someone", &0_i64]),
            "list_sessions" => (
                &self.sql.list_window,
                &[
                    &"",
                    &1000_i64,
                    &0_i64,
                    &None::<i64>,
                    &Some("mobile"),
                    &None::<&str>,
                    &false,
                ],
            ),
            "list_sessions_user" => (
                &self.sql.list_window_user,
                &[
                    &"",
                    &1000_i64,
                    &0_i64,
                    &None::<i64>,
                    &None::<&str>,
                    &None::<&str>,
                    &false,
                    &"someone",
                ],
            ),
            "sweep" => (&self.sql.sweep, &[&0_i64, &sweeper::SWEEP_BATCH]),
            "history" => (
                &self.sql.history_page,
                &[&"someone", &i64::MAX, &0_i64, &100_i64],
            ),
            "prune" => (&self.sql.prune, &[&0_i64, &sweeper::SWEEP_BATCH]),
            "feed" => (&self.sql.feed, &[&Some(0_i64), &Some(0_i64), &100_i64]),
            "feed_user" => (
                &self.sql.feed_user,
                &[&Some(0_i64), &Some(0_i64), &100_i64, &"someone"],
            ),
            "retire" => (&self.sql.retire_scan, &[&0_i64, &0_i64, &1000_i64]),
            "presence" => (&self.sql.presence, &[&"someone", &0_i64]),
            "sweep_connections" => (
                &self.sql.sweep_connections,
                &[&0_i64, &sweeper::SWEEP_BATCH],
            ),
            other => {
                return Err(StoreError::Unavailable(format!(
                    "no operation {other} to explain"
                )));
            }
        };
        let client = self.client().await?;
        let explain = format!("EXPLAIN {sql}");
        let rows = client
            .query(&explain, params)
            .await
            .map_err(|e| errors::from_pg(&e))?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .collect::<Vec<_>>()
            .join("\n"))
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| from_pool(&e))
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            sql: &self.sql,
            channel: &self.channel,
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(sweeper) = &self.sweeper {
            sweeper.abort();
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        with_retry!(self, |c, x| ops::create(&mut c, &x, new, now))
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        with_retry!(self, |c, x| ops::introspect(&c, &x, token, touch, now))
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        with_retry!(self, |c, x| ops::get(&c, &x, id, now))
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        with_retry!(self, |c, x| ops::update_data(
            &mut c,
            &x,
            id,
            update,
            max_data_bytes,
            now
        ))
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        with_retry!(self, |c, x| ops::extend(&mut c, &x, id, idle_ttl_ms, now))
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        with_retry!(self, |c, x| ops::authenticate(&mut c, &x, id, auth, now))
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        with_retry!(self, |c, x| ops::rotate(&mut c, &x, target, new_token, now))
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        with_retry!(self, |c, x| ops::refresh(&mut c, &x, request, now))
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_retry!(self, |c, x| ops::revoke(&mut c, &x, id, reason, now))
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        with_retry!(self, |c, x| ops::list_user(&c, &x, user_id, now))
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        with_retry!(self, |c, x| ops::count_user(&c, &x, user_id, now))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        with_retry!(self, |c, x| ops::revoke_user(
            &mut c, &x, user_id, except, reason, now
        ))
    }

    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        with_retry!(self, |c, x| ops::revoke_issued_before(
            &mut c, &x, revocation, now
        ))
    }

    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        with_retry!(self, |c, x| ops::not_before(&c, &x, user_id, now))
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError> {
        with_retry!(self, |c, x| listing::page(&c, &x, query, now))
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError> {
        with_retry!(self, |c, x| ops::count_live(&c, &x, now))
    }

    async fn history(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<u64>,
        now: Timestamp,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let since = retention_cutoff(now, self.history_retention);
        with_retry!(self, |c, x| ops::history(
            &c, &x, user_id, limit, before, since
        ))
    }

    async fn events(&self, query: &EventQuery, _now: Timestamp) -> Result<EventPage, StoreError> {
        with_retry!(self, |c, x| feed::read(&c, x.sql, query))
    }

    async fn beat_connection(
        &self,
        beat: &ConnectionBeat,
        now: Timestamp,
    ) -> Result<Option<Beaten>, StoreError> {
        with_retry!(self, |c, x| ops::beat_connection(&mut c, &x, beat, now))
    }

    async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &ConnectionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_retry!(self, |c, x| ops::close_connection(
            &mut c,
            &x,
            session_id,
            connection_id,
            now
        ))
    }

    async fn presence(&self, user_id: &str, now: Timestamp) -> Result<Presence, StoreError> {
        with_retry!(self, |c, x| ops::presence(&c, &x, user_id, now))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| errors::from_pg(&e))
    }

    async fn nodes(&self) -> Result<Vec<NodeHealth>, StoreError> {
        Ok(Vec::new())
    }

    async fn close(&self) -> Result<(), StoreError> {
        if let Some(sweeper) = &self.sweeper {
            sweeper.abort();
        }
        self.pool.close();
        Ok(())
    }
}

#[async_trait]
impl CacheSource for PostgresStore {
    fn cache_key(&self, token: &TokenDigest) -> Vec<u8> {
        token.hash.as_bytes().to_vec()
    }

    fn start_invalidations(&self, cache: Arc<NearCache>) {
        let listener = Listener::start(
            self.pool.clone(),
            self.config.clone(),
            self.tls.clone(),
            self.channel.clone(),
            self.timeout,
            cache,
        );
        if self.listener.set(listener).is_err() {
            tracing::warn!("the near-cache invalidation channel was already started");
        }
    }

    fn sync_channel(&self) -> bool {
        self.listener.get().is_some_and(Listener::quiet)
    }

    async fn introspect_tracked(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<TrackedRead, StoreError> {
        // Every change notifies, whoever reads: any read is followed (a
        // fill needs a ticket, taken only while the channel is up, and a
        // lost channel voids it). A read that touched may be cached too:
        // the touch's own notification arrives after it and only drops it.
        let session = self.introspect(token, touch, now).await?;
        Ok(TrackedRead {
            cacheable: true,
            session,
        })
    }
}
