//! Prometheus metrics: the process-wide recorder and its text rendering, the
//! HTTP request middleware, and [`MeteredStore`], a [`Store`] decorator that
//! times every operation and counts creations, revocations and store errors.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use sessiond_engine::{
    DataUpdate, NewSession, RefreshOutcome, RefreshRequest, RevokeReason, RotateTarget, Session,
    SessionId, Store, StoreError, Timestamp, TokenDigest, TokenHash, TouchRule,
};

/// Histogram of HTTP request latency, labelled `route`, `method`.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
/// Counter of HTTP requests, labelled `route`, `method`, `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Histogram of store operation latency, labelled `op`.
pub const STORE_OPERATION_DURATION: &str = "sessiond_store_operation_duration_seconds";
/// Counter of failed store operations, labelled `op`, `kind`.
pub const STORE_ERRORS: &str = "sessiond_store_errors_total";
/// Counter of sessions created.
pub const SESSIONS_CREATED: &str = "sessiond_sessions_created_total";
/// Counter of sessions revoked, labelled `reason`.
pub const LIVE_SESSIONS: &str = "sessiond_live_sessions";
/// Counter of sessions revoked, by reason.
pub const SESSIONS_REVOKED: &str = "sessiond_sessions_revoked_total";

/// Histogram bucket bounds in seconds, shared by both latency histograms.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Route label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

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

    /// All metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn install_recorder() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
            LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(STORE_OPERATION_DURATION.to_owned()),
                LATENCY_BUCKETS,
            )
        })
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    // Without the exporter's own runtime, histogram samples pile up until
    // they are drained: by a scrape, or by this thread.
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; scrapes still drain samples");
    }
    Ok(handle)
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests served");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    metrics::describe_histogram!(
        STORE_OPERATION_DURATION,
        metrics::Unit::Seconds,
        "Latency of store operations"
    );
    metrics::describe_counter!(STORE_ERRORS, "Store operations that failed");
    metrics::describe_counter!(SESSIONS_CREATED, "Sessions created");
    metrics::describe_counter!(SESSIONS_REVOKED, "Sessions revoked, by reason");
}

/// Axum middleware: count each request by route, method and status, and
/// record its latency. `route` is the matched route template, never the
/// raw path, so label cardinality stays bounded.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let res = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let status = res.status().as_u16();
    with_request_series(route, method, status, |requests, duration| {
        requests.increment(1);
        duration.record(elapsed);
    });
    res
}

/// The series of one route and method: its latency histogram and its
/// request counter per status.
struct RequestSeries {
    method: &'static str,
    duration: Histogram,
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
                    duration: metrics::histogram!(
                        HTTP_REQUEST_DURATION,
                        "route" => route.to_owned(),
                        "method" => method
                    ),
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
fn store_duration(op: &'static str) -> Histogram {
    thread_local! {
        static STORE_SERIES: RefCell<Vec<(&'static str, Histogram)>> =
            const { RefCell::new(Vec::new()) };
    }
    STORE_SERIES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, h)) = cache.iter().find(|(name, _)| *name == op) {
            return h.clone();
        }
        let h = metrics::histogram!(STORE_OPERATION_DURATION, "op" => op);
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

/// Counters of one [`MeteredStore`], for the `/v1/stats` endpoint.
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

/// A [`Store`] decorator recording Prometheus metrics and plain counters.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    created: AtomicU64,
    store_errors: AtomicU64,
    revocations: Mutex<Revocations>,
}

