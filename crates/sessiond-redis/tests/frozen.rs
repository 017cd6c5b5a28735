//! The engine bounds every store call: over a Redis that accepts requests and
//! never answers (the process stopped with SIGSTOP), each of the fourteen
//! engine calls fails as `Unavailable` after `store_timeout`, never hangs;
//! once Redis goes on, the same engine serves again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_engine::{
    CreateRequest, DataUpdate, Engine, Error, Policy, RefreshToken, RevokeReason, SessionId,
    SessionToken, ShardTag,
};
use sessiond_testkit::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_fails_as_unavailable_after_the_timeout() {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    // The store's own bound is far away: the engine's must be what fires.
    let store = common::store(&server, "frozen:", Duration::from_secs(60)).await;
    let timeout = Duration::from_millis(150);
    let e = Engine::new(
        Arc::new(store),
        Policy {
            store_timeout: timeout,
            ..Policy::default()
        },
    );
    e.ping().await.unwrap();
    server.freeze();
    let shard = ShardTag::of_user("u");
    let token = SessionToken::generate(&shard);
    let id = SessionId::generate(&shard);
    let id = id.as_str();
    let started = Instant::now();
    let results: Vec<Result<(), Error>> = vec![
        e.create(CreateRequest {
            user_id: "u".into(),
            ..CreateRequest::default()
        })
        .await
        .map(|_| ()),
        e.introspect(token.expose(), true).await.map(|_| ()),
        e.get(id).await.map(|_| ()),
        e.update_data(id, DataUpdate::Merge(Default::default()))
            .await
            .map(|_| ()),
        e.extend(id, None).await.map(|_| ()),
        e.rotate(id).await.map(|_| ()),
        e.rotate_token(token.expose()).await.map(|_| ()),
        e.refresh(
            RefreshToken::generate(&shard).expose(),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ()),
        e.revoke(id, RevokeReason::Logout).await.map(|_| ()),
        e.list_user("u").await.map(|_| ()),
        e.count_user("u").await.map(|_| ()),
        e.revoke_user("u", None, RevokeReason::Logout)
            .await
            .map(|_| ()),
        e.count_live().await.map(|_| ()),
        e.ping().await,
    ];
    let elapsed = started.elapsed();
    server.thaw();
    for r in &results {
        assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    }
    // 14 calls, each bounded by the timeout (plus scheduling slack).
    assert!(elapsed >= timeout * 14, "{elapsed:?}");
    assert!(
        elapsed < timeout * 14 + Duration::from_secs(2),
        "{elapsed:?}"
    );
    // Redis goes on: the same engine serves again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while e.ping().await.is_err() {
        assert!(Instant::now() < deadline, "no service after thaw");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = e
        .create(CreateRequest {
            user_id: "u".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    assert!(e.get(created.session.id.as_str()).await.unwrap().user_id == "u");
}
