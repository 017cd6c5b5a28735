//! Engine throughput on each store (create, introspect, rotate, list), one
//! operation in flight and 64 in flight, next to the raw backend ceiling
//! measured in the same run: a redis-rs GET for Redis, a bare SQLite point
//! read and a one-row fsynced commit for the embedded store, a bare
//! primary-key `SELECT` and a one-row `INSERT` commit for PostgreSQL (whose
//! store runs with its near-cache off and on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{CacheOptions, CachedStore, CreateRequest, Engine, Policy, Store};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::postgres_server::PostgresServer;
use sessiond_testkit::redis_server::RedisServer;
use tokio::runtime::Runtime;

const IN_FLIGHT: u64 = 64;

/// The default policy: 10 sessions per user, so creates reach the steady
/// state of a real user base (evicting the oldest) instead of piling up.
fn policy() -> Policy {
    Policy::default()
}

fn user(id: &str) -> CreateRequest {
    CreateRequest {
        user_id: id.into(),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36".into()),
        ip: Some("192.0.2.1".into()),
        ..CreateRequest::default()
    }
}

/// Run `op` `iters` times, `width` at a time, and return the elapsed time.
async fn run<F, Fut>(iters: u64, width: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..width {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = lane;
            while i < iters {
                op(i).await;
                i += width;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn engine_ops(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, store: Arc<dyn Store>) {
    let engine = Engine::new(store, policy());
    // A pool of live sessions to introspect, rotate and list.
    let tokens: Arc<Vec<String>> = Arc::new(rt.block_on(async {
        let mut t = Vec::new();
        for i in 0..256 {
            t.push(
                engine
                    .create(user(&format!("reader{}", i % 64)))
                    .await
                    .unwrap()
                    .token
                    .expose()
                    .to_owned(),
            );
        }
        t
    }));
    // Separate sessions to rotate, so the introspected tokens stay valid.
    let ids: Arc<Vec<String>> = Arc::new(rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..256 {
            let created = engine
                .create(user(&format!("rotator{}", i % 64)))
                .await
                .unwrap();
            out.push(created.session.id.to_string());
        }
        out
    }));

    let refresh_chains: Arc<Vec<tokio::sync::Mutex<String>>> = Arc::new(rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..256 {
            let created = engine
                .create_jwt(user(&format!("refresher{}", i % 64)))
                .await
                .unwrap();
            out.push(tokio::sync::Mutex::new(
                created.refresh_token.expose().to_owned(),
            ));
        }
        out
    }));

    for width in [1, IN_FLIGHT] {
        let e = engine.clone();
        group.bench_function(format!("create/{width}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let e = e.clone();
                run(iters, width, move |i| {
                    let e = e.clone();
                    async move {
                        e.create(user(&format!("creator{}", i % 1000)))
                            .await
                            .unwrap();
                    }
                })
            })
        });
        let (e, t) = (engine.clone(), tokens.clone());
        group.bench_function(format!("introspect/{width}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (e, t) = (e.clone(), t.clone());
                run(iters, width, move |i| {
                    let (e, t) = (e.clone(), t.clone());
                    async move {
                        let s = e.introspect(&t[i as usize % t.len()], true).await.unwrap();
                        assert!(s.is_some());
                    }
                })
            })
        });
        let (e, ids) = (engine.clone(), ids.clone());
        group.bench_function(format!("rotate/{width}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (e, ids) = (e.clone(), ids.clone());
                run(iters, width, move |i| {
                    let (e, ids) = (e.clone(), ids.clone());
                    async move {
                        e.rotate(&ids[i as usize % ids.len()]).await.unwrap();
                    }
                })
            })
        });
        // JWT mode: each iteration rotates one of 256 refresh chains (a
        // chain's slot is locked across its refresh, as one client would).
        let (e, chains) = (engine.clone(), refresh_chains.clone());
        group.bench_function(format!("refresh/{width}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (e, chains) = (e.clone(), chains.clone());
                run(iters, width, move |i| {
                    let (e, chains) = (e.clone(), chains.clone());
                    async move {
                        let mut slot = chains[i as usize % chains.len()].lock().await;
                        let next = e.refresh(&slot, Duration::from_secs(10)).await.unwrap();
                        assert!(next.rotated);
                        *slot = next.refresh_token.expose().to_owned();
                    }
                })
            })
        });
        let e = engine.clone();
        group.bench_function(format!("list_4/{width}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let e = e.clone();
                run(iters, width, move |i| {
                    let e = e.clone();
                    async move {
                        let l = e.list_user(&format!("reader{}", i % 64)).await.unwrap();
                        assert_eq!(l.len(), 4);
                    }
                })
            })
        });
    }
}

