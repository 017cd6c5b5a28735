//! The tables as PostgreSQL runs them: introspection, listing and the
//! expiry sweep are index lookups (by `EXPLAIN` over a table of thousands
//! of rows), the sweep deletes only dead rows, and a database at a version
//! this build does not know is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{Clock, CreateRequest, Engine, ManualClock, Policy, Store};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::postgres_server::PostgresServer;

async fn server() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_the_sweep_are_index_lookups() {
    let server = server().await;
    let store = PostgresStore::connect(&server.url(), PostgresOptions::default())
        .await
        .unwrap();
    // 20,000 rows of 2,000 users, then fresh statistics.
    server
        .sql(
            "INSERT INTO sessiond.sessions (id, user_id, data, device, token_hash, created_at,
                last_seen_at, expires_at, absolute_expires_at, idle_ttl_ms, mode)
             SELECT 'id' || n, 'user' || (n % 2000), '{}', '{}',
                    sha256(('t' || n)::bytea), n, n, 4000000000000 + n, 5000000000000, 60000, 'opaque'
             FROM generate_series(1, 20000) AS n;
             ANALYZE sessiond.sessions;",
        )
        .unwrap();
    for (operation, index) in [
        ("introspect", "sessions_token_hash_key"),
        ("list_user", "sessions_by_user"),
        ("sweep", "sessions_by_deadline"),
    ] {
        let plan = store.explain(operation).await.unwrap();
        assert!(
            plan.contains(&format!("Index Scan using {index}"))
                || plan.contains(&format!("Bitmap Index Scan on {index}")),
            "{operation} does not use {index}:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{operation}:\n{plan}");
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
