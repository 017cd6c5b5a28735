//! Admin routes: the app's backend manages sessions with its API key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sessiond_engine::{BindingCheck, CreateRequest, DataUpdate, Presenter, RevokeReason};

use crate::config::Mode;
use crate::extract::{AdminAuth, JsonBody, PathParam, QueryParams};
use crate::problem::Problem;
use crate::reply::Json;
use crate::state::AppState;
use crate::telemetry::with_session;
use sessiond_api::{
    AuthQuery, Authenticate, CreateResponse, CreateSession, Created, CreatedJwt, Extend,
    HistoryList, HistoryQuery, Introspect, Introspection, ListSessionsQuery, PatchData,
    ProblemBody, RevokeIssuedBefore, RevokeQuery, RevokeUserQuery, RevokedCount, Risk, Rotated,
    Secret, SessionList, SessionListPage, SessionView, Stats,
};

fn reason(r: Option<&str>, default: RevokeReason) -> Result<RevokeReason, Problem> {
    match r {
        None => Ok(default),
        Some(r) => RevokeReason::parse(r).ok_or_else(|| {
            Problem::bad_request("invalid reason: expected 1..=64 characters of [A-Za-z0-9_.:-]")
        }),
    }
}

/// Create a session for a user the app has authenticated.
#[utoipa::path(post, path = "/v1/sessions", tag = "admin", security(("api_key" = [])),
    request_body = CreateSession,
    responses(
        (status = 201, description = "Created: the session and its token (opaque mode) or its access and refresh tokens (jwt mode)", body = CreateResponse),
        (status = 400, body = ProblemBody), (status = 401, body = ProblemBody),
        (status = 409, body = ProblemBody), (status = 413, body = ProblemBody),
        (status = 503, body = ProblemBody)))]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    JsonBody(req): JsonBody<CreateSession>,
) -> Result<Response, Problem> {
    let mode = req.mode.unwrap_or(state.default_mode);
    let request = CreateRequest {
        user_id: req.user_id,
        role: req.role,
        data: req.data.unwrap_or_default(),
        user_agent: req.user_agent,
        ip: req.ip,
        idle_ttl: req.idle_ttl,
        absolute_ttl: req.absolute_ttl,
        aal: req.aal,
        amr: req.amr.unwrap_or_default(),
        authenticated_at: req.authenticated_at,
    };
    if mode == Mode::Jwt {
        let created = state.engine.create_jwt(request).await?;
        let s = &created.session;
        let (access_token, expires_in) = state.tokens.issue(s, 0, s.created_at)?;
        let id = s.id.to_string();
        let body = CreatedJwt {
            access_token: Secret::new(access_token),
            refresh_token: Secret::new(created.refresh_token.expose()),
            expires_in,
            evicted: created.evicted,
            session: created.session.into(),
        };
        return Ok(with_session(&id, (StatusCode::CREATED, Json(body))));
    }
    let created = state.engine.create(request).await?;
    let id = created.session.id.to_string();
    let body = Created {
        token: Secret::new(created.token.expose()),
        session: created.session.into(),
        evicted: created.evicted,
    };
    Ok(with_session(&id, (StatusCode::CREATED, Json(body))))
}

/// List the live sessions of all users, a page at a time, for support and incident response.
///
/// Filters (all optional, all must hold): `user_id`, `ip` (compared as an
/// address), `device_kind`, `created_after`. Pages come in the store's
/// order, not by creation time; pass `next_cursor` as `cursor` for the next
/// page (same filters). Paging to the end (`next_cursor` null) gives every
/// session that stayed live all along exactly once, however many sessions
/// come and go meanwhile. A page may hold fewer than `limit` sessions, even
/// none, and still have a `next_cursor`: a page examines at most 10,000
/// sessions, so a filter that matches few sessions takes several pages.
#[utoipa::path(get, path = "/v1/sessions", tag = "admin", security(("api_key" = [])),
    params(ListSessionsQuery),
    responses((status = 200, description = "A page of the live sessions of all users and the cursor of the next one", body = SessionListPage), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListSessionsQuery>,
) -> Result<Response, Problem> {
    let page = state
        .engine
        .list_sessions(q.filter(), q.limit, q.cursor.as_deref())
        .await?;
    Ok(Json(SessionListPage::from(page)).into_response())
}

