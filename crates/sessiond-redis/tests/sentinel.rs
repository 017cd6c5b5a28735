//! The store conformance suite on a real local Sentinel setup (a master, a
//! replica, three sentinels), every case under its own key prefix, sharing
//! one setup; and a failover (`SENTINEL FAILOVER`) under a running load: the
//! store answers "unavailable" quickly while the master changes, never
//! hangs, and follows the new master by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sessiond_engine::{CreateRequest, Engine, Error, Policy, Store};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_sentinel::RedisSentinel;
use sessiond_testkit::{Fixture, ManualClock};

static SETUP: Mutex<Weak<RedisSentinel>> = Mutex::new(Weak::new());
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_setup() -> Arc<RedisSentinel> {
    let mut slot = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(setup) = slot.upgrade() {
        return setup;
    }
    let setup = Arc::new(RedisSentinel::start());
    *slot = Arc::downgrade(&setup);
    setup
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

mod conformance {
    sessiond_testkit::conformance_tests!(super::fixture);
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
