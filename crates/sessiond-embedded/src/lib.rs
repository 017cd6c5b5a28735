//! The embedded store: sessions kept durably in one SQLite file (WAL mode,
//! full syncs), with no server to run. The default store of sessiond.
//!
//! One writer thread owns the only write connection. It takes queued
//! operations in batches, runs a batch in one transaction with one savepoint
//! per operation (a failing operation rolls back alone), commits, and only
//! then answers each caller: an acknowledged write is on disk and survives
//! `kill -9` and power loss. Reads run on a small pool of read connections on
//! tokio's blocking threads and never wait for the writer. Between batches
//! the writer deletes expired rows through an index on their deadline, so a
//! sweep costs in proportion to what it removes.
//!
//! Every change also writes its event (created, rotated, refreshed,
//! data_updated, extended, revoked with the reason, expired) in the same
//! savepoint, into one table that is both the event feed ([`Store::events`],
//! kept for [`EmbeddedOptions::event_retention`]) and the history (its
//! lifecycle events, kept for [`EmbeddedOptions::history_retention`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sessiond_engine::StoreError> {
//! use std::sync::Arc;
//! use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
//! use sessiond_engine::{Engine, Policy, Store};
//!
//! let store = EmbeddedStore::open("./data", EmbeddedOptions::default()).await?;
//! let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, Policy::default());
//! // … serve requests with `engine` …
//! store.close().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod changes;
mod codec;
mod connections;
mod error;
mod event_row;
mod feed;
mod history;
mod listing;
mod ops;
mod reader;
mod schema;
mod sweeper;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use sessiond_engine::private_files::{self, Fix};
use sessiond_engine::{
    Authentication, CacheSource, Clock, DataUpdate, EventPage, EventQuery, EventRetention,
    HistoryEvent, IssuedBefore, NearCache, NewSession, RefreshOutcome, RefreshRequest,
    RevokeReason, RotateTarget, Session, SessionId, SessionPage, SessionQuery, Store, StoreError,
    SystemClock, Timestamp, TokenDigest, TokenHash, TouchRule, TrackedRead,
};

use crate::changes::ChangeLog;
use crate::error::closed;
use crate::reader::ReaderPool;
use crate::writer::{Writer, WriterConfig};

/// Settings of an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Clock of the background sweeper (operations use the `now` they are
    /// given). Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How often expired rows are deleted in the background;
    /// [`Duration::ZERO`] turns the background sweep off. Default: 1 s.
    pub sweep_interval: Duration,
    /// Read connections, i.e. reads served at once (at least 1). Default: 4.
    pub readers: usize,
    /// Most write operations committed in one transaction (at least 1).
    /// Default: 256.
    pub max_batch: usize,
    /// How long history events are kept: older ones are left out of
    /// [`Store::history`] and pruned by the background sweep. Default:
    /// [`sessiond_engine::history::DEFAULT_RETENTION`] (90 days).
    pub history_retention: Duration,
    /// How long, and how many, events the feed keeps ([`Store::events`]).
    /// Default: 24 hours, a million events. Never longer than
    /// `history_retention`, which the lifecycle events leave with.
    pub event_retention: EventRetention,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            sweep_interval: Duration::from_secs(1),
            readers: 4,
            max_batch: 256,
            history_retention: sessiond_engine::history::DEFAULT_RETENTION,
            event_retention: EventRetention::default(),
        }
    }
}

