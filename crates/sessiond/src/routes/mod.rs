//! The route table: every path of docs/http-api.md, registered together with
//! its OpenAPI description so the document always matches the routes.

pub mod admin;
pub mod events;
pub mod ops;
pub mod presence;
pub mod public;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::state::AppState;

/// All routes and their OpenAPI document (without `/openapi.json` itself).
pub fn all() -> OpenApiRouter<AppState> {
    api().merge(operator())
}

/// The operator routes that `admin_listen` moves off the main listener.
pub fn operator() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ops::metrics))
}

/// Every route but the operator ones.
pub fn api() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(admin::create, admin::list_sessions))
        .routes(routes!(admin::introspect))
        .routes(routes!(admin::get, admin::patch, admin::revoke))
        .routes(routes!(admin::extend))
        .routes(routes!(admin::rotate))
        .routes(routes!(admin::authenticate))
        .routes(routes!(admin::list_user, admin::revoke_user))
        .routes(routes!(admin::revoke_issued_before))
        .routes(routes!(admin::history))
        .routes(routes!(events::events))
        .routes(routes!(presence::beat, presence::close))
        .routes(routes!(presence::user_presence))
        .routes(routes!(presence::my_presence))
        .routes(routes!(admin::stats))
        .routes(routes!(public::refresh))
        .routes(routes!(public::me))
        .routes(routes!(public::my_sessions, public::revoke_others))
        .routes(routes!(public::revoke_mine))
        .routes(routes!(public::logout))
        .routes(routes!(public::forward_auth))
        .routes(routes!(public::jwks))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
}
