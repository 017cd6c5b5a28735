//! Fail closed: with Redis or PostgreSQL killed under load, requests get 503
//! (with Retry-After) within the store timeout, never "valid", never a hang;
//! after the store restarts, 200s resume by themselves without restarting
//! sessiond.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::json;
use sessiond_testkit::postgres_server::PostgresServer;

/// The store under a test server, which the test stops and starts.
enum Store {
    /// The server's own redis-server.
    Redis,
    /// A PostgreSQL of the test's own (not shared: it is stopped).
    Postgres(PostgresServer),
}

impl Store {
    fn kill(&mut self, s: &mut TestServer) {
        match self {
            Self::Redis => s.redis.as_mut().unwrap().kill(),
            Self::Postgres(server) => server.kill(),
        }
    }

    fn restart(&mut self, s: &mut TestServer) {
        match self {
            Self::Redis => s.redis.as_mut().unwrap().restart(),
            Self::Postgres(server) => server.restart(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_gives_503_then_recovers() {
    let s = TestServer::start(Backend::Redis).await;
    killed_under_load_gives_503_then_recovers(s, Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_gives_503_then_recovers() {
    let postgres = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap();
    let s = TestServer::start_on_url(postgres.url(), (), |_| {}).await;
    killed_under_load_gives_503_then_recovers(s, Store::Postgres(postgres)).await;
}

async fn killed_under_load_gives_503_then_recovers(mut s: TestServer, mut store: Store) {
    let (_, token) = s.create("alice").await;
    let introspect = |s: &TestServer, token: &str| {
        s.admin(Method::POST, "/v1/sessions/introspect")
            .json(&json!({"token": token}))
            .send()
    };
    assert_eq!(introspect(&s, &token).await.unwrap().status(), 200);

    // Load from several tasks while the store dies.
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
    store.kill(&mut s);
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
            // The session was in the near-cache: once the store is dead, nothing
            // may come from memory.
            assert!(
                status == 503 || started < killed,
                "a 200 for a request sent {:?} after the store died",
                started.saturating_duration_since(killed)
            );
            assert!(
                took < Duration::from_millis(1500),
                "a request took {took:?}"
            );
        }
    }

    // Restart the store (Redis empty: --save ""), create a session, and see
    // 200s within 2 s.
    store.restart(&mut s);
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
