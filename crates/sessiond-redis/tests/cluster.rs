//! The store conformance suite on a real local Redis Cluster (3 masters, 3
//! replicas), bare and behind the near-cache: every case under its own key
//! prefix, the cases sharing one cluster while any of them runs. Also: the
//! live count scans every master; the near-cache sees another instance's
//! revocations on every master at once, and drops everything when one
//! master's invalidation channel is killed. The event feed and presence
//! cases run on the cluster too, and one reader gets the events of users on
//! every master, in order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, Instant};

use sessiond_engine::{
    CacheOptions, CachedStore, CreateRequest, Engine, Policy, RevokeReason, Store,
};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_cluster::RedisCluster;
use sessiond_testkit::{Fixture, ManualClock};
use sessiond_testkit::{Shared, wait_serving};

/// Shared by the cases while any of them runs.
static CLUSTER: Shared<RedisCluster> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_cluster() -> Arc<RedisCluster> {
    CLUSTER.get(RedisCluster::start)
}

async fn store() -> (RedisStore, Arc<RedisCluster>) {
    let cluster = tokio::task::spawn_blocking(shared_cluster).await.unwrap();
    let options = RedisOptions {
        key_prefix: format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed)),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&cluster.url(), options).await.unwrap();
    (store, cluster)
}

async fn fixture(_clock: ManualClock) -> Fixture {
    let (store, cluster) = store().await;
    Fixture::new(Arc::new(store), cluster)
}

async fn cached_fixture(_clock: ManualClock) -> Fixture {
    let (store, cluster) = store().await;
    let cached = CachedStore::new(store, CacheOptions::default());
    wait_serving(cached.cache()).await;
    Fixture::new(Arc::new(cached), cluster)
}

mod conformance {
    sessiond_testkit::conformance_tests!(super::fixture);
}

mod cached {
    sessiond_testkit::conformance_tests!(super::cached_fixture);
}

