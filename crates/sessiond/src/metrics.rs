//! Prometheus metrics: the process-wide recorder and its text rendering (the
//! latency histograms are `latency`'s), the per-request counts and
//! latencies, and [`StoreMetrics`], the store observer that times every
//! operation and counts creations, revocations and store errors.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::http::Method;
use metrics::Counter;

use crate::latency::{Family, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use sessiond_engine::{Op, Outcome, RevokeReason, StoreError, StoreObserver};

/// Histogram of HTTP request latency, labelled `route`, `method`.
pub const HTTP_REQUEST_DURATION: &str = "sessiond_http_request_duration_seconds";
/// Counter of HTTP requests, labelled `route`, `method`, `status`.
pub const HTTP_REQUESTS: &str = "sessiond_http_requests_total";
/// Histogram of store operation latency, labelled `op`.
pub const STORE_OPERATION_DURATION: &str = "sessiond_store_operation_duration_seconds";
/// Counter of failed store operations, labelled `op`, `kind`.
pub const STORE_ERRORS: &str = "sessiond_store_errors_total";
/// Counter of sessions created.
pub const SESSIONS_CREATED: &str = "sessiond_sessions_created_total";
/// Gauge of live sessions in the store.
pub const LIVE_SESSIONS: &str = "sessiond_live_sessions";
/// Counter of sessions revoked, by reason.
pub const SESSIONS_REVOKED: &str = "sessiond_sessions_revoked_total";
/// Counter of near-cache lookups, labelled `result` (`hit`, `miss`).
pub const CACHE_LOOKUPS: &str = "sessiond_cache_lookups_total";
/// Counter of near-cache records dropped because they changed.
pub const CACHE_INVALIDATIONS: &str = "sessiond_cache_invalidations_total";
/// Counter of times the whole near-cache was dropped.
pub const CACHE_FLUSHES: &str = "sessiond_cache_flushes_total";
/// Gauge of sessions held by the near-cache.
pub const CACHE_ENTRIES: &str = "sessiond_cache_entries";
/// Gauge of bytes held by the near-cache (estimated).
pub const CACHE_BYTES: &str = "sessiond_cache_bytes";

/// Distinct app-supplied revocation reasons given their own label; later
/// ones are counted as `other`.
const MAX_CUSTOM_REASONS: usize = 32;

/// Label value standing for an app-supplied reason beyond the bound.
const OTHER_REASON: &str = "other";

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The installed Prometheus recorder.
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Install the process-wide recorder on first call; later calls return
    /// the same recorder. Fails if another recorder was installed first.
    pub fn install() -> Result<Metrics, String> {
        HANDLE
            .get_or_init(install_recorder)
            .clone()
            .map(|handle| Metrics { handle })
    }

    /// All metrics in the Prometheus text exposition format: the
    /// process's, then one server's sessions (`sessions`) and near-cache
    /// (`cache`), which are that server's own.
    pub fn render(
        &self,
        sessions: Option<&StoreMetrics>,
        cache: Option<&sessiond_engine::CacheStats>,
    ) -> String {
        let mut text = self.handle.render();
        HTTP_LATENCY.render(&mut text);
        STORE_LATENCY.render(&mut text);
        if let Some(sessions) = sessions {
            sessions.render(&mut text);
        }
        if let Some(stats) = cache {
            render_cache(stats, &mut text);
        }
        text
    }
}

fn install_recorder() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests served");
    metrics::describe_counter!(STORE_ERRORS, "Store operations that failed");
}

/// Append one metric family in the text format: HELP, TYPE, and each
/// series as (`{labels}` or "", value).
fn write_family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    series: &[(impl AsRef<str>, V)],
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in series {
        let _ = writeln!(out, "{name}{} {value}", labels.as_ref());
    }
    out.push('\n');
}

/// Append the near-cache's counters in the text format. They are this
/// server's own (read from its cache at scrape time, not through the
/// process-wide recorder): the cache counts with plain atomics on its hot
/// path.
fn render_cache(stats: &sessiond_engine::CacheStats, out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, series: &[(&str, u64)]| {
        write_family(out, name, kind, help, series);
    };
    family(
        CACHE_LOOKUPS,
        "counter",
        "Near-cache lookups, by result (hit: served from memory)",
        &[
            ("{result=\"hit\"}", stats.hits),
            ("{result=\"miss\"}", stats.misses),
        ],
    );
    family(
        CACHE_INVALIDATIONS,
        "counter",
        "Near-cache records dropped because the store reported a change",
        &[("", stats.invalidations)],
    );
    family(
        CACHE_FLUSHES,
        "counter",
        "Times the whole near-cache was dropped (invalidation channel lost, or a flush)",
        &[("", stats.flushes)],
    );
    family(
        CACHE_ENTRIES,
        "gauge",
        "Sessions held by the near-cache",
        &[("", stats.entries)],
    );
    family(
        CACHE_BYTES,
        "gauge",
        "Bytes held by the near-cache (estimated)",
        &[("", stats.bytes)],
    );
}

