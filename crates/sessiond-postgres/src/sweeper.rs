//! The background sweep: dead sessions deleted in bounded batches, walking
//! the deadline index from the oldest (so each batch costs in proportion to
//! what it deletes and never holds long locks), each batch in one
//! transaction with its `expired` events; expired connections closed the
//! same way with their `connection_closed` events; then events past the
//! feed's retention retired and history events past its own pruned, in
//! bounded batches the same way.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use sessiond_engine::history::{RemovedRow, retention_cutoff};
use sessiond_engine::{Clock, EventRetention, RevokeReason, SessionId, Timestamp};
use tokio::task::JoinHandle;

use crate::feed::{self, RETENTION_BATCH};
use crate::history::Events;
use crate::statements::Statements;

/// Most rows one sweep or prune statement deletes.
pub(crate) const SWEEP_BATCH: i64 = 1000;

/// Start sweeping every `interval` by `clock`.
pub(crate) fn start(
    pool: Pool,
    sql: Arc<Statements>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    retention: Duration,
    event_retention: EventRetention,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep(&pool, &sql, clock.as_ref()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "swept expired sessions"),
                // The store being down is reported by the requests; the
                // sweep tries again at its next tick.
                Err(e) => tracing::debug!(error = %e, "expiry sweep failed"),
            }
            match close_expired(&pool, &sql, clock.as_ref()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(closed = n, "closed expired connections"),
                Err(e) => tracing::debug!(error = %e, "connection sweep failed"),
            }
            if let Err(e) = retire(&pool, &sql, clock.as_ref(), &event_retention).await {
                tracing::debug!(error = %e, "event retirement failed");
            }
            if let Err(e) = prune(&pool, &sql, clock.as_ref(), retention).await {
                tracing::debug!(error = %e, "history prune failed");
            }
        }
    })
}

/// Delete every session dead now, one batch per transaction with its
/// history events; returns how many.
pub(crate) async fn sweep(pool: &Pool, sql: &Statements, clock: &dyn Clock) -> Result<u64, String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    // Marks are few (one per user who had everything revoked): one statement.
    let marks = client
        .prepare_cached(&sql.sweep_not_before)
        .await
        .map_err(|e| e.to_string())?;
    client
        .execute(&marks, &[&clock.now().as_millis()])
        .await
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let now = clock.now();
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        let stmt = tx
            .prepare_cached(&sql.sweep)
            .await
            .map_err(|e| e.to_string())?;
        let rows = tx
            .query(&stmt, &[&now.as_millis(), &SWEEP_BATCH])
            .await
            .map_err(|e| e.to_string())?;
        let mut removed = crate::history::removed(&rows).map_err(|e| e.to_string())?;
        RemovedRow::sort_by_deadline(&mut removed);
        let mut events = Events::new(now);
        for row in &removed {
            events.ended(row, &RevokeReason::Expired, now);
        }
        events.write(&tx, sql).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        total += removed.len() as u64;
        if (removed.len() as u64) < SWEEP_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// Close every connection expired now, one batch per transaction with
/// its `connection_closed` events (reason `expired`, at its expiry, in
/// expiry order; none for a connection whose session is no longer live,
/// whose end covers it); returns how many.
pub(crate) async fn close_expired(
    pool: &Pool,
    sql: &Statements,
    clock: &dyn Clock,
) -> Result<u64, String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let now = clock.now();
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        let stmt = tx
            .prepare_cached(&sql.sweep_connections)
            .await
            .map_err(|e| e.to_string())?;
        let rows = tx
            .query(&stmt, &[&now.as_millis(), &SWEEP_BATCH])
            .await
            .map_err(|e| e.to_string())?;
        let mut closed = rows
            .iter()
            .map(ClosedConnection::read)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        closed.sort_by(|a, b| {
            (a.expires_at, &a.session_id, &a.connection_id).cmp(&(
                b.expires_at,
                &b.session_id,
                &b.connection_id,
            ))
        });
        let mut events = Events::new(now);
        for c in &closed {
            let (Some(user_id), Some(device)) = (&c.user_id, &c.device) else {
                continue;
            };
            let Some(session_id) = SessionId::parse(&c.session_id) else {
                tracing::warn!("closed a connection of a session row with a malformed id");
                continue;
            };
            events.expired_connection(
                Timestamp::from_millis(c.expires_at),
                &session_id,
                user_id,
                device,
            );
        }
        events.write(&tx, sql).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        total += closed.len() as u64;
        if (closed.len() as u64) < SWEEP_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// A row of [`Statements::sweep_connections`].
struct ClosedConnection {
    session_id: String,
    connection_id: String,
    expires_at: i64,
    /// The session's, when it is live.
    user_id: Option<String>,
    device: Option<String>,
}

impl ClosedConnection {
    fn read(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            session_id: row.try_get(0)?,
            connection_id: row.try_get(1)?,
            expires_at: row.try_get(2)?,
            user_id: row.try_get(3)?,
            device: row.try_get(4)?,
        })
    }
}

/// Retire every event past the feed's `retention`, one batch per
/// transaction; returns how many.
pub(crate) async fn retire(
    pool: &Pool,
    sql: &Statements,
    clock: &dyn Clock,
    retention: &EventRetention,
) -> Result<u64, String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let retired = feed::retire_batch(&mut client, sql, retention, clock.now())
            .await
            .map_err(|e| e.to_string())?;
        total += retired;
        if retired < RETENTION_BATCH {
            return Ok(total);
        }
    }
}

/// Delete every history event past `retention` that has left the feed, one
/// batch per statement; returns how many.
pub(crate) async fn prune(
    pool: &Pool,
    sql: &Statements,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<u64, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let stmt = client
        .prepare_cached(&sql.prune)
        .await
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let cutoff = retention_cutoff(clock.now(), retention);
        let deleted = client
            .execute(&stmt, &[&cutoff.as_millis(), &SWEEP_BATCH])
            .await
            .map_err(|e| e.to_string())?;
        total += deleted;
        if deleted < SWEEP_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}