/// Introspect `token` through `engine` until `store`'s cache answers it.
async fn cached_on(engine: &Engine, store: &CachedStore<RedisStore>, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = store.cache().stats().hits;
        assert!(engine.introspect(token, false).await.unwrap().is_some());
        if store.cache().stats().hits > hits {
            return;
        }
        assert!(Instant::now() < deadline, "never answered from memory");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A caches sessions of users on every master; B revokes them; A sees each
/// revocation within 50 ms and never reports it active again. Then one
/// master's invalidation channel is killed: A drops its cache before any
/// further hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_follows_every_master() {
    let (a_store, cluster) = store().await;
    let options = RedisOptions {
        key_prefix: a_store_prefix(&a_store),
        ..RedisOptions::default()
    };
    let a = Arc::new(CachedStore::new(a_store, CacheOptions::default()));
    wait_serving(a.cache()).await;
    let b = RedisStore::connect(&cluster.url(), options).await.unwrap();
    let engine_a = Engine::new(a.clone() as Arc<dyn Store>, Policy::default());
    let engine_b = Engine::new(Arc::new(b) as Arc<dyn Store>, Policy::default());
    let mut slowest = Duration::ZERO;
    for round in 0..150 {
        let created = engine_a
            .create(CreateRequest {
                user_id: format!("user{round}"),
                ..CreateRequest::default()
            })
            .await
            .unwrap();
        let token = created.token.expose();
        cached_on(&engine_a, &a, token).await;
        engine_b
            .revoke(created.session.id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap();
        let revoked = Instant::now();
        while engine_a.introspect(token, false).await.unwrap().is_some() {
            assert!(
                revoked.elapsed() < Duration::from_millis(50),
                "round {round}: A still active 50 ms after B revoked"
            );
        }
        slowest = slowest.max(revoked.elapsed());
        assert!(engine_a.introspect(token, false).await.unwrap().is_none());
    }
    println!("slowest invalidation: {slowest:?}");

    // Kill one master's channel, revoke through B: A must not answer from
    // memory.
    let created = engine_a
        .create(CreateRequest {
            user_id: "killed".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let token = created.token.expose();
    cached_on(&engine_a, &a, token).await;
    let master = cluster.masters()[0];
    let list = cluster.command(master, "CLIENT LIST").unwrap();
    let id = list
        .lines()
        .find(|l| l.contains(" name=sessiond-near-cache "))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap()
        .to_owned();
    cluster
        .command(master, &format!("CLIENT KILL ID {id}"))
        .unwrap();
    engine_b
        .revoke(created.session.id.as_str(), RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert!(engine_a.introspect(token, false).await.unwrap().is_none());
    assert!(a.cache().stats().flushes >= 1);
    // The channel comes back and the cache serves again.
    let again = engine_a
        .create(CreateRequest {
            user_id: "again".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    wait_serving(a.cache()).await;
    cached_on(&engine_a, &a, again.token.expose()).await;
}

/// Calls of `command` (lower case) on every node since the last reset.
fn calls(cluster: &RedisCluster, command: &str) -> u64 {
    cluster
        .masters()
        .into_iter()
        .chain(cluster.replicas())
        .map(|port| {
            let info = cluster.command(port, "INFO commandstats").unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
                .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Every write on the cluster is one script call on one node, and an
/// introspection one GET (counted on every node by INFO commandstats, on a
/// cluster of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_one_command_on_the_cluster() {
    // A cluster of its own: the other cases' commands would be counted.
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    // No background sweep: its calls would be counted too.
    let options = RedisOptions {
        sweep_interval: std::time::Duration::ZERO,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&cluster.url(), options).await.unwrap();
    let engine = Engine::new(Arc::new(store) as Arc<dyn Store>, Policy::default());
    let reset = || {
        for port in cluster.masters().into_iter().chain(cluster.replicas()) {
            cluster.command(port, "CONFIG RESETSTAT").unwrap();
        }
    };
    // Scripts loaded (the first call of each may have been an EVAL).
    let warm = engine
        .create(CreateRequest {
            user_id: "warm".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    engine
        .revoke(warm.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();

    reset();
    let created = engine
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    // Replicas run the script's effects, not the script: only masters count.
    assert_eq!(
        calls(&cluster, "evalsha") + calls(&cluster, "eval"),
        1,
        "create"
    );

    reset();
    assert!(
        engine
            .introspect(created.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(calls(&cluster, "get"), 1, "introspect");
    assert_eq!(
        calls(&cluster, "evalsha") + calls(&cluster, "eval"),
        0,
        "introspect"
    );

    let id = created.session.id.as_str().to_owned();
    for (name, op) in [("rotate", 0), ("list", 1), ("revoke_user", 2)] {
        reset();
        match op {
            0 => drop(engine.rotate(&id).await.unwrap()),
            1 => drop(engine.list_user("alice").await.unwrap()),
            _ => drop(
                engine
                    .revoke_user("alice", None, RevokeReason::RevokedByAdmin)
                    .await
                    .unwrap(),
            ),
        }
        assert_eq!(
            calls(&cluster, "evalsha") + calls(&cluster, "eval"),
            1,
            "{name}"
        );
    }
}

fn a_store_prefix(store: &RedisStore) -> String {
    // The Debug form names the prefix (never the URL).
    let text = format!("{store:?}");
    text.split("key_prefix: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

/// Sessions of many users spread over every master; the live count finds
/// them all, and each user's keys share one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_every_master_and_are_all_counted() {
    let (store, cluster) = store().await;
    let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, Policy::default());
    for i in 0..60 {
        engine
            .create(sessiond_engine::CreateRequest {
                user_id: format!("user{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(engine.count_live().await.unwrap(), 60);
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    for port in masters {
        let keys: usize = cluster
            .command(port, "DBSIZE")
            .unwrap()
            .trim()
            .trim_start_matches("(integer) ")
            .parse()
            .unwrap();
        assert!(keys > 0, "master {port} holds no key");
    }
    for i in 0..60 {
        assert_eq!(
            engine.list_user(&format!("user{i}")).await.unwrap().len(),
            1
        );
    }
}

/// A feed case's world on the shared cluster, swept by hand on its clock.
async fn event_world(
    cached: bool,
    clock: ManualClock,
    limit_policy: sessiond_engine::LimitPolicy,
) -> sessiond_testkit::history_cases::HistoryWorld {
    use sessiond_engine::Clock;
    let cluster = tokio::task::spawn_blocking(shared_cluster).await.unwrap();
    let options = RedisOptions {
        key_prefix: format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed)),
        sweep_interval: Duration::ZERO,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&cluster.url(), options.clone())
        .await
        .unwrap();
    let (sweeper, sweep_clock) = (store.clone(), clock.clone());
    let sweep: sessiond_testkit::history_cases::Sweep = Box::new(move || {
        let (store, clock) = (sweeper.clone(), sweep_clock.clone());
        Box::pin(async move { store.sweep(clock.now()).await.unwrap() })
    });
    let outer: Arc<dyn Store> = if cached {
        let other = RedisStore::connect(&cluster.url(), options).await.unwrap();
        let cached = CachedStore::new(other, CacheOptions::default());
        wait_serving(cached.cache()).await;
        Arc::new(cached)
    } else {
        Arc::new(store)
    };
    sessiond_testkit::history_cases::HistoryWorld::new(outer, clock, limit_policy, sweep, cluster)
}

async fn bare_events(
    clock: ManualClock,
    limit_policy: sessiond_engine::LimitPolicy,
) -> sessiond_testkit::history_cases::HistoryWorld {
    event_world(false, clock, limit_policy).await
}

async fn cached_events(
    clock: ManualClock,
    limit_policy: sessiond_engine::LimitPolicy,
) -> sessiond_testkit::history_cases::HistoryWorld {
    event_world(true, clock, limit_policy).await
}

mod events {
    sessiond_testkit::event_tests!(super::bare_events);
    sessiond_testkit::presence_tests!(super::bare_events);
}

mod cached_events {
    sessiond_testkit::event_tests!(super::cached_events);
    sessiond_testkit::presence_tests!(super::cached_events);
}

/// Past the size bound the oldest events leave, across the masters' buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_events_leave_past_the_size_bound_across_masters() {
    let cluster = tokio::task::spawn_blocking(shared_cluster).await.unwrap();
    let prefix = format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed));
    common::feed_cases::the_oldest_leave_past_the_size_bound(&cluster.url(), &prefix).await;
}

/// A reader stopped in the middle of 10,000 events on the cluster resumes
/// from its last cursor and gets each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_stopped_mid_stream_resumes_with_every_event_once() {
    let cluster = tokio::task::spawn_blocking(shared_cluster).await.unwrap();
    let prefix = format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed));
    common::feed_cases::a_reader_stopped_mid_stream_resumes_with_every_event_once(
        &cluster.url(),
        &prefix,
    )
    .await;
}

/// Users whose keys sit on every master: one reader gets every user's
/// events, each once, in the order they were made, and resumes from any of
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_users_on_every_master_reach_one_reader_in_order() {
    use sessiond_engine::{EventKind, EventsFrom};
    use sessiond_testkit::event_cases::{drain, now_cursor, query};
    let (store, cluster) = store().await;
    let prefix = a_store_prefix(&store);
    let e = Engine::new(Arc::new(store), Policy::default());
    let start = now_cursor(&e).await;
    let users: Vec<String> = (0..120).map(|i| format!("user{i}@example.com")).collect();
    for user in &users {
        e.create(CreateRequest {
            user_id: user.clone(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    }
    // The users' keys, and their buckets' streams, are on every master.
    for master in cluster.masters() {
        let streams = cluster
            .command(master, &format!("KEYS {prefix}v3:*:e"))
            .unwrap();
        assert!(!streams.is_empty(), "no events on master {master}");
    }

    let events = drain(&e, &query(EventsFrom::Oldest, 50), start.clone()).await;
    let seen: Vec<&str> = events.iter().map(|ev| ev.user_id.as_str()).collect();
    let made: Vec<&str> = users.iter().map(String::as_str).collect();
    assert_eq!(seen, made, "every user's event, once, in order");
    assert!(events.iter().all(|ev| ev.kind == EventKind::Created));
    let rest = drain(&e, &query(EventsFrom::Oldest, 7), events[59].cursor.clone()).await;
    assert_eq!(rest, events[60..]);
}
