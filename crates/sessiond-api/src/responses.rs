//! Response bodies. Unknown fields are ignored when parsing (a newer server
//! may add some).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sessiond_engine::{
    Connection, Device, Event, EventKind, HistoryEvent, HistoryKind, HistoryPage, Presence,
    SessionId, SessionPage, Timestamp,
};

use crate::secret::Secret;
use crate::session::SessionView;

/// `201` of `POST /v1/sessions` in opaque mode: the session and its token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Created {
    /// The new session.
    pub session: SessionView,
    /// Its token: give it to the end user (cookie or Bearer).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Secret,
    /// Sessions of the user evicted to respect `max_sessions`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub evicted: Vec<SessionId>,
}

/// `201` of `POST /v1/sessions` in JWT mode: a signed access token and a
/// rotating refresh token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedJwt {
    /// The new session.
    pub session: SessionView,
    /// Signed access token (JWT), verifiable offline through the JWKS.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub access_token: Secret,
    /// Refresh token: trade it at `POST /v1/tokens/refresh`; it rotates.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refresh_token: Secret,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Sessions of the user evicted to respect `max_sessions`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub evicted: Vec<SessionId>,
}

/// `201` of `POST /v1/sessions`, either mode (the session's mode decides).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CreateResponse {
    /// JWT mode.
    Jwt(CreatedJwt),
    /// Opaque mode.
    Opaque(Created),
}

/// `200` of a rotation: the old token is dead.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rotated {
    /// The session.
    pub session: SessionView,
    /// The new token.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Secret,
}

/// `200` of `POST /v1/tokens/refresh`: a new access token and the next
/// refresh token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// Signed access token (JWT).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub access_token: Secret,
    /// The next refresh token; the presented one is retired.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refresh_token: Secret,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The session.
    pub session: SessionView,
}

/// `200` of introspection.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Introspection {
    /// Whether the token proves a live session.
    pub active: bool,
    /// The session, when active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionView>,
    /// Set when the session is active but was presented off its device
    /// binding (a role with `on_mismatch = "flag"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
}

/// Why an active session is risky.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Risk {
    /// The bindings the presenter broke: `ip_prefix`, `ua_family`.
    pub binding_mismatch: Vec<sessiond_engine::BindTo>,
}

/// A user's sessions, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionView>,
    /// How many.
    pub count: usize,
}

/// `200` of `GET /v1/sessions`: a page of the live sessions of all users.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionListPage {
    /// In the store's order (not by creation time); at most the limit,
    /// maybe fewer (even none) before the end.
    pub sessions: Vec<SessionView>,
    /// Pass it as `cursor` for the next page (an opaque string); null on
    /// the last page.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_cursor: Option<String>,
}

impl From<SessionPage> for SessionListPage {
    fn from(page: SessionPage) -> Self {
        Self {
            sessions: page.sessions.into_iter().map(SessionView::from).collect(),
            next_cursor: page.next_cursor.map(|c| c.as_str().to_owned()),
        }
    }
}

/// One lifecycle event of a session, as `GET /v1/users/{user_id}/history`
/// shows it. Never holds a token or its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEventView {
    /// Position in the store's history: a later event has a larger one.
    pub seq: u64,
    /// When it happened (RFC 3339); for `expired`, the deadline that passed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub at: Timestamp,
    /// `created`, `rotated`, `refreshed`, `revoked`, `expired` or
    /// `authenticated`.
    #[serde(rename = "type")]
    pub kind: HistoryKind,
    /// Why: the revocation reason of a `revoked` event (`logout`,
    /// `revoked_by_admin`, an app-supplied reason…), `expired` for an
    /// `expired` one, the method (`otp`, `webauthn`…) of an `authenticated`
    /// one; null otherwise.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reason: Option<String>,
    /// The session.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// Its user.
    pub user_id: String,
    /// Its device's kind (`desktop`, `mobile`, `tablet`, `bot`, `unknown`).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub device_kind: Option<String>,
    /// The client IP address it was created with.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub ip: Option<String>,
}

