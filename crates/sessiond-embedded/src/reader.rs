//! The pool of read-only connections. A read takes a connection and runs on
//! tokio's blocking threads, so readers never wait for the writer (WAL).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use sessiond_engine::StoreError;
use tokio::sync::Semaphore;

use crate::error::closed;
use crate::schema;

/// At most `size` reads at once, each on its own connection.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    path: PathBuf,
    size: usize,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

impl ReaderPool {
    /// A pool of `size` connections to the database at `path`, opened now.
    pub(crate) fn open(path: PathBuf, size: usize) -> Result<Self, StoreError> {
        let size = size.max(1);
        let idle = (0..size)
            .map(|_| schema::open_reader(&path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path,
            size,
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(size)),
            closed: AtomicBool::new(false),
        })
    }

    /// Run `op` on a reader connection.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The permit moves into the blocking read, so a caller that stops
        // waiting does not free a slot while its read still holds a connection.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // A connection lost to a panicking read, or still held by a read
            // whose caller gave up, is replaced here.
            let conn = match pool.take() {
                Some(conn) => conn,
                None => schema::open_reader(&pool.path)?,
            };
            let outcome = op(&conn);
            pool.give_back(conn);
            drop(permit);
            outcome
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("read task failed: {e}"))))
    }

    /// Close every idle connection and refuse further reads.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        self.lock().clear();
    }

    fn take(&self) -> Option<Connection> {
        self.lock().pop()
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.lock();
        if !self.closed.load(Ordering::Acquire) && idle.len() < self.size {
            idle.push(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The vector stays valid whatever a panicking holder was doing.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
