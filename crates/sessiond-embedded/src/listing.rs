//! The listing of all users' sessions: windows of the primary key in id
//! order (see [`KeysetWalk`]), each one statement that also checks the
//! filters, so a page costs its windows' rows and never a sort of the table.

use std::net::IpAddr;

use rusqlite::types::ToSql;
use rusqlite::{Connection, Row};
use sessiond_engine::{
    KeysetWalk, Session, SessionFilter, SessionId, SessionPage, SessionQuery, StoreError, Timestamp,
};

use crate::codec::{COLUMN_COUNT, COLUMNS, RawRow};
use crate::error::from_sqlite;

/// The statement of one window: `:after`, `:size`, `:now`, the filters
/// (null when not given) and, with `by_user`, `:user`. One walk of an index
/// in id order; each id of the window comes back last, after the row's
/// [`COLUMNS`] when the session is live and passes the filters (nulls
/// otherwise). An IPv4 filter compares the stored text (an IPv4 address has
/// one spelling); an IPv6 one keeps the rows of IPv6 addresses and leaves
/// the comparison of addresses to the walk.
fn window_sql(by_user: bool) -> String {
    let masked: Vec<String> = COLUMNS
        .split(',')
        .map(|c| format!("CASE WHEN w.hit THEN w.{} END", c.trim()))
        .collect();
    let user = if by_user { "AND user_id = :user" } else { "" };
    format!(
        "SELECT {}, w.id
         FROM (SELECT {COLUMNS}, expires_at > :now AND absolute_expires_at > :now
                AND (:created_after IS NULL OR created_at > :created_after)
                AND (:kind IS NULL OR json_extract(device, '$.kind') = :kind)
                AND (:ip IS NULL OR json_extract(device, '$.ip') = :ip)
                AND (NOT :ip6 OR instr(json_extract(device, '$.ip'), ':') > 0) AS hit
               FROM sessions WHERE id > :after {user} ORDER BY id LIMIT :size) AS w
         ORDER BY w.id",
        masked.join(", ")
    )
}

/// The page `query` asks for.
pub(crate) fn page(
    conn: &Connection,
    query: &SessionQuery,
    now: Timestamp,
) -> Result<SessionPage, StoreError> {
    let mut walk = KeysetWalk::start(query, now)?;
    let f: &SessionFilter = &query.filter;
    let (ip, ip6) = match f.ip {
        Some(IpAddr::V4(a)) => (Some(a.to_string()), false),
        Some(IpAddr::V6(_)) => (None, true),
        None => (None, false),
    };
    let kind = f.device_kind.map(|k| k.as_str());
    let created_after = f.created_after.map(Timestamp::as_millis);
    let mut stmt = conn
        .prepare_cached(&window_sql(f.user_id.is_some()))
        .map_err(from_sqlite)?;
    while let Some((after, size)) = walk.next_window() {
        let after = after.map_or("", SessionId::as_str).to_owned();
        let size_param = i64::try_from(size).unwrap_or(i64::MAX);
        let now_ms = now.as_millis();
        let mut params: Vec<(&str, &dyn ToSql)> = vec![
            (":after", &after),
            (":size", &size_param),
            (":now", &now_ms),
            (":created_after", &created_after),
            (":kind", &kind),
            (":ip", &ip),
            (":ip6", &ip6),
        ];
        if let Some(user) = &f.user_id {
            params.push((":user", user));
        }
        let rows = stmt
            .query_map(params.as_slice(), read_row)
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(from_sqlite)?;
        let rows = rows
            .into_iter()
            .map(decode_row)
            .collect::<Result<Vec<_>, _>>()?;
        walk.take(rows, size);
    }
    Ok(walk.finish())
}

/// A window's row as read: the session's columns when it matched, and the
/// id the window holds.
fn read_row(row: &Row<'_>) -> rusqlite::Result<(Option<RawRow>, String)> {
    let matched = row.get::<_, Option<String>>(0)?.is_some();
    let raw = matched.then(|| RawRow::read(row)).transpose()?;
    Ok((raw, row.get(COLUMN_COUNT)?))
}

fn decode_row(
    (raw, id): (Option<RawRow>, String),
) -> Result<(SessionId, Option<Session>), StoreError> {
    let id = SessionId::parse(&id)
        .ok_or_else(|| StoreError::Corrupt(format!("sessions row {id:?}: malformed id")))?;
    Ok((id, raw.map(RawRow::decode).transpose()?))
}
