//! Operational routes: liveness, readiness, Prometheus metrics and the
//! OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::reply::Json;
use crate::state::AppState;
use sessiond_api::Readiness;

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store answers, 503 (with `Retry-After`) when it does not.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "The store answers", body = Readiness), (status = 503, description = "The store does not answer; retry after `Retry-After` seconds", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.ping().await {
        Ok(()) => Json(Readiness {
            status: "ok".into(),
            store: "ok".into(),
        })
        .into_response(),
        Err(_) => {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "degraded".into(),
                    store: "unavailable".into(),
                }),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let cache = state.cache.as_ref().map(|cache| cache.stats());
    let sessions = state.store.observer();
    let mut r = state
        .metrics
        .render(Some(sessions), cache.as_ref())
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
