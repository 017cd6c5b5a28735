//! The tables as PostgreSQL runs them: introspection, listing, the expiry
//! sweep, history pages, pruning, feed reads, retirement, presence and the
//! sweep of connections are index lookups (by `EXPLAIN` over tables of
//! thousands of rows), the sweep deletes only dead rows, upgrades from the
//! first version keep its sessions, from the second its history and from
//! the third its sessions with a connections table that goes with them,
//! from the sixth its feed with `authenticated` events allowed, and a
//! database at a version this build does not know is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{
    Clock, CreateRequest, Engine, EventKind, EventKinds, EventQuery, EventsFrom, HistoryKind,
    ManualClock, Policy, Store, SystemClock,
};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::postgres_server::PostgresServer;

async fn server() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
}

/// A server whose schema is as a build of schema `version` left it, and
/// the options of a store without a sweep of its own.
async fn at_version(version: usize) -> (PostgresServer, PostgresOptions) {
    let server = server().await;
    let options = PostgresOptions {
        sweep_interval: Duration::ZERO,
        ..PostgresOptions::default()
    };
    PostgresStore::create_schema_at(&server.url(), &options, version)
        .await
        .unwrap();
    (server, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_the_sweep_are_index_lookups() {
    let server = server().await;
    let store = PostgresStore::connect(&server.url(), PostgresOptions::default())
        .await
        .unwrap();
    // 20,000 rows of 2,000 users (and 20,000 events, 400 of them of
    // the user the plans are asked for, and a connection on each session),
    // then fresh statistics.
    server
        .sql(
            "INSERT INTO sessiond.sessions (id, user_id, data, device, token_hash, created_at,
                last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms, mode)
             SELECT 'id' || n, 'user' || (n % 2000), '{}', '{}',
                    sha256(('t' || n)::bytea), n, n, 4000000000000 + n, 5000000000000, 60000, 'opaque'
             FROM generate_series(1, 20000) AS n;
             INSERT INTO sessiond.events (recorded_at, at, kind, session_id, user_id, xid)
             SELECT n, n, 'created', 'id' || n,
                    CASE WHEN n % 50 = 0 THEN 'someone' ELSE 'user' || (n % 2000) END, 1000 + n / 3
             FROM generate_series(1, 20000) AS n;
             INSERT INTO sessiond.connections (session_id, connection_id, user_id, opened_at,
                last_seen_at, expires_at)
             SELECT 'id' || n, 'ws', 'user' || (n % 2000), n, n, 3000000000000 + n
             FROM generate_series(1, 20000) AS n;
             ANALYZE sessiond.sessions;
             ANALYZE sessiond.events;
             ANALYZE sessiond.connections;",
        )
        .unwrap();
    for (operation, index) in [
        ("introspect", "sessions_token_hash_key"),
        ("list_user", "sessions_by_user"),
        ("list_sessions", "sessions_pkey"),
        ("list_sessions_user", "sessions_by_user"),
        ("sweep", "sessions_by_deadline"),
        ("history", "events_by_user"),
        ("prune", "events_by_time"),
        ("feed", "events_by_xid"),
        ("feed_user", "events_by_user_xid"),
        ("retire", "events_by_xid"),
        ("presence", "sessions_by_user"),
        ("presence", "connections_by_user"),
        ("sweep_connections", "connections_by_expiry"),
    ] {
        let plan = store.explain(operation).await.unwrap();
        assert!(
            [
                format!("Index Scan using {index} "),
                format!("Index Scan Backward using {index} "),
                format!("Index Only Scan using {index} "),
                format!("Bitmap Index Scan on {index} "),
            ]
            .iter()
            .any(|scan| plan.contains(scan)),
            "{operation} does not use {index}:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{operation}:\n{plan}");
    }
    // A history page and a read of the feed walk their index in order and
    // stop after the page (the limit sits right on the index scan); the
    // feed sorts only the page it read, at the top.
    for operation in ["history", "feed", "list_sessions"] {
        let plan = store.explain(operation).await.unwrap();
        let lines: Vec<_> = plan.lines().map(str::trim).collect();
        let limit = lines
            .iter()
            .position(|l| l.starts_with("Limit") || l.starts_with("->  Limit"));
        let walked = limit
            .and_then(|i| lines.get(i + 1))
            .is_some_and(|l| l.starts_with("->  Index"));
        assert!(walked, "{operation} does not stop after a page:\n{plan}");
        let sorts = lines.iter().filter(|l| l.contains("Sort Key")).count();
        assert!(
            sorts == 0 || (sorts == 1 && lines[0].starts_with("Sort")),
            "{operation} sorts more than its page:\n{plan}"
        );
    }
    // Feed reads start in the index at the cursor, and end at the horizon.
    for operation in ["feed", "feed_user", "retire"] {
        let plan = store.explain(operation).await.unwrap();
        assert!(
            plan.lines().any(|l| l.contains("Index Cond")
                && l.contains("ROW(xid, seq) > ROW(")
                && l.contains("(xid < ")),
            "{operation}:\n{plan}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_dead_rows_only() {
    let server = server().await;
    let clock = ManualClock::new();
    let store = PostgresStore::connect(
        &server.url(),
        PostgresOptions {
            clock: Arc::new(clock.clone()),
            sweep_interval: Duration::ZERO,
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    let store = Arc::new(store);
    let engine = Engine::with_clock(store.clone(), Policy::default(), Arc::new(clock.clone()));
    for i in 0..1500 {
        let request = CreateRequest {
            user_id: format!("u{i}"),
            idle_ttl: Some(Duration::from_secs(60)),
            ..CreateRequest::default()
        };
        engine.create(request).await.unwrap();
    }
    let keep = engine
        .create(CreateRequest {
            user_id: "keeper".into(),
            idle_ttl: Some(Duration::from_secs(3600)),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    // More than one batch, all of it.
    assert_eq!(store.sweep(&clock).await.unwrap(), 1500);
    assert_eq!(
        server
            .sql("SELECT count(*) FROM sessiond.sessions")
            .unwrap(),
        "1"
    );
    assert_eq!(store.count_live(clock.now()).await.unwrap(), 1);
    assert!(
        engine
            .introspect(keep.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let server = server().await;
    let store = PostgresStore::connect(&server.url(), PostgresOptions::default())
        .await
        .unwrap();
    let current = store.schema_version().await.unwrap();
    assert!(current >= 1);
    drop(store);
    server
        .sql(&format!(
            "UPDATE sessiond.schema_version SET version = {}",
            current + 1
        ))
        .unwrap();
    let err = PostgresStore::connect(&server.url(), PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not know"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_from_the_first_version_keeps_the_sessions() {
    let server = server().await;
    let options = PostgresOptions::default();
    PostgresStore::create_schema_at(&server.url(), &options, 1)
        .await
        .unwrap();
    assert_eq!(
        server
            .sql("SELECT version FROM sessiond.schema_version")
            .unwrap(),
        "1"
    );
    assert_eq!(
        server
            .sql("SELECT to_regclass('sessiond.history') IS NULL")
            .unwrap(),
        "t",
        "the first version has no history"
    );
    // A session written by the first version, as its store wrote it.
    server
        .sql(
            "INSERT INTO sessiond.sessions (id, user_id, data, device, token_hash, created_at,
                last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms, mode)
             VALUES ('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'alice', '{\"theme\":\"dark\"}',
                     '{\"user_agent\":null,\"ip\":null,\"kind\":\"unknown\",\"os\":null,\"browser\":null}',
                     '\\x00', 1, 1, 4000000000000, 5000000000000, 60000, 'opaque')",
        )
        .unwrap();
    let store = PostgresStore::connect(&server.url(), options)
        .await
        .unwrap();
    assert!(store.schema_version().await.unwrap() >= 2);
    let id = sessiond_engine::SessionId::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let kept = store
        .get(&id, sessiond_engine::Timestamp::from_millis(2))
        .await
        .unwrap()
        .expect("the session survives the upgrade");
    assert_eq!(kept.user_id, "alice");
    assert_eq!(kept.data["theme"], "dark");
    // And the new version's history works on it.
    let engine = Engine::new(Arc::new(store), Policy::default());
    engine
        .revoke(id.as_str(), sessiond_engine::RevokeReason::Logout)
        .await
        .unwrap();
    let history = engine.history("alice", None, None).await.unwrap().events;
    assert_eq!(history.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_history_becomes_the_event_feed_with_its_seqs() {
    let (server, options) = at_version(2).await;
    // Three events written by the second version, the newest since pruned:
    // its seq must still never come back.
    let id = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let at = SystemClock.now().as_millis() - 3000;
    for (i, kind) in ["created", "revoked", "created"].iter().enumerate() {
        server
            .sql(&format!(
                "INSERT INTO sessiond.history (at, kind, reason, session_id, user_id)
                 VALUES ({}, '{kind}', {}, '{id}', 'alice')",
                at + 1000 * i as i64,
                if *kind == "revoked" {
                    "'logout'"
                } else {
                    "NULL"
                }
            ))
            .unwrap();
    }
    server
        .sql("DELETE FROM sessiond.history WHERE seq = 3")
        .unwrap();
    let store = PostgresStore::connect(&server.url(), options)
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 7);
    assert_eq!(
        server
            .sql("SELECT to_regclass('sessiond.history') IS NULL")
            .unwrap(),
        "t"
    );
    // Each keeps its seq, is dated as written, and comes first in the feed.
    assert_eq!(
        server
            .sql(
                "SELECT string_agg(concat_ws(',', seq, recorded_at - at, xid, kind), ' '
                                   ORDER BY seq)
                 FROM sessiond.events"
            )
            .unwrap(),
        "1,0,0,created 2,0,0,revoked"
    );
    assert_eq!(
        server
            .sql("SELECT xid || ',' || seq FROM sessiond.event_floor")
            .unwrap(),
        "0,0"
    );
    let engine = Engine::new(Arc::new(store), Policy::default());
    let all = |from| EventQuery {
        from,
        user_id: None,
        kinds: EventKinds::ALL,
        limit: 10,
    };
    let old = engine.events(&all(EventsFrom::Oldest)).await.unwrap();
    let cursors: Vec<_> = old.events.iter().map(|e| e.cursor.as_str()).collect();
    assert_eq!(cursors, ["p.0.1", "p.0.2"]);
    assert_eq!(old.events[1].kind, EventKind::Revoked);
    assert_eq!(old.events[1].reason.as_deref(), Some("logout"));
    assert_eq!(old.events[1].at.as_millis(), at + 1000);

    // A new event takes the next seq and follows them.
    let new = engine
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap()
        .session;
    let next = engine
        .events(&all(EventsFrom::After(old.cursor)))
        .await
        .unwrap();
    assert_eq!(next.events.len(), 1);
    assert_eq!(next.events[0].session_id, new.id);
    let cursor = next.events[0].cursor.as_str();
    assert!(
        cursor.ends_with(".4") && !cursor.starts_with("p.0."),
        "{cursor}"
    );
    // The history still holds the old lifecycle, newest first.
    let history = engine.history("alice", None, None).await.unwrap().events;
    let kinds: Vec<_> = history.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (4, HistoryKind::Created),
            (2, HistoryKind::Revoked),
            (1, HistoryKind::Created)
        ]
    );
    // The table takes the new kinds, and still only known ones.
    let insert = |kind: &str| {
        server.sql(&format!(
            "INSERT INTO sessiond.events (recorded_at, at, kind, session_id, user_id)
             VALUES (1, 1, '{kind}', 's', 'u')"
        ))
    };
    for kind in EventKind::ALL {
        insert(kind.as_str()).unwrap();
    }
    assert!(insert("updated").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_database_gains_connections_that_go_with_their_session() {
    let (server, options) = at_version(3).await;
    assert_eq!(
        server
            .sql("SELECT to_regclass('sessiond.connections') IS NULL")
            .unwrap(),
        "t",
        "the third version has no connections"
    );
    // Two sessions written by the third version, as its store wrote them.
    for (id, hash) in [
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "\\x00"),
        ("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "\\x01"),
    ] {
        server
            .sql(&format!(
                "INSERT INTO sessiond.sessions (id, user_id, data, device, token_hash, created_at,
                    last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms, mode)
                 VALUES ('{id}', 'alice', '{{}}',
                         '{{\"user_agent\":null,\"ip\":null,\"kind\":\"unknown\",\"os\":null,\"browser\":null}}',
                         '{hash}', 1, 1, 4000000000000, 5000000000000, 60000, 'opaque')"
            ))
            .unwrap();
    }
    let store = PostgresStore::connect(&server.url(), options)
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 7);
    let kept = sessiond_engine::SessionId::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert!(
        store
            .get(&kept, sessiond_engine::Timestamp::from_millis(2))
            .await
            .unwrap()
            .is_some(),
        "the sessions survive the upgrade"
    );
    // A connection needs its session, and goes in the statement that
    // deletes it.
    let connect = |session: &str, connection: &str| {
        server.sql(&format!(
            "INSERT INTO sessiond.connections (session_id, connection_id, user_id, opened_at,
                last_seen_at, expires_at)
             VALUES ('{session}', '{connection}', 'alice', 1, 1, 60001)"
        ))
    };
    connect("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "a").unwrap();
    connect("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "b").unwrap();
    connect("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "c").unwrap();
    assert!(connect("CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", "d").is_err());
    server
        .sql("DELETE FROM sessiond.sessions WHERE id = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'")
        .unwrap();
    assert_eq!(
        server
            .sql("SELECT string_agg(connection_id, ',') FROM sessiond.connections")
            .unwrap(),
        "c"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_6_feed_takes_authenticated_events() {
    let (server, options) = at_version(6).await;
    let insert = |kind: &str| {
        server.sql(&format!(
            "INSERT INTO sessiond.events (recorded_at, at, kind, reason, session_id, user_id)
             VALUES (1, 1, '{kind}', 'otp', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'alice')"
        ))
    };
    assert!(insert("authenticated").is_err(), "not a version 6 kind");
    insert("created").unwrap();
    let store = PostgresStore::connect(&server.url(), options)
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 7);
    insert("authenticated").unwrap();
    assert!(insert("stepped_up").is_err(), "still only the known kinds");
    assert_eq!(
        server
            .sql("SELECT string_agg(kind, ',' ORDER BY seq) FROM sessiond.events")
            .unwrap(),
        "created,authenticated"
    );
}
