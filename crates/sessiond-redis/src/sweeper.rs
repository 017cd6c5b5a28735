//! The background sweep on Redis: sessions and connections whose deadline
//! passed are removed with their events (before Redis's own TTLs, a grace
//! later, would drop them without one), and events past the feed's
//! retention or size bound are retired, bucket by bucket.

use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{Clock, EventRetention, StoreError, Timestamp};
use tokio::task::JoinHandle;

use crate::codec;
use crate::connection::{Connection, Retry};
use crate::feed::{self, FLOOR_MARGIN_MS, Position};
use crate::keys::{BUCKETS, KeySchema};
use crate::scripts::SCRIPTS;

/// Most tags of one bucket one sweep visits.
const TAGS_PER_SWEEP: u32 = 200;

/// Most events the size bound retires in one sweep.
const RETIRE_BATCH: u64 = 10_000;

/// What the sweep works on.
#[derive(Clone)]
pub(crate) struct Sweeper {
    pub(crate) conn: Connection,
    pub(crate) keys: KeySchema,
    /// The scripts' retention argument ('' when no events are recorded).
    pub(crate) retention_arg: String,
    pub(crate) retention: EventRetention,
}

impl Sweeper {
    /// Sweep every `interval` by `clock`, until the handle is aborted.
    pub(crate) fn start(self, clock: Arc<dyn Clock>, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.sweep(clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "swept expired sessions"),
                    // The store being down is reported by the requests.
                    Err(e) => tracing::debug!(error = %e, "expiry sweep failed"),
                }
                if let Err(e) = self.retire().await {
                    tracing::debug!(error = %e, "event retirement failed");
                }
            }
        })
    }

    /// Remove what is dead at `now` in every bucket, with its events, one
    /// bucket after the other (stopping at the first failure); how many
    /// sessions.
    pub(crate) async fn sweep(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut removed = 0;
        for b in 0..BUCKETS {
            let args: Vec<Vec<u8>> = vec![
                self.keys.bucket_base(b).into_bytes(),
                now.as_millis().to_string().into_bytes(),
                self.retention_arg.clone().into_bytes(),
                TAGS_PER_SWEEP.to_string().into_bytes(),
            ];
            let reply = self
                .conn
                .eval(
                    &SCRIPTS.sweep,
                    &[self.keys.deadlines(b)],
                    &args,
                    Retry::Once,
                )
                .await?;
            removed += u64::try_from(codec::integer(&reply)?).unwrap_or(0);
        }
        Ok(removed)
    }

    /// Retire the events past the retention, and the oldest beyond the size
    /// bound; how many.
    pub(crate) async fn retire(&self) -> Result<u64, StoreError> {
        let count_cut = self.count_cut().await?;
        let retention_us = feed::retention_us(&self.retention).to_string();
        let keep_ms = u64::try_from(self.retention.max_age.as_millis())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(FLOOR_MARGIN_MS)
            .to_string();
        let mut retired = 0;
        for b in 0..BUCKETS {
            let cut = count_cut.map(|p| feed::stream_id(p.start_in(b)));
            let args = vec![
                retention_us.clone().into_bytes(),
                cut.unwrap_or_default().into_bytes(),
                keep_ms.clone().into_bytes(),
            ];
            let keys = [self.keys.stream(b), self.keys.floor(b)];
            let reply = self
                .conn
                .eval(&SCRIPTS.retire, &keys, &args, Retry::Once)
                .await?;
            retired += u64::try_from(codec::integer(&reply)?).unwrap_or(0);
        }
        Ok(retired)
    }

    /// The position up to which events leave for the size bound (at most
    /// [`RETIRE_BATCH`] of them), if the feed is over it.
    async fn count_cut(&self) -> Result<Option<Position>, StoreError> {
        let lengths: Vec<_> = (0..BUCKETS)
            .map(|b| {
                let mut pipe = redis::pipe();
                pipe.cmd("XLEN").arg(self.keys.stream(b));
                pipe
            })
            .collect();
        let mut total = 0u64;
        for reply in self.conn.pipelines("xlen", &lengths).await? {
            let n = reply.first().map(codec::integer).transpose()?.unwrap_or(0);
            total += u64::try_from(n).unwrap_or(0);
        }
        let excess = total.saturating_sub(self.retention.max_events);
        if excess == 0 {
            return Ok(None);
        }
        let excess = excess.min(RETIRE_BATCH);
        let heads: Vec<_> = (0..BUCKETS)
            .map(|b| {
                let mut pipe = redis::pipe();
                pipe.cmd("XRANGE")
                    .arg(self.keys.stream(b))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(excess);
                pipe
            })
            .collect();
        let mut positions = Vec::new();
        for (b, reply) in (0..BUCKETS).zip(self.conn.pipelines("xrange", &heads).await?) {
            let Some(entries) = reply.first() else {
                continue;
            };
            for entry in codec::array(entries)? {
                let id = codec::array(entry)?
                    .first()
                    .map(codec::text)
                    .transpose()?
                    .and_then(feed::parse_id);
                if let Some(id) = id {
                    positions.push(Position::at(id, b));
                }
            }
        }
        positions.sort();
        let nth = usize::try_from(excess - 1).unwrap_or(usize::MAX);
        Ok(positions.get(nth).or(positions.last()).copied())
    }
}
