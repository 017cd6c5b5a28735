//! Session history: the lifecycle events a store keeps with their reasons
//! (created, rotated, refreshed, revoked, expired, authenticated), newest
//! first by a sequence number the store assigns, which is also the paging
//! cursor.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::device::Device;
use crate::id::SessionId;
use crate::session::RevokeReason;

/// What happened to a session. Data updates and touches are not history:
/// they change with every request; the history is the audit of the
/// lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HistoryKind {
    /// The session was created.
    Created,
    /// Its token was replaced (`rotate`).
    Rotated,
    /// Its refresh token rotated (a grace replay is not one).
    Refreshed,
    /// It was revoked; the event's reason says why.
    Revoked,
    /// Its idle or absolute deadline passed and the store removed it.
    Expired,
    /// Its user authenticated again (a step-up or a re-authentication);
    /// the event's reason is the method.
    Authenticated,
}

impl HistoryKind {
    /// Every kind.
    pub const ALL: [HistoryKind; 6] = [
        Self::Created,
        Self::Rotated,
        Self::Refreshed,
        Self::Revoked,
        Self::Expired,
        Self::Authenticated,
    ];

    /// The wire (and stored) name, e.g. `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Rotated => "rotated",
            Self::Refreshed => "refreshed",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Authenticated => "authenticated",
        }
    }

    /// The kind of a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lifecycle event of one session. Holds no token and no token hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// Assigned by the store, increasing with every event it records (never
    /// reused, also after old events are pruned): the order of the history
    /// and its paging cursor.
    pub seq: u64,
    /// When it happened; for `expired`, the deadline that passed.
    pub at: Timestamp,
    /// What happened.
    pub kind: HistoryKind,
    /// For `revoked`: the revocation reason's wire name
    /// ([`crate::RevokeReason::as_str`]); for `expired`: `expired`; for
    /// `authenticated`: the method; otherwise none.
    pub reason: Option<String>,
    /// The session.
    pub session_id: SessionId,
    /// Its user.
    pub user_id: String,
    /// The kind of its device as parsed from the user agent (`desktop`,
    /// `mobile`, `tablet`, `bot`, `unknown`); none if the store could not
    /// read the session's device.
    pub device_kind: Option<String>,
    /// The client IP address the session was created with.
    pub ip: Option<String>,
}

/// How long a store keeps events unless configured otherwise: 90 days.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// Events recorded before this are past `retention` at `now`.
pub fn retention_cutoff(now: Timestamp, retention: std::time::Duration) -> Timestamp {
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(now.as_millis().saturating_sub(ms))
}

/// A session row a SQL store's write deleted, as its `DELETE … RETURNING`
/// gives it and as its history needs it. Both SQL stores read their rows
/// into this and record each end the one way [`RemovedRow::ending`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedRow {
    /// The stored id, not yet checked.
    pub raw_id: String,
    /// Its user.
    pub user_id: String,
    /// Its device as stored (JSON text).
    pub device: String,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// The earlier of its deadlines, Unix ms.
    pub deadline: i64,
}

/// How the end of a removed session is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending<'a> {
    /// `now` for a revocation, the deadline that passed for an expiry.
    pub at: Timestamp,
    /// `revoked` or `expired`.
    pub kind: HistoryKind,
    /// The revocation reason, or `expired`.
    pub reason: &'a str,
    /// The session.
    pub session_id: &'a SessionId,
    /// Its user.
    pub user_id: &'a str,
    /// Its device's kind, if its device still decodes.
    pub device_kind: Option<String>,
    /// Its IP address, if its device still decodes.
    pub ip: Option<String>,
}

impl RemovedRow {
    /// Whether it was live at `now`.
    pub fn was_live(&self, now: Timestamp) -> bool {
        self.deadline > now.as_millis()
    }

    /// Its id; `None` (and a warning) if the stored one is malformed: its
    /// row is gone all the same, removing sessions must not fail on a
    /// damaged one.
    pub fn id(&self) -> Option<SessionId> {
        let parsed = SessionId::parse(&self.raw_id);
        if parsed.is_none() {
            tracing::warn!(
                len = self.raw_id.len(),
                "deleted a session row with a malformed id"
            );
        }
        parsed
    }

    /// Oldest first: by creation, then id.
    pub fn sort_by_creation(rows: &mut [Self]) {
        rows.sort_by(|a, b| (a.created_at, &a.raw_id).cmp(&(b.created_at, &b.raw_id)));
    }

    /// In the order they expired: by the deadline that passed, then id.
    pub fn sort_by_deadline(rows: &mut [Self]) {
        rows.sort_by(|a, b| (a.deadline, &a.raw_id).cmp(&(b.deadline, &b.raw_id)));
    }

    /// How its end is recorded: `revoked` for `reason` at `now` if it was
    /// still live then, otherwise `expired` (reason `expired`) at the
    /// deadline that passed, so every session ends exactly once in the
    /// history; `session_id` is its parsed [`RemovedRow::id`] (a row with a
    /// malformed id is not recorded: its event could not be read back). A
    /// device that no longer decodes does not keep a session from ending:
    /// its event just has no device facts.
    pub fn ending<'a>(
        &'a self,
        session_id: &'a SessionId,
        reason: &'a RevokeReason,
        now: Timestamp,
    ) -> Ending<'a> {
        let (device_kind, ip) = serde_json::from_str::<Device>(&self.device)
            .map(|d| device_facts(&d))
            .unwrap_or_default();
        let (at, kind, reason) = if self.was_live(now) {
            (now, HistoryKind::Revoked, reason.as_str())
        } else {
            (
                Timestamp::from_millis(self.deadline),
                HistoryKind::Expired,
                "expired",
            )
        };
        Ending {
            at,
            kind,
            reason,
            session_id,
            user_id: &self.user_id,
            device_kind,
            ip,
        }
    }
}

/// What a history event tells of a session's device: its kind and IP.
pub fn device_facts(device: &Device) -> (Option<String>, Option<String>) {
    (Some(device.kind.as_str().to_owned()), device.ip.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_their_wire_names() {
        for kind in HistoryKind::ALL {
            assert_eq!(HistoryKind::parse(kind.as_str()), Some(kind));
            let wire = serde_json::to_value(kind).unwrap_or_default();
            assert_eq!(wire, kind.as_str());
        }
        assert_eq!(HistoryKind::parse("Created"), None);
        assert_eq!(HistoryKind::parse("updated"), None);
    }

    #[test]
    fn device_facts_are_kind_and_ip() {
        let d = Device::from_request(Some("curl/8.0"), Some("192.0.2.1"));
        assert_eq!(
            device_facts(&d),
            (Some("unknown".to_owned()), Some("192.0.2.1".to_owned()))
        );
    }

    #[test]
    fn the_cutoff_saturates() {
        let now = Timestamp::from_millis(10_000);
        assert_eq!(
            retention_cutoff(now, std::time::Duration::from_secs(4)),
            Timestamp::from_millis(6_000)
        );
        assert_eq!(
            retention_cutoff(
                Timestamp::from_millis(i64::MIN + 1),
                std::time::Duration::MAX
            ),
            Timestamp::from_millis(i64::MIN)
        );
    }
}
