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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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
    watch: Mutex<Watch>,
}

/// Bytes of one copy of the WAL-index header.
const WAL_INDEX_HEADER: usize = 48;

#[derive(Debug)]
struct Watch {
    /// A read connection for the generation; `None` once closed.
    conn: Option<Connection>,
    /// The `-shm` file, if it could be opened.
    shm: Option<File>,
    /// The WAL-index header at the last check that found the cache current.
    header: Option<[u8; WAL_INDEX_HEADER]>,
}

impl Watch {
    /// The WAL-index header now (`None` if it cannot be read: then every
    /// lookup asks SQLite).
    fn header(&self) -> Option<[u8; WAL_INDEX_HEADER]> {
        let mut header = [0; WAL_INDEX_HEADER];
        self.shm.as_ref()?.read_exact_at(&mut header, 0).ok()?;
        Some(header)
    }
}

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
            watch: Mutex::new(Watch {
                conn: Some(conn),
                shm,
                header: None,
            }),
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

    /// Before a lookup: drop the cache if another process changed the
    /// database since the last lookup. `true` if the check worked (only then
    /// may the cache serve).
    pub(crate) fn check(&self) -> bool {
        let Some(cache) = self.cache.get() else {
            return false;
        };
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = watch.conn.as_ref() else {
            cache.channel_lost();
            return false;
        };
        let header = watch.header();
        if header.is_none() || header != watch.header {
            // Some connection committed: was it only this process's writer?
            match current(conn) {
                Ok(generation) if generation <= self.reflected.load(Ordering::SeqCst) => {}
                Ok(generation) => {
                    cache.flush();
                    self.reflected.fetch_max(generation, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the change generation; near-cache dropped");
                    cache.channel_lost();
                    watch.header = None;
                    return false;
                }
            }
            watch.header = header;
        }
        cache.channel_up(Instant::now());
        true
    }

    /// The store is closing: no more lookups from memory.
    pub(crate) fn close(&self) {
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
