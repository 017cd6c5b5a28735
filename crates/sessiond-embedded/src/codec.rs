//! Conversion between [`Session`] values and SQLite rows: the column list
//! every query selects, and decoding that reports a bad row as
//! [`StoreError::Corrupt`] instead of failing the query.

use rusqlite::Row;
use rusqlite::types::Value;
use sessiond_engine::{
    AuthContext, Device, Mode, Session, SessionData, SessionId, StoreError, Timestamp,
};

/// Columns of a session row, in the order [`RawRow::read`] expects them.
pub(crate) const COLUMNS: &str = "id, user_id, role, data, device, created_at, last_seen_at, \
     expires_at, absolute_expires_at, idle_ttl_ms, mode, auth";

/// Number of [`COLUMNS`].
pub(crate) const COLUMN_COUNT: usize = 12;

/// A session row exactly as SQLite returned it, not yet checked.
#[derive(Debug)]
pub(crate) struct RawRow([Value; COLUMN_COUNT]);

impl RawRow {
    /// Read the [`COLUMNS`] of `row`. Reading a [`Value`] cannot fail on the
    /// type of a column, so a bad row is reported by [`RawRow::decode`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self([
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
        ]))
    }

    /// The session this row holds.
    pub(crate) fn decode(self) -> Result<Session, StoreError> {
        let [
            id,
            user_id,
            role,
            data,
            device,
            created,
            seen,
            expires,
            absolute,
            idle,
            mode,
            auth,
        ] = self.0;
        let id = match text(id) {
            Some(s) => SessionId::parse(&s).ok_or_else(|| corrupt("a row", "id", "malformed"))?,
            None => return Err(corrupt("a row", "id", "not text")),
        };
        let at = id.as_str();
        let user_id = text(user_id).ok_or_else(|| corrupt(at, "user_id", "not text"))?;
        let role = match role {
            Value::Null => None,
            Value::Text(s) => Some(s),
            _ => return Err(corrupt(at, "role", "neither text nor null")),
        };
        let data_text = text(data).ok_or_else(|| corrupt(at, "data", "not text"))?;
        let data: SessionData =
            serde_json::from_str(&data_text).map_err(|e| corrupt(at, "data", &e.to_string()))?;
        let device_text = text(device).ok_or_else(|| corrupt(at, "device", "not text"))?;
        let device: Device = serde_json::from_str(&device_text)
            .map_err(|e| corrupt(at, "device", &e.to_string()))?;
        let idle_ttl_ms = match idle {
            Value::Integer(n) => {
                u64::try_from(n).map_err(|_| corrupt(at, "idle_ttl_ms", "negative"))?
            }
            _ => return Err(corrupt(at, "idle_ttl_ms", "not an integer")),
        };
        let mode = match text(mode).as_deref() {
            Some("opaque") => Mode::Opaque,
            Some("jwt") => Mode::Jwt,
            _ => return Err(corrupt(at, "mode", "neither opaque nor jwt")),
        };
        let created_at = timestamp(created, at, "created_at")?;
        let auth = match auth {
            Value::Null => AuthContext::at(created_at),
            Value::Text(s) => {
                serde_json::from_str(&s).map_err(|e| corrupt(at, "auth", &e.to_string()))?
            }
            _ => return Err(corrupt(at, "auth", "neither text nor null")),
        };
        Ok(Session {
            created_at,
            last_seen_at: timestamp(seen, at, "last_seen_at")?,
            expires_at: timestamp(expires, at, "expires_at")?,
            absolute_expires_at: timestamp(absolute, at, "absolute_expires_at")?,
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
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn timestamp(v: Value, at: &str, column: &str) -> Result<Timestamp, StoreError> {
    match v {
        Value::Integer(ms) => Ok(Timestamp::from_millis(ms)),
        _ => Err(corrupt(at, column, "not an integer")),
    }
}

fn corrupt(at: &str, column: &str, why: &str) -> StoreError {
    StoreError::Corrupt(format!("session {at}: column {column}: {why}"))
}

/// A millisecond count as stored in an INTEGER column (saturating).
pub(crate) use sessiond_engine::store::sql_millis as millis;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sessiond_engine::ShardTag;

    fn raw(data: &str) -> RawRow {
        let id = SessionId::generate(&ShardTag::of_user("u"));
        RawRow([
            Value::Text(id.as_str().to_owned()),
            Value::Text("u".into()),
            Value::Null,
            Value::Text(data.into()),
            Value::Text(sessiond_engine::store::json_text("device", &Device::default()).unwrap()),
            Value::Integer(1),
            Value::Integer(2),
            Value::Integer(3),
            Value::Integer(4),
            Value::Integer(5),
            Value::Text("opaque".into()),
            Value::Null,
        ])
    }

    #[test]
    fn a_good_row_decodes() {
        let s = raw(r#"{"a":[1,2]}"#).decode().unwrap();
        assert_eq!(s.user_id, "u");
        assert_eq!(s.role, None);
        assert_eq!(s.data["a"], serde_json::json!([1, 2]));
        assert_eq!(
            (
                s.created_at.as_millis(),
                s.absolute_expires_at.as_millis(),
                s.idle_ttl_ms
            ),
            (1, 4, 5)
        );
    }

    #[test]
    fn bad_rows_are_corrupt_not_panics() {
        for data in ["", "{", "[1]", "null", "\"text\"", "{\"a\":}"] {
            assert!(
                matches!(raw(data).decode(), Err(StoreError::Corrupt(_))),
                "{data:?}"
            );
        }
        let mut r = raw("{}");
        r.0[0] = Value::Text("../etc".into());
        assert!(matches!(r.decode(), Err(StoreError::Corrupt(_))));
        let mut r = raw("{}");
        r.0[10] = Value::Text("bearer".into());
        assert!(matches!(r.decode(), Err(StoreError::Corrupt(_))));
        let mut r = raw("{}");
        r.0[9] = Value::Integer(-1);
        assert!(matches!(r.decode(), Err(StoreError::Corrupt(_))));
        let mut r = raw("{}");
        r.0[5] = Value::Real(1.5);
        assert!(matches!(r.decode(), Err(StoreError::Corrupt(_))));
        let mut r = raw("{}");
        r.0[2] = Value::Blob(vec![1]);
        assert!(matches!(r.decode(), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(5), 5);
        assert_eq!(millis(u64::MAX), i64::MAX);
    }
}
