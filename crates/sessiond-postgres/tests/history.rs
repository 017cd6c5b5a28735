//! History on PostgreSQL: the shared history cases
//! (`sessiond_testkit::history_cases`) bare and behind the near-cache, then
//! what is this store's own: events past the retention left out, then
//! pruned in batches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sessiond_engine::{
    CacheOptions, CachedStore, Clock, Engine, HistoryKind, LimitPolicy, ManualClock, Policy,
    RevokeReason, Store,
};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::history_cases::{HistoryWorld, Sweep, login, summary};
use sessiond_testkit::postgres_server::PostgresServer;
use sessiond_testkit::{Shared, wait_serving};

static SERVER: Shared<PostgresServer> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

/// A fresh schema on the shared server.
async fn schema() -> (Arc<PostgresServer>, String) {
    let server = tokio::task::spawn_blocking(|| SERVER.get(PostgresServer::start))
        .await
        .unwrap();
    (
        server,
        format!("history{}", CASE.fetch_add(1, Ordering::Relaxed)),
    )
}

async fn open(
    server: &PostgresServer,
    schema: &str,
    clock: &ManualClock,
    retention: Duration,
) -> PostgresStore {
    let options = PostgresOptions {
        schema: schema.to_owned(),
        clock: Arc::new(clock.clone()),
        sweep_interval: Duration::ZERO,
        history_retention: retention,
        ..PostgresOptions::default()
    };
    PostgresStore::connect(&server.url(), options)
        .await
        .unwrap()
}

async fn world(cached: bool, clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    let (server, schema) = schema().await;
    let retention = sessiond_engine::history::DEFAULT_RETENTION;
    let store = Arc::new(open(&server, &schema, &clock, retention).await);
    let (sweeper, sweep_clock) = (store.clone(), clock.clone());
    let sweep: Sweep = Box::new(move || {
        let (store, clock) = (sweeper.clone(), sweep_clock.clone());
        Box::pin(async move { store.sweep(&clock).await.unwrap() })
    });
    let outer: Arc<dyn Store> = if cached {
        // The cache owns a store of its own on the same schema.
        let cached = CachedStore::new(
            open(&server, &schema, &clock, retention).await,
            CacheOptions::default(),
        );
        wait_serving(cached.cache()).await;
        Arc::new(cached)
    } else {
        store
    };
    HistoryWorld::new(outer, clock, limit_policy, sweep, server)
}

async fn bare(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    world(false, clock, limit_policy).await
}

async fn cached(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    world(true, clock, limit_policy).await
}

mod bare {
    sessiond_testkit::history_tests!(super::bare);
}

mod cached {
    sessiond_testkit::history_tests!(super::cached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_retention_are_left_out_then_pruned() {
    const MIN: Duration = Duration::from_secs(60);
    let (server, schema) = schema().await;
    let clock = ManualClock::new();
    let store = Arc::new(open(&server, &schema, &clock, 60 * MIN).await);
    let e = Engine::with_clock(store.clone(), Policy::default(), Arc::new(clock.clone()));
    let old = e.create(login("alice")).await.unwrap().session;
    e.revoke(old.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    clock.advance(45 * MIN);
    let recent = e.create(login("alice")).await.unwrap().session;
    assert_eq!(
        e.history("alice", None, None).await.unwrap().events.len(),
        3
    );

    clock.advance(30 * MIN);
    let events = e.history("alice", None, None).await.unwrap().events;
    assert_eq!(
        summary(&events),
        vec![(HistoryKind::Created, None, &recent.id)]
    );
    let stored = || {
        server
            .sql(&format!("SELECT count(*) FROM {schema}.events"))
            .unwrap()
    };
    assert_eq!(stored(), "3", "left out before it is pruned");
    assert_eq!(store.prune_history(&clock).await.unwrap(), 2);
    assert_eq!(store.prune_history(&clock).await.unwrap(), 0);
    assert_eq!(stored(), "1");
    assert_eq!(e.history("alice", None, None).await.unwrap().events, events);
    assert!(clock.now() > recent.created_at);
}
