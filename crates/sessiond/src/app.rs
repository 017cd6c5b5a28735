//! The assembled router: routes, the OpenAPI document, and the middleware
//! around them (no-store, the edge: access log, limits and metrics; panic
//! catcher, body limit).

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::routes;

use crate::config::Config;
use crate::openapi::{self, OpenApiJson};
use crate::problem::Problem;
use crate::request_limits::RequestLimits;
use crate::state::AppState;
use crate::{edge, routes};

/// The OpenAPI document of [`router`]'s routes.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes::all()
        .routes(routes!(openapi::document))
        .into_openapi()
}

/// The whole HTTP service.
pub fn router(state: AppState, config: &Config) -> Router {
    let openapi_json = openapi_document().to_json().unwrap_or_else(|_| "{}".into());
    let (router, _) = routes::all().split_for_parts();
    // The document is the only route that needs it: no other request pays
    // for the extension.
    let document = Router::new()
        .route("/openapi.json", axum::routing::get(openapi::document))
        .layer(Extension(OpenApiJson(openapi_json.into())));
    router
        .merge(document)
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        // One `layer` call for the whole stack: each `Router::layer` boxes
        // the route again, and every boxed layer clones the boxes beneath it
        // on each request. Outermost first: no-store, the edge (request id
        // and access log, limits, metrics), panic catcher, body limit.
        .layer(
            ServiceBuilder::new()
                // Answers carry sessions, tokens and CSRF tokens: no cache
                // keeps them, unless a route says otherwise (the JWKS).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(middleware::from_fn_with_state(
                    RequestLimits {
                        max_header_bytes: config.limits.max_header_bytes,
                        max_body_bytes: config.limits.max_body_bytes,
                        timeout: config.request_timeout,
                    },
                    edge::around,
                ))
                .layer(CatchPanicLayer::custom(|_| panic_response()))
                .layer(DefaultBodyLimit::max(config.limits.max_body_bytes)),
        )
        .with_state(state)
}

fn panic_response() -> Response {
    tracing::error!("handler panicked");
    Problem::internal().into_response()
}
