//! How the client maps what a server sends (and fails to send) to errors:
//! canned HTTP answers from a bare TCP listener, a server that never answers,
//! and an address where nothing listens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sessiond_client::{Client, CreateSession, Error, SessionId};
use sessiond_engine::ShardTag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const API_KEY: &str = "sdk_canned-key-0123456789";

fn some_id() -> SessionId {
    SessionId::generate(&ShardTag::of_user("someone"))
}

/// Read one request (head and `Content-Length` body); returns it as text.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut wanted = None;
    loop {
        if let Some(total) = wanted
            && buf.len() >= total
        {
            break;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if wanted.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            wanted = Some(end + 4 + len);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A server that answers every request with `response` (raw bytes) and
/// reports each request it read.
async fn canned(response: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let request = read_request(&mut stream).await;
                let _ = tx.send(request);
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, rx)
}

fn client(addr: SocketAddr) -> Client {
    Client::new(&format!("http://{addr}"), API_KEY).unwrap()
}

fn problem(status: u16, extra_headers: &str, detail: &str) -> String {
    let body = serde_json::json!({
        "type": "urn:sessiond:problem:x", "title": "x", "status": status, "detail": detail
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/problem+json\r\n{extra_headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn two_hundreds_that_do_not_parse_are_decode_errors() {
    let (addr, _) = canned(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\nconnection: close\r\n\r\nnot json",
    )
    .await;
    assert!(matches!(client(addr).stats().await, Err(Error::Decode(_))));

    let (addr, _) = canned(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\nconnection: close\r\n\r\n{\"unexpected\":true}",
    )
    .await;
    let c = client(addr);
    assert!(matches!(c.get(&some_id()).await, Err(Error::Decode(_))));
    assert!(matches!(c.list_user("u").await, Err(Error::Decode(_))));

    // Active without a session is not a valid introspection.
    let (addr, _) = canned(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"active\":true}",
    )
    .await;
    assert!(matches!(
        client(addr).introspect("sdt_x", true).await,
        Err(Error::Decode(_))
    ));
}

#[tokio::test]
async fn statuses_become_typed_errors() {
    type Expected = fn(&Error) -> bool;
    let cases: Vec<(String, Expected)> = vec![
        (problem(400, "", "invalid user_id"), |e| {
            matches!(e, Error::Invalid { detail } if detail == "invalid user_id")
        }),
        (problem(401, "www-authenticate: Bearer\r\n", "no"), |e| {
            matches!(e, Error::Unauthorized)
        }),
        (problem(403, "", "csrf"), |e| matches!(e, Error::Forbidden)),
        (problem(404, "", "gone"), |e| matches!(e, Error::NotFound)),
        (problem(409, "", "limit"), |e| {
            matches!(e, Error::LimitReached { detail } if detail == "limit")
        }),
        (problem(413, "", "big"), |e| {
            matches!(e, Error::TooLarge { detail } if detail == "big")
        }),
        (problem(429, "retry-after: 7\r\n", "slow down"), |e| {
            matches!(e, Error::RateLimited { retry_after: Some(d) } if *d == Duration::from_secs(7))
        }),
        (problem(503, "retry-after: 1\r\n", "store down"), |e| {
            matches!(e, Error::Unavailable { retry_after: Some(d) } if *d == Duration::from_secs(1))
        }),
        (problem(500, "", "the server failed"), |e| {
            matches!(e, Error::Server { status: 500, detail } if detail == "the server failed")
        }),
        (
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 12\r\nconnection: close\r\n\r\n<h1>bad</h1>"
                .to_owned(),
            |e| matches!(e, Error::Server { status: 502, detail } if detail == "<h1>bad</h1>"),
        ),
        // Redirects are not followed (the API key stays here).
        (
            "HTTP/1.1 302 Found\r\nlocation: http://192.0.2.1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_owned(),
            |e| matches!(e, Error::Server { status: 302, .. }),
        ),
    ];
    for (response, expected) in cases {
        let (addr, _) = canned(leak(response.clone())).await;
        let got = client(addr).get(&some_id()).await;
        match got {
            Err(e) if expected(&e) => {}
            other => panic!("answer {response:?} gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn broken_answers_are_unavailable_not_panics() {
    for response in [
        // Not HTTP at all.
        "hello there\r\n\r\n",
        // Body cut short.
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"id\":",
        // Nothing at all.
        "",
    ] {
        let (addr, _) = canned(response).await;
        let got = client(addr).stats().await;
        assert!(
            matches!(&got, Err(e) if e.is_unavailable()),
            "{response:?} gave {got:?}"
        );
    }
}

#[tokio::test]
async fn tokens_travel_in_bodies_and_headers_never_in_urls() {
    let (addr, mut requests) = canned(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"active\":false}",
    )
    .await;
    let c = client(addr);
    assert_eq!(c.introspect("sdt_canary-token", false).await.unwrap(), None);
    let request = requests.recv().await.unwrap();
    let request_line = request.lines().next().unwrap();
    assert_eq!(request_line, "POST /v1/sessions/introspect HTTP/1.1");
    assert!(request.to_ascii_lowercase().contains(&format!(
        "authorization: bearer {}",
        API_KEY.to_ascii_lowercase()
    )));
    assert!(
        request.ends_with(r#"{"token":"sdt_canary-token","touch":false}"#),
        "{request}"
    );

    let _ = c.me("sdt_canary-credential").await;
    let request = requests.recv().await.unwrap();
    assert_eq!(request.lines().next().unwrap(), "GET /v1/me HTTP/1.1");
    assert!(
        request.contains("authorization: Bearer sdt_canary-credential"),
        "{request}"
    );
    assert!(!request.contains(API_KEY));

    let _ = c.refresh("sdr_canary-refresh").await;
    let request = requests.recv().await.unwrap();
    assert_eq!(
        request.lines().next().unwrap(),
        "POST /v1/tokens/refresh HTTP/1.1"
    );
    assert!(
        !request.to_ascii_lowercase().contains("authorization"),
        "{request}"
    );
    assert!(
        request.ends_with(r#"{"refresh_token":"sdr_canary-refresh"}"#),
        "{request}"
    );

    // Query values and path segments are encoded.
    let id = some_id();
    let _ = c.revoke_user("a/b?c#d", Some(&id), Some("x.y")).await;
    let request = requests.recv().await.unwrap();
    assert_eq!(
        request.lines().next().unwrap(),
        format!("DELETE /v1/users/a%2Fb%3Fc%23d/sessions?except={id}&reason=x.y HTTP/1.1")
    );
    let _ = c.create_jwt(&CreateSession::new("u")).await;
    let request = requests.recv().await.unwrap();
    assert!(
        request.ends_with(r#"{"user_id":"u","mode":"jwt"}"#),
        "{request}"
    );
    let _ = c.create(&CreateSession::new("u")).await;
    let request = requests.recv().await.unwrap();
    assert!(
        request.ends_with(r#"{"user_id":"u","mode":"opaque"}"#),
        "{request}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unavailable_at_once() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let c = client(addr);
    let started = Instant::now();
    for result in [
        c.ready().await.map(drop),
        c.stats().await.map(drop),
        c.introspect("sdt_x", true).await.map(drop),
        c.me("sdt_x").await.map(drop),
    ] {
        assert!(
            matches!(&result, Err(e) if e.is_unavailable()),
            "{result:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let c = client(addr)
        .with_timeout(Duration::from_millis(300))
        .unwrap();
    let started = Instant::now();
    let got = c.introspect("sdt_x", true).await;
    assert!(matches!(&got, Err(e) if e.is_unavailable()), "{got:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "took {took:?}"
    );
}
