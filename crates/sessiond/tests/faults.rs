//! Fail closed: with Redis killed under load, requests get 503 (with
//! Retry-After) within the store timeout, never "valid", never a hang; after
//! Redis restarts, 200s resume by themselves without restarting sessiond.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_gives_503_then_recovers() {
    let mut s = TestServer::start(Backend::Redis).await;
    let (_, token) = s.create("alice").await;
    let introspect = |s: &TestServer, token: &str| {
        s.admin(Method::POST, "/v1/sessions/introspect")
            .json(&json!({"token": token}))
            .send()
    };
    assert_eq!(introspect(&s, &token).await.unwrap().status(), 200);

    // Load from several tasks while Redis dies.
    let client = s.client.clone();
    let url = s.url("/v1/me");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let end = Instant::now() + Duration::from_secs(3);
                while Instant::now() < end {
                    let started = Instant::now();
                    let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
                    statuses.push((r.status().as_u16(), started, started.elapsed()));
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.redis.as_mut().unwrap().kill();
    let killed = Instant::now();

    // While down: 503 problem+json with Retry-After, within the 500 ms store timeout.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let r = introspect(&s, &token).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        assert!(r.headers().contains_key("retry-after"));
        problem(r, 503).await;
        let r = s
            .anon(Method::GET, "/v1/me")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        problem(r, 503).await;
    }
    let r = s.anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(r.status(), 503);

    for task in load {
        for (status, started, took) in task.await.unwrap() {
            assert!(status == 200 || status == 503, "status {status} under load");
            // The session was in the near-cache: once Redis is dead, nothing
            // may come from memory.
            assert!(
                status == 503 || started < killed,
                "a 200 for a request sent {:?} after Redis died",
                started.saturating_duration_since(killed)
            );
            assert!(
                took < Duration::from_millis(1500),
                "a request took {took:?}"
            );
        }
    }

    // Restart Redis (empty: --save ""), create a session, and see 200s within 2 s.
    s.redis.as_mut().unwrap().restart();
    let restarted = Instant::now();
    let mut recovered = None;
    while restarted.elapsed() < Duration::from_secs(2) {
        let r = s
            .admin(Method::POST, "/v1/sessions")
            .json(&json!({"user_id": "alice"}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            recovered = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = recovered.expect("no 201 within 2 s of the restart");
    let (_, fresh) = s.create("alice").await;
    assert_eq!(
        s.anon(Method::GET, "/v1/me")
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.anon(Method::GET, "/readyz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    eprintln!("recovered {took:?} after the restart");
    s.shutdown().await;
}
