//! `GET /v1/events` on a real server: on every store (embedded, Redis,
//! PostgreSQL), a lifecycle streams its events in order with their reasons
//! and never a token; a subscriber
//! killed in the middle of 10,000 events and resumed from its last id gets
//! every one of them once; an id past the retention is 410; then, on the
//! embedded store, what the route does the same on every store: filters, a
//! quiet stream gets heartbeats, outlives the idle timeout and ends when the
//! server stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{API_KEY, Backend, TestServer, problem};
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use sessiond_client::{Client, Error, EventKind, EventStream, EventView, EventsRequest, StartAt};

const WAIT: Duration = Duration::from_secs(20);

every_store!(
    a_lifecycle_streams_its_events_in_order_and_never_a_token,
    a_subscriber_killed_mid_stream_resumes_from_its_last_id_with_every_event_once,
    an_id_whose_followers_left_the_feed_is_410_never_a_silent_skip,
);

fn client(s: &TestServer) -> Client {
    Client::new(&s.url(""), API_KEY).unwrap()
}

/// The next `n` events of `stream`, failing after [`WAIT`].
async fn take(stream: &mut EventStream, n: usize) -> Vec<EventView> {
    let mut events = Vec::with_capacity(n);
    let deadline = Instant::now() + WAIT;
    while events.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(event))) => events.push(event),
            Ok(Some(Err(e))) => panic!("stream failed after {} events: {e}", events.len()),
            Ok(None) => panic!("stream ended after {} events", events.len()),
            Err(_) => panic!("only {} of {n} events within {WAIT:?}", events.len()),
        }
    }
    events
}

/// Read `body` into `text` until `done(text)`, failing after [`WAIT`]
/// without a new chunk.
async fn read_until(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin),
    text: &mut String,
    done: impl Fn(&str) -> bool,
) {
    while !done(text) {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(chunk.as_ref()).unwrap());
    }
}

fn summary(events: &[EventView]) -> Vec<(EventKind, Option<&str>, &str)> {
    events
        .iter()
        .map(|e| (e.kind, e.reason.as_deref(), e.session_id.as_str()))
        .collect()
}

