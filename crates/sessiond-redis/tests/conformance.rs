//! The store conformance suite against a private redis-server: cases share one
//! server while any of them runs, each under its own key prefix. Run twice:
//! the store as it is, and behind its near-cache (channel up before the case
//! starts), which must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sessiond_engine::{CacheOptions, CachedStore};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_server::RedisServer;
use sessiond_testkit::{Fixture, ManualClock};

/// The running server, if some case holds it. A static would never be dropped
/// (and would leave the process behind), so cases share it by `Arc` and the
/// last one out stops it.
static SERVER: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_server() -> Arc<RedisServer> {
    let mut slot = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(RedisServer::start());
    *slot = Arc::downgrade(&server);
    server
}

async fn store() -> (RedisStore, Arc<RedisServer>) {
    let server = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let options = RedisOptions {
        key_prefix: format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed)),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    (store, server)
}

async fn fixture(_clock: ManualClock) -> Fixture {
    let (store, server) = store().await;
    Fixture::new(Arc::new(store), server)
}

async fn cached_fixture(_clock: ManualClock) -> Fixture {
    let (store, server) = store().await;
    let cached = CachedStore::new(store, CacheOptions::default());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cached.cache().serving() {
        assert!(
            Instant::now() < deadline,
            "the invalidation channel never came up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Fixture::new(Arc::new(cached), server)
}

mod bare {
    sessiond_testkit::conformance_tests!(super::fixture);
}

mod cached {
    sessiond_testkit::conformance_tests!(super::cached_fixture);
}
