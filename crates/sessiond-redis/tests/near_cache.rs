//! The near-cache over Redis (`CachedStore<RedisStore>`): a hit sends no
//! command; a change made through another store instance (or any client) is
//! seen as soon as its invalidation arrives; losing the invalidation channel
//! (CLIENT KILL, a restart, a crash, FLUSHALL) drops the whole cache before
//! another hit; a dead Redis means errors, never answers from memory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sessiond_engine::{
    CacheOptions, CacheStats, CachedStore, Clock, CreateRequest, DataUpdate, Engine, ManualClock,
    NearCache, Policy, RevokeReason, Store, SystemClock,
};
use sessiond_redis::{NEAR_CACHE_CONNECTION_NAME, RedisStore};
use sessiond_testkit::redis_server::RedisServer;
use sessiond_testkit::wait_serving;

use common::{CommandLog, admin, store_at};

/// A cached store on the Redis at `url` under `prefix`, its channel up.
async fn cached(url: &str, prefix: &str) -> Arc<CachedStore<RedisStore>> {
    let store = store_at(url, prefix, Duration::from_secs(2)).await;
    let cached = Arc::new(CachedStore::new(store, CacheOptions::default()));
    wait_serving(cached.cache()).await;
    cached
}

fn engine(store: &Arc<CachedStore<RedisStore>>, clock: &ManualClock) -> Engine {
    Engine::with_clock(store.clone(), Policy::default(), Arc::new(clock.clone()))
}

fn alice() -> CreateRequest {
    CreateRequest {
        user_id: "alice".into(),
        ..CreateRequest::default()
    }
}

