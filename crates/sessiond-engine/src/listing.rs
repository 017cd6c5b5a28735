//! Listing the live sessions of all users (support, incident response): the
//! filters, a page and the cursor to go on from, and the page-making every
//! store shares, so that a walk from the first page to the last gives each
//! session that stayed live all along exactly once.

use std::fmt;
use std::net::IpAddr;

use crate::clock::Timestamp;
use crate::device::DeviceKind;
use crate::error::StoreError;
use crate::id::SessionId;
use crate::session::Session;

/// Sessions in a page when the caller names no limit.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

/// Most sessions in one page.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Most sessions (live or not, matching or not) a store examines for one
/// page. Filters that match few sessions then give short pages, even empty
/// ones, each with a cursor, rather than one read of the whole store.
pub const LIST_SCAN_BUDGET: usize = 10_000;

/// Longest cursor a store may hand out.
pub const MAX_LIST_CURSOR_LEN: usize = 256;

/// Largest window of rows a SQL store reads at once (see [`KeysetWalk`]).
const MAX_WINDOW: usize = 5_000;

/// Which sessions a listing shows: every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this user's sessions.
    pub user_id: Option<String>,
    /// Only sessions whose device IP is this address, compared as
    /// addresses (`2001:DB8::1` is `2001:db8:0::1`; an IPv4 address is not
    /// its IPv4-mapped IPv6 form).
    pub ip: Option<IpAddr>,
    /// Only sessions on this kind of device.
    pub device_kind: Option<DeviceKind>,
    /// Only sessions created after this time.
    pub created_after: Option<Timestamp>,
}

impl SessionFilter {
    /// Whether `session` passes every filter (liveness is not a filter).
    pub fn matches(&self, session: &Session) -> bool {
        self.user_id.as_ref().is_none_or(|u| *u == session.user_id)
            && self.ip.is_none_or(|ip| {
                let stored = session.device.ip.as_deref();
                stored.and_then(|t| t.parse::<IpAddr>().ok()) == Some(ip)
            })
            && self.device_kind.is_none_or(|k| session.device.kind == k)
            && self.created_after.is_none_or(|t| session.created_at > t)
    }

    /// Whether it has filters that a store checks session by session (all
    /// but the user's, which names where the sessions are).
    pub fn checks_each_session(&self) -> bool {
        self.ip.is_some() || self.device_kind.is_some() || self.created_after.is_some()
    }
}

/// Where a walk of the listing goes on from: made by a store, opaque to
/// everyone else (visible ASCII, at most [`MAX_LIST_CURSOR_LEN`] bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionCursor(String);

impl SessionCursor {
    /// A cursor from text a client sent back; `None` if it cannot be one.
    /// Whether it names a place of this store is the store's to say.
    pub fn parse(text: &str) -> Option<Self> {
        (!text.is_empty()
            && text.len() <= MAX_LIST_CURSOR_LEN
            && text.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| Self(text.to_owned()))
    }

    /// The cursor after session `id` in id order: the SQL stores' keyset
    /// cursor, the id itself.
    pub fn after_id(id: &SessionId) -> Self {
        Self(id.as_str().to_owned())
    }

    /// The session id of a cursor made by [`SessionCursor::after_id`];
    /// [`StoreError::InvalidCursor`] for any other text.
    pub fn keyset_id(&self) -> Result<SessionId, StoreError> {
        SessionId::parse(&self.0)
            .ok_or_else(|| StoreError::InvalidCursor("not a listing cursor of this store".into()))
    }

    /// The cursor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A read of the listing ([`crate::Store::list_sessions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionQuery {
    /// Which sessions.
    pub filter: SessionFilter,
    /// At most this many in the page (1 to [`MAX_LIST_LIMIT`]).
    pub limit: u32,
    /// After this place (the `next_cursor` of an earlier page); from the
    /// start when `None`.
    pub after: Option<SessionCursor>,
}

