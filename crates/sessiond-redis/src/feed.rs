//! The event feed on Redis: one stream per bucket (see `keys`), read
//! together and merged in (time, sequence, bucket) order below the
//! deployment's clock, so that a reader never passes an event that a write
//! still running could put before it.
//!
//! Stream ids are the master's time in microseconds and a sequence. A write
//! that starts after a reader asked the masters for their time gets an id
//! at or above that time, so every event below the lowest master clock is
//! final: the reader delivers those and leaves the rest for its next read.
//! A cursor is `r.<microseconds>.<sequence>.<bucket>`, the last position
//! read.

use redis::{Pipeline, Value};
use sessiond_engine::{
    Event, EventCursor, EventKind, EventPage, EventQuery, EventRetention, EventsFrom, SessionId,
    StoreError, Timestamp,
};

use crate::codec;
use crate::connection::Connection;
use crate::keys::{BUCKETS, KeySchema};
use crate::record;

/// Floors are kept this long past the retention, so that a cursor can be
/// judged for 30 days after its events could have left; an older one is
/// refused by its age alone.
pub(crate) const FLOOR_MARGIN_MS: u64 = 30 * 86_400_000;

/// A place in the merged feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    us: u64,
    seq: u64,
    bucket: u16,
}

impl Position {
    /// Before every event there can be.
    pub(crate) const ZERO: Self = Self {
        us: 0,
        seq: 0,
        bucket: 0,
    };

    /// The position of stream id `(us, seq)` of `bucket`.
    pub(crate) fn at((us, seq): (u64, u64), bucket: u16) -> Self {
        Self { us, seq, bucket }
    }

    /// The position a cursor names, if it is one of this store's.
    pub(crate) fn parse(cursor: &EventCursor) -> Option<Self> {
        let mut parts = cursor.as_str().strip_prefix("r.")?.split('.');
        let us = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let bucket: u16 = parts.next()?.parse().ok()?;
        (parts.next().is_none() && bucket < BUCKETS).then_some(Self { us, seq, bucket })
    }

    /// The cursor of this position.
    pub(crate) fn cursor(self) -> EventCursor {
        let text = format!("r.{}.{}.{}", self.us, self.seq, self.bucket);
        EventCursor::parse(&text).unwrap_or_else(|| EventCursor::numbered("r.", self.us))
    }

    /// The first stream id of `bucket` that comes after this position, as
    /// (microseconds, sequence).
    pub(crate) fn start_in(self, bucket: u16) -> (u64, u64) {
        if bucket > self.bucket {
            (self.us, self.seq)
        } else if self.seq == u64::MAX {
            (self.us.saturating_add(1), 0)
        } else {
            (self.us, self.seq + 1)
        }
    }
}

/// A stream id as text.
pub(crate) fn stream_id((us, seq): (u64, u64)) -> String {
    format!("{us}-{seq}")
}

/// A stream id's parts.
pub(crate) fn parse_id(text: &str) -> Option<(u64, u64)> {
    let (us, seq) = text.split_once('-')?;
    Some((us.parse().ok()?, seq.parse().ok()?))
}

/// Read the feed per `query`.
pub(crate) async fn read(
    conn: &Connection,
    keys: &KeySchema,
    query: &EventQuery,
    retention: &EventRetention,
) -> Result<EventPage, StoreError> {
    let after =
        match &query.from {
            EventsFrom::After(c) => Some(Position::parse(c).ok_or_else(|| {
                StoreError::InvalidCursor("not one of this Redis store".to_owned())
            })?),
            EventsFrom::Oldest => None,
            EventsFrom::Now => {
                return Ok(EventPage {
                    events: Vec::new(),
                    cursor: newest(conn, keys).await?.cursor(),
                });
            }
        };
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    // Filters apply before the limit: scan on while fewer than `limit`
    // events matched and more are below the clock, up to a bound, then
    // hand out the cursor of the last one scanned.
    let mut events = Vec::new();
    let mut cursor = after.unwrap_or(Position::ZERO);
    for round in 0..SCANS_PER_READ {
        let scan = scan(conn, keys, after.map(|_| cursor), limit).await?;
        if let Some(p) = after.filter(|p| round == 0 && *p != Position::ZERO) {
            judge(p, scan.clock, retention)?;
        }
        for (position, event) in scan.found {
            cursor = position;
            let wanted = query.kinds.contains(event.kind)
                && query.user_id.as_ref().is_none_or(|u| *u == event.user_id);
            if wanted {
                events.push(event);
                if events.len() == limit {
                    return Ok(EventPage {
                        events,
                        cursor: cursor.cursor(),
                    });
                }
            }
        }
        if scan.complete {
            break;
        }
    }
    Ok(EventPage {
        events,
        cursor: cursor.cursor(),
    })
}

