//! Decoding of the scripts' replies. Anything malformed in a reply is a
//! [`StoreError::Corrupt`], never a panic.

use redis::Value;
use sessiond_engine::{RefreshOutcome, Session, SessionData, SessionId, ShardTag, StoreError};

use crate::record;

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

/// The session a record reply element of tag `tag` holds.
pub(crate) fn session(v: &Value, tag: &ShardTag) -> Result<Session, StoreError> {
    let raw = bytes(v).ok_or_else(|| corrupt(format!("expected a record, got {v:?}")))?;
    Ok(record::decode(raw, tag)?.0)
}

/// What a script replied, by its leading tag.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// `{'record', bytes}`
    Record(&'a Value),
    /// `{'none'}`
    None,
    /// `{'limit'}`
    Limit,
    /// `{'issued_before'}`: older than the user's not-before mark.
    IssuedBefore,
    /// `{'too_large', size}`
    TooLarge(usize),
    /// `{'created', evicted...}`, `{'records', ...}`, `{'beat', ...}` or
    /// `{'presence', ...}`: the rest, undecoded.
    Rest(&'a [Value]),
    /// The refresh script's `{'rotated' | 'replayed' | 'reused' | 'unknown', ...}`.
    Refresh(&'a str, &'a [Value]),
}

/// Split a tagged reply.
pub(crate) fn tagged(v: &Value) -> Result<Reply<'_>, StoreError> {
    let items = array(v)?;
    let (tag, rest) = items.split_first().ok_or_else(|| corrupt("empty reply"))?;
    match text(tag)? {
        "record" => match rest {
            [raw] => Ok(Reply::Record(raw)),
            _ => Err(corrupt("record reply of the wrong shape")),
        },
        "none" => Ok(Reply::None),
        "limit" => Ok(Reply::Limit),
        "issued_before" => Ok(Reply::IssuedBefore),
        "too_large" => {
            let size = rest.first().map(integer).transpose()?.unwrap_or(0);
            Ok(Reply::TooLarge(usize::try_from(size).unwrap_or(0)))
        }
        "created" | "records" | "beat" | "presence" => Ok(Reply::Rest(rest)),
        tag @ ("rotated" | "replayed" | "reused" | "unknown") => Ok(Reply::Refresh(tag, rest)),
        other => Err(corrupt(format!("unknown reply tag {other:?}"))),
    }
}

/// A `{'record', bytes}` or `{'none'}` reply about tag `tag`.
pub(crate) fn maybe_session(v: &Value, tag: &ShardTag) -> Result<Option<Session>, StoreError> {
    match tagged(v)? {
        Reply::Record(raw) => Ok(Some(session(raw, tag)?)),
        Reply::None => Ok(None),
        other => Err(corrupt(format!("unexpected reply {other:?}"))),
    }
}

/// The refresh script's reply (about tag `tag`) as a [`RefreshOutcome`].
pub(crate) fn refresh_outcome(v: &Value, tag: &ShardTag) -> Result<RefreshOutcome, StoreError> {
    let Reply::Refresh(kind, rest) = tagged(v)? else {
        return Err(corrupt("unexpected reply to a refresh"));
    };
    let with_state = |raw: &Value| {
        let raw = bytes(raw).ok_or_else(|| corrupt("refresh reply: expected a record"))?;
        match record::decode(raw, tag)? {
            (session, Some(state)) => Ok((session, state)),
            (_, None) => Err(corrupt("refresh reply: the session is not in JWT mode")),
        }
    };
    match (kind, rest) {
        ("rotated", [raw]) => {
            let (session, state) = with_state(raw)?;
            Ok(RefreshOutcome::Rotated {
                session,
                generation: state.generation,
            })
        }
        ("replayed", [raw]) => {
            let (session, state) = with_state(raw)?;
            Ok(RefreshOutcome::Replayed {
                session,
                generation: state.generation,
                rotated_at: state.rotated_at,
                wrapped_successor: state
                    .wrapped
                    .ok_or_else(|| corrupt("refresh reply: no wrapped successor"))?,
            })
        }
        ("reused", [id]) => Ok(RefreshOutcome::Reused {
            session_id: session_id(id)?,
        }),
        ("unknown", []) => Ok(RefreshOutcome::Unknown),
        _ => Err(corrupt(format!(
            "refresh reply {kind:?} of the wrong shape"
        ))),
    }
}

