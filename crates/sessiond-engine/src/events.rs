//! Lifecycle events: every change to a session, recorded by the store with
//! the change itself into one ordered feed, which subscribers read from a
//! cursor and resume after a disconnect without losing or repeating one.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::history::HistoryKind;
use crate::id::SessionId;

/// How long a store keeps events in its feed unless configured otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How many events a store keeps in its feed at most unless configured
/// otherwise (older ones leave the feed first).
pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;

/// Longest cursor a store may hand out (an SSE `id:` line, an HTTP header).
pub const MAX_CURSOR_LEN: usize = 1024;

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// The session was created.
    Created,
    /// Its token was replaced (`rotate`).
    Rotated,
    /// Its refresh token rotated (a grace replay is not one).
    Refreshed,
    /// Its data changed.
    DataUpdated,
    /// Its idle deadline was pushed out (`extend`).
    Extended,
    /// It was revoked; the event's reason says why.
    Revoked,
    /// Its idle or absolute deadline passed and the store removed it.
    Expired,
    /// A live connection (a WebSocket) was registered on it.
    ConnectionOpened,
    /// A connection on it closed or expired.
    ConnectionClosed,
    /// Its user authenticated again (a step-up or a re-authentication);
    /// the event's reason is the method.
    Authenticated,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        Self::Created,
        Self::Rotated,
        Self::Refreshed,
        Self::DataUpdated,
        Self::Extended,
        Self::Revoked,
        Self::Expired,
        Self::ConnectionOpened,
        Self::ConnectionClosed,
        Self::Authenticated,
    ];

    /// The wire (and stored) name, e.g. `data_updated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Rotated => "rotated",
            Self::Refreshed => "refreshed",
            Self::DataUpdated => "data_updated",
            Self::Extended => "extended",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::ConnectionOpened => "connection_opened",
            Self::ConnectionClosed => "connection_closed",
            Self::Authenticated => "authenticated",
        }
    }

    /// The kind of a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the history keeps it (the lifecycle; see [`HistoryKind`]).
    pub fn in_history(self) -> bool {
        HistoryKind::parse(self.as_str()).is_some()
    }
}

impl From<HistoryKind> for EventKind {
    fn from(kind: HistoryKind) -> Self {
        match kind {
            HistoryKind::Created => Self::Created,
            HistoryKind::Rotated => Self::Rotated,
            HistoryKind::Refreshed => Self::Refreshed,
            HistoryKind::Revoked => Self::Revoked,
            HistoryKind::Expired => Self::Expired,
            HistoryKind::Authenticated => Self::Authenticated,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`EventKind`]s (a filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventKinds(u16);

impl EventKinds {
    /// Every kind.
    pub const ALL: EventKinds = EventKinds((1 << EventKind::ALL.len()) - 1);

    /// These kinds.
    pub fn of(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        Self(kinds.into_iter().fold(0, |set, k| set | Self::bit(k)))
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds a comma-separated list of wire names gives (`revoked,
    /// expired`; spaces around a name are allowed); `None` if a name is
    /// not a kind or the list is empty.
    pub fn parse_list(text: &str) -> Option<Self> {
        text.split(',')
            .map(|name| EventKind::parse(name.trim()))
            .collect::<Option<Vec<_>>>()
            .filter(|kinds| !kinds.is_empty())
            .map(Self::of)
    }

    /// Every kind's wire name, comma-separated: what a list may hold.
    pub fn accepted() -> String {
        EventKind::ALL.map(EventKind::as_str).join(", ")
    }

    fn bit(kind: EventKind) -> u16 {
        let index = EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        1 << index
    }
}

impl Default for EventKinds {
    fn default() -> Self {
        Self::ALL
    }
}

/// A position in a store's event feed: everything up to it has been read.
/// Made by the store, opaque to everyone else (visible ASCII, at most
/// [`MAX_CURSOR_LEN`] bytes, so it fits an SSE `id:` line and a header).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventCursor(String);

impl EventCursor {
    /// A cursor from text a client sent back; `None` if it cannot be one.
    /// Whether it names a position of this store is the store's to say.
    pub fn parse(text: &str) -> Option<Self> {
        (!text.is_empty()
            && text.len() <= MAX_CURSOR_LEN
            && text.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| Self(text.to_owned()))
    }

    /// A store's cursor made of a short tag of its own and a number, e.g.
    /// `e.42` (characters of `prefix` that a cursor cannot hold are left
    /// out).
    pub fn numbered(prefix: &str, number: u64) -> Self {
        let mut text: String = prefix
            .chars()
            .filter(char::is_ascii_graphic)
            .take(MAX_CURSOR_LEN - 20)
            .collect();
        text.push_str(&number.to_string());
        Self(text)
    }

    /// The cursor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One change to one session. Holds no token and no token hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its place in the feed: resuming after this cursor gives the events
    /// that follow it.
    pub cursor: EventCursor,
    /// When it happened; for `expired`, the deadline that passed.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// For `revoked`: the revocation reason's wire name; for `expired`:
    /// `expired`; for `authenticated`: the method (`otp`, `webauthn`, …);
    /// otherwise none.
    pub reason: Option<String>,
    /// The session.
    pub session_id: SessionId,
    /// Its user.
    pub user_id: String,
    /// The kind of its device (`desktop`, `mobile`, …), if known.
    pub device_kind: Option<String>,
    /// The client IP address the session was created with, if known.
    pub ip: Option<String>,
}

/// Where a read of the feed starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventsFrom {
    /// The oldest event the store still keeps.
    Oldest,
    /// After the newest event: only what happens from now on.
    Now,
    /// Right after this cursor.
    After(EventCursor),
}

/// A read of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    /// Where to start.
    pub from: EventsFrom,
    /// Only this user's events.
    pub user_id: Option<String>,
    /// Only these kinds.
    pub kinds: EventKinds,
    /// At most this many events.
    pub limit: u32,
}

/// What a read of the feed found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPage {
    /// In feed order.
    pub events: Vec<Event>,
    /// Where the next read starts: after the last event read, which may be
    /// past the last one returned when filters left some out.
    pub cursor: EventCursor,
}

/// How a store keeps its feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRetention {
    /// Events recorded longer ago than this leave the feed.
    pub max_age: Duration,
    /// The feed holds at most this many events (the oldest leave first).
    pub max_events: u64,
}

