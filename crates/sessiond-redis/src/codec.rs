//! Sessions to hash fields and back, and decoding of the scripts' replies.
//! Anything malformed in a reply is a [`StoreError::Corrupt`], never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Value;
use serde_json::Value as Json;
use sessiond_engine::{
    Device, Mode, RefreshOutcome, Session, SessionData, SessionId, StoreError, Timestamp, TokenHash,
};

/// Prefix of the hash fields that hold data keys.
pub(crate) const DATA_FIELD_PREFIX: char = '.';

/// The hash field/value pairs of `session` (token hash `th` included, and for
/// a JWT-mode session the refresh state: mode `md`, current refresh hash
/// `rh`, generation `rg`, rotation time `rt`), in the order HSET takes them.
pub(crate) fn session_fields(
    session: &Session,
    th: &str,
    refresh: Option<&TokenHash>,
) -> Result<Vec<String>, StoreError> {
    let device = serde_json::to_string(&session.device)
        .map_err(|e| StoreError::Corrupt(format!("device does not encode: {e}")))?;
    let mut fields = vec![
        "uid".to_owned(),
        session.user_id.clone(),
        "dev".to_owned(),
        device,
        "ca".to_owned(),
        session.created_at.as_millis().to_string(),
        "ls".to_owned(),
        session.last_seen_at.as_millis().to_string(),
        "exp".to_owned(),
        session.expires_at.as_millis().to_string(),
        "abs".to_owned(),
        session.absolute_expires_at.as_millis().to_string(),
        "ttl".to_owned(),
        session.idle_ttl_ms.to_string(),
        "th".to_owned(),
        th.to_owned(),
    ];
    if let Some(role) = &session.role {
        fields.push("role".to_owned());
        fields.push(role.clone());
    }
    if let Some(rh) = refresh {
        fields.extend([
            "md".to_owned(),
            Mode::Jwt.as_str().to_owned(),
            "rh".to_owned(),
            rh.to_base64(),
            "rg".to_owned(),
            "0".to_owned(),
            "rt".to_owned(),
            session.created_at.as_millis().to_string(),
        ]);
    }
    push_data_fields(&mut fields, &session.data, false)?;
    Ok(fields)
}

/// Append `.key`/compact-JSON pairs of `data`. With `null_deletes`, a `null`
/// value becomes an empty string: the update script's "delete this key".
pub(crate) fn push_data_fields(
    out: &mut Vec<String>,
    data: &SessionData,
    null_deletes: bool,
) -> Result<(), StoreError> {
    for (key, value) in data {
        out.push(format!("{DATA_FIELD_PREFIX}{key}"));
        if null_deletes && value.is_null() {
            out.push(String::new());
        } else {
            out.push(
                serde_json::to_string(value)
                    .map_err(|e| StoreError::Corrupt(format!("data value does not encode: {e}")))?,
            );
        }
    }
    Ok(())
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// The bytes of a string-like reply element.
fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// A string-like reply element as UTF-8 text.
pub(crate) fn text(v: &Value) -> Result<&str, StoreError> {
    let b = bytes(v).ok_or_else(|| corrupt(format!("expected a string, got {v:?}")))?;
    std::str::from_utf8(b).map_err(|_| corrupt("stored text is not UTF-8"))
}

/// An integer reply element (an integer or its decimal text).
pub(crate) fn integer(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse()
            .map_err(|_| corrupt("expected an integer")),
    }
}

/// The elements of an array reply.
pub(crate) fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// A session id read back from Redis.
pub(crate) fn session_id(v: &Value) -> Result<SessionId, StoreError> {
    let s = text(v)?;
    SessionId::parse(s).ok_or_else(|| corrupt("malformed session id"))
}

/// What a script replied, by its leading tag.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// `{'session', id, fields}`
    Session(Box<Session>),
    /// `{'none'}`
    None,
    /// `{'limit'}`
    Limit,
    /// `{'too_large', size}`
    TooLarge(usize),
    /// `{'created', evicted...}` or `{'sessions', ...}`: the rest, undecoded.
    Rest(&'a [Value]),
    /// The refresh script's `{'rotated' | 'replayed' | 'reused' | 'unknown', ...}`.
    Refresh(&'a str, &'a [Value]),
}

