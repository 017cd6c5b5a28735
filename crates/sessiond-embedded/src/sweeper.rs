//! Expiry sweeping: the batched delete of dead rows (each recorded in the
//! history as `expired`, in the same transaction), the batched pruning of
//! history past its retention, and the schedule on which the writer thread
//! runs both between client writes.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sessiond_engine::history::RemovedRow;
use sessiond_engine::{RevokeReason, StoreError, Timestamp};

use crate::history;

/// Most rows one sweep transaction deletes, so client writes queued behind a
/// large sweep wait for one batch at most.
pub(crate) const SWEEP_BATCH: u64 = 1000;

/// Deletes up to `?2` rows dead at `?1`, walking the deadline index from the
/// oldest: the cost grows with the number of dead rows, not the table.
pub(crate) const SWEEP_SQL: &str = "DELETE FROM sessions WHERE rowid IN (
        SELECT rowid FROM sessions
        WHERE min(expires_at, absolute_expires_at) <= ?1
        ORDER BY min(expires_at, absolute_expires_at)
        LIMIT ?2)
     RETURNING id, user_id, device, created_at, min(expires_at, absolute_expires_at)";

/// Delete up to [`SWEEP_BATCH`] rows dead at `now`, recording each as
/// `expired` in the order the deadlines passed; returns how many.
pub(crate) fn sweep_batch(conn: &Connection, now: Timestamp) -> Result<u64, StoreError> {
    let limit = i64::try_from(SWEEP_BATCH).unwrap_or(i64::MAX);
    let mut rows = history::removed_rows(conn, SWEEP_SQL, params![now.as_millis(), limit])?;
    RemovedRow::sort_by_deadline(&mut rows);
    for row in &rows {
        history::record_end(conn, row, &RevokeReason::Expired, now)?;
    }
    conn.prepare_cached(
        "DELETE FROM not_before WHERE user_id IN (
            SELECT user_id FROM not_before WHERE expires_at <= ?1 LIMIT ?2)",
    )
    .and_then(|mut stmt| stmt.execute(params![now.as_millis(), limit]))
    .map_err(crate::error::from_sqlite)?;
    Ok(rows.len() as u64)
}

/// When the background sweep is next due.
#[derive(Debug)]
pub(crate) struct SweepSchedule {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl SweepSchedule {
    /// Every `interval`; never if it is zero.
    pub(crate) fn every(interval: Duration) -> Self {
        let interval = (!interval.is_zero()).then_some(interval);
        Self {
            interval,
            next: interval.map(|i| Instant::now() + i),
        }
    }

    /// How long until the next sweep (zero if overdue); `None` if never.
    pub(crate) fn wait(&self) -> Option<Duration> {
        self.next
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Whether a sweep is due now.
    pub(crate) fn is_due(&self) -> bool {
        self.wait().is_some_and(|w| w.is_zero())
    }

    /// Record a sweep that deleted `deleted` rows: a full batch means more
    /// may be waiting, so go again as soon as queued writes are served.
    pub(crate) fn swept(&mut self, deleted: u64) {
        self.next = self.interval.map(|i| {
            if deleted >= SWEEP_BATCH {
                Instant::now()
            } else {
                Instant::now() + i
            }
        });
    }

    /// Record a failed sweep: try again after the usual interval.
    pub(crate) fn failed(&mut self) {
        self.swept(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_returns_the_columns_its_history_reads() {
        assert!(SWEEP_SQL.ends_with(&format!("RETURNING {}", history::REMOVED)));
    }

    #[test]
    fn pruning_and_sweeping_share_a_batch_size() {
        // The schedule goes again at once after a full batch of either.
        assert_eq!(history::PRUNE_BATCH, SWEEP_BATCH);
    }

    #[test]
    fn zero_interval_never_sweeps() {
        let s = SweepSchedule::every(Duration::ZERO);
        assert_eq!(s.wait(), None);
        assert!(!s.is_due());
    }

    #[test]
    fn a_full_batch_goes_again_at_once() {
        let mut s = SweepSchedule::every(Duration::from_secs(3600));
        assert!(!s.is_due());
        s.swept(SWEEP_BATCH);
        assert!(s.is_due());
        s.swept(SWEEP_BATCH - 1);
        assert!(!s.is_due());
        assert!(s.wait().is_some_and(|w| w > Duration::from_secs(3500)));
    }
}
