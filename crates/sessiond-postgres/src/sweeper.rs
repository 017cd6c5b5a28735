//! The expiry sweep: a background task that deletes dead rows in bounded
//! batches, walking the deadline index from the oldest, so each batch costs
//! in proportion to what it deletes and never holds long locks.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use sessiond_engine::Clock;
use tokio::task::JoinHandle;

use crate::statements::Statements;

/// Most rows one sweep statement deletes.
pub(crate) const SWEEP_BATCH: i64 = 1000;

/// Start sweeping every `interval` by `clock`.
pub(crate) fn start(
    pool: Pool,
    sql: Arc<Statements>,
    clock: Arc<dyn Clock>,
    interval: Duration,
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
        }
    })
}

/// Delete every row dead now, one batch per statement; returns how many.
pub(crate) async fn sweep(pool: &Pool, sql: &Statements, clock: &dyn Clock) -> Result<u64, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let stmt = client
        .prepare_cached(&sql.sweep)
        .await
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let now = clock.now().as_millis();
        let deleted = client
            .execute(&stmt, &[&now, &SWEEP_BATCH])
            .await
            .map_err(|e| e.to_string())?;
        total += deleted;
        if deleted < SWEEP_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}