/// Check a session token; `active: false` for anything that is not a live
/// session. With `max_age` or `min_aal` (in the body or the query), a live
/// session whose authentication falls short is a 401 problem
/// (`reauthentication_required`, `insufficient_aal`).
#[utoipa::path(post, path = "/v1/sessions/introspect", tag = "admin", security(("api_key" = [])),
    request_body = Introspect, params(AuthQuery),
    responses((status = 200, description = "Whether the token names a live session, and the session if it does", body = Introspection), (status = 400, body = ProblemBody),
        (status = 401, description = "No or a wrong API key (`unauthorized`), or the session's authentication falls short of `max_age` (`reauthentication_required`) or `min_aal` (`insufficient_aal`)", body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(query): QueryParams<AuthQuery>,
    JsonBody(req): JsonBody<Introspect>,
) -> Result<Response, Problem> {
    let requirement = req.requirement().and(query.requirement());
    let presenter = Presenter {
        ip: match req.ip.as_deref() {
            None => None,
            Some(ip) => Some(ip.parse().map_err(|_| {
                Problem::bad_request("invalid ip: expected an IPv4 or IPv6 address")
            })?),
        },
        user_agent: req.user_agent.as_deref(),
    };
    let inactive = || {
        Json(Introspection {
            active: false,
            session: None,
            risk: None,
        })
        .into_response()
    };
    let Some(session) = state
        .session_for(req.token.expose(), req.touch.unwrap_or(true))
        .await?
    else {
        return Ok(inactive());
    };
    let risk = match state.engine.check_binding(&session, &presenter).await? {
        BindingCheck::Kept => None,
        BindingCheck::Flagged(broken) => Some(Risk {
            binding_mismatch: broken,
        }),
        BindingCheck::Revoked(_) => return Ok(inactive()),
    };
    state.engine.check_auth(&session, &requirement)?;
    let id = session.id.to_string();
    let body = Introspection {
        active: true,
        session: Some(session.into()),
        risk,
    };
    Ok(with_session(&id, Json(body)))
}

/// Record a new authentication of the session's user (a step-up or a
/// re-authentication): `aal` raises the session's level (never lowers it),
/// `method` joins its `amr`, `authenticated_at` becomes now. The token stays.
#[utoipa::path(post, path = "/v1/sessions/{id}/authenticate", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id")),
    request_body = Authenticate,
    responses((status = 200, description = "The session with its new authentication context", body = SessionView), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 404, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn authenticate(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<Authenticate>,
) -> Result<Response, Problem> {
    let session = state
        .engine
        .authenticate(&id, req.aal.unwrap_or_default(), &req.method)
        .await?;
    let id = session.id.to_string();
    Ok(with_session(&id, Json(SessionView::from(session))))
}

/// Read one session.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, description = "The session", body = SessionView), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 404, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let session = state.engine.get(&id).await?;
    Ok(with_session(&id, Json(SessionView::from(session))))
}

/// Merge into (default) or replace a session's data; expiry is unchanged.
#[utoipa::path(patch, path = "/v1/sessions/{id}", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id")), request_body = PatchData,
    responses((status = 200, description = "The session with its new data", body = SessionView), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 404, body = ProblemBody),
        (status = 413, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn patch(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<PatchData>,
) -> Result<Response, Problem> {
    let update = if req.merge.unwrap_or(true) {
        DataUpdate::Merge(req.data)
    } else {
        DataUpdate::Replace(req.data)
    };
    let session = state.engine.update_data(&id, update).await?;
    Ok(with_session(&id, Json(SessionView::from(session))))
}

/// Push the idle deadline, never past the absolute one.
#[utoipa::path(post, path = "/v1/sessions/{id}/extend", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id")), request_body = Extend,
    responses((status = 200, description = "The session with its new idle deadline", body = SessionView), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 404, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn extend(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<Extend>,
) -> Result<Response, Problem> {
    let session = state.engine.extend(&id, req.idle_ttl).await?;
    Ok(with_session(&id, Json(SessionView::from(session))))
}

/// Give the session a new token; the old one stops working at once.
#[utoipa::path(post, path = "/v1/sessions/{id}/rotate", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, description = "The session and its new token; the old token is dead", body = Rotated), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 404, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let rotated = state.engine.rotate(&id).await?;
    let body = Rotated {
        token: Secret::new(rotated.token.expose()),
        session: rotated.session.into(),
    };
    Ok(with_session(&id, Json(body)))
}

/// Revoke one session (204 also when it is already gone).
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "admin", security(("api_key" = [])),
    params(("id" = String, Path, description = "session id"), RevokeQuery),
    responses((status = 204, description = "Revoked (also when it was already gone)"), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam,
    QueryParams(q): QueryParams<RevokeQuery>,
) -> Result<Response, Problem> {
    let reason = reason(q.reason.as_deref(), RevokeReason::RevokedByAdmin)?;
    state.engine.revoke(&id, reason).await?;
    Ok(with_session(&id, StatusCode::NO_CONTENT))
}

/// A user's live sessions, newest first.
#[utoipa::path(get, path = "/v1/users/{user_id}/sessions", tag = "admin", security(("api_key" = [])),
    params(("user_id" = String, Path, description = "the app's user id")),
    responses((status = 200, description = "The user's live sessions, newest first", body = SessionList), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn list_user(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(user_id): PathParam,
) -> Result<Response, Problem> {
    let sessions: Vec<SessionView> = state
        .engine
        .list_user(&user_id)
        .await?
        .into_iter()
        .map(SessionView::from)
        .collect();
    let count = sessions.len();
    Ok(Json(SessionList { sessions, count }).into_response())
}

/// Revoke all of a user's sessions, or all but one.
#[utoipa::path(delete, path = "/v1/users/{user_id}/sessions", tag = "admin", security(("api_key" = [])),
    params(("user_id" = String, Path, description = "the app's user id"), RevokeUserQuery),
    responses((status = 200, description = "How many sessions were revoked", body = RevokedCount), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn revoke_user(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(user_id): PathParam,
    QueryParams(q): QueryParams<RevokeUserQuery>,
) -> Result<Response, Problem> {
    let reason = reason(q.reason.as_deref(), RevokeReason::RevokedByAdmin)?;
    let revoked = state
        .engine
        .revoke_user(&user_id, q.except.as_deref(), reason)
        .await?;
    Ok(Json(RevokedCount {
        revoked: revoked.len(),
    })
    .into_response())
}

/// Revoke everything of a user issued before a time, and refuse it from
/// then on.
///
/// The user's sessions created before `issued_before` are revoked (all but
/// `except`); a create whose session is older than it (one racing this
/// call) is refused with 409 `issued-before-revocation`; an access token
/// issued before it is inactive at introspection and 401 at `/v1/me`, also
/// the `except` session's. Sessions created at or after it stay. The time
/// the store keeps only moves forward, for the longest absolute session
/// lifetime of any role.
#[utoipa::path(post, path = "/v1/users/{user_id}/revoke", tag = "admin", security(("api_key" = [])),
    params(("user_id" = String, Path, description = "the app's user id")),
    request_body = RevokeIssuedBefore,
    responses((status = 200, description = "How many sessions were revoked", body = RevokedCount), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn revoke_issued_before(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(user_id): PathParam,
    JsonBody(req): JsonBody<RevokeIssuedBefore>,
) -> Result<Response, Problem> {
    let reason = reason(req.reason.as_deref(), RevokeReason::RevokedByAdmin)?;
    let revoked = state
        .engine
        .revoke_issued_before(&user_id, req.issued_before, req.except.as_deref(), reason)
        .await?;
    Ok(Json(RevokedCount {
        revoked: revoked.len(),
    })
    .into_response())
}

/// A user's lifecycle events with their reasons, newest first (SQL stores).
///
/// Each event: `seq`, `at`, `type` (`created`, `rotated`, `refreshed`,
/// `revoked`, `expired`), `reason`, `session_id`, `user_id`, `device_kind`,
/// `ip`; never a token. Data updates are not events. Pass `next_cursor` as
/// `cursor` for the next page. On a store that keeps no history (Redis): 501.
#[utoipa::path(get, path = "/v1/users/{user_id}/history", tag = "admin", security(("api_key" = [])),
    params(("user_id" = String, Path, description = "the app's user id"), HistoryQuery),
    responses((status = 200, description = "A page of the user's lifecycle events, newest first, and the cursor of the next one", body = HistoryList), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 501, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn history(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(user_id): PathParam,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> Result<Response, Problem> {
    let page = state
        .engine
        .history(&user_id, q.limit, q.cursor.as_deref())
        .await?;
    Ok(Json(HistoryList::from(page)).into_response())
}

/// Counters since start and the store's status.
#[utoipa::path(get, path = "/v1/stats", tag = "admin", security(("api_key" = [])),
    responses((status = 200, description = "Counters since start and the store's status", body = Stats), (status = 401, body = ProblemBody)))]
pub async fn stats(State(state): State<AppState>, _: AdminAuth) -> Response {
    let store = match state.engine.ping().await {
        Ok(()) => "ok",
        Err(_) => "unavailable",
    };
    let counts = state.store.observer().counts();
    let live_sessions = state.engine.count_live().await.ok();
    Json(Stats {
        live_sessions,
        created: counts.created,
        revoked_by_reason: counts.revoked_by_reason.into_iter().collect(),
        store_errors: counts.store_errors,
        store: store.to_owned(),
    })
    .into_response()
}
