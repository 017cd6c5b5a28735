//! Request bodies and query strings. Unknown fields are rejected.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessiond_engine::{
    Aal, AuthRequirement, DeviceKind, Mode, SessionData, SessionFilter, Timestamp,
};

use crate::secret::Secret;

/// `POST /v1/sessions`: a session for a user the app has authenticated.
///
/// Durations travel as whole seconds (`idle_ttl_seconds`,
/// `absolute_ttl_seconds`), rounded up when sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSession {
    /// The app's user id (1..=256 bytes).
    pub user_id: String,
    /// Role whose policy applies (none: the default role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Initial app data (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<HashMap<String, serde_json::Value>>))]
    pub data: Option<SessionData>,
    /// The end user's user agent, parsed into the session's device facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The end user's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `opaque` or `jwt` (default: the server's `default_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Idle timeout instead of the role's.
    #[serde(
        rename = "idle_ttl_seconds",
        default,
        with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub idle_ttl: Option<Duration>,
    /// Absolute lifetime instead of the role's.
    #[serde(
        rename = "absolute_ttl_seconds",
        default,
        with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub absolute_ttl: Option<Duration>,
    /// The assurance level the user's authentication reached (default
    /// `aal1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aal: Option<Aal>,
    /// The methods the user authenticated with, e.g. `["pwd", "otp"]`
    /// (RFC 8176 names or the app's own; at most 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// RFC 3339 UTC time the user authenticated (default: now; not in the
    /// future).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub authenticated_at: Option<Timestamp>,
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

/// Durations as whole seconds on the wire, rounded up when written (a
/// requested lifetime is never cut short).
mod whole_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// `d` in whole seconds, rounded up.
    pub(crate) fn ceil(d: Duration) -> u64 {
        d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
    }

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(ceil(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

/// `POST /v1/sessions/introspect`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Introspect {
    /// A session token or a JWT access token.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Secret,
    /// Record activity (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch: Option<bool>,
    /// Require the user to have authenticated at most this many seconds
    /// ago; else a `reauthentication_required` problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// Require at least this assurance level; else an `insufficient_aal`
    /// problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_aal: Option<Aal>,
    /// The end user's IP address, for the device binding of the session's
    /// role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The end user's user agent, for the device binding of the session's
    /// role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Requirements on the authentication of the caller's session, in the
/// query of `GET /v1/me`, `GET /v1/auth` and `POST /v1/sessions/introspect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuthQuery {
    /// Require the user to have authenticated at most this many seconds
    /// ago; else 401 `reauthentication_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// Require at least this assurance level (`aal1`..`aal3`); else 401
    /// `insufficient_aal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    pub min_aal: Option<Aal>,
}

/// The requirement of a `max_age` (seconds) and a `min_aal` on the wire.
fn requirement(max_age: Option<u64>, min_aal: Option<Aal>) -> AuthRequirement {
    AuthRequirement {
        max_age: max_age.map(Duration::from_secs),
        min_aal,
    }
}

impl AuthQuery {
    /// What it requires.
    pub fn requirement(&self) -> AuthRequirement {
        requirement(self.max_age, self.min_aal)
    }
}

impl Introspect {
    /// What its body requires.
    pub fn requirement(&self) -> AuthRequirement {
        requirement(self.max_age, self.min_aal)
    }
}

/// `POST /v1/sessions/{id}/authenticate`: the user authenticated again
/// (a step-up or a re-authentication).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Authenticate {
    /// The level this authentication reached (default `aal1`); the
    /// session's level rises to it and never falls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aal: Option<Aal>,
    /// The method used, e.g. `otp`, `webauthn`, `pwd`: added to the
    /// session's `amr`.
    pub method: String,
}

/// `PATCH /v1/sessions/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatchData {
    /// Data to merge (top-level keys; `null` removes a key) or replace with.
    #[cfg_attr(feature = "openapi", schema(value_type = HashMap<String, serde_json::Value>))]
    pub data: SessionData,
    /// Merge (default) or replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<bool>,
}

/// `POST /v1/sessions/{id}/extend` (whole seconds on the wire, rounded up
/// when sent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Extend {
    /// Push the idle deadline this far from now (default: the session's idle
    /// timeout).
    #[serde(
        rename = "idle_ttl_seconds",
        default,
        with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub idle_ttl: Option<Duration>,
}

/// `POST /v1/tokens/refresh`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshBody {
    /// The current refresh token.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refresh_token: Secret,
}

