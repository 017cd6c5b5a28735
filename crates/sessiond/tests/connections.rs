//! Slow and idle clients over raw TCP: request heads must arrive within the
//! head timeout, idle keep-alive connections are closed, connections are
//! capped, a declared oversize body is refused at once, a slow request gets
//! 408, and shutdown drains within its bound. (No store is involved: these
//! run on the embedded store only.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(tweak: impl FnOnce(&mut sessiond::config::Config)) -> TestServer {
    TestServer::start_with(Backend::Embedded, tweak).await
}

/// Read until the server closes the connection or `limit` passes; returns
/// what was read and when the connection closed (None: still open).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Ok(Ok(0) | Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    Some(start.elapsed()),
                );
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Read one response head and body (Content-Length framed).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no response in 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole response");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.addr).await.unwrap()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_disconnected_within_the_head_timeout() {
    let s = server(|c| c.limits.header_read_timeout = Duration::from_secs(1)).await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&s).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(c);
    }
    let started = Instant::now();
    // Dribbling more of the head does not buy more time.
    for c in &mut slow {
        c.write_all(b"a").await.unwrap();
    }
    let mut closed = Vec::new();
    for c in &mut slow {
        closed.push(read_until_closed(c, Duration::from_secs(5)).await.1);
    }
    for at in &closed {
        assert!(
            at.is_some(),
            "a half-sent head kept its connection: {closed:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    // Meanwhile a normal client is served.
    let mut ok = connect(&s).await;
    ok.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut ok).await.starts_with("HTTP/1.1 200"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let s = server(|c| c.limits.idle_timeout = Duration::from_millis(1500)).await;
    let mut c = connect(&s).await;
    c.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut c).await.starts_with("HTTP/1.1 200"));
    // Activity keeps it open: a second request within the timeout is served.
    tokio::time::sleep(Duration::from_millis(900)).await;
    c.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut c).await.starts_with("HTTP/1.1 200"));
    let (_, closed) = read_until_closed(&mut c, Duration::from_secs(5)).await;
    let closed = closed.expect("an idle connection stayed open");
    assert!(
        closed >= Duration::from_millis(1300) && closed < Duration::from_millis(3000),
        "{closed:?}"
    );
    // A connection that never sends anything is idle too.
    let mut silent = connect(&s).await;
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(5))
            .await
            .1
            .is_some()
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_to_be_accepted() {
    let s = server(|c| c.limits.max_connections = 2).await;
    let mut first = connect(&s).await;
    first.write_all(HEALTHZ).await.unwrap();
    read_response(&mut first).await;
    let mut second = connect(&s).await;
    second.write_all(HEALTHZ).await.unwrap();
    read_response(&mut second).await;
    // The third is not served while two are open…
    let mut third = connect(&s).await;
    third.write_all(HEALTHZ).await.unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf))
            .await
            .is_err(),
        "served beyond the cap"
    );
    // …and is once one of them closes.
    drop(first);
    assert!(read_response(&mut third).await.starts_with("HTTP/1.1 200"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_is_refused_at_once() {
    let s = server(|_| {}).await;
    let mut c = connect(&s).await;
    let started = Instant::now();
    c.write_all(
        format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{{\"user_id\":",
            common::API_KEY
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let response = read_response(&mut c).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(response.contains("\"status\":413"), "{response}");
    // Also on a public route, without any credential.
    let mut c = connect(&s).await;
    c.write_all(b"POST /v1/tokens/refresh HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut c).await.starts_with("HTTP/1.1 413"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_gets_408() {
    let s = server(|c| c.request_timeout = Duration::from_millis(800)).await;
    let mut c = connect(&s).await;
    c.write_all(
        format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user_id\":",
            common::API_KEY
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let response = read_response(&mut c).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_slow_clients() {
    let s = server(|c| {
        c.limits.drain_timeout = Duration::from_secs(1);
        c.request_timeout = Duration::from_secs(60);
        c.limits.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // A half-sent head, an idle connection, and a request in flight whose
    // body never completes.
    let mut head = connect(&s).await;
    head.write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut idle = connect(&s).await;
    idle.write_all(HEALTHZ).await.unwrap();
    read_response(&mut idle).await;
    let mut body = connect(&s).await;
    body.write_all(
        format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            common::API_KEY
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    s.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
    for c in [&mut head, &mut idle, &mut body] {
        assert!(
            read_until_closed(c, Duration::from_secs(1))
                .await
                .1
                .is_some(),
            "a connection outlived the server"
        );
    }
}