/// Split a tagged reply.
pub(crate) fn tagged(v: &Value) -> Result<Reply<'_>, StoreError> {
    let items = array(v)?;
    let (tag, rest) = items.split_first().ok_or_else(|| corrupt("empty reply"))?;
    match text(tag)? {
        "session" => match rest {
            [id, fields] => Ok(Reply::Session(Box::new(session(id, fields)?))),
            _ => Err(corrupt("session reply of the wrong shape")),
        },
        "none" => Ok(Reply::None),
        "limit" => Ok(Reply::Limit),
        "too_large" => {
            let size = rest.first().map(integer).transpose()?.unwrap_or(0);
            Ok(Reply::TooLarge(usize::try_from(size).unwrap_or(0)))
        }
        "created" | "sessions" => Ok(Reply::Rest(rest)),
        tag @ ("rotated" | "replayed" | "reused" | "unknown") => Ok(Reply::Refresh(tag, rest)),
        other => Err(corrupt(format!("unknown reply tag {other:?}"))),
    }
}

/// A session from its id and its hash fields (HGETALL order, any order):
/// either the HGETALL array itself or the same fields joined into one
/// string by the scripts' `packed`.
pub(crate) fn session(id: &Value, fields: &Value) -> Result<Session, StoreError> {
    let id = session_id(id)?;
    let odd = || corrupt(format!("session {id}: odd or empty field list"));
    let flat: Vec<&str> = match fields {
        Value::BulkString(packed) => unpack(packed)?,
        other => array(other)?.iter().map(text).collect::<Result<_, _>>()?,
    };
    let pairs = flat.chunks_exact(2);
    if flat.is_empty() || !pairs.remainder().is_empty() {
        return Err(odd());
    }
    let mut user_id = None;
    let mut role = None;
    let mut mode = Mode::Opaque;
    let mut device = None;
    let (mut ca, mut ls, mut exp, mut abs, mut ttl) = (None, None, None, None, None);
    let mut data = SessionData::new();
    let bad = |what: &str| corrupt(format!("session {id}: bad {what}"));
    let int = |value: &str, what: &str| value.parse::<i64>().map_err(|_| bad(what));
    for pair in pairs {
        let (name, value) = (pair[0], pair[1]);
        if let Some(key) = name.strip_prefix(DATA_FIELD_PREFIX) {
            let json: Json = serde_json::from_str(value).map_err(|_| bad("data value"))?;
            data.insert(key.to_owned(), json);
            continue;
        }
        match name {
            "uid" => user_id = Some(value.to_owned()),
            "role" => role = Some(value.to_owned()),
            "dev" => {
                device = Some(serde_json::from_str::<Device>(value).map_err(|_| bad("device"))?)
            }
            "ca" => ca = Some(int(value, "created_at")?),
            "ls" => ls = Some(int(value, "last_seen_at")?),
            "exp" => exp = Some(int(value, "expires_at")?),
            "abs" => abs = Some(int(value, "absolute_expires_at")?),
            "ttl" => ttl = Some(int(value, "idle_ttl")?),
            "md" => {
                mode = match value {
                    "jwt" => Mode::Jwt,
                    "opaque" => Mode::Opaque,
                    _ => return Err(bad("mode")),
                }
            }
            _ => {} // `th`, the refresh state and fields of later versions
        }
    }
    let missing = |what: &str| corrupt(format!("session {id}: no {what}"));
    let idle_ttl_ms =
        u64::try_from(ttl.ok_or_else(|| missing("idle_ttl"))?).map_err(|_| bad("idle_ttl"))?;
    Ok(Session {
        user_id: user_id.ok_or_else(|| missing("user_id"))?,
        role,
        data,
        device: device.ok_or_else(|| missing("device"))?,
        created_at: Timestamp::from_millis(ca.ok_or_else(|| missing("created_at"))?),
        last_seen_at: Timestamp::from_millis(ls.ok_or_else(|| missing("last_seen_at"))?),
        expires_at: Timestamp::from_millis(exp.ok_or_else(|| missing("expires_at"))?),
        absolute_expires_at: Timestamp::from_millis(
            abs.ok_or_else(|| missing("absolute_expires_at"))?,
        ),
        idle_ttl_ms,
        mode,
        id,
    })
}