/// A durable [`Store`] in a directory on local disk (file `sessions.db`).
/// Clones share one database, writer thread and reader pool; the writer stops
/// when [`EmbeddedStore::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Arc<ReaderPool>,
    changes: Arc<ChangeLog>,
    clock: Arc<dyn Clock>,
    history_retention: Duration,
    event_retention: EventRetention,
    closed: AtomicBool,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl EmbeddedStore {
    /// Open the store in `dir`, creating the directory and its `sessions.db`
    /// if needed and bringing the schema up to date.
    pub async fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let readers = options.readers;
        // A lifecycle event leaves the table with the history: the feed
        // cannot keep it longer.
        let event_retention = EventRetention {
            max_age: options
                .event_retention
                .max_age
                .min(options.history_retention),
            ..options.event_retention
        };
        let (conn, readers, changes, path) =
            tokio::task::spawn_blocking(move || prepare(&dir, readers))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::Unavailable(format!(
                        "opening the store failed: {e}"
                    )))
                })?;
        let writer = Writer::spawn(
            conn,
            WriterConfig {
                clock: Arc::clone(&options.clock),
                sweep_interval: options.sweep_interval,
                history_retention: options.history_retention,
                event_retention,
                max_batch: options.max_batch,
                changes: Arc::clone(&changes),
            },
        )?;
        tracing::info!(path = %path.display(), "embedded store open");
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer,
                readers: Arc::new(readers),
                changes,
                clock: options.clock,
                history_retention: options.history_retention,
                event_retention,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Finish the writes already queued, stop the writer and the background
    /// sweeper and close the database. Every later call fails with
    /// [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.changes.close();
        self.inner.readers.close();
        self.inner.writer.shutdown().await;
    }

    /// Delete every session expired by the store's clock now, and close
    /// every expired connection; returns how many sessions.
    pub async fn sweep_now(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        let mut total = 0;
        loop {
            let (deleted, closed) = self
                .write(move |c| {
                    let deleted = sweeper::sweep_batch(c, now)?;
                    Ok((deleted, connections::sweep_batch(c, now)?))
                })
                .await?;
            total += deleted;
            if deleted < sweeper::SWEEP_BATCH && closed < connections::SWEEP_BATCH {
                return Ok(total);
            }
        }
    }

    /// Retire every event past the feed's retention by the store's clock
    /// now, then delete every history event past the history's; returns
    /// how many history events were deleted.
    pub async fn prune_history_now(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        let retention = self.inner.event_retention;
        while self
            .write(move |c| feed::retire_batch(c, &retention, now))
            .await?
            >= feed::RETENTION_BATCH
        {}
        let cutoff = sessiond_engine::history::retention_cutoff(now, self.inner.history_retention);
        let mut total = 0;
        loop {
            let pruned = self.write(move |c| history::prune_batch(c, cutoff)).await?;
            total += pruned;
            if pruned < history::PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.inner.writer.run(op).await
    }

    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.inner.readers.run(op).await
    }
}

/// What opening the database yields.
type Prepared = (Connection, ReaderPool, Arc<ChangeLog>, PathBuf);

impl EmbeddedStore {
    /// An introspection: a read, and a write only when the touch is due.
    /// The session is as stored (cacheable) unless it was touched.
    async fn introspect_read(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<TrackedRead, StoreError> {
        let digest = token.clone();
        let seen = self.read(move |c| ops::by_token(c, &digest, now)).await?;
        Ok(match (seen, touch) {
            // Only a due touch goes to the writer, which looks again.
            (Some(s), Some(rule)) if s.touch_due(rule, now) => {
                let digest = token.clone();
                let touched = self
                    .write(move |c| ops::introspect_touch(c, &digest, rule, now))
                    .await?;
                TrackedRead {
                    session: touched,
                    cacheable: false,
                }
            }
            (seen, _) => TrackedRead {
                session: seen,
                cacheable: true,
            },
        })
    }
}

/// Create `dir`, open and migrate the database and open the readers.
fn prepare(dir: &Path, readers: usize) -> Result<Prepared, StoreError> {
    let unavailable = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("{}: {e}", what.display()))
    };
    // Sessions, user ids, IPs and token hashes: for the owner's eyes only.
    let created = match private_files::ensure_dir(dir).map_err(|e| unavailable(dir, e))? {
        Fix::Created => true,
        Fix::Restricted(mode) => {
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "store directory was open to other users; now mode 700");
            false
        }
        Fix::None => false,
    };
    if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        schema::sync_dir(parent);
    }
    let path = dir.join(schema::DB_FILE);
    for file in schema::files(dir) {
        if let Fix::Restricted(mode) =
            private_files::restrict_file(&file).map_err(|e| unavailable(&file, e))?
        {
            tracing::warn!(file = %file.display(), mode = format!("{mode:o}"), "store file was readable by other users; now mode 600");
        }
    }
    // SQLite gives its -wal and -shm files the database file's mode: create
    // that one private and the others follow.
    private_files::create_file(&path).map_err(|e| unavailable(&path, e))?;
    let conn = schema::open_writer(&path)?;
    schema::migrate(&conn)?;
    schema::sync_dir(dir);
    let readers = ReaderPool::open(path.clone(), readers)?;
    let changes = ChangeLog::open(&path, changes::current(&conn)?)?;
    Ok((conn, readers, Arc::new(changes), path))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let new = new.clone();
        let evicted = self.write(move |c| ops::create(c, &new, now)).await?;
        if !evicted.is_empty() {
            tracing::debug!(evicted = ?evicted, "evicted the oldest sessions to stay within the limit");
        }
        Ok(evicted)
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.introspect_read(token, touch, now).await?.session)
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let id = id.clone();
        self.read(move |c| ops::get(c, &id, now)).await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let (id, update) = (id.clone(), update.clone());
        self.write(move |c| ops::update_data(c, &id, &update, max_data_bytes, now))
            .await
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let id = id.clone();
        self.write(move |c| ops::extend(c, &id, idle_ttl_ms, now))
            .await
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let (id, auth) = (id.clone(), auth.clone());
        self.write(move |c| ops::authenticate(c, &id, &auth, now))
            .await
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let (target, new_token) = (target.clone(), *new_token);
        self.write(move |c| ops::rotate(c, &target, &new_token, now))
            .await
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        let request = request.clone();
        self.write(move |c| ops::refresh(c, &request, now)).await
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (target, reason) = (id.clone(), reason.clone());
        self.write(move |c| ops::revoke(c, &target, &reason, now))
            .await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| ops::list_user(c, &user_id, now)).await
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError> {
        let query = query.clone();
        self.read(move |c| listing::page(c, &query, now)).await
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.read(move |c| ops::count_live(c, now)).await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| ops::count_user(c, &user_id, now)).await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let (user, except, why) = (user_id.to_owned(), except.cloned(), reason.clone());
        let removed = self
            .write(move |c| ops::revoke_user(c, &user, except.as_ref(), &why, now))
            .await?;
        if !removed.is_empty() {
            tracing::debug!(removed = removed.len(), reason = %reason, "sessions of a user revoked");
        }
        Ok(removed)
    }

    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let owned = revocation.clone();
        let removed = self
            .write(move |c| ops::revoke_issued_before(c, &owned, now))
            .await?;
        if !removed.is_empty() {
            tracing::debug!(removed = removed.len(), reason = %revocation.reason, "sessions of a user issued before a time revoked");
        }
        Ok(removed)
    }

    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| ops::not_before(c, &user_id, now)).await
    }

    async fn history(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<u64>,
        now: Timestamp,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let user_id = user_id.to_owned();
        let since = sessiond_engine::history::retention_cutoff(now, self.inner.history_retention);
        self.read(move |c| history::page(c, &user_id, limit, before, since))
            .await
    }

    async fn events(&self, query: &EventQuery, _now: Timestamp) -> Result<EventPage, StoreError> {
        let query = query.clone();
        self.read(move |c| feed::read(c, &query)).await
    }

    async fn beat_connection(
        &self,
        beat: &sessiond_engine::ConnectionBeat,
        now: Timestamp,
    ) -> Result<Option<sessiond_engine::Beaten>, StoreError> {
        let beat = beat.clone();
        self.write(move |c| connections::beat(c, &beat, now)).await
    }

    async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &sessiond_engine::ConnectionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (session_id, connection_id) = (session_id.clone(), connection_id.clone());
        self.write(move |c| connections::close(c, &session_id, &connection_id, now))
            .await
    }

    async fn presence(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<sessiond_engine::Presence, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| connections::presence(c, &user_id, now))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(ops::ping).await
    }

    async fn nodes(&self) -> Result<Vec<sessiond_engine::NodeHealth>, StoreError> {
        // One database: no nodes to report.
        Ok(Vec::new())
    }

    async fn close(&self) -> Result<(), StoreError> {
        EmbeddedStore::close(self).await;
        Ok(())
    }
}

