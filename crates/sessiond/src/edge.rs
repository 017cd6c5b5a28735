//! [`EdgeLayer`]: what happens around every request, in one layer (each
//! layer of its own would box the request's future again): the request id
//! and access log line (`telemetry`), the limits it must meet
//! (`request_limits`: head size, declared body size, time), a handler's
//! panic turned into a 500, `Cache-Control: no-store`, and its metrics.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::problem::Problem;
use crate::request_limits::{self, RequestLimits};
use crate::telemetry::RequestLog;

/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Puts the edge around a service (each route, when given to `Router::layer`).
#[derive(Clone, Copy, Debug)]
pub struct EdgeLayer(pub RequestLimits);

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            limits: self.0,
        }
    }
}

/// The edge around `S`. It calls the service it was made ready with
/// directly, where a `from_fn` middleware would clone and box it again on
/// every request.
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    limits: RequestLimits,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let limits = self.limits;
        // A reference-counted handle: no copy of the route unless it is used.
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        let (log, span) = RequestLog::begin(&mut req);
        // Calling a route only builds its future; a panic there is caught
        // all the same.
        let call = match request_limits::refusal(&req, &limits) {
            Some(refused) => Err(refused),
            None => Ok(std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.inner.call(req)
            }))),
        };
        Box::pin(async move {
            let mut res = match call {
                Err(refused) => refused,
                Ok(Err(_)) => panicked(),
                Ok(Ok(future)) => {
                    let run = AssertUnwindSafe(future).catch_unwind().instrument(span);
                    match tokio::time::timeout(limits.timeout, run).await {
                        Ok(Ok(Ok(res))) => res,
                        Ok(Ok(Err(never))) => match never {},
                        Ok(Err(_)) => panicked(),
                        Err(_) => request_limits::timed_out(limits.timeout),
                    }
                }
            };
            // Answers carry sessions, tokens and CSRF tokens: no cache keeps
            // them, unless a route says otherwise (the JWKS).
            res.headers_mut()
                .entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
            let latency = start.elapsed();
            let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            crate::metrics::record_request(route, &method, res.status().as_u16(), latency);
            log.finish(&mut res, route, latency);
            Ok(res)
        })
    }
}

/// The answer to a request whose handler panicked.
fn panicked() -> Response {
    tracing::error!("handler panicked");
    Problem::internal().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use std::time::Duration;
    use tower::ServiceExt;

    async fn panics() -> &'static str {
        panic!("boom")
    }

    fn app() -> Router {
        let limits = RequestLimits {
            max_header_bytes: 1024,
            max_body_bytes: 1024,
            timeout: Duration::from_millis(200),
        };
        Router::new()
            .route("/panics", get(panics))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/cached",
                get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "ok") }),
            )
            .route("/ok", get(|| async { "ok" }))
            .layer(EdgeLayer(limits))
    }

    async fn call(path: &str) -> Response {
        let req = axum::http::Request::get(path)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        app().oneshot(req).await.unwrap_or_else(|e| match e {})
    }

    #[tokio::test]
    async fn a_panic_is_a_500_problem_and_the_server_goes_on() {
        let res = call("/panics").await;
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
        assert_eq!(call("/ok").await.status(), 200);
    }

    #[tokio::test]
    async fn answers_are_not_cached_unless_a_route_says_so() {
        let res = call("/ok").await;
        assert_eq!(
            res.headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert!(res.headers().contains_key("x-request-id"));
        let res = call("/cached").await;
        assert_eq!(
            res.headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.as_bytes()),
            Some(&b"max-age=60"[..])
        );
        assert_eq!(
            call("/panics")
                .await
                .headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
    }

    #[tokio::test]
    async fn a_slow_request_is_a_408_that_closes_the_connection() {
        let res = call("/slow").await;
        assert_eq!(res.status(), 408);
        assert_eq!(
            res.headers().get(header::CONNECTION).map(|v| v.as_bytes()),
            Some(&b"close"[..])
        );
    }
}