/// The refresh script's reply as a [`RefreshOutcome`].
pub(crate) fn refresh_outcome(v: &Value) -> Result<RefreshOutcome, StoreError> {
    let Reply::Refresh(tag, rest) = tagged(v)? else {
        return Err(corrupt("unexpected reply to a refresh"));
    };
    let number = |v: &Value, what: &str| -> Result<u64, StoreError> {
        text(v)?
            .parse::<u64>()
            .map_err(|_| corrupt(format!("refresh reply: bad {what}")))
    };
    match (tag, rest) {
        ("rotated", [id, fields, generation]) => Ok(RefreshOutcome::Rotated {
            session: session(id, fields)?,
            generation: number(generation, "generation")?,
        }),
        ("replayed", [id, fields, generation, rotated_at, wrapped]) => {
            let wrapped = URL_SAFE_NO_PAD
                .decode(text(wrapped)?)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| corrupt("refresh reply: bad wrapped successor"))?;
            let rotated_at = i64::try_from(number(rotated_at, "rotation time")?)
                .map_err(|_| corrupt("refresh reply: bad rotation time"))?;
            Ok(RefreshOutcome::Replayed {
                session: session(id, fields)?,
                generation: number(generation, "generation")?,
                rotated_at: Timestamp::from_millis(rotated_at),
                wrapped_successor: wrapped,
            })
        }
        ("reused", [id]) => Ok(RefreshOutcome::Reused {
            session_id: session_id(id)?,
        }),
        ("unknown", []) => Ok(RefreshOutcome::Unknown),
        _ => Err(corrupt(format!("refresh reply {tag:?} of the wrong shape"))),
    }
}

/// The fields of a session as the scripts' `packed` joins them: with NUL
/// bytes.
fn unpack(packed: &[u8]) -> Result<Vec<&str>, StoreError> {
    let text = std::str::from_utf8(packed).map_err(|_| corrupt("stored text is not UTF-8"))?;
    Ok(text.split('\0').collect())
}

/// `{id, fields, id, fields...}` as sessions, newest first (by `created_at`,
/// then id).
pub(crate) fn session_list(rest: &[Value]) -> Result<Vec<Session>, StoreError> {
    let pairs = rest.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(corrupt("session list of odd length"));
    }
    let mut sessions = pairs
        .map(|pair| session(&pair[0], &pair[1]))
        .collect::<Result<Vec<_>, _>>()?;
    sessions.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    Ok(sessions)
}