/// Introspect `token` through `engine` until `store`'s cache answers it.
async fn cached_on(engine: &Engine, store: &CachedStore<RedisStore>, token: &str) {
    for _ in 0..100 {
        let hits = stats(store).hits;
        assert!(engine.introspect(token, false).await.unwrap().is_some());
        if stats(store).hits > hits {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never answered from memory");
}

fn stats(store: &CachedStore<RedisStore>) -> CacheStats {
    store.cache().stats()
}

/// Commands on the wire other than the channel's heartbeat.
fn commands(log: &CommandLog) -> Vec<String> {
    log.take().into_iter().filter(|c| c != "PING").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_sends_no_command() {
    let server = RedisServer::start();
    let log = CommandLog::start(server.port());
    let store = cached(&log.url(), "hit:").await;
    let clock = ManualClock::new();
    let e = engine(&store, &clock);
    let token = e.create(alice()).await.unwrap().token;

    log.clear();
    let first = e.introspect(token.expose(), true).await.unwrap().unwrap();
    assert_eq!(commands(&log), ["GET"], "a miss is one plain read");
    for _ in 0..100 {
        let again = e.introspect(token.expose(), true).await.unwrap().unwrap();
        assert_eq!(again, first);
    }
    // A lookup right after a fill may find the channel's reader still busy
    // with the reply and read Redis instead: every miss is one GET, every
    // hit is nothing.
    let s = stats(&store);
    let gets = commands(&log);
    assert!(gets.iter().all(|c| c == "GET"), "{gets:?}");
    assert_eq!(gets.len() as u64, s.misses - 1, "hits send nothing: {s:?}");
    assert!(s.hits >= 90, "{s:?}");
    assert_eq!(s.hits + s.misses, 101);

    // A touch that comes due goes to Redis as without the cache, and the
    // next introspection reads the touched record.
    clock.advance(Duration::from_secs(61));
    let touched = e.introspect(token.expose(), true).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, clock.now());
    assert_eq!(commands(&log), ["GET", "EVALSHA"]);
    let after = e.introspect(token.expose(), true).await.unwrap().unwrap();
    assert_eq!(after.last_seen_at, clock.now());
    assert_eq!(commands(&log), ["GET"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_judged_on_every_hit() {
    let server = RedisServer::start();
    let store = cached(&server.url(), "deadline:").await;
    let clock = ManualClock::new();
    let e = engine(&store, &clock);
    let created = e
        .create(CreateRequest {
            idle_ttl: Some(Duration::from_secs(60)),
            ..alice()
        })
        .await
        .unwrap();
    let token = created.token.expose();
    assert!(e.introspect(token, false).await.unwrap().is_some());
    cached_on(&e, &store, token).await;
    // Past the idle deadline by the engine's clock: Redis still holds the
    // record (its TTL runs on real time), the cache must not serve it.
    clock.advance(Duration::from_secs(61));
    assert!(e.introspect(token, false).await.unwrap().is_none());
}

/// Each kind of change made through instance A is seen by instance B as soon
/// as B's invalidation arrives: revocation, rotation, data update, extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_another_instance_are_seen() {
    let server = RedisServer::start();
    let a = cached(&server.url(), "two:").await;
    let b = cached(&server.url(), "two:").await;
    let clock = ManualClock::new();
    let (ea, eb) = (engine(&a, &clock), engine(&b, &clock));

    // Polls B until `done` holds for its introspection, within 50 ms.
    async fn seen_within(
        eb: &Engine,
        token: &str,
        done: impl Fn(Option<&sessiond_engine::Session>) -> bool,
    ) {
        let start = Instant::now();
        loop {
            let now = eb.introspect(token, false).await.unwrap();
            if done(now.as_ref()) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_millis(50),
                "stale after 50 ms"
            );
        }
    }

    let created = ea.create(alice()).await.unwrap();
    let (id, token) = (created.session.id.as_str(), created.token.expose());
    cached_on(&eb, &b, token).await;

    let update = DataUpdate::Merge(match json!({"cart": 3}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    });
    ea.update_data(id, update).await.unwrap();
    seen_within(&eb, token, |s| {
        s.is_some_and(|s| s.data.get("cart") == Some(&json!(3)))
    })
    .await;

    let before = eb.introspect(token, false).await.unwrap().unwrap();
    ea.extend(id, Some(Duration::from_secs(7200)))
        .await
        .unwrap();
    seen_within(&eb, token, |s| {
        s.is_some_and(|s| s.expires_at > before.expires_at)
    })
    .await;

    let rotated = ea.rotate(id).await.unwrap();
    seen_within(&eb, token, |s| s.is_none()).await;
    let token = rotated.token.expose();
    cached_on(&eb, &b, token).await;
    ea.revoke(id, RevokeReason::RevokedByAdmin).await.unwrap();
    seen_within(&eb, token, |s| s.is_none()).await;
    assert!(stats(&b).invalidations >= 3, "{:?}", stats(&b));
}

/// The rule of the issue, at the store level: revoke on A, poll B; inactive
/// within 50 ms, 1,000 times in a row, and never active again after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_revocations_on_a_are_seen_by_b() {
    let server = RedisServer::start();
    let a = cached(&server.url(), "race:").await;
    let b = cached(&server.url(), "race:").await;
    let (ea, eb) = (
        Engine::new(a.clone(), Policy::default()),
        Engine::new(b.clone(), Policy::default()),
    );
    let mut slowest = Duration::ZERO;
    for round in 0..1000 {
        let created = ea.create(alice()).await.unwrap();
        let token = created.token.expose();
        cached_on(&eb, &b, token).await;
        ea.revoke(created.session.id.as_str(), RevokeReason::Logout)
            .await
            .unwrap();
        let revoked = Instant::now();
        while eb.introspect(token, false).await.unwrap().is_some() {
            assert!(
                revoked.elapsed() < Duration::from_millis(50),
                "round {round}: B still served the session 50 ms after A revoked it"
            );
        }
        slowest = slowest.max(revoked.elapsed());
        for _ in 0..3 {
            assert!(eb.introspect(token, false).await.unwrap().is_none());
        }
    }
    let s = stats(&b);
    assert!(s.hits >= 1000, "B served from memory: {s:?}");
    println!("slowest revocation seen by B: {slowest:?}; B: {s:?}");
}

/// The id of the near-cache connection of the server's clients.
async fn channel_ids(admin: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.contains(&format!(" name={NEAR_CACHE_CONNECTION_NAME} ")))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_channel_drops_the_cache_before_the_next_hit() {
    let server = RedisServer::start();
    let a = cached(&server.url(), "kill:").await;
    let other = store_at(&server.url(), "kill:", Duration::from_secs(2)).await;
    let ea = Engine::new(a.clone(), Policy::default());
    let eo = Engine::new(Arc::new(other), Policy::default());
    let mut admin = admin(&server).await;

    for round in 0..20 {
        let created = ea.create(alice()).await.unwrap();
        let token = created.token.expose();
        cached_on(&ea, &a, token).await;
        let ids = channel_ids(&mut admin).await;
        assert_eq!(ids.len(), 1, "one channel: {ids:?}");
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&ids[0])
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(killed, 1);
        // Redis no longer tracks A's reads: this revocation sends A nothing.
        eo.revoke(created.session.id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap();
        assert!(
            ea.introspect(token, false).await.unwrap().is_none(),
            "round {round}: served from a cache whose channel was killed"
        );
        wait_serving(a.cache()).await;
    }
    let s = stats(&a);
    assert!(s.flushes >= 20, "{s:?}");
    // Hits resume once the channel is back.
    let token = ea.create(alice()).await.unwrap().token;
    cached_on(&ea, &a, token.expose()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_drops_the_cache() {
    let server = RedisServer::start();
    let a = cached(&server.url(), "flush:").await;
    let ea = Engine::new(a.clone(), Policy::default());
    let token = ea.create(alice()).await.unwrap().token;
    ea.introspect(token.expose(), false).await.unwrap().unwrap();
    let mut admin = admin(&server).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let start = Instant::now();
    while ea
        .introspect(token.expose(), false)
        .await
        .unwrap()
        .is_some()
    {
        assert!(start.elapsed() < Duration::from_millis(50));
    }
    assert!(stats(&a).flushes >= 1);
}

/// Redis killed: the channel is lost, so the cache is dropped by the next
/// lookup and every introspection fails within the store timeout, never an
/// answer from memory.
/// Restarted: the channel comes back and so do hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_an_error_never_a_hit() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let store = store_at(&server.url(), "dead:", timeout).await;
    let a = Arc::new(CachedStore::new(store, CacheOptions::default()));
    wait_serving(a.cache()).await;
    let ea = Engine::new(a.clone(), Policy::default());
    let tokens: Vec<_> = {
        let mut t = Vec::new();
        for i in 0..20 {
            let user = CreateRequest {
                user_id: format!("user{i}"),
                ..CreateRequest::default()
            };
            let token = ea.create(user).await.unwrap().token;
            ea.introspect(token.expose(), false).await.unwrap().unwrap();
            t.push(token);
        }
        t
    };
    assert_eq!(stats(&a).entries, 20);
    server.kill();
    // The kernel closed the channel's socket with the process: the very next
    // lookup sees it (the socket is probed before every lookup).
    // (Each call waits out the timeout while the connection is re-dialled.)
    for (i, token) in tokens.iter().enumerate().step_by(5) {
        let started = Instant::now();
        let result = ea.introspect(token.expose(), false).await;
        assert!(
            matches!(result, Err(sessiond_engine::Error::Unavailable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        if i == 0 {
            assert_eq!(stats(&a).entries, 0, "dropped by the first lookup");
        }
    }

    server.restart();
    wait_serving(a.cache()).await;
    let token = ea.create(alice()).await.unwrap().token;
    cached_on(&ea, &a, token.expose()).await;
}

/// A frozen Redis (connections open, nothing answers): hits stop once the
/// channel has not proven itself for the lease, then calls fail within the
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_stops_hits_after_the_lease() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let store = store_at(&server.url(), "frozen:", timeout).await;
    let a = Arc::new(CachedStore::new(store, CacheOptions::default()));
    wait_serving(a.cache()).await;
    let ea = Engine::new(a.clone(), Policy::default());
    let token = ea.create(alice()).await.unwrap().token;
    ea.introspect(token.expose(), false).await.unwrap().unwrap();
    server.freeze();
    let frozen = Instant::now();
    let outcome = loop {
        let r = ea.introspect(token.expose(), false).await;
        if r.is_err() {
            break r;
        }
        assert!(
            frozen.elapsed() < NearCache::LEASE + NearCache::CONFIRM_INTERVAL,
            "hits went on {:?} after redis froze",
            frozen.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    server.thaw();
    assert!(matches!(
        outcome,
        Err(sessiond_engine::Error::Unavailable(_))
    ));
}

/// Closing the store stops the channel: nothing is served from memory after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stops_the_channel() {
    let server = RedisServer::start();
    let a = cached(&server.url(), "sys:").await;
    let e = Engine::with_clock(a.clone(), Policy::default(), Arc::new(SystemClock));
    let token = e.create(alice()).await.unwrap().token;
    assert!(e.introspect(token.expose(), true).await.unwrap().is_some());
    assert!(e.introspect(token.expose(), true).await.unwrap().is_some());
    assert!(a.close().await.is_ok());
    assert!(!a.cache().serving());
}
