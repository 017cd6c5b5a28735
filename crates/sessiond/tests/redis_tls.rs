//! `sessiond serve` on `rediss://`: a Redis reached over TLS with a private
//! CA named by `store_ca_file`; without it the server refuses to start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use sessiond::config::Config;
use sessiond_testkit::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_a_tls_redis_with_a_private_ca() {
    let redis = tokio::task::spawn_blocking(RedisServer::start_tls)
        .await
        .unwrap();
    let (url, ca) = (redis.tls_url(), redis.ca_file());
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.store = Some(url.clone());
        c.store_ca_file = Some(ca.clone());
    })
    .await;
    let (session, token) = s.create("alice").await;
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["session"]["id"], session["id"]);
    // The session really is in that Redis (over its plain port).
    let keys = redis.command("DBSIZE").unwrap();
    assert!(!keys.starts_with(":0"), "DBSIZE: {keys}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_redis_certificate_stops_start_up() {
    let redis = tokio::task::spawn_blocking(RedisServer::start_tls)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        store: Some(redis.tls_url()),
        data_dir: dir.path().join("data"),
        api_key: Some(common::API_KEY.into()),
        store_timeout: std::time::Duration::from_millis(500),
        ..Config::default()
    };
    match sessiond::server::start(config).await {
        Err(e) => assert!(e.to_string().contains("rediss://localhost"), "{e}"),
        Ok(_) => panic!("started on a Redis whose certificate nobody vouches for"),
    }
}
