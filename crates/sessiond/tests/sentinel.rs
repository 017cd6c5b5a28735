//! `sessiond serve` behind Sentinel (a master, a replica, three sentinels):
//! the API works, and after `SENTINEL FAILOVER` the same server serves from
//! the new master without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use sessiond_testkit::redis_sentinel::RedisSentinel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_follows_a_sentinel_failover() {
    let setup = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let url = setup.url();
    let setup = std::sync::Arc::new(setup);
    let s = TestServer::start_on_url(url, setup.clone(), |_| {}).await;
    let (_, token) = s.create("alice").await;
    assert!(s.active(&token).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let switching = setup.clone();
    let new = tokio::task::spawn_blocking(move || switching.failover())
        .await
        .unwrap();
    assert_eq!(setup.master_port(), new);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s
            .admin(reqwest::Method::POST, "/v1/sessions")
            .json(&serde_json::json!({"user_id": "bob"}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(s.active(body["token"].as_str().unwrap()).await);
            break;
        }
        assert_eq!(r.status(), 503, "only 503 while the master changes");
        assert!(Instant::now() < deadline, "no recovery after the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s.active(&token).await,
        "sessions from before the failover are there"
    );
    let r = s
        .anon(reqwest::Method::GET, "/readyz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.shutdown().await;
}
