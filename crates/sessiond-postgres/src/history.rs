//! The `events` table, written in the transaction of the change each event
//! records (so an event exists exactly when its change does), and the
//! history it holds: its lifecycle events, read a page at a time newest
//! first and pruned past the retention once they have left the feed.

use deadpool_postgres::GenericClient;
use sessiond_engine::history::{RemovedRow, device_facts};
use sessiond_engine::{
    Device, EventKind, HistoryEvent, HistoryKind, RevokeReason, Session, SessionId, StoreError,
    Timestamp,
};
use tokio_postgres::Row;

use crate::errors::corrupt;
use crate::statements::Statements;

/// All rows of a `DELETE … RETURNING` of [`crate::statements::REMOVED`],
/// oldest first (by creation, then id).
pub(crate) fn removed(rows: &[Row]) -> Result<Vec<RemovedRow>, tokio_postgres::Error> {
    let mut removed = rows
        .iter()
        .map(|row| {
            Ok(RemovedRow {
                raw_id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                device: row.try_get(2)?,
                created_at: row.try_get(3)?,
                deadline: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    RemovedRow::sort_by_creation(&mut removed);
    Ok(removed)
}

/// Events to record in the current transaction, written by one `INSERT`.
#[derive(Debug)]
pub(crate) struct Events {
    /// When they are written (`recorded_at`).
    now: Timestamp,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    reason: Vec<Option<String>>,
    session_id: Vec<String>,
    user_id: Vec<String>,
    device_kind: Vec<Option<String>>,
    ip: Vec<Option<String>>,
}

impl Events {
    /// None yet, to be written at `now`.
    pub(crate) fn new(now: Timestamp) -> Self {
        Self {
            now,
            at: Vec::new(),
            kind: Vec::new(),
            reason: Vec::new(),
            session_id: Vec::new(),
            user_id: Vec::new(),
            device_kind: Vec::new(),
            ip: Vec::new(),
        }
    }

    /// An event of a session at hand, without a reason.
    pub(crate) fn session(&mut self, at: Timestamp, kind: EventKind, session: &Session) {
        self.session_with_reason(at, kind, None, session);
    }

    /// An event of a session at hand: `connection_opened`,
    /// `connection_closed` with its reason, `authenticated` with its method.
    pub(crate) fn session_with_reason(
        &mut self,
        at: Timestamp,
        kind: EventKind,
        reason: Option<&str>,
        session: &Session,
    ) {
        let (device_kind, ip) = device_facts(&session.device);
        self.push(
            at,
            kind,
            reason.map(str::to_owned),
            session.id.as_str(),
            &session.user_id,
            device_kind,
            ip,
        );
    }

    /// `connection_closed` (reason `expired`, at `expired_at`) of a
    /// connection the sweep removed, on a live session whose row gave
    /// `user_id` and `device` (as stored): a device that no longer decodes
    /// leaves the event without device facts, as a removed session's end.
    pub(crate) fn expired_connection(
        &mut self,
        expired_at: Timestamp,
        session_id: &SessionId,
        user_id: &str,
        device: &str,
    ) {
        let (device_kind, ip) = serde_json::from_str::<Device>(device)
            .map(|d| device_facts(&d))
            .unwrap_or_default();
        self.push(
            expired_at,
            EventKind::ConnectionClosed,
            Some("expired".to_owned()),
            session_id.as_str(),
            user_id,
            device_kind,
            ip,
        );
    }

    /// The end of a removed session (see [`RemovedRow::ending`]); its id
    /// when the stored one is well formed.
    pub(crate) fn ended(
        &mut self,
        removed: &RemovedRow,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Option<SessionId> {
        let id = removed.id()?;
        let end = removed.ending(&id, reason, now);
        self.push(
            end.at,
            end.kind.into(),
            Some(end.reason.to_owned()),
            id.as_str(),
            end.user_id,
            end.device_kind,
            end.ip,
        );
        Some(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        at: Timestamp,
        kind: EventKind,
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
                &self.now.as_millis(),
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
