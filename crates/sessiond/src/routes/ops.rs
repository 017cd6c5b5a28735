//! Operational routes: liveness, readiness, Prometheus metrics and the
//! OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::reply::Json;
use crate::state::AppState;
use sessiond_api::{NodeState, Readiness};

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store answers (on a Redis Cluster: and every shard has an
/// online master, each node listed), 503 (with `Retry-After`) when it does not.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "The store answers", body = Readiness), (status = 503, description = "The store does not answer, or a cluster master is down; retry after `Retry-After` seconds", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let answered = state.engine.ping().await.is_ok();
    let nodes: Vec<NodeState> = if answered {
        state
            .engine
            .nodes()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| NodeState {
                node: n.address,
                role: n.role,
                health: n.health,
                shard: n.group,
                holds_data: n.holds_data,
            })
            .collect()
    } else {
        Vec::new()
    };
    // Every shard that holds data has an online master (a failed-over
    // master stays listed, in a shard of its own without data, until it
    // returns as a replica).
    let masters_online = nodes.iter().filter(|n| n.holds_data).all(|n| {
        nodes
            .iter()
            .any(|m| m.shard == n.shard && m.role == "master" && m.health == "online")
    });
    let ready = answered && masters_online;
    let body = Readiness {
        status: if ready { "ok" } else { "degraded" }.into(),
        store: if answered { "ok" } else { "unavailable" }.into(),
        nodes,
    };
    if ready {
        return Json(body).into_response();
    }
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
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