/// One page of the listing.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionPage {
    /// In the store's walk order (which is not creation order).
    pub sessions: Vec<Session>,
    /// Where the next page starts; `None` when the walk reached the end.
    /// A page may hold fewer than the limit (even none) and still have one.
    pub next_cursor: Option<SessionCursor>,
}

/// Makes a page from the places of a store's walk, in its order: keeps
/// the live sessions the filter matches until it holds one more than the
/// limit, which tells that more follow without another read.
#[derive(Debug)]
pub struct PageCollector {
    filter: SessionFilter,
    limit: usize,
    now: Timestamp,
    sessions: Vec<Session>,
    examined: usize,
}

impl PageCollector {
    /// A collector of the page `query` asks for, judging liveness at `now`.
    pub fn new(query: &SessionQuery, now: Timestamp) -> Self {
        let limit = usize::try_from(query.limit.max(1)).unwrap_or(usize::MAX);
        Self {
            filter: query.filter.clone(),
            limit,
            now,
            sessions: Vec::new(),
            examined: 0,
        }
    }

    /// Take what the walk found at its next place (`None`: nothing live
    /// there). `false` once the page is complete: walk no further.
    pub fn offer(&mut self, found: Option<Session>) -> bool {
        if self.is_complete() {
            return false;
        }
        self.examined += 1;
        if let Some(s) = found.filter(|s| s.is_live(self.now) && self.filter.matches(s)) {
            self.sessions.push(s);
        }
        !self.is_complete()
    }

    /// Whether the page holds one more session than the limit.
    pub fn is_complete(&self) -> bool {
        self.sessions.len() > self.limit
    }

    /// Places offered so far.
    pub fn examined(&self) -> usize {
        self.examined
    }

    /// Sessions kept so far.
    pub fn matched(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions still wanted to complete the page.
    pub fn wanted(&self) -> usize {
        (self.limit + 1).saturating_sub(self.sessions.len())
    }

    /// Whether the walk may examine more places for this page
    /// ([`LIST_SCAN_BUDGET`]).
    pub fn within_budget(&self) -> bool {
        self.examined < LIST_SCAN_BUDGET
    }

    /// The page. Complete: the first `limit` sessions and the cursor after
    /// the last of them (`cursor_of`). Otherwise every session kept, and
    /// `walked_to`: the cursor after the last place examined, `None` when
    /// the walk reached the end of the store.
    pub fn finish(
        mut self,
        cursor_of: impl FnOnce(&Session) -> SessionCursor,
        walked_to: Option<SessionCursor>,
    ) -> SessionPage {
        if !self.is_complete() {
            return SessionPage {
                sessions: self.sessions,
                next_cursor: walked_to,
            };
        }
        self.sessions.truncate(self.limit);
        let next_cursor = self.sessions.last().map(cursor_of);
        SessionPage {
            sessions: self.sessions,
            next_cursor,
        }
    }
}

/// A page of a SQL store: windows of rows in id order (a walk of the
/// primary key), each read after the last id of the one before, until the
/// page is complete, the table ends, or [`LIST_SCAN_BUDGET`] rows were
/// examined. The cursor is the last id examined, so each row is examined
/// once in a whole walk, as it is when its window is read.
///
/// ```text
/// let mut walk = KeysetWalk::start(query, now)?;
/// while let Some((after, size)) = walk.next_window() {
///     let rows = /* up to `size` rows with id > after, in id order */;
///     walk.take(rows, size);
/// }
/// Ok(walk.finish())
/// ```
#[derive(Debug)]
pub struct KeysetWalk {
    collector: PageCollector,
    checks_each: bool,
    after: Option<SessionId>,
    ended: bool,
}

impl KeysetWalk {
    /// The walk of `query`'s page; [`StoreError::InvalidCursor`] when its
    /// cursor is not one of [`SessionCursor::after_id`].
    pub fn start(query: &SessionQuery, now: Timestamp) -> Result<Self, StoreError> {
        let after = query
            .after
            .as_ref()
            .map(SessionCursor::keyset_id)
            .transpose()?;
        Ok(Self {
            collector: PageCollector::new(query, now),
            checks_each: query.filter.checks_each_session(),
            after,
            ended: false,
        })
    }

