//! The JSON bodies of the HTTP API, with their OpenAPI schemas. Requests
//! reject unknown fields; a session view never holds a token or its hash.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessiond_engine::{Device, DeviceKind, Session};
use utoipa::{IntoParams, ToSchema};

use crate::config::Mode;

/// `POST /v1/sessions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The app's user id (1..=256 bytes).
    pub user_id: String,
    /// Role whose policy applies.
    pub role: Option<String>,
    /// Initial app data (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Client IP address.
    pub ip: Option<String>,
    /// `opaque` (default from config) or `jwt`.
    #[schema(value_type = Option<String>)]
    pub mode: Option<Mode>,
    /// Idle timeout instead of the role's.
    pub idle_ttl_seconds: Option<u64>,
    /// Absolute lifetime instead of the role's.
    pub absolute_ttl_seconds: Option<u64>,
}

/// Device facts of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// User agent as sent.
    pub user_agent: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// desktop, mobile, tablet, bot or unknown.
    #[schema(value_type = String)]
    pub kind: DeviceKind,
    /// Operating system.
    pub os: Option<String>,
    /// Browser.
    pub browser: Option<String>,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            user_agent: d.user_agent,
            ip: d.ip,
            kind: d.kind,
            os: d.os,
            browser: d.browser,
        }
    }
}

/// A session as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Public handle.
    pub id: String,
    /// The app's user id.
    pub user_id: String,
    /// Role, if any.
    pub role: Option<String>,
    /// App data.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// Device facts.
    pub device: DeviceView,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; activity writes are coalesced.
    pub last_seen_at: String,
    /// RFC 3339 idle deadline.
    pub expires_at: String,
    /// RFC 3339 absolute deadline.
    pub absolute_expires_at: String,
    /// `opaque` or `jwt`.
    pub mode: &'static str,
    /// Present in `/v1/me/sessions`: whether this is the caller's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            user_id: s.user_id,
            role: s.role,
            data: s.data,
            device: s.device.into(),
            created_at: s.created_at.to_rfc3339(),
            last_seen_at: s.last_seen_at.to_rfc3339(),
            expires_at: s.expires_at.to_rfc3339(),
            absolute_expires_at: s.absolute_expires_at.to_rfc3339(),
            mode: s.mode.as_str(),
            current: None,
        }
    }
}

/// `201` of `POST /v1/sessions` (opaque mode).
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// The new session.
    pub session: SessionView,
    /// Its token: give it to the client.
    pub token: String,
    /// Sessions evicted to respect `max_sessions`.
    pub evicted: Vec<String>,
}

/// `201` of `POST /v1/sessions` in JWT mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedJwt {
    /// The new session.
    pub session: SessionView,
    /// Signed access token (JWT): verify it offline through the JWKS.
    pub access_token: String,
    /// Refresh token: trade it at `POST /v1/tokens/refresh`; it rotates.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Sessions evicted to respect `max_sessions`.
    pub evicted: Vec<String>,
}

/// `POST /v1/tokens/refresh` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The current refresh token.
    pub refresh_token: String,
}

/// `200` of `POST /v1/tokens/refresh`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// Signed access token (JWT).
    pub access_token: String,
    /// The next refresh token; the presented one is retired.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The session.
    pub session: SessionView,
}

/// `POST /v1/sessions/introspect` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Introspect {
    /// A session token or a JWT access token.
    pub token: String,
    /// Record activity (default true).
    pub touch: Option<bool>,
}

/// `200` of introspection.
#[derive(Debug, Serialize, ToSchema)]
pub struct Introspection {
    /// Whether the token proves a live session.
    pub active: bool,
    /// The session, when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionView>,
}

/// `PATCH /v1/sessions/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchData {
    /// Data to merge (top-level keys; `null` removes a key) or replace with.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// Merge (default) or replace.
    pub merge: Option<bool>,
}

/// `POST /v1/sessions/{id}/extend` body.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    /// Push the idle deadline this far from now (default: the session's idle timeout).
    pub idle_ttl_seconds: Option<u64>,
}

/// `200` of a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    /// The session.
    pub session: SessionView,
    /// The new token; the old one is dead.
    pub token: String,
}

/// A user's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionView>,
    /// How many.
    pub count: usize,
}

/// How many sessions a bulk revocation removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    /// Number revoked.
    pub revoked: usize,
}

/// Query of `DELETE /v1/sessions/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// Revocation reason (default `revoked_by_admin`).
    pub reason: Option<String>,
}

/// Query of `DELETE /v1/users/{user_id}/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevokeUserQuery {
    /// A session id to keep.
    pub except: Option<String>,
    /// Revocation reason (default `revoked_by_admin`).
    pub reason: Option<String>,
}

/// `GET /readyz` and the store part of `/v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub store: String,
}

/// `GET /v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Live sessions of all users (absent when the store is unreachable).
    pub live_sessions: Option<u64>,
    /// Sessions created since start.
    pub created: u64,
    /// Sessions revoked since start, by reason.
    #[schema(value_type = Object)]
    pub revoked_by_reason: std::collections::BTreeMap<String, u64>,
    /// Store errors since start.
    pub store_errors: u64,
    /// `ok` or `unavailable`.
    pub store: String,
}
