//! History, the event feed and presence on the embedded store: the shared
//! history, event and presence cases (`sessiond_testkit::history_cases`,
//! `event_cases`, `presence_cases`) bare
//! and behind both decorators, then what is the embedded store's own: events
//! past the retentions left out and pruned (on demand and by the background
//! sweep), a cursor from before them refused, and both kept across a
//! restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    CacheOptions, CachedStore, Clock, CreateRequest, DataUpdate, Engine, Error, EventKind,
    EventRetention, EventsFrom, HistoryKind, LimitPolicy, ManualClock, Policy, RevokeReason,
    RolePolicy, Store,
};
use sessiond_testkit::event_cases::{drain, now_cursor, query};
use sessiond_testkit::history_cases::{HistoryWorld, login, summary};

const MIN: Duration = Duration::from_secs(60);

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

async fn open(
    dir: &std::path::Path,
    clock: &ManualClock,
    options: EmbeddedOptions,
) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        EmbeddedOptions {
            clock: Arc::new(clock.clone()),
            sweep_interval: Duration::ZERO,
            ..options
        },
    )
    .await
    .unwrap()
}

fn wrap(store: &EmbeddedStore, wrapping: Wrapping) -> Arc<dyn Store> {
    match wrapping {
        Wrapping::Bare => Arc::new(store.clone()),
        Wrapping::Cached => Arc::new(CachedStore::new(store.clone(), CacheOptions::default())),
        Wrapping::Observed => Arc::new(sessiond_testkit::counting(Arc::new(store.clone()))),
    }
}

async fn history_world(
    wrapping: Wrapping,
    clock: ManualClock,
    limit_policy: LimitPolicy,
) -> HistoryWorld {
    let dir = tempfile::TempDir::new().unwrap();
    let store = open(dir.path(), &clock, EmbeddedOptions::default()).await;
    let sweeper = store.clone();
    let sweep: sessiond_testkit::history_cases::Sweep = Box::new(move || {
        let store = sweeper.clone();
        Box::pin(async move { store.sweep_now().await.unwrap() })
    });
    HistoryWorld::new(wrap(&store, wrapping), clock, limit_policy, sweep, dir)
}

async fn bare(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    history_world(Wrapping::Bare, clock, limit_policy).await
}

async fn cached(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    history_world(Wrapping::Cached, clock, limit_policy).await
}

async fn observed(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    history_world(Wrapping::Observed, clock, limit_policy).await
}

mod bare {
    sessiond_testkit::history_tests!(super::bare);
    sessiond_testkit::event_tests!(super::bare);
    sessiond_testkit::presence_tests!(super::bare);
}

mod cached {
    sessiond_testkit::history_tests!(super::cached);
    sessiond_testkit::event_tests!(super::cached);
    sessiond_testkit::presence_tests!(super::cached);
}

mod observed {
    sessiond_testkit::history_tests!(super::observed);
    sessiond_testkit::event_tests!(super::observed);
    sessiond_testkit::presence_tests!(super::observed);
}

async fn world(wrapping: Wrapping, options: EmbeddedOptions, limit_policy: LimitPolicy) -> World {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = open(dir.path(), &clock, options).await;
    let policy = Policy {
        default_role: RolePolicy {
            max_sessions: 2,
            ..RolePolicy::default()
        },
        limit_policy,
        store_timeout: Duration::from_secs(60),
        ..Policy::default()
    };
    let engine = Engine::with_clock(wrap(&store, wrapping), policy, Arc::new(clock.clone()));
    World {
        dir,
        store,
        engine,
        clock,
    }
}

/// Rows in the history table, whatever their age.
fn stored_events(dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("sessions.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_feed_retention_leave_it_and_a_cursor_before_them_is_refused() {
    let options = EmbeddedOptions {
        event_retention: EventRetention {
            max_age: 10 * MIN,
            ..EventRetention::default()
        },
        ..EmbeddedOptions::default()
    };
    let w = world(Wrapping::Bare, options, LimitPolicy::EvictOldest).await;
    let e = &w.engine;
    let start = now_cursor(e).await;
    let old = e.create(login("alice")).await.unwrap().session;
    e.update_data(old.id.as_str(), DataUpdate::Merge(serde_json::Map::new()))
        .await
        .unwrap();
    let seen = drain(e, &query(EventsFrom::Oldest, 10), start.clone()).await;
    assert_eq!(seen.len(), 2);
    w.clock.advance(11 * MIN);
    let recent = e.create(login("alice")).await.unwrap().session;
    // Not retired yet: everything is still there.
    assert_eq!(
        drain(e, &query(EventsFrom::Oldest, 10), start.clone())
            .await
            .len(),
        3
    );
    w.store.prune_history_now().await.unwrap();

    // Resuming from before the retired events would skip them: refused.
    for from in [start.clone(), seen[0].cursor.clone()] {
        match e.events(&query(EventsFrom::After(from), 10)).await {
            Err(Error::CursorExpired(detail)) => assert!(detail.contains("retention"), "{detail}"),
            other => panic!("expected CursorExpired, got {other:?}"),
        }
    }
    // From the last retired one, nothing was missed.
    let rest = drain(e, &query(EventsFrom::Oldest, 10), seen[1].cursor.clone()).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(
        (rest[0].kind, &rest[0].session_id),
        (EventKind::Created, &recent.id)
    );
    let oldest = e.events(&query(EventsFrom::Oldest, 10)).await.unwrap();
    assert_eq!(oldest.events, rest);
    // The data update is gone from the table; the lifecycle event stays in
    // the history until the history's own retention.
    assert_eq!(stored_events(w.dir.path()), 2);
    assert_eq!(
        e.history("alice", None, None).await.unwrap().events.len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_keeps_at_most_its_count() {
    let options = EmbeddedOptions {
        event_retention: EventRetention {
            max_events: 5,
            ..EventRetention::default()
        },
        ..EmbeddedOptions::default()
    };
    let w = world(Wrapping::Bare, options, LimitPolicy::EvictOldest).await;
    let e = &w.engine;
    let start = now_cursor(e).await;
    for i in 0..8 {
        e.create(login(&format!("user{i}"))).await.unwrap();
    }
    let all = drain(e, &query(EventsFrom::Oldest, 100), start.clone()).await;
    w.store.prune_history_now().await.unwrap();
    let kept = e
        .events(&query(EventsFrom::Oldest, 100))
        .await
        .unwrap()
        .events;
    assert_eq!(kept, all[3..]);
    assert!(matches!(
        e.events(&query(EventsFrom::After(all[1].cursor.clone()), 10))
            .await,
        Err(Error::CursorExpired(_))
    ));
    assert_eq!(
        drain(e, &query(EventsFrom::Oldest, 100), all[2].cursor.clone()).await,
        all[3..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_resumes_across_a_restart() {
    let w = world(
        Wrapping::Bare,
        EmbeddedOptions::default(),
        LimitPolicy::EvictOldest,
    )
    .await;
    let start = now_cursor(&w.engine).await;
    let s = w.engine.create(login("alice")).await.unwrap().session;
    let before = drain(&w.engine, &query(EventsFrom::Oldest, 10), start).await;
    w.store.close().await;
    let store = EmbeddedStore::open(w.dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    let e = Engine::new(Arc::new(store.clone()), Policy::default());
    e.revoke(s.id.as_str(), RevokeReason::Logout).await.unwrap();
    let after = drain(&e, &query(EventsFrom::Oldest, 10), before[0].cursor.clone()).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].reason.as_deref(), Some("logout"));
    store.close().await;
}
