//! The writer thread: sole owner of the write connection. It takes queued
//! operations in batches, runs each batch in one transaction (one savepoint
//! per operation), commits, and only then answers: group commit.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use sessiond_engine::{Clock, EventRetention, StoreError};
use tokio::sync::oneshot;

use crate::changes::{self, ChangeLog};
use crate::error::{closed, from_sqlite};
use crate::sweeper::{self, SweepSchedule};
use crate::{connections, feed, history};

/// Most operations waiting for the writer; past it a write fails fast as
/// unavailable instead of queueing work nobody will wait for.
const QUEUE_LIMIT: usize = 16 * 1024;

/// One queued operation, type-erased.
trait Job: Send {
    /// Run inside the batch transaction; `true` if it succeeded and its
    /// changes should be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answer the caller once the fate of the transaction (`commit`) is known.
    fn answer(self: Box<Self>, commit: &Result<(), StoreError>);
}

struct Pending<T, F> {
    op: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        // The caller gave up (store timeout): doing the write now would commit
        // an effect nobody was told of, such as a rotated token never delivered.
        if self.reply.is_closed() {
            self.op = None;
            self.outcome = Some(Err(StoreError::Unavailable("caller gave up".into())));
            return false;
        }
        let outcome = match self.op.take() {
            // A panic fails this operation only; the writer thread lives on.
            Some(op) => panic::catch_unwind(AssertUnwindSafe(|| op(conn))).unwrap_or_else(|_| {
                Err(StoreError::Unavailable("store operation panicked".into()))
            }),
            None => Err(StoreError::Unavailable("operation ran twice".into())),
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, commit: &Result<(), StoreError>) {
        let answer = match (self.outcome, commit) {
            // A success is only reported once it is committed.
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(e.clone()),
            // A failure rolled back its own savepoint: true whatever the commit did.
            (Some(outcome), _) => outcome,
            (None, Ok(())) => Err(StoreError::Unavailable("operation was not run".into())),
        };
        // The caller may have stopped waiting (timeout); nothing to do then.
        let _ = self.reply.send(answer);
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Shutdown(oneshot::Sender<()>),
}

/// Settings of the writer thread.
pub(crate) struct WriterConfig {
    /// Clock of the background sweeper.
    pub(crate) clock: Arc<dyn Clock>,
    /// How often the background sweeper runs (zero: never).
    pub(crate) sweep_interval: Duration,
    /// How long history events are kept before the sweeper prunes them.
    pub(crate) history_retention: Duration,
    /// How long, and how many, events the feed keeps.
    pub(crate) event_retention: EventRetention,
    /// Most operations per transaction.
    pub(crate) max_batch: usize,
    /// Where committed generations are reported.
    pub(crate) changes: Arc<ChangeLog>,
}

/// Handle to the writer thread. Dropping every handle stops the thread once
/// the queued operations are done.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: SyncSender<Msg>,
}

impl Writer {
    /// Start the writer thread on `conn`.
    pub(crate) fn spawn(conn: Connection, config: WriterConfig) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LIMIT);
        thread::Builder::new()
            .name("sessiond-embedded-writer".into())
            .spawn(move || writer_loop(conn, rx, config))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Run `op` on the writer, in a transaction; the answer arrives once it
    /// is committed.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            op: Some(op),
            outcome: None,
            reply,
        };
        self.tx
            .try_send(Msg::Job(Box::new(job)))
            .map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Unavailable("write queue is full".into()),
                TrySendError::Disconnected(_) => closed(),
            })?;
        // A dropped reply means the writer stopped before answering.
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Finish the operations queued so far, close the connection and stop
    /// the thread; returns once it has. Operations queued later fail.
    pub(crate) async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

fn writer_loop(conn: Connection, rx: Receiver<Msg>, config: WriterConfig) {
    let max_batch = config.max_batch.max(1);
    let mut schedule = SweepSchedule::every(config.sweep_interval);
    let mut shutdown = None;
    while shutdown.is_none() {
        if schedule.is_due() {
            background_sweep(&conn, &config, &mut schedule);
        }
        let first = match schedule.wait() {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => break,
            },
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Shutdown(ack) => {
                    shutdown = Some(ack);
                    break;
                }
            }
            if batch.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            run_batch(&conn, &config.changes, batch);
        }
    }
    // Close before acknowledging, so a reopen after `close` finds the file
    // released and the WAL checkpointed.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the embedded store's write connection failed");
    }
    if let Some(ack) = shutdown {
        let _ = ack.send(());
    }
    tracing::debug!("embedded store writer stopped");
}

/// Run `batch` in one transaction and answer every job after the commit.
fn run_batch(conn: &Connection, changes: &ChangeLog, mut batch: Vec<Box<dyn Job>>) {
    let commit = in_transaction(conn, changes, |conn| {
        for job in &mut batch {
            conn.execute_batch("SAVEPOINT op").map_err(from_sqlite)?;
            let ok = job.run(conn);
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (I/O error, full
                // disk…): nothing of this batch is kept.
                return Err(StoreError::Unavailable(
                    "sqlite aborted the transaction".into(),
                ));
            }
            let end = if ok {
                "RELEASE op"
            } else {
                "ROLLBACK TO op; RELEASE op"
            };
            conn.execute_batch(end).map_err(from_sqlite)?;
        }
        Ok(())
    });
    if let Err(e) = &commit {
        tracing::warn!(error = %e, operations = batch.len(), "embedded store write batch failed");
    }
    for job in batch {
        job.answer(&commit);
    }
}

/// `BEGIN IMMEDIATE`, `body`, then `COMMIT`, or `ROLLBACK` if anything
/// failed. A transaction that changed rows also bumps the change generation
/// and reports it to `changes` once committed.
fn in_transaction<T>(
    conn: &Connection,
    changes: &ChangeLog,
    body: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(from_sqlite)?;
    let before = conn.total_changes();
    let mut generation = None;
    let outcome = body(conn)
        .and_then(|v| {
            if conn.total_changes() != before {
                generation = Some(changes::bump(conn)?);
            }
            Ok(v)
        })
        .and_then(|v| {
            conn.execute_batch("COMMIT")
                .map_err(from_sqlite)
                .map(|()| v)
        });
    if outcome.is_ok()
        && let Some(generation) = generation
    {
        changes.committed(generation);
    }
    if outcome.is_err()
        && !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "rollback failed");
    }
    outcome
}

/// One batch of expired sessions and one of history past its retention,
/// in one transaction.
fn background_sweep(conn: &Connection, config: &WriterConfig, schedule: &mut SweepSchedule) {
    let now = config.clock.now();
    let cutoff = sessiond_engine::history::retention_cutoff(now, config.history_retention);
    match in_transaction(conn, &config.changes, |conn| {
        let deleted = sweeper::sweep_batch(conn, now)?;
        let closed = connections::sweep_batch(conn, now)?;
        let retired = feed::retire_batch(conn, &config.event_retention, now)?;
        let pruned = history::prune_batch(conn, cutoff)?;
        Ok((deleted.max(closed), retired.max(pruned)))
    }) {
        Ok((deleted, pruned)) => {
            if deleted > 0 {
                tracing::debug!(deleted, "swept expired sessions");
            }
            if pruned > 0 {
                tracing::debug!(pruned, "pruned history past its retention");
            }
            // A full batch of either: more may be waiting.
            schedule.swept(deleted.max(pruned));
        }
        Err(e) => {
            tracing::warn!(error = %e, "sweeping expired sessions failed");
            schedule.failed();
        }
    }
}
