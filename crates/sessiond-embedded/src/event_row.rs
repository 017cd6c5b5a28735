//! A row of the `events` table as SQLite returns it, read once for both of
//! its readers: the history (`history`) and the event feed (`feed`).

use rusqlite::Row;

/// The columns [`RawEvent::read`] reads, in its order.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, at, kind, reason, session_id, user_id, device_kind, ip";

/// An event row as SQLite returned it (the table is STRICT: the column
/// types hold), not yet checked; the history and the feed decode it.
pub(crate) struct RawEvent {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) kind: String,
    pub(crate) reason: Option<String>,
    pub(crate) session_id: String,
    pub(crate) user_id: String,
    pub(crate) device_kind: Option<String>,
    pub(crate) ip: Option<String>,
}

impl RawEvent {
    /// A row of [`EVENT_COLUMNS`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get(0)?,
            at: row.get(1)?,
            kind: row.get(2)?,
            reason: row.get(3)?,
            session_id: row.get(4)?,
            user_id: row.get(5)?,
            device_kind: row.get(6)?,
            ip: row.get(7)?,
        })
    }
}
