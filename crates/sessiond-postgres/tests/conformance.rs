//! The store conformance suite against a private PostgreSQL: cases share one
//! server while any of them runs, each in its own schema. Run twice: the
//! store as it is, and behind its near-cache (channel up before the case
//! starts), which must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sessiond_engine::{CacheOptions, CachedStore};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::postgres_server::PostgresServer;
use sessiond_testkit::{Fixture, ManualClock, Shared, wait_serving};

static SERVER: Shared<PostgresServer> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

async fn store(clock: ManualClock) -> (PostgresStore, Arc<PostgresServer>) {
    let server = tokio::task::spawn_blocking(|| SERVER.get(PostgresServer::start))
        .await
        .unwrap();
    let options = PostgresOptions {
        schema: format!("case{}", CASE.fetch_add(1, Ordering::Relaxed)),
        clock: Arc::new(clock),
        // The suite's engines allow 10 s per store call (its standard
        // policy): every case runs at once on one server, and a case with
        // 110 concurrent calls waits for its 16 pooled connections longer
        // than the 2 s default on a loaded 2-core machine (seen in CI).
        timeout: std::time::Duration::from_secs(10),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(&server.url(), options)
        .await
        .unwrap();
    (store, server)
}

async fn fixture(clock: ManualClock) -> Fixture {
    let (store, server) = store(clock).await;
    Fixture::new(Arc::new(store), server)
}

async fn cached_fixture(clock: ManualClock) -> Fixture {
    let (store, server) = store(clock).await;
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
