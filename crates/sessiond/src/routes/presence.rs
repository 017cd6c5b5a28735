//! Connections and presence: an app registers the live connections (a
//! WebSocket, say) of a session and keeps them alive with heartbeats; a
//! user is online while one of their sessions has one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sessiond_api::{ConnectionBeat, ConnectionView, PresenceView, ProblemBody};

use crate::extract::{AdminAuth, Caller, OptionalJsonBody, PathPair, PathParam};
use crate::problem::Problem;
use crate::reply::Json;
use crate::state::AppState;
use crate::telemetry::with_session;

/// Register a live connection on a session, or keep it alive (a heartbeat).
///
/// The connection ends `ttl_seconds` (default 60) after its last heartbeat,
/// or with its session: a revoked or expired session's connections are gone
/// in the same step. The body may be left out. The first heartbeat records
/// `connection_opened` in the event feed.
#[utoipa::path(put, path = "/v1/sessions/{id}/connections/{connection_id}", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id"),
        ("connection_id" = String, Path, description = "the app's id of the connection: 1 to 128 characters from A-Z a-z 0-9 _ . : -")),
    request_body(content = ConnectionBeat, description = "optional"),
    responses((status = 201, description = "Registered", body = ConnectionView),
        (status = 200, description = "Kept alive (a heartbeat)", body = ConnectionView),
        (status = 400, body = ProblemBody), (status = 401, body = ProblemBody), (status = 404, body = ProblemBody),
        (status = 503, body = ProblemBody)))]
pub async fn beat(
    State(state): State<AppState>,
    _: AdminAuth,
    PathPair(id, connection_id): PathPair,
    OptionalJsonBody(req): OptionalJsonBody<ConnectionBeat>,
) -> Result<Response, Problem> {
    let beaten = state
        .engine
        .beat_connection(&id, &connection_id, req.node, req.ttl)
        .await?;
    let status = if beaten.opened {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_session(
        &id,
        (status, Json(ConnectionView::from(beaten.connection))),
    ))
}

/// Close a connection (204 also when it is already gone).
#[utoipa::path(delete, path = "/v1/sessions/{id}/connections/{connection_id}", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id"), ("connection_id" = String, Path, description = "the connection's id")),
    responses((status = 204, description = "Closed"), (status = 400, body = ProblemBody), (status = 401, body = ProblemBody),
        (status = 503, body = ProblemBody)))]
pub async fn close(
    State(state): State<AppState>,
    _: AdminAuth,
    PathPair(id, connection_id): PathPair,
) -> Result<Response, Problem> {
    state.engine.close_connection(&id, &connection_id).await?;
    Ok(with_session(&id, StatusCode::NO_CONTENT))
}

/// Whether a user is online, on which devices, and when last seen.
#[utoipa::path(get, path = "/v1/users/{user_id}/presence", tag = "admin", security(("api_key" = [])),
    params(("user_id" = String, Path, description = "the app's user id")),
    responses((status = 200, description = "The user's presence: online, last seen, each live session with its live connections", body = PresenceView),
        (status = 400, body = ProblemBody), (status = 401, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn user_presence(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(user_id): PathParam,
) -> Result<Response, Problem> {
    let presence = state.engine.presence(&user_id).await?;
    Ok(Json(PresenceView::of(&user_id, presence)).into_response())
}

/// The caller's user's presence; `current: true` marks the caller's device.
#[utoipa::path(get, path = "/v1/me/presence", tag = "public", security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The user's presence; the caller's device has `current: true`", body = PresenceView),
        (status = 401, body = ProblemBody), (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn my_presence(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    let user_id = &caller.session.user_id;
    let mut view = PresenceView::of(user_id, state.engine.presence(user_id).await?);
    for device in &mut view.devices {
        device.current = Some(device.session_id == caller.session.id);
    }
    Ok(with_session(caller.session.id.as_str(), Json(view)))
}
