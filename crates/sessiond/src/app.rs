//! The assembled router: routes, the OpenAPI document, and the middleware
//! around them (the edge: access log, limits, panics, no-store, metrics;
//! the body limit).

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use tower::ServiceBuilder;
use utoipa_axum::routes;

use crate::config::Config;
use crate::openapi::{self, OpenApiJson};
use crate::problem::Problem;
use crate::request_limits::RequestLimits;
use crate::state::AppState;
use crate::{edge, routes};

/// The OpenAPI document of [`router`]'s routes.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut document = routes::all()
        .routes(routes!(openapi::document))
        .into_openapi();
    openapi::finish(&mut document);
    document
}

/// The HTTP service of `listen`: every route, but the operator ones when
/// `admin_listen` serves them.
pub fn router(state: AppState, config: &Config) -> Router {
    let openapi_json = openapi_document().to_json().unwrap_or_else(|_| "{}".into());
    let routes = if config.admin_listen.is_some() {
        routes::api()
    } else {
        routes::all()
    };
    let (router, _) = routes.split_for_parts();
    // The document is the only route that needs it: no other request pays
    // for the extension.
    let document = Router::new()
        .route("/openapi.json", axum::routing::get(openapi::document))
        .layer(Extension(OpenApiJson(openapi_json.into())));
    finish(router.merge(document), state, config)
}

/// The HTTP service of `admin_listen`: the operator routes, and the health
/// and readiness checks.
pub fn admin_router(state: AppState, config: &Config) -> Router {
    let (router, _) = routes::operator()
        .routes(routes!(crate::routes::ops::healthz))
        .routes(routes!(crate::routes::ops::readyz))
        .split_for_parts();
    finish(router, state, config)
}

/// `router` with the fallbacks and the middleware every listener has.
fn finish(router: Router<AppState>, state: AppState, config: &Config) -> Router {
    router
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        // One `layer` call for the whole stack: each `Router::layer` boxes
        // the route again, and every boxed layer clones the boxes beneath it
        // on each request. Outermost first: the edge (request id and access
        // log, limits, panics, no-store, metrics), the body limit.
        .layer(
            ServiceBuilder::new()
                .layer(edge::EdgeLayer(RequestLimits {
                    max_header_bytes: config.limits.max_header_bytes,
                    max_body_bytes: config.limits.max_body_bytes,
                    timeout: config.request_timeout,
                }))
                .layer(DefaultBodyLimit::max(config.limits.max_body_bytes)),
        )
        .with_state(state)
}