impl MeteredStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            created: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            revocations: Mutex::new(Revocations::default()),
        }
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

    /// Run one store operation, timing it and counting its failure.
    async fn observe<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = call.await;
        store_duration(op).record(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            let kind = match e {
                StoreError::Unavailable(_) => Some("unavailable"),
                StoreError::Corrupt(_) => Some("corrupt"),
                StoreError::LimitReached { .. } | StoreError::DataTooLarge { .. } => None,
            };
            if let Some(kind) = kind {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(STORE_ERRORS, "op" => op, "kind" => kind).increment(1);
            }
        }
        result
    }

    fn count_revoked(&self, reason: &RevokeReason, n: u64) {
        if n == 0 {
            return;
        }
        let label = {
            let mut revocations = self
                .revocations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let label = reason_label(&mut revocations.custom, reason);
            *revocations.by_reason.entry(label.clone()).or_insert(0) += n;
            label
        };
        metrics::counter!(SESSIONS_REVOKED, "reason" => label).increment(n);
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

fn count_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl Store for MeteredStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let evicted = self.observe("create", self.inner.create(new, now)).await?;
        self.created.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(SESSIONS_CREATED).increment(1);
        self.count_revoked(&RevokeReason::EvictedMaxSessions, count_u64(evicted.len()));
        Ok(evicted)
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.observe("introspect", self.inner.introspect(token, touch, now))
            .await
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.observe("get", self.inner.get(id, now)).await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.observe(
            "update_data",
            self.inner.update_data(id, update, max_data_bytes, now),
        )
        .await
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.observe("extend", self.inner.extend(id, idle_ttl_ms, now))
            .await
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.observe("rotate", self.inner.rotate(target, new_token, now))
            .await
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        let outcome = self
            .observe("refresh", self.inner.refresh(request, now))
            .await?;
        if matches!(outcome, RefreshOutcome::Reused { .. }) {
            self.count_revoked(&RevokeReason::RefreshTokenReuse, 1);
        }
        Ok(outcome)
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let removed = self
            .observe("revoke", self.inner.revoke(id, reason, now))
            .await?;
        if removed {
            self.count_revoked(reason, 1);
        }
        Ok(removed)
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.observe("list_user", self.inner.list_user(user_id, now))
            .await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.observe("count_user", self.inner.count_user(user_id, now))
            .await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let removed = self
            .observe(
                "revoke_user",
                self.inner.revoke_user(user_id, except, reason, now),
            )
            .await?;
        self.count_revoked(reason, count_u64(removed.len()));
        Ok(removed)
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError> {
        let live = self
            .observe("count_live", self.inner.count_live(now))
            .await?;
        metrics::gauge!(LIVE_SESSIONS).set(live as f64);
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.observe("ping", self.inner.ping()).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_engine::{Device, LimitPolicy, SessionToken, ShardTag};

    /// Answers every call from a script: `evict` ids on create, `removed` on
    /// revoke, `fail` as the error of every call when set.
    #[derive(Debug, Default)]
    struct FakeStore {
        evict: Vec<SessionId>,
        removed: Vec<SessionId>,
        fail: Option<StoreError>,
    }

    impl FakeStore {
        fn answer<T>(&self, ok: T) -> Result<T, StoreError> {
            match &self.fail {
                Some(e) => Err(e.clone()),
                None => Ok(ok),
            }
        }
    }

    #[async_trait]
    impl Store for FakeStore {
        async fn create(&self, _: &NewSession, _: Timestamp) -> Result<Vec<SessionId>, StoreError> {
            self.answer(self.evict.clone())
        }
        async fn introspect(
            &self,
            _: &TokenDigest,
            _: Option<TouchRule>,
            _: Timestamp,
        ) -> Result<Option<Session>, StoreError> {
            self.answer(None)
        }
        async fn get(&self, _: &SessionId, _: Timestamp) -> Result<Option<Session>, StoreError> {
            self.answer(None)
        }
        async fn update_data(
            &self,
            _: &SessionId,
            _: &DataUpdate,
            _: usize,
            _: Timestamp,
        ) -> Result<Option<Session>, StoreError> {
            self.answer(None)
        }
        async fn extend(
            &self,
            _: &SessionId,
            _: Option<u64>,
            _: Timestamp,
        ) -> Result<Option<Session>, StoreError> {
            self.answer(None)
        }
        async fn rotate(
            &self,
            _: &RotateTarget,
            _: &TokenHash,
            _: Timestamp,
        ) -> Result<Option<Session>, StoreError> {
            self.answer(None)
        }
        async fn refresh(
            &self,
            _: &RefreshRequest,
            _: Timestamp,
        ) -> Result<RefreshOutcome, StoreError> {
            self.answer(RefreshOutcome::Unknown)
        }
        async fn revoke(
            &self,
            _: &SessionId,
            _: &RevokeReason,
            _: Timestamp,
        ) -> Result<bool, StoreError> {
            self.answer(!self.removed.is_empty())
        }
        async fn list_user(&self, _: &str, _: Timestamp) -> Result<Vec<Session>, StoreError> {
            self.answer(Vec::new())
        }
        async fn count_user(&self, _: &str, _: Timestamp) -> Result<u64, StoreError> {
            self.answer(0)
        }
        async fn revoke_user(
            &self,
            _: &str,
            _: Option<&SessionId>,
            _: &RevokeReason,
            _: Timestamp,
        ) -> Result<Vec<SessionId>, StoreError> {
            self.answer(self.removed.clone())
        }
        async fn count_live(&self, _: Timestamp) -> Result<u64, StoreError> {
            Ok(0)
        }

        async fn ping(&self) -> Result<(), StoreError> {
            self.answer(())
        }
    }

    fn ids(n: usize) -> Vec<SessionId> {
        let shard = ShardTag::of_user("u1");
        (0..n).map(|_| SessionId::generate(&shard)).collect()
    }

    fn new_session() -> NewSession {
        let shard = ShardTag::of_user("u1");
        let now = Timestamp::from_millis(1_000);
        NewSession {
            session: Session {
                id: SessionId::generate(&shard),
                user_id: "u1".to_owned(),
                role: None,
                data: Default::default(),
                device: Device::default(),
                created_at: now,
                last_seen_at: now,
                expires_at: Timestamp::from_millis(61_000),
                absolute_expires_at: Timestamp::from_millis(121_000),
                idle_ttl_ms: 60_000,
                mode: sessiond_engine::Mode::Opaque,
            },
            token: SessionToken::generate(&shard).digest(),
            refresh: None,
            max_sessions: 2,
            limit_policy: LimitPolicy::EvictOldest,
        }
    }

    fn metered(fake: FakeStore) -> MeteredStore {
        MeteredStore::new(Arc::new(fake))
    }

    const NOW: Timestamp = Timestamp::from_millis(2_000);

    #[tokio::test]
    async fn counts_creations_evictions_and_revocations() {
        let store = metered(FakeStore {
            evict: ids(2),
            removed: ids(3),
            fail: None,
        });
        let evicted = store.create(&new_session(), NOW).await.unwrap();
        assert_eq!(evicted.len(), 2);
        let id = &ids(1)[0];
        assert!(store.revoke(id, &RevokeReason::Logout, NOW).await.unwrap());
        let reason = RevokeReason::parse("password_changed").unwrap();
        assert_eq!(
            store
                .revoke_user("u1", None, &reason, NOW)
                .await
                .unwrap()
                .len(),
            3
        );
        store.get(id, NOW).await.unwrap();

        let counts = store.counts();
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

    #[tokio::test]
    async fn nothing_removed_counts_nothing() {
        let store = metered(FakeStore::default());
        let id = &ids(1)[0];
        assert!(!store.revoke(id, &RevokeReason::Logout, NOW).await.unwrap());
        assert!(
            store
                .revoke_user("u1", None, &RevokeReason::RevokedByAdmin, NOW)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.counts(), StatsSnapshot::default());
    }

    #[tokio::test]
    async fn only_unavailable_and_corrupt_are_store_errors() {
        for (fail, counted) in [
            (StoreError::Unavailable("down".into()), true),
            (StoreError::Corrupt("bad".into()), true),
            (StoreError::LimitReached { max: 2 }, false),
            (StoreError::DataTooLarge { size: 9, max: 1 }, false),
        ] {
            let store = metered(FakeStore {
                fail: Some(fail.clone()),
                ..FakeStore::default()
            });
            assert_eq!(store.create(&new_session(), NOW).await, Err(fail.clone()));
            assert_eq!(store.ping().await, Err(fail));
            let counts = store.counts();
            assert_eq!(counts.store_errors, if counted { 2 } else { 0 });
            assert_eq!(counts.created, 0);
        }
    }

    #[tokio::test]
    async fn custom_reasons_are_bounded() {
        let store = metered(FakeStore {
            removed: ids(1),
            ..FakeStore::default()
        });
        let id = &ids(1)[0];
        for i in 0..MAX_CUSTOM_REASONS + 10 {
            let reason = RevokeReason::parse(&format!("app_reason_{i}")).unwrap();
            store.revoke(id, &reason, NOW).await.unwrap();
        }
        // A reason already labelled keeps its label; a known one always does.
        let first = RevokeReason::parse("app_reason_0").unwrap();
        store.revoke(id, &first, NOW).await.unwrap();
        store.revoke(id, &RevokeReason::Expired, NOW).await.unwrap();
        // Built without parsing: not a safe label.
        let junk = RevokeReason::Other("has space\n".to_owned());
        store.revoke(id, &junk, NOW).await.unwrap();

        let revoked = store.counts().revoked_by_reason;
        assert_eq!(revoked.len(), MAX_CUSTOM_REASONS + 2);
        assert_eq!(revoked["other"], 11);
        assert_eq!(revoked["app_reason_0"], 2);
        assert_eq!(revoked["expired"], 1);
        assert!(!revoked.contains_key("app_reason_40"));
    }

    #[tokio::test]
    async fn render_shows_metric_names_after_use() {
        let metrics = Metrics::install().unwrap();
        // A second install returns the same recorder.
        let again = Metrics::install().unwrap();

        let store = metered(FakeStore {
            evict: ids(1),
            removed: ids(1),
            fail: None,
        });
        store.create(&new_session(), NOW).await.unwrap();
        store
            .revoke(&ids(1)[0], &RevokeReason::Logout, NOW)
            .await
            .unwrap();
        let failing = metered(FakeStore {
            fail: Some(StoreError::Unavailable("down".into())),
            ..FakeStore::default()
        });
        failing.ping().await.unwrap_err();

        let app = axum::Router::new()
            .route("/v1/sessions/{id}", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(track));
        let req = axum::http::Request::get("/v1/sessions/abc")
            .body(axum::body::Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(app, req).await.unwrap();

        let text = metrics.render();
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
        assert!(again.render().contains(SESSIONS_CREATED));
    }

    #[test]
    fn unusual_methods_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
