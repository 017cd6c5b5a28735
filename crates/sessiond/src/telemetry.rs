//! Structured logging: the global tracing subscriber (text or JSON lines, level
//! from `RUST_LOG`) and the per-request access log middleware that assigns
//! request ids. Headers, query strings, bodies and raw URIs are never logged.

use std::cell::Cell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Header carrying the request id, read from requests and set on responses.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id that is reused rather than replaced.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the request being served, as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Public id of the session a request acted on; a handler inserts it as a
/// response extension so that the access log can name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedSession(pub String);

/// `body` as a response whose access log line names session `id` (noted
/// only when access events are logged at all).
pub fn with_session(id: &str, body: impl axum::response::IntoResponse) -> Response {
    let mut response = body.into_response();
    if tracing::enabled!(tracing::Level::INFO) {
        response
            .extensions_mut()
            .insert(LoggedSession(id.to_owned()));
    }
    response
}

/// Install the process-wide subscriber writing to stderr. Fails if `RUST_LOG`
/// holds an invalid directive or a subscriber is already installed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = filter_builder()
        .from_env()
        .map_err(|e| format!("invalid RUST_LOG: {e}"))?;
    let ansi = std::io::stderr().is_terminal();
    build(format, std::io::stderr, filter, ansi)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))
}

/// A subscriber like the one [`init`] installs, writing to `writer` without
/// colours (invalid `RUST_LOG` directives are ignored), for tests that
/// capture log output.
pub fn subscriber_with_writer<W>(
    format: LogFormat,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    build(format, writer, filter_builder().from_env_lossy(), false)
}

fn filter_builder() -> tracing_subscriber::filter::Builder {
    EnvFilter::builder().with_default_directive(LevelFilter::INFO.into())
}