impl From<HistoryEvent> for HistoryEventView {
    fn from(e: HistoryEvent) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            reason: e.reason,
            session_id: e.session_id,
            user_id: e.user_id,
            device_kind: e.device_kind,
            ip: e.ip,
        }
    }
}

/// One change to one session, as `GET /v1/events` sends it (the `data`
/// of a Server-Sent Event whose `id` is the same `id`). Never holds a token
/// or its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Its place in the feed, opaque: resume after it with `Last-Event-ID`.
    pub id: String,
    /// `created`, `rotated`, `refreshed`, `data_updated`, `extended`,
    /// `revoked`, `expired`, `connection_opened`, `connection_closed` or
    /// `authenticated`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened (RFC 3339); for `expired`, the deadline that passed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub at: Timestamp,
    /// Why: the revocation reason of a `revoked` event (`logout`,
    /// `revoked_by_admin`, `signed_out_other_devices`, an app-supplied
    /// reason…), `expired` for an `expired` one, the method of an
    /// `authenticated` one; null otherwise.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reason: Option<String>,
    /// The session.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// Its user.
    pub user_id: String,
    /// Its device's kind (`desktop`, `mobile`, `tablet`, `bot`, `unknown`).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub device_kind: Option<String>,
    /// The client IP address it was created with.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub ip: Option<String>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.cursor.as_str().to_owned(),
            kind: e.kind,
            at: e.at,
            reason: e.reason,
            session_id: e.session_id,
            user_id: e.user_id,
            device_kind: e.device_kind,
            ip: e.ip,
        }
    }
}

/// A live connection on a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionView {
    /// Its session.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// Its id (the app's).
    pub connection_id: String,
    /// The app node holding it.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub node: Option<String>,
    /// When it was registered (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub opened_at: Timestamp,
    /// Its last heartbeat (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub last_seen_at: Timestamp,
    /// When it ends without another heartbeat (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub expires_at: Timestamp,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        Self {
            session_id: c.session_id,
            connection_id: c.connection_id.as_str().to_owned(),
            node: c.node,
            opened_at: c.opened_at,
            last_seen_at: c.last_seen_at,
            expires_at: c.expires_at,
        }
    }
}

/// One of the user's live sessions in a presence answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevicePresenceView {
    /// The session.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// Its device (user agent, IP, kind, OS, browser).
    pub device: Device,
    /// Whether it has a live connection now.
    pub online: bool,
    /// Its latest activity or heartbeat (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub last_seen_at: Timestamp,
    /// Its live connections, oldest first.
    pub connections: Vec<ConnectionView>,
    /// `GET /v1/me/presence` only: whether it is the caller's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

/// `200` of `GET /v1/users/{user_id}/presence` and `GET /v1/me/presence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceView {
    /// The user.
    pub user_id: String,
    /// Whether any of the user's sessions has a live connection.
    pub online: bool,
    /// The latest activity or heartbeat of any live session (RFC 3339);
    /// null when the user has none.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = true))]
    pub last_seen_at: Option<Timestamp>,
    /// The user's live sessions, most recently seen first.
    pub devices: Vec<DevicePresenceView>,
}

impl PresenceView {
    /// The view of `user_id`'s presence.
    pub fn of(user_id: &str, presence: Presence) -> Self {
        Self {
            user_id: user_id.to_owned(),
            online: presence.online(),
            last_seen_at: presence.last_seen_at(),
            devices: presence
                .devices
                .into_iter()
                .map(|d| {
                    let last_seen_at = d
                        .connections
                        .iter()
                        .map(|c| c.last_seen_at)
                        .chain([d.last_seen_at])
                        .max()
                        .unwrap_or(d.last_seen_at);
                    DevicePresenceView {
                        session_id: d.session_id,
                        device: d.device,
                        online: !d.connections.is_empty(),
                        last_seen_at,
                        connections: d
                            .connections
                            .into_iter()
                            .map(ConnectionView::from)
                            .collect(),
                        current: None,
                    }
                })
                .collect(),
        }
    }
}

