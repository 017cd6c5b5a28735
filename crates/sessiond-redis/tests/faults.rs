//! Redis dies and comes back: while it is down every call fails fast with
//! `Unavailable` (never hangs), and the same store object serves again once
//! it is back, without being rebuilt.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use sessiond_engine::{
    Clock, DataUpdate, Device, LimitPolicy, ManualClock, NewSession, RevokeReason, RotateTarget,
    Session, SessionData, SessionId, SessionToken, ShardTag, Store, StoreError, TouchRule,
};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_server::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(500);
/// What a failing call may take: the timeout plus scheduling slack.
const BOUND: Duration = Duration::from_millis(1000);

fn new_session(user: &str, clock: &ManualClock) -> (NewSession, SessionToken) {
    let now = clock.now();
    let tag = ShardTag::of_user(user);
    let token = SessionToken::generate(&tag);
    let new = NewSession {
        session: Session {
            id: SessionId::generate(&tag),
            user_id: user.to_owned(),
            role: None,
            data: SessionData::new(),
            device: Device::default(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(Duration::from_secs(600)),
            absolute_expires_at: now.plus(Duration::from_secs(3600)),
            idle_ttl_ms: 600_000,
            mode: sessiond_engine::Mode::Opaque,
            auth: sessiond_engine::AuthContext::at(now),
        },
        token: token.digest(),
        refresh: None,
        max_sessions: 10,
        limit_policy: LimitPolicy::EvictOldest,
    };
    (new, token)
}

/// Runs every kind of call once, all at the same time; each must fail as
/// unavailable within BOUND.
async fn all_calls_fail_fast(store: &RedisStore, clock: &ManualClock) {
    let (new, token) = new_session("alice", clock);
    let id = new.session.id.clone();
    let now = clock.now();
    let touch = Some(TouchRule { interval_ms: 0 });
    let digest = token.digest();
    let update = DataUpdate::Merge(SessionData::new());
    let by_id = RotateTarget::Id(id.clone());
    async fn down<T: std::fmt::Debug>(
        name: &str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) {
        let started = Instant::now();
        let result = call.await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{name}: {result:?}"
        );
        assert!(took < BOUND, "{name} took {took:?}");
    }
    tokio::join!(
        down("ping", store.ping()),
        down("create", store.create(&new, now)),
        down("introspect", store.introspect(&digest, None, now)),
        down("introspect+touch", store.introspect(&digest, touch, now)),
        down("get", store.get(&id, now)),
        down("update_data", store.update_data(&id, &update, 1024, now)),
        down("extend", store.extend(&id, None, now)),
        down("rotate", store.rotate(&by_id, &digest.hash, now)),
        down("revoke", store.revoke(&id, &RevokeReason::Logout, now)),
        down("list_user", store.list_user("alice", now)),
        down("count_user", store.count_user("alice", now)),
        down(
            "revoke_user",
            store.revoke_user("alice", None, &RevokeReason::Logout, now)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_fast_and_the_same_store_recovers() {
    let mut server = RedisServer::start();
    let clock = ManualClock::new();
    let options = RedisOptions {
        key_prefix: "faults:".into(),
        timeout: TIMEOUT,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    let (new, token) = new_session("alice", &clock);
    store.create(&new, clock.now()).await.unwrap();
    assert!(
        store
            .introspect(&token.digest(), None, clock.now())
            .await
            .unwrap()
            .is_some()
    );

    server.kill();
    // Twice: right after the crash (dropped connection) and while the
    // manager keeps failing to reconnect.
    all_calls_fail_fast(&store, &clock).await;
    all_calls_fail_fast(&store, &clock).await;

    server.restart();
    let started = Instant::now();
    while store.ping().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no recovery within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing persisted (the test server saves nothing); the store works again.
    assert_eq!(store.get(&new.session.id, clock.now()).await, Ok(None));
    let (again, token) = new_session("alice", &clock);
    assert_eq!(store.create(&again, clock.now()).await, Ok(vec![]));
    let found = store
        .introspect(&token.digest(), None, clock.now())
        .await
        .unwrap();
    assert_eq!(found.map(|s| s.id), Some(again.session.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_right_after_a_restart_succeeds_by_retrying_once() {
    let mut server = RedisServer::start();
    let clock = ManualClock::new();
    let options = RedisOptions {
        key_prefix: "faults:".into(),
        timeout: Duration::from_secs(2),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    store.ping().await.unwrap();
    // The store's connection dies with the server; the first read afterwards
    // meets the dead connection, and its one retry goes out on a new one.
    server.restart();
    assert_eq!(store.count_user("alice", clock.now()).await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_dead_server_fails_within_the_timeout() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let options = RedisOptions {
        key_prefix: "faults:".into(),
        timeout: TIMEOUT,
        ..RedisOptions::default()
    };
    let started = Instant::now();
    let result = RedisStore::connect(&url, options).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    let braces = RedisOptions {
        key_prefix: "a{b}:".into(),
        ..RedisOptions::default()
    };
    assert!(matches!(
        RedisStore::connect(&url, braces).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_cannot_hang_connect() {
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let options = RedisOptions {
        key_prefix: "faults:".into(),
        timeout: TIMEOUT,
        ..RedisOptions::default()
    };
    let started = Instant::now();
    let result = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"), options).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
}
