//! The event feed and presence on Redis: the shared event and presence
//! cases (`sessiond_testkit::event_cases`, `presence_cases`) on a private
//! redis-server, bare and behind the near-cache, then what is Redis's own:
//! events retired by age and by count, with a cursor from before them
//! refused, and a reader stopped in the middle of 10,000 events resuming
//! with each once (`common::feed_cases`, which the Cluster runs too).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sessiond_engine::{
    CacheOptions, CachedStore, Clock, Engine, Error, EventRetention, EventsFrom, LimitPolicy,
    ManualClock, Policy, Store,
};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::event_cases::{now_cursor, query};
use sessiond_testkit::history_cases::{HistoryWorld, Sweep, login};
use sessiond_testkit::redis_server::RedisServer;
use sessiond_testkit::{Shared, wait_serving};

/// Shared by the cases while any of them runs.
static SERVER: Shared<RedisServer> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

async fn server() -> Arc<RedisServer> {
    tokio::task::spawn_blocking(|| SERVER.get(RedisServer::start))
        .await
        .unwrap()
}

fn options(prefix: &str, retention: EventRetention) -> RedisOptions {
    RedisOptions {
        key_prefix: prefix.to_owned(),
        event_retention: retention,
        sweep_interval: Duration::ZERO,
        ..RedisOptions::default()
    }
}

async fn world(cached: bool, clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    let server = server().await;
    let prefix = format!("ev{}:", CASE.fetch_add(1, Ordering::Relaxed));
    let opts = options(&prefix, EventRetention::default());
    let store = RedisStore::connect(&server.url(), opts.clone())
        .await
        .unwrap();
    let (sweeper, sweep_clock) = (store.clone(), clock.clone());
    let sweep: Sweep = Box::new(move || {
        let (store, clock) = (sweeper.clone(), sweep_clock.clone());
        Box::pin(async move { store.sweep(clock.now()).await.unwrap() })
    });
    let outer: Arc<dyn Store> = if cached {
        let cached = CachedStore::new(
            RedisStore::connect(&server.url(), opts).await.unwrap(),
            CacheOptions::default(),
        );
        wait_serving(cached.cache()).await;
        Arc::new(cached)
    } else {
        Arc::new(store)
    };
    HistoryWorld::new(outer, clock, limit_policy, sweep, server)
}

async fn bare(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    world(false, clock, limit_policy).await
}

async fn cached(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    world(true, clock, limit_policy).await
}

mod bare_store {
    sessiond_testkit::event_tests!(super::bare);
    sessiond_testkit::presence_tests!(super::bare);
}

mod behind_the_near_cache {
    sessiond_testkit::event_tests!(super::cached);
    sessiond_testkit::presence_tests!(super::cached);
}

/// Past the size bound the oldest events leave, in feed order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_events_leave_past_the_size_bound_and_their_cursors_are_refused() {
    let server = server().await;
    common::feed_cases::the_oldest_leave_past_the_size_bound(&server.url(), "bound:").await;
}

/// A reader stopped in the middle of 10,000 events resumes from its last
/// cursor and gets each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_stopped_mid_stream_resumes_with_every_event_once() {
    let server = server().await;
    common::feed_cases::a_reader_stopped_mid_stream_resumes_with_every_event_once(
        &server.url(),
        "resume:",
    )
    .await;
}

/// Events older than the retention leave by age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_retention_leave() {
    let server = server().await;
    let retention = EventRetention {
        max_age: Duration::from_millis(300),
        ..EventRetention::default()
    };
    let store = RedisStore::connect(&server.url(), options("age:", retention))
        .await
        .unwrap();
    let e = Engine::new(Arc::new(store.clone()), Policy::default());
    let start = now_cursor(&e).await;
    for i in 0..10 {
        e.create(login(&format!("user{i}"))).await.unwrap();
    }
    assert_eq!(store.retire_events().await.unwrap(), 0, "all young");
    tokio::time::sleep(Duration::from_millis(400)).await;
    e.create(login("late")).await.unwrap();
    assert_eq!(store.retire_events().await.unwrap(), 10);
    let kept = e.events(&query(EventsFrom::Oldest, 100)).await.unwrap();
    assert_eq!(kept.events.len(), 1);
    assert_eq!(kept.events[0].user_id, "late");
    assert!(matches!(
        e.events(&query(EventsFrom::After(start), 10)).await,
        Err(Error::CursorExpired(_))
    ));
}
