//! The history cases: lifecycle events with their reasons, driven through
//! the engine on a manual clock, for every store that keeps history. A
//! store's test builds a [`HistoryWorld`] per case (its store, bare or
//! behind a decorator, and a way to run its expiry sweep) and calls
//! [`crate::history_tests!`].

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessiond_engine::{
    Aal, Clock, CreateRequest, DataUpdate, Engine, Error, HistoryEvent, HistoryKind, LimitPolicy,
    ManualClock, Policy, RevokeReason, RolePolicy, SessionId, Store,
};

const MIN: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(10);
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// Runs a store's expiry sweep now, by the world's clock; how many
/// sessions it removed.
pub type Sweep = Box<dyn Fn() -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync>;

/// One case's store, engine and clock.
pub struct HistoryWorld {
    /// The engine over the store, on `clock`, with a limit of 2 sessions
    /// per user.
    pub engine: Engine,
    /// The clock the engine and the store's sweep run on.
    pub clock: ManualClock,
    /// The store's expiry sweep.
    pub sweep: Sweep,
    _guard: Box<dyn Any + Send>,
}

impl HistoryWorld {
    /// An engine over `store` on `clock` (2 sessions per user, `limit_policy`
    /// at the limit), keeping `guard` alive for the case.
    pub fn new(
        store: Arc<dyn Store>,
        clock: ManualClock,
        limit_policy: LimitPolicy,
        sweep: Sweep,
        guard: impl Any + Send,
    ) -> Self {
        let policy = Policy {
            default_role: RolePolicy {
                max_sessions: 2,
                ..RolePolicy::default()
            },
            limit_policy,
            store_timeout: Duration::from_secs(60),
            ..Policy::default()
        };
        Self {
            engine: Engine::with_clock(store, policy, Arc::new(clock.clone())),
            clock,
            sweep,
            _guard: Box::new(guard),
        }
    }
}

/// A login from a desktop Chrome.
pub fn login(user: &str) -> CreateRequest {
    CreateRequest {
        user_id: user.into(),
        user_agent: Some(CHROME.into()),
        ip: Some("203.0.113.7".into()),
        ..CreateRequest::default()
    }
}

/// Every event of `user`, newest first, read `page` at a time through the
/// cursor; each page but the last is full.
pub async fn all_pages(e: &Engine, user: &str, page: u32) -> Vec<HistoryEvent> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let got = e
            .history(user, Some(page), cursor.as_deref())
            .await
            .unwrap();
        assert!(got.events.len() <= page as usize);
        events.extend(got.events.iter().cloned());
        match got.next_cursor {
            Some(next) => {
                assert_eq!(got.events.len(), page as usize, "only a full page goes on");
                cursor = Some(next);
            }
            None => return events,
        }
    }
}

/// Kind, reason and session of each event.
pub fn summary(events: &[HistoryEvent]) -> Vec<(HistoryKind, Option<&str>, &SessionId)> {
    events
        .iter()
        .map(|e| (e.kind, e.reason.as_deref(), &e.session_id))
        .collect()
}