fn redis(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let server = RedisServer::start();
    let store = rt
        .block_on(RedisStore::connect(&server.url(), RedisOptions::default()))
        .unwrap();
    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));
    // Ceiling: one GET round trip through the same client library.
    let client = redis::Client::open(server.url()).unwrap();
    let conn = rt.block_on(client.get_connection_manager()).unwrap();
    for width in [1, IN_FLIGHT] {
        group.bench_function(format!("ceiling_get/{width}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let conn = conn.clone();
                run(iters, width, move |_| {
                    let mut conn = conn.clone();
                    async move {
                        let _: Option<String> = redis::cmd("GET")
                            .arg("k")
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                    }
                })
            })
        });
    }
    engine_ops(&mut group, &rt, Arc::new(store));
    group.finish();
}

fn embedded(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(EmbeddedStore::open(
            dir.path().join("store"),
            EmbeddedOptions::default(),
        ))
        .unwrap();
    let mut group = c.benchmark_group("embedded");
    group.throughput(Throughput::Elements(1));
    // Ceilings: a bare point read and a bare one-row commit on the same disk,
    // same journal mode and sync level as the store.
    let raw = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    raw.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'x');",
    )
    .unwrap();
    group.bench_function("ceiling_point_read/1", |b| {
        let mut stmt = raw.prepare("SELECT v FROM t WHERE k = 1").unwrap();
        b.iter(|| stmt.query_row([], |r| r.get::<_, String>(0)).unwrap())
    });
    group.bench_function("ceiling_commit/1", |b| {
        let mut insert = raw.prepare("INSERT INTO t(v) VALUES ('x')").unwrap();
        b.iter(|| insert.execute([]).unwrap())
    });
    engine_ops(&mut group, &rt, Arc::new(store));
    group.finish();
}

fn postgres(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let server = PostgresServer::start();
    let mut group = c.benchmark_group("postgres");
    group.throughput(Throughput::Elements(1));
    // Ceilings, through the same client library: a bare primary-key SELECT
    // and a bare one-row INSERT commit (synchronous_commit on, as the store).
    let url = server.url();
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    let client = Arc::new(client);
    rt.block_on(client.batch_execute(
        "CREATE TABLE t (k bigint PRIMARY KEY, v text);
         CREATE TABLE w (k bigserial PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'x');",
    ))
    .unwrap();
    let select = rt
        .block_on(client.prepare("SELECT v FROM t WHERE k = $1"))
        .unwrap();
    let insert = rt
        .block_on(client.prepare("INSERT INTO w (v) VALUES ('x')"))
        .unwrap();
    for width in [1, IN_FLIGHT] {
        let (c, stmt) = (client.clone(), select.clone());
        group.bench_function(format!("ceiling_select/{width}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (c, stmt) = (c.clone(), stmt.clone());
                run(iters, width, move |_| {
                    let (c, stmt) = (c.clone(), stmt.clone());
                    async move {
                        c.query_one(&stmt, &[&1_i64]).await.unwrap();
                    }
                })
            })
        });
        let (c, stmt) = (client.clone(), insert.clone());
        group.bench_function(format!("ceiling_insert/{width}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (c, stmt) = (c.clone(), stmt.clone());
                run(iters, width, move |_| {
                    let (c, stmt) = (c.clone(), stmt.clone());
                    async move {
                        c.execute(&stmt, &[]).await.unwrap();
                    }
                })
            })
        });
    }
    let store = rt
        .block_on(PostgresStore::connect(&url, PostgresOptions::default()))
        .unwrap();
    engine_ops(&mut group, &rt, Arc::new(store));
    group.finish();

    // The same with the near-cache on (its own schema).
    let mut group = c.benchmark_group("postgres_cached");
    group.throughput(Throughput::Elements(1));
    let options = PostgresOptions {
        schema: "cached".into(),
        ..PostgresOptions::default()
    };
    let store = rt.block_on(PostgresStore::connect(&url, options)).unwrap();
    // The cache starts its invalidation channel on the runtime.
    let _runtime = rt.enter();
    let cached = CachedStore::new(store, CacheOptions::default());
    rt.block_on(sessiond_testkit::wait_serving(cached.cache()));
    engine_ops(&mut group, &rt, Arc::new(cached));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = redis, embedded, postgres }
criterion_main!(benches);
