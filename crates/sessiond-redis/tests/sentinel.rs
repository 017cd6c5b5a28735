//! The store conformance suite on a real local Sentinel setup (a master, a
//! replica, three sentinels), every case under its own key prefix, sharing
//! one setup; and a failover (`SENTINEL FAILOVER`) under a running load: the
//! store answers "unavailable" quickly while the master changes, never
//! hangs, and follows the new master by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sessiond_engine::{
    CacheOptions, CachedStore, CreateRequest, Engine, Error, Policy, RevokeReason, Store,
};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_sentinel::RedisSentinel;
use sessiond_testkit::{Fixture, ManualClock};
use sessiond_testkit::{Shared, wait_serving};

/// Shared by the cases while any of them runs.
static SETUP: Shared<RedisSentinel> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_setup() -> Arc<RedisSentinel> {
    SETUP.get(RedisSentinel::start)
}

fn options() -> RedisOptions {
    RedisOptions {
        key_prefix: format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed)),
        timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    }
}

async fn fixture(_clock: ManualClock) -> Fixture {
    let setup = tokio::task::spawn_blocking(shared_setup).await.unwrap();
    let store = RedisStore::connect(&setup.url(), options()).await.unwrap();
    Fixture::new(Arc::new(store), setup)
}

/// The store behind its near-cache, the channel up before the case starts.
async fn cached_fixture(_clock: ManualClock) -> Fixture {
    let setup = tokio::task::spawn_blocking(shared_setup).await.unwrap();
    let store = RedisStore::connect(&setup.url(), options()).await.unwrap();
    let cached = CachedStore::new(store, CacheOptions::default());
    wait_serving(cached.cache()).await;
    Fixture::new(Arc::new(cached), setup)
}

mod conformance {
    sessiond_testkit::conformance_tests!(super::fixture);
}

mod cached {
    sessiond_testkit::conformance_tests!(super::cached_fixture);
}

/// The near-cache behind Sentinel: it serves from memory, and after a
/// failover its channel follows the new master, so a revocation made there
/// by another instance is seen (within the sentinel check interval) and
/// never undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_follows_a_failover() {
    let setup = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let shared = options();
    let a = CachedStore::new(
        RedisStore::connect(&setup.url(), shared.clone())
            .await
            .unwrap(),
        CacheOptions::default(),
    );
    wait_serving(a.cache()).await;
    let a = Arc::new(a);
    let engine_a = Engine::new(a.clone() as Arc<dyn Store>, Policy::default());
    let b = RedisStore::connect(&setup.url(), shared).await.unwrap();
    let engine_b = Engine::new(Arc::new(b) as Arc<dyn Store>, Policy::default());
    let created = engine_a
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let token = created.token.expose().to_owned();
    // Answered from memory before the failover.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = a.cache().stats().hits;
        assert!(engine_a.introspect(&token, false).await.unwrap().is_some());
        if a.cache().stats().hits > hits {
            break;
        }
        assert!(Instant::now() < deadline, "never answered from memory");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (setup, new) = tokio::task::spawn_blocking(move || {
        let new = setup.failover();
        (setup, new)
    })
    .await
    .unwrap();
    // Both instances follow the new master (writes before that may go to
    // the old one, as with any client in Sentinel's failover window).
    let size = |port: u16| -> u64 {
        setup
            .command(port, "DBSIZE")
            .unwrap()
            .trim()
            .trim_start_matches("(integer) ")
            .parse()
            .unwrap()
    };
    for engine in [&engine_a, &engine_b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let before = size(new);
            let written = engine
                .create(CreateRequest {
                    user_id: "marker".into(),
                    ..CreateRequest::default()
                })
                .await;
            if written.is_ok() && size(new) > before {
                break;
            }
            assert!(Instant::now() < deadline, "never followed the new master");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    engine_b
        .revoke(created.session.id.as_str(), RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    let revoked = Instant::now();
    loop {
        match engine_a.introspect(&token, false).await {
            Ok(None) => break,
            Ok(Some(_)) | Err(Error::Unavailable(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "A still reports the revoked session active"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "A saw the revocation {:?} after it was made",
        revoked.elapsed()
    );
    for _ in 0..50 {
        assert!(
            !matches!(engine_a.introspect(&token, false).await, Ok(Some(_))),
            "the revoked session came back"
        );
    }
    // And A's cache serves again, from the new master.
    let fresh = engine_a
        .create(CreateRequest {
            user_id: "bob".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hits = a.cache().stats().hits;
        assert!(
            engine_a
                .introspect(fresh.token.expose(), false)
                .await
                .unwrap()
                .is_some()
        );
        if a.cache().stats().hits > hits {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(setup);
}

/// Its own setup: a failover must not disturb the conformance cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_load_is_followed_without_a_restart() {
    let setup = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let store = RedisStore::connect(&setup.url(), options()).await.unwrap();
    let engine = Engine::new(Arc::new(store) as Arc<dyn Store>, Policy::default());
    let mut tokens = Vec::new();
    for i in 0..20 {
        let created = engine
            .create(CreateRequest {
                user_id: format!("user{i}"),
                ..CreateRequest::default()
            })
            .await
            .unwrap();
        tokens.push(created.token);
    }
    // Let the writes reach the replica before the switch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = setup.master_port();
    let switch = tokio::task::spawn_blocking(move || {
        let new = setup.failover();
        (setup, new)
    });
    let started = Instant::now();
    let mut failures = 0;
    let mut slowest = Duration::ZERO;
    // Load through the switch: every call answers within the store timeout
    // (plus scheduling), live or unavailable, never wrong.
    while !switch.is_finished() || started.elapsed() < Duration::from_secs(2) {
        for token in &tokens {
            let asked = Instant::now();
            match engine.introspect(token.expose(), true).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a live session reported inactive during the failover"),
                Err(Error::Unavailable(_)) => failures += 1,
                Err(other) => panic!("unexpected error {other:?}"),
            }
            slowest = slowest.max(asked.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no end to the failover"
        );
    }
    let (setup, new) = switch.await.unwrap();
    assert_ne!(new, old);
    assert!(slowest < Duration::from_secs(2), "a call took {slowest:?}");
    // The same store writes to the new master within moments (the old one
    // still takes writes until the sentinels demote it, seconds later).
    let size = |port: u16| -> u64 {
        setup
            .command(port, "DBSIZE")
            .unwrap()
            .trim()
            .trim_start_matches("(integer) ")
            .parse()
            .unwrap()
    };
    let followed = Instant::now();
    loop {
        let before = size(new);
        let created = engine
            .create(CreateRequest {
                user_id: "after".into(),
                ..CreateRequest::default()
            })
            .await;
        if let Ok(created) = created
            && size(new) > before
        {
            assert!(
                engine
                    .introspect(created.token.expose(), true)
                    .await
                    .unwrap()
                    .is_some()
            );
            break;
        }
        assert!(
            followed.elapsed() < Duration::from_secs(5),
            "writes did not reach the new master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "writes reached the new master {:?} after the failover",
        followed.elapsed()
    );
    for token in &tokens {
        assert!(
            engine
                .introspect(token.expose(), true)
                .await
                .unwrap()
                .is_some()
        );
    }
    println!("{failures} unavailable answers during the failover; slowest call {slowest:?}");
    drop(setup);
}
