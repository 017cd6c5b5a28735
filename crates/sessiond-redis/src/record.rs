//! A session as one Redis value: a MessagePack array, compact enough that a
//! realistic session costs under 600 bytes of Redis memory with its index
//! entry, readable by the scripts (`cmsgpack`) and by [`decode`] here.
//!
//! Fields, in order (absent strings are `false`, so that Lua sees no holes):
//! version, the random part of the id (its shard tag is the key's hash tag),
//! user id, role, user agent, ip, device kind (a small number), os, browser,
//! created, last seen, idle deadline, absolute deadline, idle timeout (ms),
//! mode (`""` or `"jwt"`), data as a flat array of key and compact-JSON
//! pairs, the authentication context (`authenticated_at` less `created_at`
//! in ms, the level 1..=3, the methods); and only in JWT mode the refresh
//! state: current and previous refresh token hashes, the successor wrapped
//! under the previous one (base64url), generation and the time the current
//! one was issued. Layout 1 (no authentication context) is still read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use sessiond_engine::{
    Aal, AuthContext, Device, DeviceKind, Mode, Session, SessionData, SessionId, ShardTag,
    StoreError, Timestamp, TokenHash,
};

use crate::keys::id_random;

/// Version of the record layout (the first field).
const VERSION: u8 = 2;

/// An optional string: `false` when absent (as the scripts store one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) Option<String>);

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(t) => s.serialize_str(t),
            None => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                if v {
                    Err(E::custom("true is not a string"))
                } else {
                    Ok(Text(None))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(Some(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Data as a flat list of keys and compact-JSON values. The scripts rewrite
/// it; an empty one comes back from Lua as an empty array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct Pairs(Vec<String>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Pairs(out))
            }
            // Lua cannot tell an empty array from an empty map.
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                match map.next_key::<de::IgnoredAny>()? {
                    None => Ok(Pairs(Vec::new())),
                    Some(_) => Err(de::Error::custom("data is a map, not pairs")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The record as stored. The refresh fields are present in JWT mode only.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    version: u8,
    id: String,
    user_id: String,
    role: Text,
    user_agent: Text,
    ip: Text,
    kind: u8,
    os: Text,
    browser: Text,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    absolute_expires_at: i64,
    idle_ttl_ms: u64,
    mode: String,
    data: Pairs,
    auth_delay_ms: i64,
    aal: u8,
    amr: Pairs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_hash: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_previous: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_wrapped: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_rotated_at: Option<i64>,
}

/// Position of the first authentication field in a record (0-based): in
/// layout 1 the refresh fields, if any, came right after the data.
const AUTH_AT: usize = 16;

/// A record of layout 1 (no authentication context) as layout 2: the three
/// fields inserted where layout 2 has them — authenticated at creation,
/// `aal1`, no methods — as the scripts' `decode` does.
fn upgrade_layout_1(raw: &[u8]) -> Result<Record, StoreError> {
    let mut fields: Vec<serde_json::Value> = rmp_serde::from_slice(raw).map_err(corrupt)?;
    if fields.len() < AUTH_AT {
        return Err(corrupt("a layout 1 record with too few fields"));
    }
    let defaults = [
        serde_json::Value::from(0),
        serde_json::Value::from(Aal::Aal1.level()),
        serde_json::Value::Array(Vec::new()),
    ];
    fields.splice(AUTH_AT..AUTH_AT, defaults);
    Record::deserialize(serde_json::Value::Array(fields)).map_err(corrupt)
}

/// The layout version of a record: its array's first element, a positive
/// fixint after the array header.
fn version_of(raw: &[u8]) -> Option<u8> {
    let at = match *raw.first()? {
        0x90..=0x9f => 1,
        0xdc => 3,
        0xdd => 5,
        _ => return None,
    };
    raw.get(at).copied().filter(|v| *v < 0x80)
}

/// The refresh state of a JWT-mode session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RefreshState {
    /// Generation of the current refresh token.
    pub(crate) generation: u64,
    /// When the current one was issued.
    pub(crate) rotated_at: Timestamp,
    /// The current one wrapped under the previous one, if any.
    pub(crate) wrapped: Option<[u8; 32]>,
}

fn kind_code(kind: DeviceKind) -> u8 {
    match kind {
        DeviceKind::Unknown => 0,
        DeviceKind::Desktop => 1,
        DeviceKind::Mobile => 2,
        DeviceKind::Tablet => 3,
        DeviceKind::Bot => 4,
    }
}

/// The device kind of its code in a record.
pub(crate) fn kind_of(code: u8) -> Option<DeviceKind> {
    Some(match code {
        0 => DeviceKind::Unknown,
        1 => DeviceKind::Desktop,
        2 => DeviceKind::Mobile,
        3 => DeviceKind::Tablet,
        4 => DeviceKind::Bot,
        _ => return None,
    })
}

/// The compact JSON of each data value, as flat key/value pairs.
pub(crate) fn data_pairs(data: &SessionData) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for (key, value) in data {
        out.push(key.clone());
        out.push(
            serde_json::to_string(value)
                .map_err(|e| StoreError::Corrupt(format!("data value does not encode: {e}")))?,
        );
    }
    Ok(out)
}

/// The record of a new `session`, with the hash of its first refresh token
/// for a JWT-mode session.
pub(crate) fn encode(
    session: &Session,
    refresh: Option<&TokenHash>,
) -> Result<Vec<u8>, StoreError> {
    let d = &session.device;
    let jwt = refresh.is_some();
    let record = Record {
        version: VERSION,
        id: id_random(&session.id).to_owned(),
        user_id: session.user_id.clone(),
        role: Text(session.role.clone()),
        user_agent: Text(d.user_agent.clone()),
        ip: Text(d.ip.clone()),
        kind: kind_code(d.kind),
        os: Text(d.os.clone()),
        browser: Text(d.browser.clone()),
        created_at: session.created_at.as_millis(),
        last_seen_at: session.last_seen_at.as_millis(),
        expires_at: session.expires_at.as_millis(),
        absolute_expires_at: session.absolute_expires_at.as_millis(),
        idle_ttl_ms: session.idle_ttl_ms,
        mode: match jwt {
            true => Mode::Jwt.as_str().to_owned(),
            false => String::new(),
        },
        data: Pairs(data_pairs(&session.data)?),
        auth_delay_ms: session
            .auth
            .authenticated_at
            .as_millis()
            .saturating_sub(session.created_at.as_millis()),
        aal: session.auth.aal.level(),
        amr: Pairs(session.auth.amr.clone()),
        refresh_hash: refresh.map(|h| Text(Some(h.to_base64()))),
        refresh_previous: jwt.then_some(Text(None)),
        refresh_wrapped: jwt.then_some(Text(None)),
        refresh_generation: jwt.then_some(0),
        refresh_rotated_at: jwt.then_some(session.created_at.as_millis()),
    };
    rmp_serde::to_vec(&record)
        .map_err(|e| StoreError::Corrupt(format!("session does not encode: {e}")))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("session record: {what}"))
}

