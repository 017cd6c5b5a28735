//! [`SessionView`]: a session as the API shows it.

use serde::{Deserialize, Serialize};
use sessiond_engine::{Aal, Device, Mode, Session, SessionData, SessionId, Timestamp};

/// A session as the API shows it. Never holds a token or its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    /// Public handle: safe to show and log.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: SessionId,
    /// The app's user id.
    pub user_id: String,
    /// Role, if any.
    pub role: Option<String>,
    /// App data.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = HashMap<String, serde_json::Value>))]
    pub data: SessionData,
    /// Device facts (user agent, IP, kind, OS, browser).
    pub device: Device,
    /// Creation time (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    /// Last recorded activity (RFC 3339; writes are coalesced).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub last_seen_at: Timestamp,
    /// Idle deadline (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub expires_at: Timestamp,
    /// Absolute deadline (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub absolute_expires_at: Timestamp,
    /// `opaque` or `jwt`.
    pub mode: Mode,
    /// When the user last authenticated (RFC 3339): at creation, or at the
    /// latest `POST /v1/sessions/{id}/authenticate`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub authenticated_at: Timestamp,
    /// Assurance level reached: `aal1`, `aal2` or `aal3`.
    pub aal: Aal,
    /// Authentication methods used (e.g. `pwd`, `otp`), each once.
    #[serde(default)]
    pub amr: Vec<String>,
    /// In `/v1/me/sessions`: whether this is the caller's own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

/// The view the API gives of an engine session (the engine's own fields,
/// less its idle timeout).
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
            authenticated_at: s.auth.authenticated_at,
            aal: s.auth.aal,
            amr: s.auth.amr,
            current: None,
        }
    }
}

/// The wire shape of a session, for this crate's tests.
#[cfg(test)]
pub(crate) fn session_json() -> serde_json::Value {
    serde_json::json!({
        "id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "user_id": "alice",
        "role": null,
        "data": {"theme": "dark"},
        "device": {"user_agent": "curl/8", "ip": "192.0.2.1", "kind": "unknown", "os": null, "browser": null},
        "created_at": "2026-01-02T03:04:05.678Z",
        "last_seen_at": "2026-01-02T03:04:05.678Z",
        "expires_at": "2026-01-02T03:34:05.678Z",
        "absolute_expires_at": "2026-02-01T03:04:05.678Z",
        "mode": "opaque",
        "authenticated_at": "2026-01-02T03:04:05.678Z",
        "aal": "aal2",
        "amr": ["pwd", "otp"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_the_wire_shape() {
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
}
