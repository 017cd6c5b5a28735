//! History on the embedded store, driven through the engine on a manual
//! clock: every lifecycle change records its event with its reason in the
//! change's own transaction, data updates and touches record nothing,
//! paging by cursor sees every event once, and events past the retention
//! are left out and pruned. Run bare and behind both decorators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    CacheOptions, CachedStore, Clock, CreateRequest, DataUpdate, Engine, Error, HistoryEvent,
    HistoryKind, LimitPolicy, ManualClock, Policy, RevokeReason, RolePolicy, SessionId, Store,
};

const MIN: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(10);
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// How the store is reached: as it is, or behind a decorator.
#[derive(Clone, Copy, Debug)]
enum Wrapping {
    Bare,
    Cached,
    Observed,
}

struct World {
    dir: tempfile::TempDir,
    store: EmbeddedStore,
    engine: Engine,
    clock: ManualClock,
}

async fn world(wrapping: Wrapping, options: EmbeddedOptions, limit_policy: LimitPolicy) -> World {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            clock: Arc::new(clock.clone()),
            sweep_interval: Duration::ZERO,
            ..options
        },
    )
    .await
    .unwrap();
    let outer: Arc<dyn Store> = match wrapping {
        Wrapping::Bare => Arc::new(store.clone()),
        Wrapping::Cached => Arc::new(CachedStore::new(store.clone(), CacheOptions::default())),
        Wrapping::Observed => Arc::new(sessiond_testkit::counting(Arc::new(store.clone()))),
    };
    let policy = Policy {
        default_role: RolePolicy {
            max_sessions: 2,
            ..RolePolicy::default()
        },
        limit_policy,
        store_timeout: Duration::from_secs(60),
        ..Policy::default()
    };
    let engine = Engine::with_clock(outer, policy, Arc::new(clock.clone()));
    World {
        dir,
        store,
        engine,
        clock,
    }
}

fn login(user: &str) -> CreateRequest {
    CreateRequest {
        user_id: user.into(),
        user_agent: Some(CHROME.into()),
        ip: Some("203.0.113.7".into()),
        ..CreateRequest::default()
    }
}

/// Every event of `user`, newest first, read `page` at a time through the
/// cursor; each page but the last is full.
async fn all_pages(e: &Engine, user: &str, page: u32) -> Vec<HistoryEvent> {
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

fn summary(events: &[HistoryEvent]) -> Vec<(HistoryKind, Option<&str>, &SessionId)> {
    events
        .iter()
        .map(|e| (e.kind, e.reason.as_deref(), &e.session_id))
        .collect()
}

async fn every_change_is_recorded_with_its_reason(wrapping: Wrapping) {
    let w = world(
        wrapping,
        EmbeddedOptions::default(),
        LimitPolicy::EvictOldest,
    )
    .await;
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
    assert_eq!(w.store.sweep_now().await.unwrap(), 1);
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

async fn bad_limits_cursors_and_users_are_typed_errors(wrapping: Wrapping) {
    let w = world(
        wrapping,
        EmbeddedOptions::default(),
        LimitPolicy::EvictOldest,
    )
    .await;
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

async fn a_failed_change_records_nothing(wrapping: Wrapping) {
    let w = world(wrapping, EmbeddedOptions::default(), LimitPolicy::Reject).await;
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

macro_rules! wrapped {
    ($($case:ident),* $(,)?) => {
        mod bare {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Wrapping::Bare).await;
                }
            )*
        }
        mod cached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Wrapping::Cached).await;
                }
            )*
        }
        mod observed {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Wrapping::Observed).await;
                }
            )*
        }
    };
}

wrapped!(
    every_change_is_recorded_with_its_reason,
    bad_limits_cursors_and_users_are_typed_errors,
    a_failed_change_records_nothing,
);

/// Rows in the history table, whatever their age.
fn stored_events(dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("sessions.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_retention_are_left_out_then_pruned() {
    let options = EmbeddedOptions {
        history_retention: 60 * MIN,
        ..EmbeddedOptions::default()
    };
    let w = world(Wrapping::Bare, options, LimitPolicy::EvictOldest).await;
    let e = &w.engine;
    let old = e.create(login("alice")).await.unwrap().session;
    e.revoke(old.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    w.clock.advance(45 * MIN);
    let recent = e.create(login("alice")).await.unwrap().session;
    assert_eq!(
        e.history("alice", None, None).await.unwrap().events.len(),
        3
    );

    w.clock.advance(30 * MIN);
    let events = e.history("alice", None, None).await.unwrap().events;
    assert_eq!(
        summary(&events),
        vec![(HistoryKind::Created, None, &recent.id)]
    );
    assert_eq!(
        stored_events(w.dir.path()),
        3,
        "left out before it is pruned"
    );
    assert_eq!(w.store.prune_history_now().await.unwrap(), 2);
    assert_eq!(w.store.prune_history_now().await.unwrap(), 0);
    assert_eq!(stored_events(w.dir.path()), 1);
    assert_eq!(e.history("alice", None, None).await.unwrap().events, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweep_prunes_by_the_store_clock() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            clock: Arc::new(clock.clone()),
            sweep_interval: Duration::from_millis(20),
            history_retention: 60 * MIN,
            ..EmbeddedOptions::default()
        },
    )
    .await
    .unwrap();
    let e = Engine::with_clock(
        Arc::new(store.clone()),
        Policy::default(),
        Arc::new(clock.clone()),
    );
    for _ in 0..5 {
        let day = CreateRequest {
            idle_ttl: Some(24 * 60 * MIN),
            ..login("alice")
        };
        e.create(day).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stored_events(dir.path()), 5, "nothing is old yet");
    // The sessions outlive the retention: only their events age out.
    clock.advance(61 * MIN);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored_events(dir.path()) != 0 {
        assert!(std::time::Instant::now() < deadline, "not pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.count_user("alice").await.unwrap(), 5);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_survives_a_restart() {
    let w = world(
        Wrapping::Bare,
        EmbeddedOptions::default(),
        LimitPolicy::EvictOldest,
    )
    .await;
    let s = w.engine.create(login("alice")).await.unwrap().session;
    w.engine
        .revoke(s.id.as_str(), RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    let before = w.engine.history("alice", None, None).await.unwrap();
    w.store.close().await;
    let store = EmbeddedStore::open(w.dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    let again = store
        .history("alice", 10, None, w.clock.now())
        .await
        .unwrap();
    assert_eq!(again, before.events);
    // New events continue the sequence.
    let e = Engine::new(Arc::new(store.clone()), Policy::default());
    e.create(login("alice")).await.unwrap();
    let now = e.history("alice", None, None).await.unwrap().events;
    assert_eq!(now.len(), 3);
    assert!(now[0].seq > before.events[0].seq);
    store.close().await;
}
