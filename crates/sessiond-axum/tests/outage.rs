//! Fail closed: when the sessions cannot be reached the layer answers 503
//! with `Retry-After` (never "signed out", never a hang), keeps the cookie,
//! and serves again once they are back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Call, DESKTOP_UA, Harness};

async fn assert_unavailable(h: &Harness, token: &str) {
    let started = Instant::now();
    let r = h.send(Call::get("/me").cookie(token)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    assert!(
        r.set_cookies().is_empty(),
        "the cookie is kept: {:?}",
        r.set_cookies()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in time"
    );
    let r = h.send(Call::post("/login").form("user=kim&role=")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.set_cookies().is_empty());
    // Requests that do not carry a credential never ask the store.
    assert_eq!(h.send(Call::get("/plain")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_then_service_resumes() {
    let mut h = Harness::start(Backend::Redis).await;
    let (token, _) = h.login("kim", DESKTOP_UA).await;
    h.redis.as_mut().unwrap().kill();
    assert_unavailable(&h, &token).await;
    h.redis.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.send(Call::post("/login").form("user=kim&role=")).await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sessiond_down_is_503() {
    let mut h = Harness::start(Backend::Remote).await;
    let (token, _) = h.login("kim", DESKTOP_UA).await;
    h.server.take().unwrap().shutdown().await;
    assert_unavailable(&h, &token).await;
}
