//! The near-cache on PostgreSQL: changes made through another store on the
//! same database reach this one's cache by `LISTEN/NOTIFY` within 50 ms, and
//! losing the listening connection drops the whole cache before any hit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_engine::{
    CacheOptions, CachedStore, CreateRequest, Engine, NearCache, Policy, RevokeReason,
};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::postgres_server::PostgresServer;
use sessiond_testkit::wait_serving;

async fn cached(url: &str, name: &str) -> (Engine, Arc<NearCache>) {
    let url = format!("{url}?application_name={name}");
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let cached = CachedStore::new(store, CacheOptions::default());
    let cache = cached.cache().clone();
    wait_serving(&cache).await;
    (Engine::new(Arc::new(cached), Policy::default()), cache)
}

fn request(user: &str) -> CreateRequest {
    CreateRequest {
        user_id: user.to_owned(),
        ..CreateRequest::default()
    }
}

/// Introspect until the answer came from memory.
async fn until_cached(e: &Engine, cache: &NearCache, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = cache.stats().hits;
        assert!(e.introspect(token, true).await.unwrap().is_some());
        if cache.stats().hits > before {
            return;
        }
        assert!(Instant::now() < deadline, "never served from memory");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_elsewhere_reaches_the_cache_within_50ms() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap();
    let url = server.fresh_database();
    let (a, _) = cached(&url, "a").await;
    let (b, b_cache) = cached(&url, "b").await;
    let mut slowest = Duration::ZERO;
    for round in 0..300 {
        let created = a
            .create(request(&format!("u{}", round % 20)))
            .await
            .unwrap();
        let token = created.token.expose().to_owned();
        until_cached(&b, &b_cache, &token).await;
        a.revoke(created.session.id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap();
        let revoked = Instant::now();
        while b.introspect(&token, true).await.unwrap().is_some() {
            assert!(
                revoked.elapsed() < Duration::from_millis(50),
                "round {round}: still active after {:?}",
                revoked.elapsed()
            );
        }
        slowest = slowest.max(revoked.elapsed());
    }
    println!("slowest: {slowest:?}");
}
