//! History on the embedded store: the shared history cases
//! (`sessiond_testkit::history_cases`) bare and behind both decorators, then
//! what is the embedded store's own: events past the retention left out and
//! pruned (on demand and by the background sweep), and kept across a
//! restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    CacheOptions, CachedStore, Clock, CreateRequest, Engine, HistoryKind, LimitPolicy, ManualClock,
    Policy, RevokeReason, RolePolicy, Store,
};
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
}

mod cached {
    sessiond_testkit::history_tests!(super::cached);
}

mod observed {
    sessiond_testkit::history_tests!(super::observed);
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