async fn admin(s: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let r = s.admin(method, path).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn a_lifecycle_streams_its_events_in_order_and_never_a_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut stream = client(&s)
        .events(&EventsRequest {
            start: StartAt::Oldest,
            ..EventsRequest::default()
        })
        .unwrap();
    let (a, token) = s.create("alice").await;
    let a = a["id"].as_str().unwrap().to_owned();
    admin(
        &s,
        Method::PATCH,
        &format!("/v1/sessions/{a}"),
        json!({"data": {"cart": 1}}),
    )
    .await;
    admin(
        &s,
        Method::POST,
        &format!("/v1/sessions/{a}/extend"),
        json!({"idle_ttl_seconds": 3600}),
    )
    .await;
    admin(
        &s,
        Method::POST,
        &format!("/v1/sessions/{a}/authenticate"),
        json!({"aal": "aal2", "method": "otp"}),
    )
    .await;
    let rotated = s.rotate(&a).await;
    let (b, _) = s.create("alice").await;
    let b = b["id"].as_str().unwrap().to_owned();
    let r = s
        .admin(
            Method::DELETE,
            &format!("/v1/users/alice/sessions?except={b}&reason=signed_out_other_devices"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .admin(Method::DELETE, &format!("/v1/sessions/{b}?reason=logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let events = take(&mut stream, 8).await;
    assert_eq!(
        summary(&events),
        vec![
            (EventKind::Created, None, a.as_str()),
            (EventKind::DataUpdated, None, a.as_str()),
            (EventKind::Extended, None, a.as_str()),
            (EventKind::Authenticated, Some("otp"), a.as_str()),
            (EventKind::Rotated, None, a.as_str()),
            (EventKind::Created, None, b.as_str()),
            (
                EventKind::Revoked,
                Some("signed_out_other_devices"),
                a.as_str()
            ),
            (EventKind::Revoked, Some("logout"), b.as_str()),
        ],
        "{events:#?}"
    );
    assert!(events.iter().all(|e| e.user_id == "alice"));
    assert_eq!(events[0].device_kind.as_deref(), Some("desktop"));

    // The raw stream: `id:` lines equal to the events' ids, JSON data, no
    // token and no token hash anywhere.
    let r = s
        .admin(Method::GET, "/v1/events?from=oldest")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut body = r.bytes_stream();
    let mut text = String::new();
    read_until(&mut body, &mut text, |text| {
        text.matches("\n\n").count() >= 8
    })
    .await;
    for e in &events[..8] {
        assert!(text.contains(&format!("id: {}\n", e.id)), "{text}");
    }
    for secret in [&token, &rotated] {
        assert!(!text.contains(secret.as_str()));
        let prefix = &secret[..secret.len().min(12)];
        assert!(!text.contains(prefix), "no part of a token");
    }
}

/// Create sessions for `n` distinct users, `in_flight` at a time.
async fn create_many(s: &TestServer, n: usize, in_flight: usize) {
    futures_util::stream::iter(0..n)
        .for_each_concurrent(in_flight, |i| async move {
            let r = s
                .admin(Method::POST, "/v1/sessions")
                .json(&json!({"user_id": format!("user{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        })
        .await;
}

async fn a_subscriber_killed_mid_stream_resumes_from_its_last_id_with_every_event_once(
    backend: Backend,
) {
    const TOTAL: usize = 10_000;
    let s = TestServer::start(backend).await;
    let c = client(&s);
    // The first subscriber reads while the events are being written.
    let mut first = c
        .events(&EventsRequest {
            start: StartAt::Oldest,
            ..EventsRequest::default()
        })
        .unwrap();
    let writer = create_many(&s, TOTAL, 32);
    let reader = take(&mut first, 3_000);
    let ((), seen) = tokio::join!(writer, reader);
    // Killed mid-stream: its connection goes away with it.
    drop(first);
    let last = seen.last().unwrap().id.clone();
    let mut second = c
        .events(&EventsRequest {
            start: StartAt::After(last),
            ..EventsRequest::default()
        })
        .unwrap();
    let rest = take(&mut second, TOTAL - seen.len()).await;
    let all: Vec<_> = seen.iter().chain(&rest).collect();
    let ids: HashSet<_> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), TOTAL, "each id once");
    let users: HashSet<_> = all.iter().map(|e| e.user_id.as_str()).collect();
    assert_eq!(users.len(), TOTAL, "every session's creation");
    assert!(all.iter().all(|e| e.kind == EventKind::Created));
    // Nothing more follows.
    let more = tokio::time::timeout(Duration::from_millis(600), second.next()).await;
    assert!(more.is_err(), "no event beyond the {TOTAL}: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_a_user_and_types() {
    let s = TestServer::start(Backend::Embedded).await;
    let c = client(&s);
    let mut revocations = c
        .events(&EventsRequest {
            start: StartAt::Oldest,
            user_id: Some("bob".into()),
            types: vec![EventKind::Revoked, EventKind::Expired],
        })
        .unwrap();
    let (a, _) = s.create("alice").await;
    let (b1, _) = s.create("bob").await;
    let (b2, _) = s.create("bob").await;
    for id in [&a["id"], &b1["id"], &b2["id"]] {
        let r = s
            .admin(
                Method::DELETE,
                &format!("/v1/sessions/{}", id.as_str().unwrap()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let got = take(&mut revocations, 2).await;
    assert_eq!(
        summary(&got),
        vec![
            (
                EventKind::Revoked,
                Some("revoked_by_admin"),
                b1["id"].as_str().unwrap()
            ),
            (
                EventKind::Revoked,
                Some("revoked_by_admin"),
                b2["id"].as_str().unwrap()
            ),
        ]
    );
    // A subscriber whose filter leaves everything out still moves its last
    // id: an `id:` with no data, which dispatches nothing.
    let r = s
        .admin(Method::GET, "/v1/events?from=oldest&user_id=nobody")
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut text = String::new();
    read_until(&mut body, &mut text, |text| text.contains("id: ")).await;
    assert!(!text.contains("data:"), "{text}");

    // Bad filters and ids are 400s, a missing key 401.
    for query in [
        "types=touched",
        "types=",
        "from=yesterday",
        "user_id=",
        "bogus=1",
    ] {
        let r = s
            .admin(Method::GET, &format!("/v1/events?{query}"))
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    for id in ["e.x", "p.1.2", "e.99999999"] {
        let r = s
            .admin(Method::GET, "/v1/events")
            .header("Last-Event-ID", id)
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    let r = s.anon(Method::GET, "/v1/events").send().await.unwrap();
    problem(r, 401).await;
}

async fn an_id_whose_followers_left_the_feed_is_410_never_a_silent_skip(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.events.max_events = 5;
    })
    .await;
    let c = client(&s);
    let mut stream = c
        .events(&EventsRequest {
            start: StartAt::Oldest,
            ..EventsRequest::default()
        })
        .unwrap();
    s.create("user0").await;
    let first = take(&mut stream, 1).await;
    drop(stream);
    for i in 1..10 {
        s.create(&format!("user{i}")).await;
    }
    // The background sweep (every second) retires all but the newest 5.
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let r = s
            .admin(Method::GET, "/v1/events")
            .header("Last-Event-ID", &first[0].id)
            .send()
            .await
            .unwrap();
        if r.status() == 410 {
            break problem(r, 410).await;
        }
        assert_eq!(r.status(), 200);
        assert!(Instant::now() < deadline, "never retired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["type"], "urn:sessiond:problem:event-cursor-expired");
    assert!(body["detail"].as_str().unwrap().contains("retention"));
    // The client says so too, and ends.
    let mut resumed = c
        .events(&EventsRequest {
            start: StartAt::After(first[0].id.clone()),
            ..EventsRequest::default()
        })
        .unwrap();
    match tokio::time::timeout(WAIT, resumed.next()).await.unwrap() {
        Some(Err(Error::CursorExpired { detail })) => assert!(detail.contains("retention")),
        other => panic!("expected CursorExpired, got {other:?}"),
    }
    assert!(resumed.next().await.is_none());
    // From the oldest kept: the newest five, once the sweep has retired
    // the rest (on Redis it goes bucket by bucket, so the first retired
    // event may leave before the others).
    let deadline = Instant::now() + WAIT;
    loop {
        let mut kept = c
            .events(&EventsRequest {
                start: StartAt::Oldest,
                ..EventsRequest::default()
            })
            .unwrap();
        let five = take(&mut kept, 5).await;
        if five.last().unwrap().user_id == "user9" {
            break;
        }
        assert!(Instant::now() < deadline, "the oldest events never left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_gets_heartbeats_outlives_the_idle_timeout_and_ends_at_shutdown() {
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.events.heartbeat = Duration::from_secs(1);
        c.limits.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let r = s.admin(Method::GET, "/v1/events").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let started = Instant::now();
    read_until(&mut body, &mut text, |text| {
        text.contains(":heartbeat") || text.contains(": heartbeat")
    })
    .await;
    // Well past the idle timeout, the stream still carries new events.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (created, _) = s.create("alice").await;
    let id = created["id"].as_str().unwrap().to_owned();
    read_until(&mut body, &mut text, |text| text.contains(&id)).await;
    assert!(started.elapsed() > Duration::from_secs(1));
    // Stopping the server ends the stream at once, not after the drain
    // timeout (10 s).
    let stopping = Instant::now();
    let reader = tokio::spawn(async move {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, body.next()).await {}
    });
    s.shutdown().await;
    reader.await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}