    /// The next window to read: the rows whose id comes after the given one
    /// (all when `None`), at most the given number; `None` when the page is
    /// made. Windows grow with how few rows matched so far.
    pub fn next_window(&self) -> Option<(Option<&SessionId>, usize)> {
        let c = &self.collector;
        if self.ended || c.is_complete() || !c.within_budget() {
            return None;
        }
        let wanted = c.wanted();
        let size = match (c.examined(), c.matched()) {
            (0, _) if self.checks_each => wanted.saturating_mul(2),
            (0, _) => wanted,
            (examined, 0) => examined.saturating_mul(2),
            // As many as matched at the rate seen so far, and a quarter more.
            (examined, matched) => {
                let rate_guess = wanted.saturating_mul(examined).div_ceil(matched);
                rate_guess.saturating_add(rate_guess / 4)
            }
        };
        let room = LIST_SCAN_BUDGET - c.examined();
        Some((self.after.as_ref(), size.clamp(1, MAX_WINDOW).min(room)))
    }

    /// The rows of the window [`KeysetWalk::next_window`] gave (`size`), in
    /// id order: each id with its session when the store found it live and
    /// passing the filters it checks itself (the walk checks every filter
    /// again).
    pub fn take(
        &mut self,
        rows: impl IntoIterator<Item = (SessionId, Option<Session>)>,
        size: usize,
    ) {
        let mut read = 0;
        for (id, session) in rows {
            read += 1;
            let more = self.collector.offer(session);
            self.after = Some(id);
            if !more {
                return;
            }
        }
        self.ended = read < size;
    }

