//! The request-head size limit: a request whose target and headers together
//! exceed `limits.max_header_bytes` is answered 431 before any handler runs.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// Bytes a request head may hold: its target plus, per header, name, value
/// and the 4 bytes of `": "` and CRLF.
pub fn head_size(request: &Request) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    request.headers().iter().fold(target, |sum, (name, value)| {
        sum + name.as_str().len() + value.len() + 4
    })
}

/// Middleware: 431 problem+json when the head is larger than `limit`.
pub async fn enforce(State(limit): State<usize>, request: Request, next: Next) -> Response {
    if head_size(&request) > limit {
        return Problem::headers_too_large(limit).into_response();
    }
    next.run(request).await
}
