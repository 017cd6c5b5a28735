//! [`around`]: what happens around every request, in one middleware (each
//! layer of its own would box the request's future again): the request id
//! and access log line (`telemetry`), the limits it must meet
//! (`request_limits`: head size, declared body size, time) and its metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::request_limits::{self, RequestLimits};
use crate::telemetry::RequestLog;

/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// The middleware.
pub async fn around(State(limits): State<RequestLimits>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    // A reference-counted handle: no copy of the route unless it is used.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let (log, span) = RequestLog::begin(&mut req);
    let mut res = match request_limits::refusal(&req, &limits) {
        Some(refused) => refused,
        None => {
            let run = next.run(req).instrument(span);
            match tokio::time::timeout(limits.timeout, run).await {
                Ok(res) => res,
                Err(_) => request_limits::timed_out(limits.timeout),
            }
        }
    };
    let latency = start.elapsed();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    crate::metrics::record_request(route, &method, res.status().as_u16(), latency);
    log.finish(&mut res, route, latency);
    res
}
