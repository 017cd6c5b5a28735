//! The OpenAPI 3.1 document: generated from the route handlers' annotations
//! (see `routes`), plus the security schemes, the error responses (described
//! here once, as `application/problem+json`) and `/openapi.json` itself.

use std::sync::Arc;

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Object, RefOr, Type};
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
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The API key (`api_key` in the config), as a Bearer token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token (opaque mode) or an access token (jwt mode), as a Bearer token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sessiond"))),
        );
    }
}

/// Apply what needs every route to be in the document already.
pub fn finish(document: &mut utoipa::openapi::OpenApi) {
    ErrorResponses.modify(document);
}

/// Describes every error response once: what the status means, its body as
/// `application/problem+json`, and its headers (`Retry-After` on 429 and
/// 503, `WWW-Authenticate` on 401 of the public routes).
struct ErrorResponses;

/// What an error status means on this API.
fn error_description(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "Bad input: a field, parameter or header is invalid (`detail` says which)",
        "401" => "No credential, or one that is not valid (unknown, expired or revoked)",
        "403" => "CSRF check failed: a cookie-authenticated change without a valid proof",
        "404" => "No live session with this id (for this caller)",
        "409" => "The role's session limit is reached and its policy is `reject`",
        "413" => "The body, or its `data`, is over the configured limit",
        "429" => "Too many requests: retry after `Retry-After` seconds",
        "501" => {
            "The configured store does not offer this (history needs a SQL store: embedded or PostgreSQL)"
        }
        "503" => "The store is unreachable: retry after `Retry-After` seconds",
        _ => return None,
    })
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                describe_errors(operation);
            }
        }
    }
}

fn describe_errors(operation: &mut Operation) {
    let public = operation
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|t| t == "public"));
    for (status, response) in &mut operation.responses.responses {
        let (RefOr::T(response), Some(description)) = (response, error_description(status)) else {
            continue;
        };
        if response.description.is_empty() {
            response.description = description.to_owned();
        }
        let problem = response.content.get("application/json").is_some_and(|c| {
            matches!(c, RefOr::T(c) if matches!(&c.schema,
                Some(RefOr::Ref(r)) if r.ref_location.ends_with("/ProblemBody")))
        });
        if let Some(body) = problem
            .then(|| response.content.shift_remove("application/json"))
            .flatten()
        {
            response
                .content
                .insert("application/problem+json".to_owned(), body);
        }
        let header = |kind: Type, text: &str| {
            let mut h = Header::new(Object::with_type(kind));
            h.description = Some(text.to_owned());
            RefOr::T(h)
        };
        match status.as_str() {
            "429" | "503" => {
                response.headers.insert(
                    "Retry-After".to_owned(),
                    header(Type::Integer, "Seconds to wait before retrying"),
                );
            }
            "401" if public => {
                response.headers.insert(
                    "WWW-Authenticate".to_owned(),
                    header(Type::String, "`Bearer` with the error, as RFC 6750 says"),
                );
            }
            _ => {}
        }
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
