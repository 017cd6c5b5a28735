//! The `history` table: lifecycle events written in the transaction of the
//! change they record (so an event exists exactly when its change does),
//! read a page at a time newest first, pruned past the retention in bounded
//! batches.

use deadpool_postgres::GenericClient;
use sessiond_engine::history::{device_facts, ending};
use sessiond_engine::{
    Device, HistoryEvent, HistoryKind, RevokeReason, Session, SessionId, StoreError, Timestamp,
};
use tokio_postgres::Row;

use crate::errors::corrupt;
use crate::statements::Statements;

/// A session row a write deleted, as its history needs it.
#[derive(Debug)]
pub(crate) struct Removed {
    raw_id: String,
    user_id: String,
    device: String,
    created_at: i64,
    deadline: i64,
}

impl Removed {
    /// Read the [`crate::statements::REMOVED`] columns at the start of
    /// `row`.
    pub(crate) fn read(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            raw_id: row.try_get(0)?,
            user_id: row.try_get(1)?,
            device: row.try_get(2)?,
            created_at: row.try_get(3)?,
            deadline: row.try_get(4)?,
        })
    }

    /// All rows of a `DELETE … RETURNING` of those columns, oldest first
    /// (by creation, then id).
    pub(crate) fn all(rows: &[Row]) -> Result<Vec<Self>, tokio_postgres::Error> {
        let mut removed = rows.iter().map(Self::read).collect::<Result<Vec<_>, _>>()?;
        removed.sort_by(|a, b| (a.created_at, &a.raw_id).cmp(&(b.created_at, &b.raw_id)));
        Ok(removed)
    }

    /// Sort by the deadline that passed, then id: the order in which they
    /// expired.
    pub(crate) fn by_deadline(rows: &mut [Self]) {
        rows.sort_by(|a, b| (a.deadline, &a.raw_id).cmp(&(b.deadline, &b.raw_id)));
    }

    /// Whether it was live at `now`.
    pub(crate) fn was_live(&self, now: Timestamp) -> bool {
        self.deadline > now.as_millis()
    }

    /// Its id; `None` (and a warning) if the stored one is malformed: its
    /// row is gone all the same, removing sessions must not fail on a
    /// damaged one.
    pub(crate) fn id(&self) -> Option<SessionId> {
        let parsed = SessionId::parse(&self.raw_id);
        if parsed.is_none() {
            tracing::warn!(
                len = self.raw_id.len(),
                "deleted a session row with a malformed id"
            );
        }
        parsed
    }
}

/// Events to record in the current transaction, written by one `INSERT`.
#[derive(Debug, Default)]
pub(crate) struct Events {
    at: Vec<i64>,
    kind: Vec<&'static str>,
    reason: Vec<Option<String>>,
    session_id: Vec<String>,
    user_id: Vec<String>,
    device_kind: Vec<Option<String>>,
    ip: Vec<Option<String>>,
}

impl Events {
    /// An event of a session at hand.
    pub(crate) fn session(&mut self, at: Timestamp, kind: HistoryKind, session: &Session) {
        let (device_kind, ip) = device_facts(&session.device);
        self.push(
            at,
            kind,
            None,
            session.id.as_str(),
            &session.user_id,
            device_kind,
            ip,
        );
    }

    /// The end of a removed session: `revoked` for `reason` if it was live
    /// at `now`, otherwise `expired` at the deadline that passed. A row with
    /// a malformed id is not recorded (its event could not be read back).
    pub(crate) fn ended(&mut self, removed: &Removed, reason: &RevokeReason, now: Timestamp) {
        if SessionId::parse(&removed.raw_id).is_none() {
            return;
        }
        // A device that no longer decodes must not keep a session from
        // ending: its event just has no device facts.
        let (device_kind, ip) = serde_json::from_str::<Device>(&removed.device)
            .map(|d| device_facts(&d))
            .unwrap_or_default();
        let (at, kind, reason) = ending(Timestamp::from_millis(removed.deadline), reason, now);
        self.push(
            at,
            kind,
            Some(reason.to_owned()),
            &removed.raw_id,
            &removed.user_id,
            device_kind,
            ip,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        at: Timestamp,
        kind: HistoryKind,
        reason: Option<String>,
        session_id: &str,
        user_id: &str,
        device_kind: Option<String>,
        ip: Option<String>,
    ) {
        self.at.push(at.as_millis());
        self.kind.push(kind.as_str());
        self.reason.push(reason);
        self.session_id.push(session_id.to_owned());
        self.user_id.push(user_id.to_owned());
        self.device_kind.push(device_kind);
        self.ip.push(ip);
    }

    /// Insert them, in the order they were added (their `seq` follows it).
    pub(crate) async fn write(
        &self,
        c: &impl GenericClient,
        sql: &Statements,
    ) -> Result<(), tokio_postgres::Error> {
        if self.at.is_empty() {
            return Ok(());
        }
        let stmt = c.prepare_cached(&sql.record).await?;
        c.execute(
            &stmt,
            &[
                &self.at,
                &self.kind,
                &self.reason,
                &self.session_id,
                &self.user_id,
                &self.device_kind,
                &self.ip,
            ],
        )
        .await?;
        Ok(())
    }
}

/// The event a row of [`crate::statements::Statements::history_page`]
/// holds.
pub(crate) fn decode(row: &Row) -> Result<HistoryEvent, StoreError> {
    let seq: i64 = row
        .try_get(0)
        .map_err(|e| corrupt("a history event", "seq", &e.to_string()))?;
    let at = format!("history event {seq}");
    let bad = |column: &str| corrupt(&at, column, "unreadable");
    let text = |i: usize, column: &str| row.try_get::<_, String>(i).map_err(|_| bad(column));
    let optional =
        |i: usize, column: &str| row.try_get::<_, Option<String>>(i).map_err(|_| bad(column));
    Ok(HistoryEvent {
        seq: u64::try_from(seq).map_err(|_| bad("seq"))?,
        at: Timestamp::from_millis(row.try_get(1).map_err(|_| bad("at"))?),
        kind: HistoryKind::parse(&text(2, "kind")?).ok_or_else(|| bad("kind"))?,
        reason: optional(3, "reason")?,
        session_id: SessionId::parse(&text(4, "session_id")?).ok_or_else(|| bad("session_id"))?,
        user_id: text(5, "user_id")?,
        device_kind: optional(6, "device_kind")?,
        ip: optional(7, "ip")?,
    })
}
