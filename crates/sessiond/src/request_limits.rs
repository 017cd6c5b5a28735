//! Limits every request meets before a handler runs: the size of its head
//! (431), the body length it declares (413, before any of it is read), and
//! the time it may take in all (408).

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// The bounds of one request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Bytes of the target and headers together.
    pub max_header_bytes: usize,
    /// Bytes of the body.
    pub max_body_bytes: usize,
    /// Time from the end of the head to the end of the response.
    pub timeout: Duration,
}

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

/// The body length the request declares, if it declares one.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The answer refusing `request`, if it breaks a limit: 431 problem+json
/// when its head is larger than the limit, 413 at once when its declared
/// body is (which closes the connection: the rest of the body is not read).
pub fn refusal(request: &Request, limits: &RequestLimits) -> Option<Response> {
    if head_size(request) > limits.max_header_bytes {
        return Some(Problem::headers_too_large(limits.max_header_bytes).into_response());
    }
    if declared_length(request).is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Some(closing(Problem::too_large(format!(
            "the declared body is over the limit of {} bytes",
            limits.max_body_bytes
        ))));
    }
    None
}

/// The answer to a request that took longer than `limit`: 408, closing the
/// connection.
pub fn timed_out(limit: Duration) -> Response {
    closing(Problem::timeout(limit))
}

fn closing(problem: Problem) -> Response {
    let mut response = problem.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