    /// The page.
    pub fn finish(self) -> SessionPage {
        let walked_to = match (self.ended, &self.after) {
            (false, Some(id)) => Some(SessionCursor::after_id(id)),
            _ => None,
        };
        self.collector
            .finish(|s| SessionCursor::after_id(&s.id), walked_to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::id::ShardTag;
    use crate::session::Mode;

    fn session(user: &str, ip: Option<&str>, created: i64) -> Session {
        Session {
            id: SessionId::generate(&ShardTag::of_user(user)),
            user_id: user.into(),
            role: None,
            data: Default::default(),
            device: Device::from_request(None, ip),
            created_at: Timestamp::from_millis(created),
            last_seen_at: Timestamp::from_millis(created),
            expires_at: Timestamp::from_millis(1_000_000),
            absolute_expires_at: Timestamp::from_millis(1_000_000),
            idle_ttl_ms: 1000,
            mode: Mode::Opaque,
            auth: crate::AuthContext::at(Timestamp::from_millis(created)),
        }
    }

    #[test]
    fn filters_compare_addresses_and_all_must_hold() {
        let s = session("alice", Some("2001:DB8:0::1"), 10);
        let ip = |t: &str| Some(t.parse::<IpAddr>().unwrap());
        let f = |filter: SessionFilter| filter.matches(&s);
        assert!(f(SessionFilter::default()));
        assert!(f(SessionFilter {
            ip: ip("2001:db8::1"),
            user_id: Some("alice".into()),
            device_kind: Some(DeviceKind::Unknown),
            created_after: Some(Timestamp::from_millis(9)),
        }));
        assert!(!f(SessionFilter {
            ip: ip("2001:db8::2"),
            ..SessionFilter::default()
        }));
        assert!(!f(SessionFilter {
            created_after: Some(Timestamp::from_millis(10)),
            ..SessionFilter::default()
        }));
        assert!(!f(SessionFilter {
            user_id: Some("bob".into()),
            ..SessionFilter::default()
        }));
        let v4 = session("bob", Some("192.0.2.1"), 10);
        let mapped = SessionFilter {
            ip: ip("::ffff:192.0.2.1"),
            ..SessionFilter::default()
        };
        assert!(!mapped.matches(&v4));
        assert!(!mapped.matches(&session("carol", None, 10)));
    }

    #[test]
    fn cursors_are_visible_ascii_and_keyset_ones_are_ids() {
        let id = SessionId::generate(&ShardTag::of_user("alice"));
        let c = SessionCursor::after_id(&id);
        assert_eq!(SessionCursor::parse(c.as_str()), Some(c.clone()));
        assert_eq!(c.keyset_id(), Ok(id));
        for bad in ["", "a b", "é", &"x".repeat(MAX_LIST_CURSOR_LEN + 1)] {
            assert!(SessionCursor::parse(bad).is_none(), "{bad:?}");
        }
        let other = SessionCursor::parse("b.12").unwrap();
        assert!(matches!(
            other.keyset_id(),
            Err(StoreError::InvalidCursor(_))
        ));
    }

    /// A table of sessions in id order, read by [`KeysetWalk`] windows.
    fn walk_table(table: &[Session], query: &SessionQuery) -> (SessionPage, usize) {
        let now = Timestamp::from_millis(100);
        let mut walk = KeysetWalk::start(query, now).unwrap();
        let mut windows = 0;
        while let Some((after, size)) = walk.next_window() {
            windows += 1;
            let rows: Vec<_> = table
                .iter()
                .filter(|s| after.is_none_or(|a| s.id > *a))
                .take(size)
                .map(|s| (s.id.clone(), Some(s.clone())))
                .collect();
            walk.take(rows, size);
        }
        (walk.finish(), windows)
    }

    #[test]
    fn keyset_pages_cover_the_table_once() {
        let mut table: Vec<Session> = (0..2500)
            .map(|n| {
                let ip = if n % 7 == 0 { "10.0.0.7" } else { "10.0.0.1" };
                session(&format!("u{n}"), Some(ip), n)
            })
            .collect();
        table.sort_by(|a, b| a.id.cmp(&b.id));
        for (filter, expected) in [
            (SessionFilter::default(), 2500),
            (
                SessionFilter {
                    ip: Some("10.0.0.7".parse().unwrap()),
                    ..SessionFilter::default()
                },
                358,
            ),
        ] {
            let mut seen = Vec::new();
            let mut after = None;
            let mut pages = 0;
            loop {
                let query = SessionQuery {
                    filter: filter.clone(),
                    limit: 100,
                    after: after.take(),
                };
                let (page, _) = walk_table(&table, &query);
                pages += 1;
                assert!(page.sessions.len() <= 100);
                seen.extend(page.sessions.into_iter().map(|s| s.id));
                match page.next_cursor {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen.len(), expected);
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), expected, "each once");
            assert!(pages <= expected / 100 + 2, "{pages} pages");
        }
    }

    #[test]
    fn a_sparse_filter_stops_at_the_budget_with_a_cursor() {
        let mut table: Vec<Session> = (0..LIST_SCAN_BUDGET + 500)
            .map(|n| session(&format!("u{n}"), Some("10.0.0.1"), 5))
            .collect();
        table.sort_by(|a, b| a.id.cmp(&b.id));
        let query = SessionQuery {
            filter: SessionFilter {
                ip: Some("10.9.9.9".parse().unwrap()),
                ..SessionFilter::default()
            },
            limit: 10,
            after: None,
        };
        let (page, windows) = walk_table(&table, &query);
        assert!(page.sessions.is_empty());
        let cursor = page.next_cursor.expect("more to walk");
        assert_eq!(
            cursor.keyset_id().unwrap(),
            table[LIST_SCAN_BUDGET - 1].id,
            "the last row examined"
        );
        assert!(windows < 20, "{windows} windows");
        let (rest, _) = walk_table(
            &table,
            &SessionQuery {
                after: Some(cursor),
                ..query
            },
        );
        assert_eq!(rest.next_cursor, None);
    }
}