/// Every lifecycle change records its event with its reason, oldest
/// first by `seq`; data updates, touches and extensions record nothing; an
/// expiry is dated by the deadline that passed; paging sees each event once.
/// `w` evicts the oldest at its limit of 2.
pub async fn every_change_is_recorded_with_its_reason(w: HistoryWorld) {
    let e = &w.engine;
    let t0 = w.clock.now();
    let s1 = e.create(login("alice")).await.unwrap().session;
    w.clock.advance(Duration::from_millis(5));
    let s2 = e.create(login("alice")).await.unwrap().session;
    e.create(login("bob")).await.unwrap();
    w.clock.advance(Duration::from_millis(5));
    // The limit is 2: s1, the oldest, makes room.
    let s3 = e.create(login("alice")).await.unwrap();
    assert_eq!(s3.evicted, vec![s1.id.clone()]);
    let s3 = s3.session;
    e.rotate(s2.id.as_str()).await.unwrap();
    e.revoke(
        s2.id.as_str(),
        RevokeReason::parse("password_changed").unwrap(),
    )
    .await
    .unwrap();
    // Gone already: nothing more to record.
    assert!(
        !e.revoke(s2.id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap()
    );

    // JWT mode: a rotation is recorded, a replay within the grace is not,
    // the retired token presented after it revokes.
    let jwt = e.create_jwt(login("alice")).await.unwrap();
    let j = jwt.session.id.clone();
    w.clock.advance(MIN);
    let r1 = e.refresh(jwt.refresh_token.expose(), GRACE).await.unwrap();
    assert!(r1.rotated);
    let replay = e.refresh(jwt.refresh_token.expose(), GRACE).await.unwrap();
    assert!(!replay.rotated);
    w.clock.advance(2 * GRACE);
    assert_eq!(
        e.refresh(jwt.refresh_token.expose(), GRACE)
            .await
            .unwrap_err(),
        Error::RefreshTokenReused
    );

    // Data, touches and extensions are not history.
    let s4 = e.create(login("alice")).await.unwrap();
    let s4_id = s4.session.id.clone();
    let serde_json::Value::Object(cart) = json!({"cart": [1, 2]}) else {
        unreachable!()
    };
    e.update_data(s4_id.as_str(), DataUpdate::Merge(cart))
        .await
        .unwrap();
    e.extend(s4_id.as_str(), Some(60 * MIN)).await.unwrap();
    // A step-up is: the method is its reason.
    e.authenticate(s4_id.as_str(), Aal::Aal2, "otp")
        .await
        .unwrap();
    w.clock.advance(5 * MIN);
    assert!(
        e.introspect(s4.token.expose(), true)
            .await
            .unwrap()
            .is_some()
    );

    // "Sign out my other devices", then a logout.
    let others = e
        .revoke_user(
            "alice",
            Some(s4_id.as_str()),
            RevokeReason::SignedOutOtherDevices,
        )
        .await
        .unwrap();
    assert_eq!(others, vec![s3.id.clone()]);
    e.revoke(s4_id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();

    // Expiry: one swept, one found dead by a revocation before any sweep.
    let short = CreateRequest {
        idle_ttl: Some(MIN),
        ..login("alice")
    };
    let swept = e.create(short.clone()).await.unwrap().session;
    w.clock.advance(2 * MIN);
    assert_eq!((w.sweep)().await, 1);
    let unswept = e.create(short).await.unwrap().session;
    w.clock.advance(2 * MIN);
    let revoked = e
        .revoke_user("alice", None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert!(revoked.is_empty(), "it was no longer live");

    let events = all_pages(e, "alice", 2).await;
    let expected = vec![
        (HistoryKind::Expired, Some("expired"), &unswept.id),
        (HistoryKind::Created, None, &unswept.id),
        (HistoryKind::Expired, Some("expired"), &swept.id),
        (HistoryKind::Created, None, &swept.id),
        (HistoryKind::Revoked, Some("logout"), &s4_id),
        (
            HistoryKind::Revoked,
            Some("signed_out_other_devices"),
            &s3.id,
        ),
        (HistoryKind::Authenticated, Some("otp"), &s4_id),
        (HistoryKind::Created, None, &s4_id),
        (HistoryKind::Revoked, Some("refresh_token_reuse"), &j),
        (HistoryKind::Refreshed, None, &j),
        (HistoryKind::Created, None, &j),
        (HistoryKind::Revoked, Some("password_changed"), &s2.id),
        (HistoryKind::Rotated, None, &s2.id),
        (HistoryKind::Created, None, &s3.id),
        (HistoryKind::Revoked, Some("evicted_max_sessions"), &s1.id),
        (HistoryKind::Created, None, &s2.id),
        (HistoryKind::Created, None, &s1.id),
    ];
    assert_eq!(summary(&events), expected);
    assert!(events.windows(2).all(|p| p[0].seq > p[1].seq));
    // One page holds the same events.
    let one = e.history("alice", None, None).await.unwrap();
    assert_eq!(one.events, events);
    assert_eq!(one.next_cursor, None);

    let first = events.last().unwrap();
    assert_eq!(first.at, t0);
    assert_eq!(first.user_id, "alice");
    assert_eq!(first.device_kind.as_deref(), Some("desktop"));
    assert_eq!(first.ip.as_deref(), Some("203.0.113.7"));
    // An expiry is dated by the deadline that passed, not by the sweep.
    assert_eq!(events[2].at, swept.expires_at);
    assert!(events.iter().all(|e| e.user_id == "alice"));

    // Other users' events are their own.
    let bob = e.history("bob", None, None).await.unwrap().events;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].kind, HistoryKind::Created);
    assert!(
        e.history("carol", None, None)
            .await
            .unwrap()
            .events
            .is_empty()
    );
}

/// Bad limits, cursors and user ids are typed errors.
pub async fn bad_limits_cursors_and_users_are_typed_errors(w: HistoryWorld) {
    let e = &w.engine;
    let invalid = |r: Result<_, Error>, field: &str| match r {
        Err(Error::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected Invalid({field}), got {other:?}"),
    };
    invalid(e.history("alice", Some(0), None).await, "limit");
    invalid(e.history("alice", Some(1001), None).await, "limit");
    invalid(e.history("alice", None, Some("")).await, "cursor");
    invalid(e.history("alice", None, Some("-3")).await, "cursor");
    invalid(e.history("alice", None, Some("abc")).await, "cursor");
    invalid(e.history("", None, None).await, "user_id");
    invalid(e.history("a\nb", None, None).await, "user_id");
    assert!(e.history("alice", Some(1000), Some("7")).await.is_ok());
}

/// A change that fails records nothing. `w` rejects at its limit of 2.
pub async fn a_failed_change_records_nothing(w: HistoryWorld) {
    let e = &w.engine;
    let s1 = e.create(login("alice")).await.unwrap().session;
    e.create(login("alice")).await.unwrap();
    assert_eq!(
        e.create(login("alice")).await.unwrap_err(),
        Error::LimitReached { max: 2 }
    );
    let unknown = SessionId::generate(&sessiond_engine::ShardTag::of_user("alice"));
    assert_eq!(
        e.rotate(unknown.as_str()).await.unwrap_err(),
        Error::NotFound
    );
    assert!(
        !e.revoke(unknown.as_str(), RevokeReason::Logout)
            .await
            .unwrap()
    );
    assert!(e.get(s1.id.as_str()).await.is_ok());
    let events = e.history("alice", None, None).await.unwrap().events;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.kind == HistoryKind::Created));
}

/// One `#[tokio::test]` per history case; `$factory` is an
/// `async fn(ManualClock, LimitPolicy) -> HistoryWorld`.
#[macro_export]
macro_rules! history_tests {
    ($factory:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_change_is_recorded_with_its_reason() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::history_cases::every_change_is_recorded_with_its_reason(world).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn bad_limits_cursors_and_users_are_typed_errors() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::history_cases::bad_limits_cursors_and_users_are_typed_errors(world).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_failed_change_records_nothing() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::Reject,
            )
            .await;
            $crate::history_cases::a_failed_change_records_nothing(world).await;
        }
    };
}
