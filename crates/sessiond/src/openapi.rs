//! The OpenAPI 3.1 document: generated from the route handlers' annotations
//! (see `routes`), plus the security schemes and `/openapi.json` itself.

use std::sync::Arc;

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Top-level description of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "sessiond", description = "Session management over HTTP/JSON: issue, validate, list and revoke a user's sessions across devices."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "admin", description = "For the app's backend; Authorization: Bearer <api key>"),
        (name = "public", description = "For the user's client; the session token as Bearer or cookie"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sessiond"))),
        );
    }
}

/// The document, serialized once when the router is built.
#[derive(Clone, Debug)]
pub struct OpenApiJson(pub Arc<str>);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn document(Extension(OpenApiJson(json)): Extension<OpenApiJson>) -> Response {
    let mut r = json.to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
