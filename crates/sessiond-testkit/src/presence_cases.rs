//! The connection and presence cases: heartbeats, expiry without them, a
//! revocation taking a session's connections, explicit closes, and the
//! events each records, driven through the engine on a manual clock for
//! every store that keeps connections. A store's test builds a
//! [`HistoryWorld`] per case and calls [`crate::presence_tests!`].

use std::time::Duration;

use sessiond_engine::{Clock, Error, EventKind, EventKinds, EventQuery, EventsFrom, RevokeReason};

use crate::event_cases::{drain, now_cursor, query};
use crate::history_cases::{HistoryWorld, login};

const SEC: Duration = Duration::from_secs(1);

/// A connection opens, heartbeats keep it, presence shows it; without a
/// heartbeat it expires (the sweep records its close, dated at its expiry);
/// a close ends it at once. Each records its event.
pub async fn connections_open_beat_expire_and_close(w: HistoryWorld) {
    let e = &w.engine;
    let start = now_cursor(e).await;
    let s = e.create(login("alice")).await.unwrap().session;
    let id = s.id.as_str();
    assert!(!e.presence("alice").await.unwrap().online());

    let t0 = w.clock.now();
    let first = e
        .beat_connection(id, "ws-1", Some("node-a".into()), Some(30 * SEC))
        .await
        .unwrap();
    assert!(first.opened);
    assert_eq!(first.connection.opened_at, t0);
    w.clock.advance(20 * SEC);
    let again = e
        .beat_connection(id, "ws-1", None, Some(30 * SEC))
        .await
        .unwrap();
    assert!(!again.opened, "a heartbeat");
    assert_eq!(again.connection.opened_at, t0);
    assert_eq!(again.connection.node.as_deref(), Some("node-a"), "kept");
    assert_eq!(again.connection.last_seen_at, w.clock.now());

    let p = e.presence("alice").await.unwrap();
    assert!(p.online());
    assert_eq!(p.devices.len(), 1);
    assert_eq!(p.devices[0].session_id, s.id);
    assert_eq!(p.devices[0].connections.len(), 1);
    assert_eq!(p.last_seen_at(), Some(w.clock.now()));

    // No heartbeat for longer than its TTL: gone from presence at once,
    // closed by the sweep at its expiry.
    let expiry = again.connection.expires_at;
    w.clock.advance(31 * SEC);
    assert!(!e.presence("alice").await.unwrap().online());
    (w.sweep)().await;
    // A second connection, closed by the app.
    e.beat_connection(id, "ws-2", None, None).await.unwrap();
    assert!(e.close_connection(id, "ws-2").await.unwrap());
    assert!(
        !e.close_connection(id, "ws-2").await.unwrap(),
        "already closed"
    );
    assert!(!e.presence("alice").await.unwrap().online());

    let events = drain(
        e,
        &EventQuery {
            kinds: EventKinds::of([EventKind::ConnectionOpened, EventKind::ConnectionClosed]),
            ..query(EventsFrom::Oldest, 10)
        },
        start,
    )
    .await;
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.reason.as_deref(), e.at))
        .collect();
    assert_eq!(
        summary,
        vec![
            (EventKind::ConnectionOpened, None, t0),
            (EventKind::ConnectionClosed, Some("expired"), expiry),
            (EventKind::ConnectionOpened, None, w.clock.now()),
            (EventKind::ConnectionClosed, Some("closed"), w.clock.now()),
        ]
    );
    assert!(
        events
            .iter()
            .all(|ev| ev.session_id == s.id && ev.user_id == "alice")
    );
}

/// A revoked session's connections go with it, at once; a heartbeat on it
/// is not found. A connection never outlives its session's deadline.
pub async fn a_revocation_takes_the_sessions_connections(w: HistoryWorld) {
    let e = &w.engine;
    let s1 = e.create(login("alice")).await.unwrap().session;
    let s2 = e.create(login("alice")).await.unwrap().session;
    for (s, c) in [(&s1, "a"), (&s1, "b"), (&s2, "c")] {
        e.beat_connection(s.id.as_str(), c, None, None)
            .await
            .unwrap();
    }
    let p = e.presence("alice").await.unwrap();
    let connected: usize = p.devices.iter().map(|d| d.connections.len()).sum();
    assert_eq!((p.devices.len(), connected), (2, 3));

    e.revoke(s1.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    let p = e.presence("alice").await.unwrap();
    assert_eq!(p.devices.len(), 1);
    assert_eq!(p.devices[0].session_id, s2.id);
    assert!(p.online());
    assert_eq!(
        e.beat_connection(s1.id.as_str(), "a", None, None)
            .await
            .unwrap_err(),
        Error::NotFound
    );
    assert!(!e.close_connection(s1.id.as_str(), "a").await.unwrap());
    e.revoke_user("alice", None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert!(e.presence("alice").await.unwrap().devices.is_empty());

    // A session with a 1-minute idle timeout: the connection ends with it.
    let short = e
        .create(sessiond_engine::CreateRequest {
            idle_ttl: Some(60 * SEC),
            ..login("bob")
        })
        .await
        .unwrap()
        .session;
    let beat = e
        .beat_connection(short.id.as_str(), "x", None, Some(3600 * SEC))
        .await
        .unwrap();
    assert_eq!(beat.connection.expires_at, short.expires_at);
    w.clock.advance(61 * SEC);
    assert!(e.presence("bob").await.unwrap().devices.is_empty());
}

/// Bad ids, nodes and TTLs are typed errors.
pub async fn bad_connection_input_is_a_typed_error(w: HistoryWorld) {
    let e = &w.engine;
    let s = e.create(login("alice")).await.unwrap().session;
    let id = s.id.as_str();
    fn invalid<T: std::fmt::Debug>(r: Result<T, Error>, field: &str) {
        match r {
            Err(Error::Invalid { field: f, .. }) if f == field => {}
            other => panic!("expected Invalid({field}), got {other:?}"),
        }
    }
    invalid(
        e.beat_connection(id, "a b", None, None).await,
        "connection_id",
    );
    invalid(e.beat_connection(id, "", None, None).await, "connection_id");
    invalid(
        e.beat_connection(id, "a", Some("n/1".into()), None).await,
        "node",
    );
    invalid(
        e.beat_connection(id, "a", None, Some(Duration::ZERO)).await,
        "ttl",
    );
    invalid(
        e.beat_connection(id, "a", None, Some(7200 * SEC)).await,
        "ttl",
    );
    invalid(e.close_connection(id, "a b").await, "connection_id");
    invalid(e.presence("").await, "user_id");
    let unknown =
        sessiond_engine::SessionId::generate(&sessiond_engine::ShardTag::of_user("alice"));
    assert_eq!(
        e.beat_connection(unknown.as_str(), "a", None, None)
            .await
            .unwrap_err(),
        Error::NotFound
    );
    assert!(e.presence("nobody").await.unwrap().devices.is_empty());
}

/// One `#[tokio::test]` per presence case; `$factory` is an
/// `async fn(ManualClock, LimitPolicy) -> HistoryWorld`.
#[macro_export]
macro_rules! presence_tests {
    ($factory:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn connections_open_beat_expire_and_close() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::presence_cases::connections_open_beat_expire_and_close(world).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_revocation_takes_the_sessions_connections() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::presence_cases::a_revocation_takes_the_sessions_connections(world).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn bad_connection_input_is_a_typed_error() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::presence_cases::bad_connection_input_is_a_typed_error(world).await;
        }
    };
}
