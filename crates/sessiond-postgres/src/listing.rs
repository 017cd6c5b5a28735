//! The listing of all users' sessions: windows of the primary key (or of a
//! user's index) in id order, each one statement that also checks the
//! filters (see [`KeysetWalk`]).

use std::net::IpAddr;

use deadpool_postgres::GenericClient;
use sessiond_engine::{KeysetWalk, SessionId, SessionPage, SessionQuery, Timestamp};
use tokio_postgres::types::ToSql;

use crate::errors::corrupt;
use crate::ops::{Ctx, Outcome, rows};
use crate::rows::{COLUMN_COUNT, decode};

/// The page `query` asks for.
pub(crate) async fn page(
    c: &impl GenericClient,
    x: &Ctx<'_>,
    query: &SessionQuery,
    now: Timestamp,
) -> Outcome<SessionPage> {
    let mut walk = KeysetWalk::start(query, now)?;
    let f = &query.filter;
    let (ip, ip6) = match f.ip {
        Some(IpAddr::V4(a)) => (Some(a.to_string()), false),
        Some(IpAddr::V6(_)) => (None, true),
        None => (None, false),
    };
    let kind = f.device_kind.map(|k| k.as_str());
    let created_after = f.created_after.map(Timestamp::as_millis);
    let now_ms = now.as_millis();
    let sql = match f.user_id {
        Some(_) => &x.sql.list_window_user,
        None => &x.sql.list_window,
    };
    while let Some((after, size)) = walk.next_window() {
        let after = after.map_or("", SessionId::as_str).to_owned();
        let size_param = i64::try_from(size).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &after,
            &size_param,
            &now_ms,
            &created_after,
            &kind,
            &ip,
            &ip6,
        ];
        if let Some(user) = &f.user_id {
            params.push(user);
        }
        let found = rows(c, sql, &params).await?;
        let mut window = Vec::with_capacity(found.len());
        for row in &found {
            let id: String = row.try_get(COLUMN_COUNT)?;
            let id = SessionId::parse(&id).ok_or_else(|| corrupt("a row", "id", "malformed"))?;
            let matched = row.try_get::<_, Option<String>>(0)?.is_some();
            window.push((id, matched.then(|| decode(row)).transpose()?));
        }
        walk.take(window, size);
    }
    Ok(walk.finish())
}