/// Count a request by route, method and status, and record its latency.
/// `route` is the matched route template, never the raw path, so label
/// cardinality stays bounded.
pub fn record_request(route: &str, method: &Method, status: u16, latency: Duration) {
    let method = method_label(method);
    with_request_series(route, method, status, |requests, duration| {
        requests.increment(1);
        duration.record(latency);
    });
}

/// Latency of HTTP requests by route and method.
static HTTP_LATENCY: Family = Family::new(
    HTTP_REQUEST_DURATION,
    "HTTP request latency",
    &["route", "method"],
);

/// Latency of store operations by operation.
static STORE_LATENCY: Family = Family::new(
    STORE_OPERATION_DURATION,
    "Latency of store operations",
    &["op"],
);

/// The series of one route and method: its latency histogram and its
/// request counter per status.
struct RequestSeries {
    method: &'static str,
    duration: Arc<Histogram>,
    by_status: Vec<(u16, Counter)>,
}

thread_local! {
    /// Registered handles by route template, so that a request costs no
    /// label strings, key hashing or registry look-up once its series
    /// exist. Bounded: routes are templates, methods and statuses are few.
    static REQUEST_SERIES: RefCell<HashMap<String, Vec<RequestSeries>>> =
        RefCell::new(HashMap::new());
}

/// Run `f` on the request counter of (`route`, `method`, `status`) and the
/// latency histogram of (`route`, `method`), registering them on first use.
fn with_request_series(
    route: &str,
    method: &'static str,
    status: u16,
    f: impl FnOnce(&Counter, &Histogram),
) {
    REQUEST_SERIES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(route) {
            cache.insert(route.to_owned(), Vec::new());
        }
        let Some(methods) = cache.get_mut(route) else {
            return;
        };
        let index = match methods.iter().position(|m| m.method == method) {
            Some(i) => i,
            None => {
                methods.push(RequestSeries {
                    method,
                    duration: HTTP_LATENCY.series(&[route, method]),
                    by_status: Vec::new(),
                });
                methods.len() - 1
            }
        };
        let series = &mut methods[index];
        let counter = match series.by_status.iter().position(|(s, _)| *s == status) {
            Some(i) => &series.by_status[i].1,
            None => {
                let counter = metrics::counter!(
                    HTTP_REQUESTS,
                    "route" => route.to_owned(),
                    "method" => method,
                    "status" => status.to_string()
                );
                series.by_status.push((status, counter));
                &series.by_status[series.by_status.len() - 1].1
            }
        };
        f(counter, &series.duration);
    });
}

/// The latency histogram of store operation `op`, registered on first use
/// in this thread.
fn store_duration(op: &'static str) -> Arc<Histogram> {
    thread_local! {
        static STORE_SERIES: RefCell<Vec<(&'static str, Arc<Histogram>)>> =
            const { RefCell::new(Vec::new()) };
    }
    STORE_SERIES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, h)) = cache.iter().find(|(name, _)| *name == op) {
            return h.clone();
        }
        let h = STORE_LATENCY.series(&[op]);
        cache.push((op, h.clone()));
        h
    })
}

/// A method's label: the standard methods by name, anything else as `other`
/// (extension methods are unbounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counters of one [`StoreMetrics`], for the `/v1/stats` endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Sessions created since start.
    pub created: u64,
    /// Sessions revoked since start, by reason (app-supplied reasons beyond
    /// the first 32 distinct ones are counted as `other`).
    pub revoked_by_reason: BTreeMap<String, u64>,
    /// Store operations that failed as unavailable or corrupt.
    pub store_errors: u64,
}

/// Revocations by reason label, and the app-supplied reasons given a label.
#[derive(Debug, Default)]
struct Revocations {
    by_reason: BTreeMap<String, u64>,
    custom: HashSet<String>,
}

/// The store's observer: Prometheus metrics (latency per operation, errors,
/// creations, revocations by reason, the live-sessions gauge) and the plain
/// counters `/v1/stats` shows. The server wraps its store in
/// `ObservedStore<StoreMetrics>`.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    created: AtomicU64,
    store_errors: AtomicU64,
    revocations: Mutex<Revocations>,
    /// The store's last count of live sessions, moved by this server's own
    /// creations and revocations until the next count (which also sees
    /// expiries and other servers' changes).
    live: AtomicI64,
}