/// Refuse cursor `p` if it is past the newest event (at `clock`) or too old
/// to tell whether events after it left the feed.
fn judge(p: Position, clock: u64, retention: &EventRetention) -> Result<(), StoreError> {
    if p.us >= clock {
        return Err(StoreError::InvalidCursor(
            "past the newest event of this store".to_owned(),
        ));
    }
    let judged_us = retention_us(retention).saturating_add(FLOOR_MARGIN_MS * 1000);
    if p.us.saturating_add(judged_us) < clock {
        return Err(StoreError::CursorExpired(
            "it is older than the feed's retention; events after it may have left the feed"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Scans of the streams one read makes at most.
const SCANS_PER_READ: usize = 10;

/// What one scan of the streams found.
struct Scan {
    /// The first events after the start below `clock`, in feed order.
    found: Vec<(Position, Event)>,
    /// Whether they are all there are below `clock`.
    complete: bool,
    /// The lowest clock of the nodes read (microseconds).
    clock: u64,
}

/// The first `limit` events after `after` (from the oldest if `None`).
/// Each bucket's read starts with its node's `TIME` in the same pipeline,
/// so that every write after it gets a higher id: the events below the
/// lowest of those times are final, and only those are taken. A retired
/// event at or after `after` is [`StoreError::CursorExpired`].
async fn scan(
    conn: &Connection,
    keys: &KeySchema,
    after: Option<Position>,
    limit: usize,
) -> Result<Scan, StoreError> {
    let pipes: Vec<Pipeline> = (0..BUCKETS)
        .map(|b| {
            let start = after.map_or_else(|| "-".to_owned(), |p| stream_id(p.start_in(b)));
            let mut pipe = redis::pipe();
            // The floor after the range: a retirement between them can only
            // make the answer more careful, never skip an event.
            pipe.cmd("TIME")
                .cmd("XRANGE")
                .arg(keys.stream(b))
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(limit);
            if after.is_some() {
                pipe.cmd("GET").arg(keys.floor(b));
            }
            pipe
        })
        .collect();
    let replies = conn.pipelines("events", &pipes).await?;
    let clock = lowest_time(&replies)?;
    let mut found = Vec::new();
    for (b, reply) in (0..BUCKETS).zip(&replies) {
        let entries = reply
            .get(1)
            .ok_or_else(|| StoreError::Corrupt("no reply to XRANGE".to_owned()))?;
        if let (Some(p), Some(Value::BulkString(floor))) = (after, reply.get(2)) {
            let retired = std::str::from_utf8(floor).ok().and_then(parse_id);
            if retired.is_some_and(|r| r >= p.start_in(b)) {
                return Err(StoreError::CursorExpired(
                    "events after it have left the feed (past its retention or its size \
                     bound); read from the oldest kept instead"
                        .to_owned(),
                ));
            }
        }
        for entry in codec::array(entries)? {
            let (position, event) = decode(b, entry)?;
            if position.us < clock {
                found.push((position, event));
            }
        }
    }
    found.sort_by_key(|(p, _)| *p);
    let complete = found.len() < limit;
    found.truncate(limit);
    Ok(Scan {
        found,
        complete,
        clock,
    })
}

/// The lowest `TIME` (the first reply of each pipeline), in microseconds.
fn lowest_time(replies: &[Vec<Value>]) -> Result<u64, StoreError> {
    let mut lowest = u64::MAX;
    for reply in replies {
        let parts = reply.first().map(codec::array).transpose()?.unwrap_or(&[]);
        let [secs, micros] = parts else {
            return Err(StoreError::Corrupt("unexpected reply to TIME".to_owned()));
        };
        let as_u64 = |v: &Value| codec::integer(v).map(|n| u64::try_from(n).unwrap_or(0));
        lowest = lowest.min(as_u64(secs)?.saturating_mul(1_000_000) + as_u64(micros)?);
    }
    Ok(lowest)
}

/// Entries of a bucket's newest a [`newest`] read looks at first.
const NEWEST_PEEK: usize = 8;

/// The newest event's position below the nodes' clocks, or
/// [`Position::ZERO`] when there is none.
async fn newest(conn: &Connection, keys: &KeySchema) -> Result<Position, StoreError> {
    let pipes: Vec<Pipeline> = (0..BUCKETS)
        .map(|b| {
            let mut pipe = redis::pipe();
            pipe.cmd("TIME")
                .cmd("XREVRANGE")
                .arg(keys.stream(b))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(NEWEST_PEEK);
            pipe
        })
        .collect();
    let replies = conn.pipelines("events", &pipes).await?;
    let clock = lowest_time(&replies)?;
    let mut newest = Position::ZERO;
    let mut look_further = Vec::new();
    for (b, reply) in (0..BUCKETS).zip(&replies) {
        let entries = reply.get(1).map(codec::array).transpose()?.unwrap_or(&[]);
        let mut below = None;
        for entry in entries {
            let (position, _) = decode(b, entry)?;
            if position.us < clock {
                below = Some(position);
                break;
            }
        }
        match below {
            Some(p) => newest = newest.max(p),
            // All it looked at came after the clock: look below it.
            None if entries.len() == NEWEST_PEEK => look_further.push(b),
            None => {}
        }
    }
    for b in look_further {
        let mut pipe = redis::pipe();
        pipe.cmd("XREVRANGE")
            .arg(keys.stream(b))
            .arg(format!("({clock}-0"))
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let reply = conn.pipelines("events", &[pipe]).await?;
        let entries = reply
            .first()
            .and_then(|r| r.first())
            .map(codec::array)
            .transpose()?
            .unwrap_or(&[]);
        if let Some(entry) = entries.first() {
            newest = newest.max(decode(b, entry)?.0);
        }
    }
    Ok(newest)
}

/// The retention's age in microseconds.
pub(crate) fn retention_us(retention: &EventRetention) -> u64 {
    u64::try_from(retention.max_age.as_micros()).unwrap_or(u64::MAX)
}

/// An event as the scripts pack it: kind, session id, user id, time (ms),
/// device kind code, ip or `false`, reason or `false`.
#[derive(serde::Deserialize)]
struct Packed(String, String, String, i64, u8, record::Text, record::Text);

/// One stream entry of bucket `bucket`: its position and its event.
fn decode(bucket: u16, entry: &Value) -> Result<(Position, Event), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("event entry: {what}"));
    let parts = codec::array(entry)?;
    let (Some(id), Some(fields)) = (parts.first(), parts.get(1)) else {
        return Err(corrupt("not an id and fields"));
    };
    let (us, seq) = parse_id(codec::text(id)?).ok_or_else(|| corrupt("bad id"))?;
    let position = Position { us, seq, bucket };
    let flat: Vec<&Value> = match fields {
        Value::Map(map) => map.iter().flat_map(|(k, v)| [k, v]).collect(),
        other => codec::array(other)?.iter().collect(),
    };
    let packed = match flat.as_slice() {
        [_, Value::BulkString(bytes)] => bytes.as_slice(),
        _ => return Err(corrupt("not one packed field")),
    };
    let Packed(kind, sid, uid, at, device, ip, reason) =
        rmp_serde::from_slice(packed).map_err(|e| corrupt(&e.to_string()))?;
    let event = Event {
        cursor: position.cursor(),
        at: Timestamp::from_millis(at),
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("unknown kind"))?,
        reason: reason.0,
        session_id: SessionId::parse(&sid).ok_or_else(|| corrupt("bad session id"))?,
        user_id: uid,
        device_kind: record::kind_of(device).map(|k| k.as_str().to_owned()),
        ip: ip.0,
    };
    Ok((position, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_is_not_theirs() {
        let p = Position {
            us: 1_700_000_000_000_000,
            seq: 3,
            bucket: 17,
        };
        assert_eq!(p.cursor().as_str(), "r.1700000000000000.3.17");
        assert_eq!(Position::parse(&p.cursor()), Some(p));
        for bad in ["e.12", "r.1.2", "r.1.2.256", "r.1.2.3.4", "r.x.2.3"] {
            let c = EventCursor::parse(bad).unwrap();
            assert_eq!(Position::parse(&c), None, "{bad}");
        }
    }

    #[test]
    fn a_position_starts_each_bucket_right_after_itself() {
        let p = Position {
            us: 10,
            seq: 2,
            bucket: 5,
        };
        assert_eq!(
            p.start_in(4),
            (10, 3),
            "an earlier bucket: its id 10-2 was read"
        );
        assert_eq!(p.start_in(5), (10, 3));
        assert_eq!(
            p.start_in(6),
            (10, 2),
            "a later bucket: 10-2 there is after"
        );
        let zero = Position::ZERO;
        assert_eq!(zero.start_in(0), (0, 1));
        assert_eq!(zero.start_in(1), (0, 0));
        assert!(zero < Position::at((1, 0), 0));
    }
}
