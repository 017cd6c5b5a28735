//! How a near-cache over the embedded store learns of changes it did not
//! make. Every write transaction that changes rows, in any process, also
//! bumps `changes.generation` (schema 3). This process's writer notes the
//! generations it commits: a generation it did not write means another
//! process (`sessiond sessions revoke`, say) changed the database. Before
//! each lookup the cache reads the WAL-index header at the start of the
//! `-shm` file (one `pread`; its change counter moves with every commit of
//! any connection, see <https://www.sqlite.org/walformat.html>); if it moved
//! and the generation is past what the cache reflects, everything is
//! dropped. Changes this process makes are dropped by the caching decorator
//! itself, record by record.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use rusqlite::Connection;
use sessiond_engine::{NearCache, StoreError};

use crate::error::from_sqlite;
use crate::schema;

/// Bump the generation in the writer's open transaction; returns the new one.
pub(crate) fn bump(conn: &Connection) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "UPDATE changes SET generation = generation + 1 WHERE id = 1 RETURNING generation",
    )
    .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
    .map(|g| u64::try_from(g).unwrap_or(0))
    .map_err(from_sqlite)
}

/// The current generation.
pub(crate) fn current(conn: &Connection) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT generation FROM changes WHERE id = 1")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
        .map(|g| u64::try_from(g).unwrap_or(0))
        .map_err(from_sqlite)
}

/// Shared by the writer thread and the lookups of a near-cache.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    /// Generation of this process's last commit (written by the writer only).
    written: AtomicU64,
    /// Highest generation whose changes the cache reflects.
    reflected: AtomicU64,
    cache: OnceLock<Arc<NearCache>>,
    /// The `-shm` file, if it could be opened (read without a lock).
    shm: Option<File>,
    /// The WAL-index header at the last check that found the cache current:
    /// lookups compare against it under a shared lock, so they do not queue
    /// behind each other while nothing changes.
    known: RwLock<Option<[u8; WAL_INDEX_HEADER]>>,
    /// Set by [`ChangeLog::close`] before it drops the cache.
    closed: AtomicBool,
    /// When the cache's lease was last renewed, in µs since `started`.
    confirmed_us: AtomicU64,
    started: Instant,
    watch: Mutex<Watch>,
}

/// Bytes of one copy of the WAL-index header.
const WAL_INDEX_HEADER: usize = 48;

#[derive(Debug)]
struct Watch {
    /// A read connection for the generation; `None` once closed.
    conn: Option<Connection>,
}

/// How often a lookup that found nothing changed renews the cache's lease
/// (well within [`NearCache::LEASE`]).
const RECONFIRM: std::time::Duration = std::time::Duration::from_millis(50);

impl ChangeLog {
    /// The log of the database at `path`, whose generation is `generation`
    /// now.
    pub(crate) fn open(path: &Path, generation: u64) -> Result<Self, StoreError> {
        let conn = schema::open_reader(path)?;
        // Reading through the connection makes sure the -shm file exists.
        current(&conn)?;
        let mut shm_path = path.as_os_str().to_owned();
        shm_path.push("-shm");
        let shm = File::open(&shm_path)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot read the WAL index; the near-cache asks SQLite before every lookup");
            })
            .ok();
        Ok(Self {
            written: AtomicU64::new(generation),
            reflected: AtomicU64::new(generation),
            cache: OnceLock::new(),
            shm,
            known: RwLock::new(None),
            closed: AtomicBool::new(false),
            confirmed_us: AtomicU64::new(0),
            started: Instant::now(),
            watch: Mutex::new(Watch { conn: Some(conn) }),
        })
    }

    /// The writer committed `generation` (writer thread).
    pub(crate) fn committed(&self, generation: u64) {
        let previous = self.written.swap(generation, Ordering::SeqCst);
        if generation != previous + 1 {
            // Another process committed in between.
            self.drop_cache();
        }
        self.reflected.fetch_max(generation, Ordering::SeqCst);
    }

    /// Feed `cache` from now on.
    pub(crate) fn attach(&self, cache: Arc<NearCache>) -> bool {
        self.cache.set(cache).is_ok()
    }

    /// The WAL-index header now (`None` if it cannot be read: then every
    /// lookup asks SQLite).
    fn header(&self) -> Option<[u8; WAL_INDEX_HEADER]> {
        let mut header = [0; WAL_INDEX_HEADER];
        self.shm.as_ref()?.read_exact_at(&mut header, 0).ok()?;
        Some(header)
    }

    /// Before a lookup: drop the cache if another process changed the
    /// database since the last lookup. `true` if the check worked (only then
    /// may the cache serve). While the WAL-index header is what the last
    /// check left, lookups take no exclusive lock.
    pub(crate) fn check(&self) -> bool {
        let Some(cache) = self.cache.get() else {
            return false;
        };
        let header = self.header();
        let unchanged = header.is_some()
            && *self.known.read().unwrap_or_else(PoisonError::into_inner) == header;
        if !unchanged && !self.catch_up(cache, header) {
            return false;
        }
        // The check itself is the channel's proof; renewing the lease on
        // every lookup would only make every core write the same lines.
        let now = Instant::now();
        let now_us =
            u64::try_from(now.duration_since(self.started).as_micros()).unwrap_or(u64::MAX);
        let renew_us = u64::try_from(RECONFIRM.as_micros()).unwrap_or(u64::MAX);
        let last = self.confirmed_us.load(Ordering::SeqCst);
        if !unchanged || last == 0 || now_us.saturating_sub(last) >= renew_us {
            cache.channel_up(now);
            self.confirmed_us.store(now_us.max(1), Ordering::SeqCst);
        }
        // Closed meanwhile: whatever this check renewed is dropped again.
        if self.closed.load(Ordering::SeqCst) {
            cache.channel_lost();
            return false;
        }
        true
    }

    /// The header moved: some connection committed. Drop the cache if it
    /// was not only this process's writer; remember the header. `false` if
    /// the store is closed or the generation cannot be read.
    fn catch_up(&self, cache: &NearCache, header: Option<[u8; WAL_INDEX_HEADER]>) -> bool {
        let watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = watch.conn.as_ref() else {
            cache.channel_lost();
            return false;
        };
        match current(conn) {
            Ok(generation) if generation <= self.reflected.load(Ordering::SeqCst) => {}
            Ok(generation) => {
                cache.flush();
                self.reflected.fetch_max(generation, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change generation; near-cache dropped");
                cache.channel_lost();
                *self.known.write().unwrap_or_else(PoisonError::into_inner) = None;
                return false;
            }
        }
        *self.known.write().unwrap_or_else(PoisonError::into_inner) = header;
        true
    }

    /// The store is closing: no more lookups from memory.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conn = None;
        if let Some(cache) = self.cache.get() {
            cache.channel_lost();
        }
    }

    fn drop_cache(&self) {
        if let Some(cache) = self.cache.get() {
            cache.flush();
        }
    }
}