/// The session a record under tag `tag` holds, and its refresh state if it
/// is in JWT mode.
pub(crate) fn decode(
    raw: &[u8],
    tag: &ShardTag,
) -> Result<(Session, Option<RefreshState>), StoreError> {
    let r: Record = match version_of(raw) {
        Some(VERSION) => rmp_serde::from_slice(raw).map_err(corrupt)?,
        Some(1) => upgrade_layout_1(raw)?,
        Some(v) => return Err(corrupt(format!("unknown version {v}"))),
        None => return Err(corrupt("not a record")),
    };
    let mut full = String::with_capacity(tag.as_str().len() + r.id.len());
    full.push_str(tag.as_str());
    full.push_str(&r.id);
    let id = SessionId::parse(&full).ok_or_else(|| corrupt("malformed session id"))?;
    let pairs = r.data.0.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(corrupt(format!("session {id}: odd data pairs")));
    }
    let mut data = SessionData::new();
    for pair in pairs {
        let value = serde_json::from_str(&pair[1])
            .map_err(|_| corrupt(format!("session {id}: bad data value")))?;
        data.insert(pair[0].clone(), value);
    }
    let mode = match r.mode.as_str() {
        "" => Mode::Opaque,
        "jwt" => Mode::Jwt,
        _ => return Err(corrupt(format!("session {id}: bad mode"))),
    };
    let refresh = match mode {
        Mode::Opaque => None,
        Mode::Jwt => Some(RefreshState {
            generation: r
                .refresh_generation
                .ok_or_else(|| corrupt(format!("session {id}: no refresh generation")))?,
            rotated_at: Timestamp::from_millis(
                r.refresh_rotated_at
                    .ok_or_else(|| corrupt(format!("session {id}: no refresh time")))?,
            ),
            wrapped: match r.refresh_wrapped.and_then(|t| t.0) {
                None => None,
                Some(text) => Some(
                    URL_SAFE_NO_PAD
                        .decode(text)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(|| corrupt(format!("session {id}: bad wrapped successor")))?,
                ),
            },
        }),
    };
    let kind = kind_of(r.kind).ok_or_else(|| corrupt(format!("session {id}: bad device kind")))?;
    let auth = AuthContext {
        authenticated_at: Timestamp::from_millis(r.created_at.saturating_add(r.auth_delay_ms)),
        aal: Aal::from_level(r.aal).ok_or_else(|| corrupt(format!("session {id}: bad aal")))?,
        amr: r.amr.0,
    };
    let session = Session {
        user_id: r.user_id,
        role: r.role.0,
        data,
        device: Device {
            user_agent: r.user_agent.0,
            ip: r.ip.0,
            kind,
            os: r.os.0,
            browser: r.browser.0,
        },
        created_at: Timestamp::from_millis(r.created_at),
        last_seen_at: Timestamp::from_millis(r.last_seen_at),
        expires_at: Timestamp::from_millis(r.expires_at),
        absolute_expires_at: Timestamp::from_millis(r.absolute_expires_at),
        idle_ttl_ms: r.idle_ttl_ms,
        mode,
        id,
        auth,
    };
    Ok((session, refresh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sessiond_engine::ShardTag;

    fn sample() -> Session {
        let serde_json::Value::Object(data) = json!({"cart": [1, 2.5, {"x": null}], "": "", "big": 12345678901234567890u64, "e": [], "nul\u{0}key": "a\u{0}b"})
        else {
            unreachable!()
        };
        Session {
            id: SessionId::generate(&ShardTag::of_user("u")),
            user_id: "u".into(),
            role: Some("admin".into()),
            data,
            device: Device::from_request(
                Some(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                ),
                Some("192.0.2.7"),
            ),
            created_at: Timestamp::from_millis(1_795_000_000_123),
            last_seen_at: Timestamp::from_millis(1_795_000_000_124),
            expires_at: Timestamp::from_millis(1_795_000_060_000),
            absolute_expires_at: Timestamp::from_millis(1_795_100_000_000),
            idle_ttl_ms: 60_000,
            mode: Mode::Opaque,
            auth: AuthContext {
                authenticated_at: Timestamp::from_millis(1_795_000_000_000),
                aal: Aal::Aal2,
                amr: vec!["pwd".into(), "otp".into()],
            },
        }
    }

    #[test]
    fn round_trips_and_stays_small() {
        let s = sample();
        let raw = encode(&s, None).unwrap();
        assert_eq!(decode(&raw, &s.id.shard()).unwrap(), (s.clone(), None));
        let mut bare = s.clone();
        bare.role = None;
        bare.data = SessionData::new();
        bare.device = Device::default();
        let raw = encode(&bare, None).unwrap();
        assert_eq!(decode(&raw, &bare.id.shard()).unwrap().0, bare);
        // A realistic session: 110-byte user agent, IPv4, no data.
        let mut real = sample();
        real.data = SessionData::new();
        real.user_id = "user-000001@example.com".into();
        real.auth = AuthContext::at(real.created_at);
        let raw = encode(&real, None).unwrap();
        // Under 253 bytes, a value fits Redis's 256-byte allocation class.
        assert!(raw.len() <= 252, "{} bytes", raw.len());
    }

    #[test]
    fn jwt_records_carry_the_refresh_state() {
        let mut s = sample();
        s.mode = Mode::Jwt;
        let rh = TokenHash::from_bytes([7; 32]);
        let raw = encode(&s, Some(&rh)).unwrap();
        let (back, refresh) = decode(&raw, &s.id.shard()).unwrap();
        assert!(
            raw.len() > encode(&sample(), None).unwrap().len(),
            "refresh fields in JWT mode only"
        );
        assert_eq!(back, s);
        assert_eq!(
            refresh,
            Some(RefreshState {
                generation: 0,
                rotated_at: s.created_at,
                wrapped: None,
            })
        );
    }

    #[test]
    fn malformed_records_are_corrupt_not_panics() {
        let raw = encode(&sample(), None).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), vec![0xc1], vec![0x90], b"text".to_vec()];
        for cut in [1, 10, raw.len() / 2, raw.len() - 1] {
            cases.push(raw[..cut].to_vec());
        }
        let mut version = raw.clone();
        version[1] = 9;
        cases.push(version);
        let tag = ShardTag::of_user("u");
        for (i, case) in cases.iter().enumerate() {
            assert!(
                matches!(decode(case, &tag), Err(StoreError::Corrupt(_))),
                "case {i}: {case:?}"
            );
        }
        for flip in 0..raw.len() {
            let mut bad = raw.clone();
            bad[flip] ^= 0xff;
            let _ = decode(&bad, &tag); // never panics
        }
    }

    #[test]
    fn layout_1_records_read_as_authenticated_at_creation() {
        for jwt in [false, true] {
            let s = sample();
            let refresh = jwt.then(|| TokenHash::from_bytes([3; 32]));
            let v2 = encode(&s, refresh.as_ref()).unwrap();
            let mut fields: Vec<serde_json::Value> = rmp_serde::from_slice(&v2).unwrap();
            fields.drain(AUTH_AT..AUTH_AT + 3);
            fields[0] = serde_json::Value::from(1);
            let raw = rmp_serde::to_vec(&fields).unwrap();
            let (back, state) = decode(&raw, &s.id.shard()).unwrap();
            assert_eq!(back.auth, AuthContext::at(s.created_at));
            assert_eq!(back.data, s.data);
            assert_eq!(back.device, s.device);
            assert_eq!(state.is_some(), jwt);
        }
    }
}