impl StoreMetrics {
    /// Append this server's session counters and the live-sessions gauge
    /// in the text format.
    pub fn render(&self, out: &mut String) {
        let counts = self.counts();
        write_family(
            out,
            SESSIONS_CREATED,
            "counter",
            "Sessions created by this server since it started",
            &[("", counts.created)],
        );
        let revoked: Vec<(String, u64)> = counts
            .revoked_by_reason
            .iter()
            .map(|(reason, n)| {
                (
                    format!("{{reason=\"{}\"}}", crate::latency::escape(reason)),
                    *n,
                )
            })
            .collect();
        if !revoked.is_empty() {
            write_family(
                out,
                SESSIONS_REVOKED,
                "counter",
                "Sessions revoked by this server since it started, by reason",
                &revoked,
            );
        }
        write_family(
            out,
            LIVE_SESSIONS,
            "gauge",
            "Live sessions in the store (recounted periodically, moved by this server's changes in between)",
            &[("", self.live.load(Ordering::Relaxed).max(0))],
        );
    }

    /// The live-sessions gauge.
    pub fn live_sessions(&self) -> u64 {
        u64::try_from(self.live.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The counters so far.
    pub fn counts(&self) -> StatsSnapshot {
        let revocations = self
            .revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        StatsSnapshot {
            created: self.created.load(Ordering::Relaxed),
            revoked_by_reason: revocations.by_reason.clone(),
            store_errors: self.store_errors.load(Ordering::Relaxed),
        }
    }

    fn count_revoked(&self, reason: &RevokeReason, n: usize) {
        if n == 0 {
            return;
        }
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let mut revocations = self
            .revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let label = reason_label(&mut revocations.custom, reason);
        *revocations.by_reason.entry(label).or_insert(0) += n;
        self.live
            .fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

impl StoreObserver for StoreMetrics {
    fn observe(&self, op: Op, elapsed: Duration, outcome: Outcome<'_>) {
        store_duration(op.as_str()).record(elapsed);
        match outcome {
            Outcome::Failed(e) => {
                let kind = match e {
                    StoreError::Unavailable(_) => "unavailable",
                    StoreError::Corrupt(_) => "corrupt",
                    // The caller's limits, or what the store does not
                    // offer: not a failing store.
                    StoreError::LimitReached { .. }
                    | StoreError::IssuedBeforeRevocation
                    | StoreError::DataTooLarge { .. }
                    | StoreError::Unsupported(_)
                    | StoreError::CursorExpired(_)
                    | StoreError::InvalidCursor(_) => return,
                };
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(STORE_ERRORS, "op" => op.as_str(), "kind" => kind).increment(1);
            }
            Outcome::Created { evicted } => {
                self.created.fetch_add(1, Ordering::Relaxed);
                self.live.fetch_add(1, Ordering::Relaxed);
                self.count_revoked(&RevokeReason::EvictedMaxSessions, evicted);
            }
            Outcome::Revoked { reason, count } => self.count_revoked(reason, count),
            Outcome::Counted(live) => self
                .live
                .store(i64::try_from(live).unwrap_or(i64::MAX), Ordering::Relaxed),
            Outcome::Done => {}
        }
    }
}

/// The label of `reason`: its wire name, or `other` for an app-supplied
/// reason once `MAX_CUSTOM_REASONS` distinct ones have been seen (or one that
/// is not a safe label).
fn reason_label(custom: &mut HashSet<String>, reason: &RevokeReason) -> String {
    let RevokeReason::Other(name) = reason else {
        return reason.as_str().to_owned();
    };
    let safe = !name.is_empty()
        && name.len() <= RevokeReason::MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if !safe {
        return OTHER_REASON.to_owned();
    }
    if custom.contains(name) {
        return name.clone();
    }
    if custom.len() < MAX_CUSTOM_REASONS {
        custom.insert(name.clone());
        return name.clone();
    }
    OTHER_REASON.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn revoked(m: &StoreMetrics, reason: &RevokeReason, count: usize) {
        m.observe(Op::Revoke, MS, Outcome::Revoked { reason, count });
    }

    #[test]
    fn counts_creations_evictions_and_revocations() {
        let m = StoreMetrics::default();
        m.observe(Op::Create, MS, Outcome::Created { evicted: 2 });
        revoked(&m, &RevokeReason::Logout, 1);
        let reason = RevokeReason::parse("password_changed").unwrap();
        m.observe(
            Op::RevokeUser,
            MS,
            Outcome::Revoked {
                reason: &reason,
                count: 3,
            },
        );
        m.observe(Op::Get, MS, Outcome::Done);

        let counts = m.counts();
        assert_eq!(counts.created, 1);
        assert_eq!(counts.store_errors, 0);
        let expected: BTreeMap<String, u64> = [
            ("evicted_max_sessions".to_owned(), 2),
            ("logout".to_owned(), 1),
            ("password_changed".to_owned(), 3),
        ]
        .into();
        assert_eq!(counts.revoked_by_reason, expected);
        let json = serde_json::to_value(&counts).unwrap();
        assert_eq!(json["revoked_by_reason"]["logout"], 1);
    }

    #[test]
    fn nothing_removed_counts_nothing() {
        let m = StoreMetrics::default();
        revoked(&m, &RevokeReason::Logout, 0);
        m.observe(Op::Create, MS, Outcome::Created { evicted: 0 });
        assert_eq!(m.counts().revoked_by_reason, BTreeMap::new());
    }

    #[test]
    fn only_unavailable_and_corrupt_are_store_errors() {
        for (fail, counted) in [
            (StoreError::Unavailable("down".into()), true),
            (StoreError::Corrupt("bad".into()), true),
            (StoreError::LimitReached { max: 2 }, false),
            (StoreError::DataTooLarge { size: 9, max: 1 }, false),
            (StoreError::Unsupported("no history".into()), false),
        ] {
            let m = StoreMetrics::default();
            m.observe(Op::Create, MS, Outcome::Failed(&fail));
            m.observe(Op::Ping, MS, Outcome::Failed(&fail));
            let counts = m.counts();
            assert_eq!(counts.store_errors, if counted { 2 } else { 0 });
            assert_eq!(counts.created, 0);
        }
    }

    #[test]
    fn custom_reasons_are_bounded() {
        let m = StoreMetrics::default();
        for i in 0..MAX_CUSTOM_REASONS + 10 {
            let reason = RevokeReason::parse(&format!("app_reason_{i}")).unwrap();
            revoked(&m, &reason, 1);
        }
        // A reason already labelled keeps its label; a known one always does.
        revoked(&m, &RevokeReason::parse("app_reason_0").unwrap(), 1);
        revoked(&m, &RevokeReason::Expired, 1);
        revoked(&m, &RevokeReason::SignedOutOtherDevices, 2);
        // Built without parsing: not a safe label.
        revoked(&m, &RevokeReason::Other("has space\n".to_owned()), 1);

        let revoked = m.counts().revoked_by_reason;
        assert_eq!(revoked.len(), MAX_CUSTOM_REASONS + 3);
        assert_eq!(revoked["other"], 11);
        assert_eq!(revoked["app_reason_0"], 2);
        assert_eq!(revoked["expired"], 1);
        assert_eq!(revoked["signed_out_other_devices"], 2);
        assert!(!revoked.contains_key("app_reason_40"));
    }

    #[tokio::test]
    async fn render_shows_metric_names_after_use() {
        let metrics = Metrics::install().unwrap();
        // A second install returns the same recorder.
        let again = Metrics::install().unwrap();

        let m = StoreMetrics::default();
        m.observe(Op::Create, MS, Outcome::Created { evicted: 1 });
        revoked(&m, &RevokeReason::Logout, 1);
        m.observe(
            Op::Ping,
            MS,
            Outcome::Failed(&StoreError::Unavailable("down".into())),
        );

        let app = axum::Router::new()
            .route("/v1/sessions/{id}", axum::routing::get(|| async { "ok" }))
            .layer(crate::edge::EdgeLayer(
                crate::request_limits::RequestLimits {
                    max_header_bytes: 16 * 1024,
                    max_body_bytes: 64 * 1024,
                    timeout: Duration::from_secs(10),
                },
            ));
        let req = axum::http::Request::get("/v1/sessions/abc")
            .body(axum::body::Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(app, req).await.unwrap();

        let text = metrics.render(Some(&m), None);
        for name in [
            SESSIONS_CREATED,
            SESSIONS_REVOKED,
            STORE_ERRORS,
            STORE_OPERATION_DURATION,
            HTTP_REQUESTS,
            HTTP_REQUEST_DURATION,
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(text.contains(r#"reason="evicted_max_sessions""#), "{text}");
        assert!(text.contains(r#"op="ping",kind="unavailable""#), "{text}");
        assert!(text.contains(r#"route="/v1/sessions/{id}""#), "{text}");
        assert!(!text.contains("/v1/sessions/abc"), "{text}");
        assert!(
            text.contains("sessiond_store_operation_duration_seconds_bucket"),
            "histograms are rendered with buckets:\n{text}"
        );
        assert!(again.render(Some(&m), None).contains(SESSIONS_CREATED));
        assert!(text.contains("sessiond_live_sessions 0\n"), "{text}");
        assert!(!metrics.render(None, None).contains(SESSIONS_CREATED));
    }

    #[test]
    fn unusual_methods_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
