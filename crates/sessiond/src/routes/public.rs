//! Public routes: a user's own session, proven by its token (Bearer or
//! cookie), and the forward-auth endpoint for reverse proxies.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sessiond_engine::RevokeReason;
use sessiond_http::CSRF_HEADER;

use crate::extract::{
    Caller, Client, JsonBody, PathParam, PathRequirement, QueryParams, failed_check,
};
use crate::problem::Problem;
use crate::reply::Json;
use crate::state::AppState;
use crate::telemetry::with_session;
use sessiond_api::{
    AuthQuery, ProblemBody, RefreshBody, RevokedCount, Secret, SessionList, SessionView, TokenPair,
};

/// The caller's session. Also returns the session's CSRF token in
/// `X-CSRF-Token`, for cookie-authenticated pages to send back on changes.
/// With `max_age` or `min_aal`, a session whose authentication falls short
/// is a 401 problem (`reauthentication_required`, `insufficient_aal`).
#[utoipa::path(get, path = "/v1/me", tag = "public", security(("session" = []), ("session_cookie" = [])),
    params(AuthQuery),
    responses((status = 200, description = "The caller's session; its CSRF token in `X-CSRF-Token`", body = SessionView, headers(("X-CSRF-Token" = String, description = "CSRF token for cookie-authenticated changes"))),
        (status = 401, description = "No valid credential (`unauthorized`), or the session's authentication falls short of `max_age` (`reauthentication_required`) or `min_aal` (`insufficient_aal`)", body = ProblemBody),
        (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn me(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<AuthQuery>,
    caller: Caller,
) -> Result<Response, Problem> {
    state
        .engine
        .check_auth(&caller.session, &query.requirement())?;
    let csrf = HeaderValue::from_str(&caller.csrf_token()).ok();
    let id = caller.session.id.clone();
    let risk = risk_header(&caller.risk);
    let mut response = with_session(id.as_str(), Json(SessionView::from(caller.session)));
    if let Some(risk) = risk {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-session-risk"), risk);
    }
    if let Some(csrf) = csrf {
        response
            .headers_mut()
            .insert(HeaderName::from_static(CSRF_HEADER), csrf);
    }
    Ok(response)
}

/// All live sessions of the caller's user; `current: true` marks the caller's.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "public", security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The user's live sessions, newest first; the caller's has `current: true`", body = SessionList), (status = 401, body = ProblemBody),
        (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn my_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    let sessions: Vec<SessionView> = state
        .engine
        .list_user(&caller.session.user_id)
        .await?
        .into_iter()
        .map(|s| {
            let current = s.id == caller.session.id;
            SessionView {
                current: Some(current),
                ..SessionView::from(s)
            }
        })
        .collect();
    let count = sessions.len();
    Ok(with_session(
        caller.session.id.as_str(),
        Json(SessionList { sessions, count }),
    ))
}

/// Sign out one of the user's devices.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "public", security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ProblemBody), (status = 403, body = ProblemBody),
        (status = 404, body = ProblemBody), (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn revoke_mine(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let not_yours =
        || Problem::not_found("no live session with this id belongs to the caller's user");
    let target = state.engine.get(&id).await.map_err(|e| match e {
        sessiond_engine::Error::NotFound | sessiond_engine::Error::Invalid { .. } => not_yours(),
        other => other.into(),
    })?;
    if target.user_id != caller.session.user_id {
        return Err(not_yours());
    }
    state
        .engine
        .revoke(&id, RevokeReason::RevokedByUser)
        .await?;
    Ok(with_session(
        caller.session.id.as_str(),
        StatusCode::NO_CONTENT,
    ))
}

/// Sign out every other device of the user.
#[utoipa::path(delete, path = "/v1/me/sessions", tag = "public", security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "How many of the user's other sessions were revoked", body = RevokedCount), (status = 401, body = ProblemBody),
        (status = 403, body = ProblemBody), (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn revoke_others(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    let revoked = state
        .engine
        .revoke_user(
            &caller.session.user_id,
            Some(caller.session.id.as_str()),
            RevokeReason::SignedOutOtherDevices,
        )
        .await?;
    let body = Json(RevokedCount {
        revoked: revoked.len(),
    });
    Ok(with_session(caller.session.id.as_str(), body))
}

/// End the caller's session and clear the cookie.
#[utoipa::path(post, path = "/v1/me/logout", tag = "public", security(("session" = []), ("session_cookie" = [])),
    responses((status = 204, description = "Signed out; the cookie is cleared"), (status = 401, body = ProblemBody), (status = 403, body = ProblemBody),
        (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    state
        .engine
        .revoke(caller.session.id.as_str(), RevokeReason::Logout)
        .await?;
    let mut response = with_session(caller.session.id.as_str(), StatusCode::NO_CONTENT);
    if let Some(v) = state.cookie.clear() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `X-Session-Risk` of a session presented off its binding (a role that
/// flags): `binding_mismatch=ip_prefix,ua_family`.
fn risk_header(broken: &[sessiond_engine::BindTo]) -> Option<HeaderValue> {
    if broken.is_empty() {
        return None;
    }
    let names: Vec<&str> = broken.iter().map(|b| b.as_str()).collect();
    HeaderValue::from_str(&format!("binding_mismatch={}", names.join(","))).ok()
}

fn header_value(s: &str) -> HeaderValue {
    // User ids may be any UTF-8 without control characters: raw bytes are
    // valid header bytes (obs-text); fall back to empty if not.
    HeaderValue::from_bytes(s.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Forward-auth for nginx `auth_request` and Traefik: 200 with the session's
/// identity in headers, or 401. The session's authentication must meet
/// `max_age` and `min_aal` from the query and from the `forward_auth` rule
/// of the original request's path (`X-Forwarded-Uri` or `X-Original-URI`),
/// else 401 `reauthentication_required` or `insufficient_aal`.
#[utoipa::path(get, path = "/v1/auth", tag = "public", security(("session" = []), ("session_cookie" = [])),
    params(AuthQuery,
        ("X-Forwarded-Uri" = Option<String>, Header, description = "the original request's path (Traefik)"),
        ("X-Original-URI" = Option<String>, Header, description = "the original request's path (nginx, by convention)")),
    responses((status = 200, description = "The credential names a live session", headers(("X-Session-Id" = String, description = "session id"), ("X-User-Id" = String, description = "the app's user id"), ("X-User-Role" = String, description = "the session's role, when it has one"), ("X-Session-Aal" = String, description = "the session's assurance level"))),
        (status = 401, description = "No valid credential (`unauthorized`), or the session's authentication falls short (`reauthentication_required`, `insufficient_aal`)", body = ProblemBody), (status = 429, body = ProblemBody), (status = 503, body = ProblemBody)))]
pub async fn forward_auth(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<AuthQuery>,
    PathRequirement(by_path): PathRequirement,
    caller: Caller,
) -> Result<Response, Problem> {
    let requirement = query.requirement().and(by_path);
    state.engine.check_auth(&caller.session, &requirement)?;
    let s = &caller.session;
    let mut response = with_session(caller.session.id.as_str(), StatusCode::OK);
    let h = response.headers_mut();
    h.insert(
        HeaderName::from_static("x-session-id"),
        header_value(s.id.as_str()),
    );
    h.insert(
        HeaderName::from_static("x-user-id"),
        header_value(&s.user_id),
    );
    h.insert(
        HeaderName::from_static("x-user-role"),
        header_value(s.role.as_deref().unwrap_or("")),
    );
    h.insert(
        HeaderName::from_static("x-session-aal"),
        HeaderValue::from_static(s.auth.aal.as_str()),
    );
    if let Some(risk) = risk_header(&caller.risk) {
        h.insert(HeaderName::from_static("x-session-risk"), risk);
    }
    Ok(response)
}

/// Trade a refresh token for a new access token and the next refresh token.
/// The presented token is retired; presented again within the reuse grace it
/// returns the same pair (racing tabs), after that it revokes the session.
#[utoipa::path(post, path = "/v1/tokens/refresh", tag = "public",
    request_body = RefreshBody,
    responses((status = 200, description = "A new access token and the next refresh token; the presented one is retired", body = TokenPair), (status = 400, body = ProblemBody),
        (status = 401, body = ProblemBody), (status = 429, body = ProblemBody),
        (status = 503, body = ProblemBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<RefreshBody>,
) -> Result<Response, Problem> {
    let refreshed = match state
        .engine
        .refresh(req.refresh_token.expose(), state.reuse_grace)
        .await
    {
        Ok(r) => r,
        Err(e @ sessiond_engine::Error::RefreshTokenReused) => {
            // Counted, but the reuse answer stays a 401 that says why.
            let _ = state.limiter.credentials.record_failure(client.ip);
            return Err(e.into());
        }
        Err(sessiond_engine::Error::NotFound | sessiond_engine::Error::Invalid { .. }) => {
            return Err(failed_check(
                &state.limiter.credentials,
                client.ip,
                "the refresh token is invalid, expired or revoked",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let (access_token, expires_in) = state.tokens.issue(
        &refreshed.session,
        refreshed.generation,
        refreshed.issued_at,
    )?;
    let id = refreshed.session.id.to_string();
    let body = TokenPair {
        access_token: Secret::new(access_token),
        refresh_token: Secret::new(refreshed.refresh_token.expose()),
        expires_in,
        session: refreshed.session.into(),
    };
    Ok(with_session(&id, Json(body)))
}

/// The public keys that verify access tokens: a key that is about to sign
/// (published ahead of its first token), the signing key, and the previous
/// ones while tokens they signed may still be live.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "public",
    responses((status = 200, description = "JSON Web Key Set (RFC 7517)", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let cache = format!("public, max-age={}", state.tokens.jwks_max_age_secs());
    let mut response = Json(state.tokens.jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