/// Query of `DELETE /v1/sessions/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RevokeQuery {
    /// Revocation reason (default `revoked_by_admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Query of `DELETE /v1/users/{user_id}/sessions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RevokeUserQuery {
    /// A session id to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
    /// Revocation reason (default `revoked_by_admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/users/{user_id}/revoke`: revoke everything issued before a
/// time, and refuse it from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeIssuedBefore {
    /// RFC 3339 UTC time: the user's sessions created before it are revoked,
    /// creates of sessions older than it are refused, and access tokens
    /// issued before it stop working. At most a minute past the server's
    /// clock.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub issued_before: Timestamp,
    /// A session id to keep (its access tokens issued before the time still
    /// stop working).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
    /// Revocation reason (default `revoked_by_admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Query of `GET /v1/users/{user_id}/history`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct HistoryQuery {
    /// Events per page, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page: the events older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Query of `GET /v1/sessions`: which sessions of all users, and which
/// page. Every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListSessionsQuery {
    /// Only this user's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Only sessions whose device IP is this address (IPv4 or IPv6,
    /// compared as addresses: `2001:db8::1` finds `2001:DB8:0::1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    pub ip: Option<IpAddr>,
    /// Only sessions on this kind of device: `desktop`, `mobile`,
    /// `tablet`, `bot` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_kind: Option<DeviceKind>,
    /// Only sessions created after this time (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    pub created_after: Option<Timestamp>,
    /// Sessions per page, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl ListSessionsQuery {
    /// The filters, as the engine takes them.
    pub fn filter(&self) -> SessionFilter {
        SessionFilter {
            user_id: self.user_id.clone(),
            ip: self.ip,
            device_kind: self.device_kind,
            created_after: self.created_after,
        }
    }
}

/// `PUT /v1/sessions/{id}/connections/{connection_id}` (the body may be
/// left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionBeat {
    /// The connection ends this long after this heartbeat unless another
    /// comes (1 to 3600 seconds; default 60), or with its session.
    #[serde(
        rename = "ttl_seconds",
        default,
        with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub ttl: Option<Duration>,
    /// The app node holding the connection (1 to 128 characters from
    /// `A-Z a-z 0-9 _ . : -`); kept from an earlier heartbeat when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Query of `GET /v1/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventsQuery {
    /// Only this user's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Only these types, comma-separated (e.g. `revoked,expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<String>,
    /// Where to start without a `Last-Event-ID`: `now` (the default: only
    /// what happens from now on) or `oldest` (every event still kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Resume after this event id, for clients that cannot send the
    /// `Last-Event-ID` header (the header wins when both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_session_omits_unset_fields_and_rounds_durations_up() {
        let req = CreateSession::new("alice");
        assert_eq!(
            serde_json::to_value(&req).ok(),
            Some(json!({"user_id": "alice"}))
        );
        let req = CreateSession {
            role: Some("admin".into()),
            mode: Some(Mode::Jwt),
            idle_ttl: Some(Duration::from_millis(1500)),
            absolute_ttl: Some(Duration::from_secs(60)),
            ..CreateSession::new("bob")
        };
        let wire = json!({
            "user_id": "bob",
            "role": "admin",
            "mode": "jwt",
            "idle_ttl_seconds": 2,
            "absolute_ttl_seconds": 60
        });
        assert_eq!(serde_json::to_value(&req).ok(), Some(wire.clone()));
        let back: CreateSession = serde_json::from_value(wire).unwrap_or_default();
        assert_eq!(back.idle_ttl, Some(Duration::from_secs(2)));
        assert_eq!(back.mode, Some(Mode::Jwt));
        assert_eq!(whole_seconds::ceil(Duration::MAX), u64::MAX);
        assert_eq!(whole_seconds::ceil(Duration::ZERO), 0);
    }

    #[test]
    fn requests_reject_unknown_fields() {
        assert!(
            serde_json::from_value::<CreateSession>(json!({"user_id": "a", "nope": 1})).is_err()
        );
        assert!(serde_json::from_value::<Introspect>(json!({"token": "t", "x": 1})).is_err());
        assert!(serde_json::from_value::<Extend>(json!({"idle_ttl": 1})).is_err());
        assert!(serde_json::from_value::<HistoryQuery>(json!({"before": "1"})).is_err());
    }

    #[test]
    fn debug_of_requests_hides_tokens() {
        let body = Introspect {
            token: Secret::new("sds_secret-token"),
            touch: None,
            max_age: None,
            min_aal: None,
            ip: None,
            user_agent: None,
        };
        assert!(!format!("{body:?}").contains("secret-token"));
    }
}
