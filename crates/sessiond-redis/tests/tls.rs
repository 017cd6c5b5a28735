//! `rediss://`: the whole conformance suite over TLS against a private
//! redis-server with a certificate from a private CA, and a server whose
//! certificate is not trusted is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sessiond_engine::StoreError;
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::Shared;
use sessiond_testkit::redis_server::RedisServer;
use sessiond_testkit::{Fixture, ManualClock};

/// Shared by the cases while any of them runs.
static SERVER: Shared<RedisServer> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_server() -> Arc<RedisServer> {
    SERVER.get(RedisServer::start_tls)
}

fn options(server: &RedisServer) -> RedisOptions {
    RedisOptions {
        key_prefix: format!("tls{}:", CASE.fetch_add(1, Ordering::Relaxed)),
        tls_ca_pem: Some(std::fs::read(server.ca_file()).unwrap()),
        ..RedisOptions::default()
    }
}

async fn fixture(_clock: ManualClock) -> Fixture {
    let server = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let store = RedisStore::connect(&server.tls_url(), options(&server))
        .await
        .unwrap();
    Fixture::new(Arc::new(store), server)
}

sessiond_testkit::conformance_tests!(fixture);

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let server = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let options = RedisOptions {
        timeout: Duration::from_secs(1),
        // The system's roots do not include the test CA.
        tls_ca_pem: None,
        ..RedisOptions::default()
    };
    match RedisStore::connect(&server.tls_url(), options).await {
        Err(StoreError::Unavailable(reason)) => {
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to a server whose certificate nobody vouches for"),
    }
}

#[tokio::test]
async fn the_plain_port_of_the_same_server_still_speaks_plain_redis() {
    // Guards the test itself: the TLS cases above must really go over TLS,
    // so the TLS port must refuse a plain connection.
    let server = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let plain_on_tls_port = server.tls_url().replace("rediss://", "redis://");
    let options = RedisOptions {
        timeout: Duration::from_secs(1),
        ..RedisOptions::default()
    };
    assert!(
        RedisStore::connect(&plain_on_tls_port, options.clone())
            .await
            .is_err()
    );
    assert!(RedisStore::connect(&server.url(), options).await.is_ok());
}

/// The near-cache's own connection goes over TLS too (sessiond dials it):
/// hits are served, and a revocation through another client is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_channel_works_over_tls() {
    use sessiond_engine::{CacheOptions, CachedStore, CreateRequest, Engine, Policy, RevokeReason};
    let server = tokio::task::spawn_blocking(shared_server).await.unwrap();
    let options = options(&server);
    let store = RedisStore::connect(&server.tls_url(), options.clone())
        .await
        .unwrap();
    let other = RedisStore::connect(&server.tls_url(), options)
        .await
        .unwrap();
    let cached = Arc::new(CachedStore::new(store, CacheOptions::default()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cached.cache().serving() {
        assert!(
            std::time::Instant::now() < deadline,
            "channel never came up over TLS"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let a = Engine::new(cached.clone(), Policy::default());
    let b = Engine::new(Arc::new(other), Policy::default());
    let created = a
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let token = created.token.expose();
    let mut hit = false;
    for _ in 0..100 {
        assert!(a.introspect(token, false).await.unwrap().is_some());
        if cached.cache().stats().hits > 0 {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(hit, "never served from memory over TLS");
    b.revoke(created.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    while a.introspect(token, false).await.unwrap().is_some() {
        assert!(revoked.elapsed() < Duration::from_millis(50));
    }
}
