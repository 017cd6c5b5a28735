//! Connections and presence on a real server, on every store (embedded,
//! Redis, PostgreSQL): connect, heartbeat, expire without a heartbeat, close, a
//! revocation taking a session's connections, the caller's own view, and
//! bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};

every_store!(
    connect_heartbeat_close_and_the_users_presence,
    a_connection_without_heartbeats_expires_and_a_revocation_takes_them_all,
    bad_connection_requests_are_4xx,
);

async fn put(
    s: &TestServer,
    session: &str,
    connection: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let r = s.admin(
        Method::PUT,
        &format!("/v1/sessions/{session}/connections/{connection}"),
    );
    match body {
        Some(b) => r.json(&b),
        None => r,
    }
    .send()
    .await
    .unwrap()
}

async fn presence(s: &TestServer, user: &str) -> Value {
    let r = s
        .admin(Method::GET, &format!("/v1/users/{user}/presence"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn connect_heartbeat_close_and_the_users_presence(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (phone, phone_token) = s.create("alice").await;
    let (laptop, _) = s.create("alice").await;
    let phone_id = phone["id"].as_str().unwrap();
    let laptop_id = laptop["id"].as_str().unwrap();
    let before = presence(&s, "alice").await;
    assert_eq!(before["online"], false);
    assert_eq!(before["devices"].as_array().unwrap().len(), 2);

    // First PUT registers (201), the next ones are heartbeats (200); the
    // body may be left out.
    let r = put(
        &s,
        phone_id,
        "ws-1",
        Some(json!({"ttl_seconds": 30, "node": "app-1"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let opened: Value = r.json().await.unwrap();
    assert_eq!(opened["connection_id"], "ws-1");
    assert_eq!(opened["node"], "app-1");
    let r = put(&s, phone_id, "ws-1", None).await;
    assert_eq!(r.status(), 200);
    let beat: Value = r.json().await.unwrap();
    assert_eq!(beat["opened_at"], opened["opened_at"]);
    assert_eq!(beat["node"], "app-1");

    let now = presence(&s, "alice").await;
    assert_eq!(now["user_id"], "alice");
    assert_eq!(now["online"], true);
    let devices = now["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(
        devices[0]["session_id"], phone_id,
        "most recently seen first"
    );
    assert_eq!(devices[0]["online"], true);
    assert_eq!(devices[0]["device"]["kind"], "desktop");
    assert_eq!(devices[0]["connections"][0]["connection_id"], "ws-1");
    assert_eq!(devices[1]["session_id"], laptop_id);
    assert_eq!(devices[1]["online"], false);
    assert!(now["last_seen_at"].is_string());

    // The user's own view marks the calling device.
    let r = s
        .anon(Method::GET, "/v1/me/presence")
        .bearer_auth(&phone_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mine: Value = r.json().await.unwrap();
    let current: Vec<_> = mine["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["session_id"].as_str().unwrap().to_owned(),
                d["current"].as_bool(),
            )
        })
        .collect();
    assert!(current.contains(&(phone_id.to_owned(), Some(true))));
    assert!(current.contains(&(laptop_id.to_owned(), Some(false))));
    let r = s.anon(Method::GET, "/v1/me/presence").send().await.unwrap();
    problem(r, 401).await;

    // Closing: 204, also when already closed.
    for _ in 0..2 {
        let r = s
            .admin(
                Method::DELETE,
                &format!("/v1/sessions/{phone_id}/connections/ws-1"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    assert_eq!(presence(&s, "alice").await["online"], false);

    // The feed has them.
    let r = s
        .admin(
            Method::GET,
            "/v1/events?from=oldest&types=connection_opened,connection_closed",
        )
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while text.matches("data: ").count() < 2 {
        use futures_util::StreamExt as _;
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.contains("\"type\":\"connection_opened\""), "{text}");
    assert!(
        text.contains("\"type\":\"connection_closed\",\"at\""),
        "{text}"
    );
    assert!(text.contains("\"reason\":\"closed\""), "{text}");
}

async fn a_connection_without_heartbeats_expires_and_a_revocation_takes_them_all(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, _) = s.create("bob").await;
    let a = a["id"].as_str().unwrap();
    assert_eq!(
        put(&s, a, "short", Some(json!({"ttl_seconds": 1})))
            .await
            .status(),
        201
    );
    assert_eq!(put(&s, a, "long", None).await.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = presence(&s, "bob").await;
        let connections = p["devices"][0]["connections"].as_array().unwrap().len();
        if connections == 1 {
            assert_eq!(p["devices"][0]["connections"][0]["connection_id"], "long");
            assert_eq!(p["online"], true);
            break;
        }
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Revoked: its connections go with it, and it takes no more.
    let r = s
        .admin(Method::DELETE, &format!("/v1/sessions/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let p = presence(&s, "bob").await;
    assert_eq!(p["online"], false);
    assert!(p["devices"].as_array().unwrap().is_empty());
    assert!(p["last_seen_at"].is_null());
    problem(put(&s, a, "long", None).await, 404).await;
}

async fn bad_connection_requests_are_4xx(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, _) = s.create("carol").await;
    let a = a["id"].as_str().unwrap();
    for (connection, body) in [
        ("a%20b", None),
        ("ok", Some(json!({"ttl_seconds": 0}))),
        ("ok", Some(json!({"ttl_seconds": 7200}))),
        ("ok", Some(json!({"node": "a/b"}))),
        ("ok", Some(json!({"surprise": 1}))),
    ] {
        problem(put(&s, a, connection, body).await, 400).await;
    }
    let unknown = a.chars().take(11).collect::<String>() + "AAAAAAAAAAAAAAAAAAAAAA";
    problem(put(&s, &unknown, "ok", None).await, 404).await;
    let r = s
        .anon(Method::PUT, &format!("/v1/sessions/{a}/connections/ok"))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = s
        .admin(Method::GET, "/v1/users/%00/presence")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
}
