//! Conversion between [`Session`] values and `sessions` rows (and
//! [`Connection`]s and `connections` rows): the column lists queries
//! select, and decoding that reports a bad row as [`StoreError::Corrupt`]
//! instead of failing the query.

use sessiond_engine::{
    AuthContext, Connection, ConnectionId, Device, Mode, Session, SessionData, SessionId,
    StoreError, Timestamp,
};
use tokio_postgres::Row;

use crate::errors::corrupt;

/// Columns of a session row, in the order [`decode`] reads them.
pub(crate) const COLUMNS: &str = "id, user_id, role, data, device, created_at, last_seen_at, \
     expires_at, absolute_expires_at, idle_ttl_ms, mode, auth";

/// Number of columns [`decode`] reads from the start of a row.
pub(crate) const COLUMN_COUNT: usize = 12;

/// The session held by the first [`COLUMN_COUNT`] columns of `row`.
pub(crate) fn decode(row: &Row) -> Result<Session, StoreError> {
    let id: String = row
        .try_get(0)
        .map_err(|e| corrupt("a row", "id", &e.to_string()))?;
    let id = SessionId::parse(&id).ok_or_else(|| corrupt("a row", "id", "malformed"))?;
    let at = id.as_str().to_owned();
    let get_text = |i: usize, field: &str| -> Result<String, StoreError> {
        row.try_get::<_, String>(i)
            .map_err(|e| corrupt(&at, field, &e.to_string()))
    };
    let get_millis = |i: usize, field: &str| -> Result<i64, StoreError> {
        row.try_get::<_, i64>(i)
            .map_err(|e| corrupt(&at, field, &e.to_string()))
    };
    let user_id = get_text(1, "user_id")?;
    let role: Option<String> = row
        .try_get(2)
        .map_err(|e| corrupt(&at, "role", &e.to_string()))?;
    let data: SessionData = serde_json::from_str(&get_text(3, "data")?)
        .map_err(|e| corrupt(&at, "data", &e.to_string()))?;
    let device: Device = serde_json::from_str(&get_text(4, "device")?)
        .map_err(|e| corrupt(&at, "device", &e.to_string()))?;
    let idle_ttl_ms = u64::try_from(get_millis(9, "idle_ttl_ms")?)
        .map_err(|_| corrupt(&at, "idle_ttl_ms", "negative"))?;
    let mode = match get_text(10, "mode")?.as_str() {
        "opaque" => Mode::Opaque,
        "jwt" => Mode::Jwt,
        _ => return Err(corrupt(&at, "mode", "neither opaque nor jwt")),
    };
    let created_at = Timestamp::from_millis(get_millis(5, "created_at")?);
    let auth: Option<String> = row
        .try_get(11)
        .map_err(|e| corrupt(&at, "auth", &e.to_string()))?;
    let auth = match auth {
        None => AuthContext::at(created_at),
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| corrupt(&at, "auth", &e.to_string()))?
        }
    };
    Ok(Session {
        created_at,
        last_seen_at: Timestamp::from_millis(get_millis(6, "last_seen_at")?),
        expires_at: Timestamp::from_millis(get_millis(7, "expires_at")?),
        absolute_expires_at: Timestamp::from_millis(get_millis(8, "absolute_expires_at")?),
        id,
        user_id,
        role,
        data,
        device,
        idle_ttl_ms,
        mode,
        auth,
    })
}

/// Columns of a connection row after its session id, in the order
/// [`decode_connection`] reads them.
pub(crate) const CONNECTION_COLUMNS: &str =
    "connection_id, node, opened_at, last_seen_at, expires_at";

/// The connection of `session_id` held by the [`CONNECTION_COLUMNS`] of
/// `row` from column `from` on; `None` when they are null (an outer join
/// that found none), and (with a warning) when its id is malformed: such a
/// row is left out rather than failing the read.
pub(crate) fn decode_connection(
    row: &Row,
    from: usize,
    session_id: &SessionId,
) -> Result<Option<Connection>, StoreError> {
    let at = session_id.as_str();
    let bad = |field: &str, e: tokio_postgres::Error| {
        corrupt(at, &format!("connection {field}"), &e.to_string())
    };
    let Some(raw_id) = row
        .try_get::<_, Option<String>>(from)
        .map_err(|e| bad("id", e))?
    else {
        return Ok(None);
    };
    let Some(connection_id) = ConnectionId::parse(&raw_id) else {
        tracing::warn!(session_id = at, "a connection row with a malformed id");
        return Ok(None);
    };
    let millis_at = |i: usize, field: &str| {
        row.try_get::<_, i64>(from + i)
            .map(Timestamp::from_millis)
            .map_err(|e| bad(field, e))
    };
    Ok(Some(Connection {
        session_id: session_id.clone(),
        connection_id,
        node: row.try_get(from + 1).map_err(|e| bad("node", e))?,
        opened_at: millis_at(2, "opened_at")?,
        last_seen_at: millis_at(3, "last_seen_at")?,
        expires_at: millis_at(4, "expires_at")?,
    }))
}

pub(crate) use sessiond_engine::store::sql_millis as millis;
