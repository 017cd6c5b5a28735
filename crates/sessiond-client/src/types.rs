//! The typed requests and responses of the sessiond API, mirroring the
//! server's JSON bodies; tokens are held as [`Secret`]s.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use sessiond_engine::{Device, Mode, Session, SessionData, SessionId, Timestamp};

use crate::secret::Secret;

/// What to create a session with (`POST /v1/sessions`). The mode is chosen by
/// calling [`Client::create`](crate::Client::create) or
/// [`Client::create_jwt`](crate::Client::create_jwt).
///
/// Durations are sent as whole seconds, rounded up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CreateSession {
    /// The app's user id (1..=256 bytes).
    pub user_id: String,
    /// Role whose policy applies (none: the default role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Initial app data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<SessionData>,
    /// The end user's user agent, parsed into the session's device facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The end user's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Idle timeout instead of the role's.
    #[serde(
        rename = "idle_ttl_seconds",
        serialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_ttl: Option<Duration>,
    /// Absolute lifetime instead of the role's.
    #[serde(
        rename = "absolute_ttl_seconds",
        serialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub absolute_ttl: Option<Duration>,
}

impl CreateSession {
    /// A request for `user_id` with everything else left to the server.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            ..Self::default()
        }
    }
}

/// `d` in whole seconds, rounded up, so a requested lifetime is never cut short.
pub(crate) fn seconds_ceil(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

fn whole_seconds<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(seconds_ceil(*d)),
        None => s.serialize_none(),
    }
}

/// A session as the API shows it. Never holds a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    /// Public handle: safe to show and log.
    pub id: SessionId,
    /// The app's user id.
    pub user_id: String,
    /// Role, if any.
    pub role: Option<String>,
    /// App data.
    #[serde(default)]
    pub data: SessionData,
    /// Device facts (user agent, IP, kind, OS, browser).
    pub device: Device,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last recorded activity (writes are coalesced by the server).
    pub last_seen_at: Timestamp,
    /// Idle deadline.
    pub expires_at: Timestamp,
    /// Absolute deadline.
    pub absolute_expires_at: Timestamp,
    /// Opaque token or JWT with refresh tokens.
    pub mode: Mode,
    /// Set by [`Client::my_sessions`](crate::Client::my_sessions): whether
    /// this is the caller's own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

/// The view the API gives of an engine session (the engine's own fields,
/// less its idle timeout), for code that holds engine sessions.
impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            role: s.role,
            data: s.data,
            device: s.device,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            absolute_expires_at: s.absolute_expires_at,
            mode: s.mode,
            current: None,
        }
    }
}

/// A new opaque-mode session and its token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Created {
    /// The new session.
    pub session: SessionView,
    /// Its token: give it to the end user (cookie or Bearer).
    pub token: Secret,
    /// Sessions of the user evicted to respect `max_sessions`.
    #[serde(default)]
    pub evicted: Vec<SessionId>,
}

/// A new JWT-mode session: a signed access token and a rotating refresh token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedJwt {
    /// The new session.
    pub session: SessionView,
    /// Signed access token (JWT), verifiable offline through the JWKS.
    pub access_token: Secret,
    /// Refresh token: trade it with [`Client::refresh`](crate::Client::refresh).
    pub refresh_token: Secret,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Sessions of the user evicted to respect `max_sessions`.
    #[serde(default)]
    pub evicted: Vec<SessionId>,
}

/// A session after a rotation: the old token is dead.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rotated {
    /// The session.
    pub session: SessionView,
    /// The new token.
    pub token: Secret,
}

/// The answer to a refresh: a new access token and the next refresh token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenPair {
    /// Signed access token (JWT).
    pub access_token: Secret,
    /// The next refresh token; the presented one is retired.
    pub refresh_token: Secret,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The session.
    pub session: SessionView,
}

/// Counters since the server started and the store's status (`GET /v1/stats`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Live sessions of all users (absent when the store is unreachable).
    pub live_sessions: Option<u64>,
    /// Sessions created since start.
    pub created: u64,
    /// Sessions revoked since start, by reason.
    #[serde(default)]
    pub revoked_by_reason: BTreeMap<String, u64>,
    /// Store errors since start.
    pub store_errors: u64,
    /// `ok` or `unavailable`.
    pub store: String,
}

/// The server's readiness (`GET /readyz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub store: String,
}

impl Readiness {
    /// Whether the server and its store are ready.
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn create_session_omits_unset_fields_and_rounds_durations_up() {
        let req = CreateSession::new("alice");
        assert_eq!(
            serde_json::to_value(&req).ok(),
            Some(json!({"user_id": "alice"}))
        );
        let req = CreateSession {
            role: Some("admin".into()),
            idle_ttl: Some(Duration::from_millis(1500)),
            absolute_ttl: Some(Duration::from_secs(60)),
            ..CreateSession::new("bob")
        };
        assert_eq!(
            serde_json::to_value(&req).ok(),
            Some(json!({
                "user_id": "bob",
                "role": "admin",
                "idle_ttl_seconds": 2,
                "absolute_ttl_seconds": 60
            }))
        );
        assert_eq!(seconds_ceil(Duration::MAX), u64::MAX);
        assert_eq!(seconds_ceil(Duration::ZERO), 0);
    }

    fn session_json() -> Value {
        json!({
            "id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "user_id": "alice",
            "role": null,
            "data": {"theme": "dark"},
            "device": {"user_agent": "curl/8", "ip": "192.0.2.1", "kind": "unknown", "os": null, "browser": null},
            "created_at": "2026-01-02T03:04:05.678Z",
            "last_seen_at": "2026-01-02T03:04:05.678Z",
            "expires_at": "2026-01-02T03:34:05.678Z",
            "absolute_expires_at": "2026-02-01T03:04:05.678Z",
            "mode": "opaque"
        })
    }

    #[test]
    fn session_view_round_trips_the_wire_shape() {
        let wire = session_json();
        let view: SessionView = match serde_json::from_value(wire.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(view.user_id, "alice");
        assert_eq!(view.mode, Mode::Opaque);
        assert_eq!(view.current, None);
        assert_eq!(view.created_at.as_millis(), 1_767_323_045_678);
        assert_eq!(serde_json::to_value(&view).ok(), Some(wire));
    }

    #[test]
    fn unknown_response_fields_are_ignored() {
        let mut wire = session_json();
        wire["added_later"] = json!(1);
        wire["current"] = json!(true);
        let view: Result<SessionView, _> = serde_json::from_value(wire);
        assert_eq!(view.ok().and_then(|v| v.current), Some(true));
    }

    #[test]
    fn debug_of_responses_hides_tokens() {
        let created: Result<Created, _> = serde_json::from_value(json!({
            "session": session_json(),
            "token": "sdt_secret-session-token",
            "evicted": []
        }));
        let Ok(created) = created else {
            panic!("Created did not decode")
        };
        assert_eq!(created.token.expose(), "sdt_secret-session-token");
        assert!(!format!("{created:?}").contains("secret-session-token"));
        let pair: Result<TokenPair, _> = serde_json::from_value(json!({
            "session": session_json(),
            "access_token": "eyJ.secret-access.sig",
            "refresh_token": "sdr_secret-refresh",
            "expires_in": 900
        }));
        let Ok(pair) = pair else {
            panic!("TokenPair did not decode")
        };
        let debug = format!("{pair:#?}");
        assert!(!debug.contains("secret-access") && !debug.contains("secret-refresh"));
    }
}