/// The near-cache's channel is the change generation (see `changes`):
/// changes by this process are dropped by the caching decorator, changes by
/// any other process are noticed before the next lookup.
#[async_trait]
impl CacheSource for EmbeddedStore {
    fn cache_key(&self, token: &TokenDigest) -> Vec<u8> {
        token.hash.as_bytes().to_vec()
    }

    fn start_invalidations(&self, cache: Arc<NearCache>) {
        if !self.inner.changes.attach(cache) {
            tracing::warn!("the near-cache was already attached to this store");
        }
    }

    fn sync_channel(&self) -> bool {
        self.inner.changes.check()
    }

    async fn introspect_tracked(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<TrackedRead, StoreError> {
        self.introspect_read(token, touch, now).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Threads of this process whose name marks them as store writers.
    fn writer_threads() -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        tasks
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|name| name.starts_with("sessiond-embed"))
            .count()
    }

    async fn wait_for_writers(n: usize) {
        for _ in 0..500 {
            if writer_threads() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(writer_threads(), n);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_thread_ends_on_close_and_on_drop() {
        if !Path::new("/proc/self/task").is_dir() {
            return; // no procfs to count threads with
        }
        let dir = tempfile::TempDir::new().unwrap();
        let options = || EmbeddedOptions {
            sweep_interval: Duration::from_millis(5),
            ..EmbeddedOptions::default()
        };
        let store = EmbeddedStore::open(dir.path(), options()).await.unwrap();
        let clone = store.clone();
        wait_for_writers(1).await;
        store.close().await;
        wait_for_writers(0).await;
        assert!(clone.ping().await.is_err());

        let store = EmbeddedStore::open(dir.path(), options()).await.unwrap();
        wait_for_writers(1).await;
        let clone = store.clone();
        drop(store);
        clone.ping().await.unwrap();
        drop(clone);
        wait_for_writers(0).await;
    }
}