fn build<W>(
    format: LogFormat,
    writer: W,
    filter: EnvFilter,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let (json, text) = match format {
        LogFormat::Json => (
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
            None,
        ),
        LogFormat::Text => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
}

/// One request's access log: its id (a sane incoming `x-request-id`, or a
/// fresh one), the span the handler runs in, and the one access event
/// logged when it is answered.
pub struct RequestLog {
    id: String,
    method: axum::http::Method,
}

impl RequestLog {
    /// Start the log of `req` (its id goes into the request's extensions
    /// for handlers); returns it with the span to run the request in.
    pub fn begin(req: &mut Request) -> (Self, tracing::Span) {
        let id = req
            .headers()
            .get(&REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| is_sane_request_id(s))
            .map_or_else(generate_request_id, str::to_owned);
        req.extensions_mut().insert(RequestId(id.clone()));
        let span = tracing::info_span!("request", request_id = %id);
        let method = req.method().clone();
        (Self { id, method }, span)
    }

    /// Echo the id on `res` and log the access event: route template,
    /// status, latency, session id; never the raw path, query or headers.
    pub fn finish(self, res: &mut Response, route: &str, latency: std::time::Duration) {
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            res.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let latency_ms = latency.as_micros() as f64 / 1000.0;
        let session_id = res
            .extensions()
            .get::<LoggedSession>()
            .map(|s| s.0.as_str());
        tracing::info!(
            request_id = %self.id,
            method = %self.method,
            route = %route,
            status = res.status().as_u16(),
            latency_ms,
            session_id,
            "request served"
        );
    }
}

/// Whether an incoming request id can be reused: 1..=64 characters of
/// `[A-Za-z0-9._-]`.
pub fn is_sane_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REQUEST_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh request id: 128 bits as 32 hex digits.
///
/// Request ids correlate log lines; they need uniqueness, not secrecy. Each
/// thread draws a random key from the OS once and then numbers its ids,
/// mixing key and number through a bijection, so ids never repeat within a
/// thread and threads (and processes) differ by their keys. This avoids a
/// system call per request.
pub fn generate_request_id() -> String {
    thread_local! {
        static STATE: Cell<(u64, u64, u64)> = Cell::new(request_id_seed());
    }
    let (k0, k1, n) = STATE.with(|s| {
        let (k0, k1, n) = s.get();
        s.set((k0, k1, n.wrapping_add(1)));
        (k0, k1, n)
    });
    let mut out = [0u8; 32];
    let words = [splitmix64(k0 ^ n), splitmix64(k1.wrapping_add(n))];
    for (chunk, word) in out.chunks_exact_mut(16).zip(words) {
        for (i, byte) in word.to_be_bytes().iter().enumerate() {
            chunk[2 * i] = HEX[usize::from(byte >> 4)];
            chunk[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
    }
    // Only ASCII hex digits were written.
    String::from_utf8_lossy(&out).into_owned()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A bijective 64-bit mixer (SplitMix64's finalizer).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A thread's request id key: from the OS, else from the time and a counter.
fn request_id_seed() -> (u64, u64, u64) {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..16].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        bytes[16..].copy_from_slice(&u64::from(std::process::id()).to_be_bytes());
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        u64::from_be_bytes(w)
    };
    (word(0), word(8), word(16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/v1/sessions/{id}",
                get(|| async {
                    tracing::info!("inside handler");
                    let mut res = Response::new(Body::from("ok"));
                    res.extensions_mut()
                        .insert(LoggedSession("sess_123".to_owned()));
                    res
                }),
            )
            .layer(crate::edge::EdgeLayer(
                crate::request_limits::RequestLimits {
                    max_header_bytes: 16 * 1024,
                    max_body_bytes: 64 * 1024,
                    timeout: std::time::Duration::from_secs(10),
                },
            ))
    }

    async fn call(app: Router, req: axum::http::Request<Body>) -> Response {
        app.oneshot(req).await.unwrap()
    }

    #[test]
    fn request_id_sanity() {
        assert!(is_sane_request_id("abc-DEF_1.2"));
        assert!(is_sane_request_id(&"a".repeat(64)));
        assert!(!is_sane_request_id(&"a".repeat(65)));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id("a\"b"));
        let id = generate_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, generate_request_id());
    }

    #[test]
    fn request_ids_do_not_repeat_across_threads() {
        let per_thread: Vec<Vec<String>> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| generate_request_id()).collect()))
            .map(|t| t.join().unwrap())
            .collect();
        let all: std::collections::HashSet<&String> = per_thread.iter().flatten().collect();
        assert_eq!(all.len(), 40_000);
    }

    #[tokio::test]
    async fn json_access_log_has_fields_and_no_secrets() {
        let cap = Capture::default();
        let sub = subscriber_with_writer(LogFormat::Json, cap.clone());
        let _guard = tracing::subscriber::set_default(sub);
        let req = axum::http::Request::get("/v1/sessions/user-secret-id?token=SECRET_TOKEN")
            .header("x-request-id", "req-42")
            .header("authorization", "Bearer SECRET_TOKEN")
            .header("cookie", "sid=SECRET_TOKEN")
            .body(Body::empty())
            .unwrap();
        let res = call(app(), req).await;
        assert_eq!(res.headers()["x-request-id"], "req-42");

        let out = cap.text();
        assert!(!out.contains("SECRET_TOKEN"), "{out}");
        assert!(!out.contains("user-secret-id"), "{out}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["message"], "inside handler");
        assert_eq!(lines[0]["span"]["request_id"], "req-42");
        let access = &lines[1];
        assert_eq!(access["request_id"], "req-42");
        assert_eq!(access["method"], "GET");
        assert_eq!(access["route"], "/v1/sessions/{id}");
        assert_eq!(access["status"], 200);
        assert_eq!(access["session_id"], "sess_123");
        assert!(access["latency_ms"].is_number());
        assert_eq!(access["level"], "INFO");
    }

    #[tokio::test]
    async fn insane_id_replaced_and_unmatched_route_hidden() {
        let cap = Capture::default();
        let sub = subscriber_with_writer(LogFormat::Text, cap.clone());
        let _guard = tracing::subscriber::set_default(sub);
        let req = axum::http::Request::get("/no/such/user-secret-id")
            .header("x-request-id", "bad id with spaces")
            .body(Body::empty())
            .unwrap();
        let res = call(app(), req).await;
        assert_eq!(res.status(), 404);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);

        let out = cap.text();
        assert!(out.contains(&format!("request_id={id}")), "{out}");
        assert!(out.contains("route=unmatched"), "{out}");
        assert!(out.contains("status=404"), "{out}");
        assert!(!out.contains("session_id"), "{out}");
        assert!(!out.contains("user-secret-id"), "{out}");
        assert!(!out.contains("bad id"), "{out}");
    }
}