/// A list of session ids.
pub(crate) fn id_list(items: &[Value]) -> Result<Vec<SessionId>, StoreError> {
    items.iter().map(session_id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sessiond_engine::{ShardTag, data_size};

    fn sample() -> Session {
        let serde_json::Value::Object(data) =
            json!({"cart": [1, 2.5, {"x": null}], "": "", "big": 12345678901234567890u64, "e": []})
        else {
            unreachable!()
        };
        Session {
            id: SessionId::generate(&ShardTag::of_user("u")),
            user_id: "u".into(),
            role: Some("admin".into()),
            data,
            device: Device::from_request(Some("curl/8.0"), Some("::1")),
            created_at: Timestamp::from_millis(1_795_000_000_123),
            last_seen_at: Timestamp::from_millis(1_795_000_000_124),
            expires_at: Timestamp::from_millis(1_795_000_060_000),
            absolute_expires_at: Timestamp::from_millis(1_795_100_000_000),
            idle_ttl_ms: 60_000,
            mode: sessiond_engine::Mode::Opaque,
        }
    }

    fn as_reply(fields: &[String]) -> Value {
        Value::Array(
            fields
                .iter()
                .map(|f| Value::BulkString(f.clone().into_bytes()))
                .collect(),
        )
    }

    #[test]
    fn fields_round_trip() {
        let s = sample();
        let fields = session_fields(&s, "hash", None).unwrap();
        let back = session(&Value::BulkString(s.id.as_str().into()), &as_reply(&fields)).unwrap();
        assert_eq!(back, s);
        let mut none = s.clone();
        none.role = None;
        let fields = session_fields(&none, "hash", None).unwrap();
        assert_eq!(
            session(&Value::SimpleString(s.id.to_string()), &as_reply(&fields)).unwrap(),
            none
        );
    }

    #[test]
    fn data_fields_measure_like_data_size() {
        let s = sample();
        let mut fields = Vec::new();
        push_data_fields(&mut fields, &s.data, false).unwrap();
        let measured: usize = fields.chunks(2).map(|p| p[0].len() - 1 + p[1].len()).sum();
        assert_eq!(measured, data_size(&s.data));
    }

    #[test]
    fn nulls_become_deletions_only_when_asked() {
        let serde_json::Value::Object(d) = json!({"a": null}) else {
            unreachable!()
        };
        let mut fields = Vec::new();
        push_data_fields(&mut fields, &d, true).unwrap();
        assert_eq!(fields, [".a", ""]);
        fields.clear();
        push_data_fields(&mut fields, &d, false).unwrap();
        assert_eq!(fields, [".a", "null"]);
    }

    #[test]
    fn malformed_records_are_corrupt_not_panics() {
        let s = sample();
        let good = session_fields(&s, "h", None).unwrap();
        let id = Value::BulkString(s.id.as_str().into());
        let mut cases: Vec<(Value, Value)> = vec![
            (id.clone(), Value::Nil),
            (id.clone(), Value::Int(3)),
            (id.clone(), as_reply(&good[..3])),
            (Value::BulkString(b"short".to_vec()), as_reply(&good)),
            (Value::Int(1), as_reply(&good)),
            (id.clone(), Value::Array(vec![Value::Int(1), Value::Int(2)])),
            (
                id.clone(),
                Value::Array(vec![Value::BulkString(vec![0xff]), Value::Nil]),
            ),
        ];
        // Each required field missing, and each field garbled.
        for i in (0..good.len()).step_by(2) {
            let mut without = good.clone();
            without.drain(i..i + 2);
            if !(good[i] == "th" || good[i] == "role" || good[i].starts_with('.')) {
                cases.push((id.clone(), as_reply(&without)));
            }
            let mut garbled = good.clone();
            garbled[i + 1] = "{not json or number".into();
            if !["uid", "th", "role"].contains(&good[i].as_str()) {
                cases.push((id.clone(), as_reply(&garbled)));
            }
        }
        for (i, f) in cases.iter().enumerate() {
            assert!(
                matches!(session(&f.0, &f.1), Err(StoreError::Corrupt(_))),
                "case {i}: {f:?}"
            );
        }
    }

    #[test]
    fn packed_fields_decode_like_the_array() {
        let s = sample();
        let fields = session_fields(&s, "hash", None).unwrap();
        let packed = fields.join("\0");
        let id = Value::BulkString(s.id.as_str().into());
        let from_packed = session(&id, &Value::BulkString(packed.into_bytes())).unwrap();
        let from_array = session(&id, &as_reply(&fields)).unwrap();
        assert_eq!(from_packed, from_array);
        assert_eq!(from_packed, s);
        for bad in ["", "uid", "uid\0a\0ca", "uid\0a\0ca\0x"] {
            assert!(
                matches!(
                    session(&id, &Value::BulkString(bad.as_bytes().to_vec())),
                    Err(StoreError::Corrupt(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tagged_replies_decode() {
        let arr = |v: Vec<Value>| Value::Array(v);
        let s = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        assert!(matches!(tagged(&arr(vec![s("none")])), Ok(Reply::None)));
        assert!(matches!(tagged(&arr(vec![s("limit")])), Ok(Reply::Limit)));
        assert!(matches!(
            tagged(&arr(vec![s("too_large"), Value::Int(9)])),
            Ok(Reply::TooLarge(9))
        ));
        assert!(matches!(
            tagged(&arr(vec![s("created")])),
            Ok(Reply::Rest([]))
        ));
        for bad in [
            arr(vec![]),
            arr(vec![s("what")]),
            Value::Int(1),
            arr(vec![s("session"), s("x")]),
        ] {
            assert!(
                matches!(tagged(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lists_sort_newest_first_then_by_id() {
        let mut a = sample();
        let mut b = sample();
        let mut c = sample();
        a.created_at = Timestamp::from_millis(1);
        b.created_at = Timestamp::from_millis(2);
        c.created_at = Timestamp::from_millis(2);
        let mut items = Vec::new();
        for x in [&a, &b, &c] {
            items.push(Value::BulkString(x.id.as_str().into()));
            items.push(as_reply(&session_fields(x, "h", None).unwrap()));
        }
        let listed = session_list(&items).unwrap();
        let (hi, lo) = if b.id > c.id { (&b, &c) } else { (&c, &b) };
        assert_eq!(
            listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&hi.id, &lo.id, &a.id]
        );
    }
}
