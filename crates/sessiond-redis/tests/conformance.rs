//! The store conformance suite against a private redis-server: cases share one
//! server while any of them runs, each under its own key prefix. Run twice:
//! the store as it is, and behind its near-cache (channel up before the case
//! starts), which must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sessiond_engine::{CacheOptions, CachedStore};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_server::RedisServer;
use sessiond_testkit::{Fixture, ManualClock};
use sessiond_testkit::{Shared, wait_serving};

/// Shared by the cases while any of them runs.
static SERVER: Shared<RedisServer> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_server() -> Arc<RedisServer> {
    SERVER.get(RedisServer::start)
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
    wait_serving(cached.cache()).await;
    Fixture::new(Arc::new(cached), server)
}

mod bare {
    sessiond_testkit::conformance_tests!(super::fixture);
}

mod cached {
    sessiond_testkit::conformance_tests!(super::cached_fixture);
}

/// Encryption at rest, above the near-cache as the server stacks them.
mod sealed {
    sessiond_testkit::conformance_tests!(|clock| async move {
        super::cached_fixture(clock).await.sealed()
    });
}
