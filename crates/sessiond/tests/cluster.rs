//! `sessiond serve` on a real local Redis Cluster (3 masters, 3 replicas):
//! the API works across users spread over every master, one event
//! subscriber gets the events of users on every master (and keeps getting
//! them through a failover), and when a master
//! is killed under load, requests answer 503 quickly (never hang, never a
//! stale 200 for a revoked session) and work again once a replica is
//! promoted, without restarting the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::StreamExt as _;
use reqwest::Method;
use sessiond_testkit::redis_cluster::RedisCluster;

async fn cluster_server() -> (TestServer, Arc<std::sync::Mutex<RedisCluster>>) {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let url = cluster.url();
    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let server = TestServer::start_on_url(url, cluster.clone(), |_| {}).await;
    (server, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_works_on_a_cluster_and_survives_a_master_failover() {
    let (s, cluster) = cluster_server().await;
    let client = sessiond_client::Client::new(&s.url(""), common::API_KEY).unwrap();
    let mut events = client
        .events(&sessiond_client::EventsRequest {
            start: sessiond_client::StartAt::Oldest,
            ..sessiond_client::EventsRequest::default()
        })
        .unwrap();
    // Users spread over every master.
    let mut sessions = Vec::new();
    for i in 0..30 {
        let (session, token) = s.create(&format!("user{i}")).await;
        assert!(s.active(&token).await);
        sessions.push((session["id"].as_str().unwrap().to_owned(), token));
    }
    // One subscriber gets every user's event, in the order they were made.
    let mut users = Vec::new();
    while users.len() < 30 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("events within 20 s")
            .expect("the stream goes on")
            .unwrap();
        assert_eq!(event.kind, sessiond_client::EventKind::Created);
        users.push(event.user_id);
    }
    let made: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    assert_eq!(users, made);
    let r = s.admin(Method::GET, "/v1/stats").send().await.unwrap();
    let stats: serde_json::Value = r.json().await.unwrap();
    assert_eq!(stats["live_sessions"], 30, "{stats}");
    let r = s.anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ready: serde_json::Value = r.json().await.unwrap();
    let nodes = ready["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "{ready}");
    assert_eq!(
        nodes.iter().filter(|n| n["role"] == "master").count(),
        3,
        "{ready}"
    );
    assert!(
        nodes
            .iter()
            .filter(|n| n["role"] == "master")
            .all(|n| n["health"] == "online"),
        "{ready}"
    );
    // Revoke a few before the failover (and let them replicate).
    for (id, _) in &sessions[..5] {
        let r = s
            .admin(Method::DELETE, &format!("/v1/sessions/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A running load of introspections and creates while a master dies:
    // every answer comes quickly, 200/201 or 503, never anything else.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let client = s.client.clone();
        let base = s.url("");
        let tokens: Vec<String> = sessions.iter().map(|(_, t)| t.clone()).collect();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut unavailable, mut slowest) = (0u32, 0u32, Duration::ZERO);
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                let r = if i.is_multiple_of(3) {
                    client
                        .post(format!("{base}/v1/sessions"))
                        .bearer_auth(common::API_KEY)
                        .json(&serde_json::json!({"user_id": format!("load{i}")}))
                        .send()
                        .await
                } else {
                    client
                        .post(format!("{base}/v1/sessions/introspect"))
                        .bearer_auth(common::API_KEY)
                        .json(&serde_json::json!({"token": tokens[i % tokens.len()]}))
                        .send()
                        .await
                }
                .unwrap();
                slowest = slowest.max(asked.elapsed());
                match r.status().as_u16() {
                    200 | 201 => ok += 1,
                    503 => unavailable += 1,
                    other => panic!("unexpected status {other} under load"),
                }
                i += 1;
            }
            (ok, unavailable, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Kill one master: readiness says so (once the cluster marks it failed).
    let victim = cluster.lock().unwrap().masters()[0];
    cluster.lock().unwrap().kill_node(victim);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.anon(Method::GET, "/readyz").send().await.unwrap();
        if r.status() == 503 {
            let ready: serde_json::Value = r.json().await.unwrap();
            println!("degraded while a master is down: {ready}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never noticed the dead master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let mut unavailable = 0;
    for (i, (_, token)) in sessions.iter().enumerate() {
        let asked = Instant::now();
        let r = s
            .admin(Method::POST, "/v1/sessions/introspect")
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "an introspection took {:?} during the outage",
            asked.elapsed()
        );
        match status {
            503 => unavailable += 1,
            200 => {
                let body: serde_json::Value = r.json().await.unwrap();
                // A revoked session is never reported active.
                assert!(
                    !(i < 5 && body["active"] == true),
                    "revoked session {i} active during the outage"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    println!(
        "{unavailable} of {} introspections were 503 while the master was down ({:?})",
        sessions.len(),
        started.elapsed()
    );

    // A replica takes over; the same server recovers by itself.
    let promoted = {
        let c = cluster.lock().unwrap();
        c.wait_for_promotion_after_kill(victim)
    };
    println!("promoted {promoted} after {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(20);
    'recovered: loop {
        let mut all_ok = true;
        for (i, (_, token)) in sessions.iter().enumerate() {
            let r = s
                .admin(Method::POST, "/v1/sessions/introspect")
                .json(&serde_json::json!({ "token": token }))
                .send()
                .await
                .unwrap();
            if r.status() != 200 {
                all_ok = false;
                break;
            }
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(
                body["active"] == true,
                i >= 5,
                "session {i} after the failover: {body}"
            );
        }
        if all_ok {
            break 'recovered;
        }
        assert!(Instant::now() < deadline, "no recovery after the failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, unavailable, slowest) = load.await.unwrap();
    println!(
        "load through the failover: {ok} answered, {unavailable} unavailable, slowest {slowest:?}"
    );
    assert!(
        slowest < Duration::from_secs(3),
        "a request took {slowest:?}"
    );
    assert!(ok > 0);
    // Writes work again too, and the server is ready again.
    let (_, token) = s.create("after-failover").await;
    assert!(s.active(&token).await);
    // The subscriber, open all along, gets the events after the failover
    // (its client resumes from its last id when the stream breaks).
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the subscriber hears of writes after the failover")
            .expect("the stream goes on")
            .unwrap();
        if event.user_id == "after-failover" {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.anon(Method::GET, "/readyz").send().await.unwrap();
        let status = r.status();
        let ready: serde_json::Value = r.json().await.unwrap();
        if status == 200 {
            println!("ready after the failover: {ready}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after the failover: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.shutdown().await;
}