impl Default for EventRetention {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_RETENTION,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(EventKind::parse("touched"), None);
    }

    #[test]
    fn lists_of_kinds_parse_as_sets() {
        assert_eq!(
            EventKinds::parse_list("revoked, expired,authenticated"),
            Some(EventKinds::of([
                EventKind::Revoked,
                EventKind::Expired,
                EventKind::Authenticated
            ]))
        );
        for bad in ["", ",", "revoked,", "revoked,touched", "Revoked"] {
            assert_eq!(EventKinds::parse_list(bad), None, "{bad:?}");
        }
        let accepted = EventKinds::accepted();
        assert!(accepted.starts_with("created, rotated"));
        assert!(accepted.ends_with("authenticated"));
    }

    #[test]
    fn history_keeps_the_lifecycle_kinds_only() {
        for kind in HistoryKind::ALL {
            assert!(EventKind::from(kind).in_history());
        }
        assert!(!EventKind::DataUpdated.in_history());
        assert!(!EventKind::ConnectionOpened.in_history());
    }

    #[test]
    fn a_kind_set_holds_what_it_was_made_of() {
        let set = EventKinds::of([EventKind::Revoked, EventKind::Expired]);
        assert!(set.contains(EventKind::Revoked) && set.contains(EventKind::Expired));
        assert!(!set.contains(EventKind::Created));
        assert!(EventKind::ALL.iter().all(|k| EventKinds::ALL.contains(*k)));
        assert!(EventKinds::of([]).is_empty());
    }

    #[test]
    fn cursors_are_short_visible_ascii() {
        assert!(EventCursor::parse("e1.42").is_some());
        assert!(EventCursor::parse("").is_none());
        assert!(EventCursor::parse("a b").is_none());
        assert!(EventCursor::parse("a\nid: 9").is_none());
        assert!(EventCursor::parse(&"9".repeat(MAX_CURSOR_LEN + 1)).is_none());
        let made = EventCursor::numbered("e. x", u64::MAX);
        assert_eq!(made.as_str(), format!("e.x{}", u64::MAX));
        assert_eq!(EventCursor::parse(made.as_str()), Some(made));
    }
}