/// The records of tag `tag` as the sessions of `user_id`, newest first (by
/// `created_at`, then id).
pub(crate) fn user_sessions(
    rest: &[Value],
    user_id: &str,
    tag: &ShardTag,
) -> Result<Vec<Session>, StoreError> {
    let mut sessions = Vec::with_capacity(rest.len());
    for raw in rest {
        let s = session(raw, tag)?;
        if s.user_id == user_id {
            sessions.push(s);
        }
    }
    sessions.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    Ok(sessions)
}

/// A list of session ids.
pub(crate) fn id_list(items: &[Value]) -> Result<Vec<SessionId>, StoreError> {
    items.iter().map(session_id).collect()
}

/// Append `key`/compact-JSON pairs of `data`. With `null_deletes`, a `null`
/// value becomes an empty string: the update script's "delete this key".
pub(crate) fn push_data_pairs(
    out: &mut Vec<Vec<u8>>,
    data: &SessionData,
    null_deletes: bool,
) -> Result<(), StoreError> {
    for (key, value) in data {
        out.push(key.as_bytes().to_vec());
        if null_deletes && value.is_null() {
            out.push(Vec::new());
        } else {
            out.push(
                serde_json::to_vec(value)
                    .map_err(|e| corrupt(format!("data value does not encode: {e}")))?,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sessiond_engine::{Device, Mode, Timestamp, data_size};

    fn sample(created: i64) -> Session {
        Session {
            id: SessionId::generate(&ShardTag::of_user("u")),
            user_id: "u".into(),
            role: None,
            data: SessionData::new(),
            device: Device::default(),
            created_at: Timestamp::from_millis(created),
            last_seen_at: Timestamp::from_millis(created),
            expires_at: Timestamp::from_millis(created + 60_000),
            absolute_expires_at: Timestamp::from_millis(created + 600_000),
            idle_ttl_ms: 60_000,
            mode: Mode::Opaque,
            auth: sessiond_engine::AuthContext::at(Timestamp::from_millis(created)),
        }
    }

    fn raw(s: &Session) -> Value {
        Value::BulkString(record::encode(s, None).unwrap())
    }

    #[test]
    fn data_pairs_measure_like_data_size() {
        let serde_json::Value::Object(d) = json!({"cart": [1, 2.5], "": "", "n": null}) else {
            unreachable!()
        };
        let mut pairs = Vec::new();
        push_data_pairs(&mut pairs, &d, false).unwrap();
        let measured: usize = pairs.chunks(2).map(|p| p[0].len() + p[1].len()).sum();
        assert_eq!(measured, data_size(&d));
        pairs.clear();
        push_data_pairs(&mut pairs, &d, true).unwrap();
        assert_eq!(pairs[pairs.len() - 1], b"");
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
        let one = sample(1);
        let tag = one.id.shard();
        assert_eq!(
            maybe_session(&arr(vec![s("record"), raw(&one)]), &tag).unwrap(),
            Some(one)
        );
        for bad in [
            arr(vec![]),
            arr(vec![s("what")]),
            Value::Int(1),
            arr(vec![s("record")]),
            arr(vec![s("record"), s("not a record")]),
        ] {
            assert!(
                matches!(maybe_session(&bad, &tag), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lists_keep_the_user_and_sort_newest_first_then_by_id() {
        let a = sample(1);
        let b = sample(2);
        let c = sample(2);
        let mut other = sample(3);
        other.user_id = "v".into();
        let items = [raw(&a), raw(&b), raw(&c), raw(&other)];
        let listed = user_sessions(&items, "u", &ShardTag::of_user("u")).unwrap();
        let (hi, lo) = if b.id > c.id { (&b, &c) } else { (&c, &b) };
        assert_eq!(
            listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&hi.id, &lo.id, &a.id]
        );
    }
}