/// `200` of `GET /v1/users/{user_id}/history`: one page of the user's
/// lifecycle events, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryList {
    /// Newest first.
    pub events: Vec<HistoryEventView>,
    /// When older events follow: pass it as `cursor` for the next page
    /// (an opaque string); null on the last page.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_cursor: Option<String>,
}

impl From<HistoryPage> for HistoryList {
    fn from(page: HistoryPage) -> Self {
        Self {
            events: page
                .events
                .into_iter()
                .map(HistoryEventView::from)
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// How many sessions a bulk revocation removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedCount {
    /// Number revoked.
    pub revoked: usize,
}

/// `GET /readyz` and the store part of `/v1/stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub store: String,
    /// On a Redis Cluster: every node and its state (a shard without an
    /// online master makes the status `degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeState>,
}

/// One node of the store, in [`Readiness`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeState {
    /// `host:port`.
    pub node: String,
    /// `master` or `replica`.
    pub role: String,
    /// `online`, `fail`, `loading`…
    pub health: String,
    /// Its shard: a master and its replicas share one.
    pub shard: u32,
    /// Whether its shard holds data (owns slots).
    pub holds_data: bool,
}

impl Readiness {
    /// Whether the server and its store are ready.
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }
}

/// `GET /v1/stats`: counters since the server started and the store's
/// status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Live sessions of all users (absent when the store is unreachable).
    pub live_sessions: Option<u64>,
    /// Sessions created since start.
    pub created: u64,
    /// Sessions revoked since start, by reason.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = HashMap<String, u64>))]
    pub revoked_by_reason: BTreeMap<String, u64>,
    /// Store errors since start.
    pub store_errors: u64,
    /// `ok` or `unavailable`.
    pub store: String,
}

/// Body of every error answer (`application/problem+json`, RFC 9457).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProblemBody {
    /// A URI naming the kind of problem: `urn:sessiond:problem:` and one of
    /// `bad-request` (400), `unauthorized` (401), `insufficient_aal` (401:
    /// the session's level is below `min_aal`; step up),
    /// `reauthentication_required` (401: the user authenticated longer ago
    /// than `max_age`; authenticate again), `csrf` (403), `not-found` (404),
    /// `method-not-allowed` (405), `timeout` (408), `session-limit` (409),
    /// `issued-before-revocation` (409: retry the create), `event-cursor-expired`
    /// (410), `too-large` (413), `unsupported-media-type` (415),
    /// `rate-limited` (429), `headers-too-large` (431), `internal` (500),
    /// `not-implemented` (501), `store-unavailable` (503).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, fixed summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// `insufficient_aal`: the level the check required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_aal: Option<sessiond_engine::Aal>,
    /// `reauthentication_required`: the longest time, in seconds, since
    /// the user's last authentication that the check accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::session_json;
    use serde_json::json;

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

    #[test]
    fn history_events_have_their_wire_names() {
        let wire = json!({
            "events": [{
                "seq": 7,
                "at": "2026-01-02T03:04:05.678Z",
                "type": "revoked",
                "reason": "signed_out_other_devices",
                "session_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "user_id": "alice",
                "device_kind": "mobile",
                "ip": null
            }],
            "next_cursor": null
        });
        let list: HistoryList = match serde_json::from_value(wire.clone()) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(list.events[0].kind, HistoryKind::Revoked);
        assert_eq!(list.events[0].seq, 7);
        assert_eq!(serde_json::to_value(&list).ok(), Some(wire));
    }

    #[test]
    fn problem_bodies_use_the_rfc_names() {
        let p = ProblemBody {
            kind: "urn:sessiond:problem:not-found".into(),
            title: "Not found".into(),
            status: 404,
            detail: "no live session with this id".into(),
            min_aal: None,
            max_age: None,
        };
        let wire = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(wire["type"], "urn:sessiond:problem:not-found");
        assert_eq!(serde_json::from_value::<ProblemBody>(wire).ok(), Some(p));
    }
}
