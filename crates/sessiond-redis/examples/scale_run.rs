//! Scale run: 1,000,000 realistic sessions (100,000 users with 10 each) on a
//! private single Redis and on a private local Redis Cluster (3 masters, 3
//! replicas), measured through the engine (near-cache off) at 10,000
//! sessions and at 1,000,000: bytes per session, create / introspect / list
//! throughput with 64 calls in flight, and p50/p99 latency with 4 in flight
//! (below saturation, so that the latency is the call's, not the queue's;
//! for introspection, the median of five runs' p99).
//! Prints Markdown.
//!
//! `cargo run --release -p sessiond-redis --example scale_run -- [USERS] [PER_USER]`
//! (defaults 100000 and 10); `scripts/scale-run` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_engine::{CreateRequest, Engine, Policy, RolePolicy};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_cluster::RedisCluster;
use sessiond_testkit::redis_server::RedisServer;

/// Calls in flight when measuring throughput.
const LANES: usize = 64;
/// Calls in flight when measuring latency.
const LATENCY_LANES: usize = 4;
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.64 Safari/537.36";
const SAMPLES: usize = 20_000;
const LIST_SAMPLES: usize = 5_000;

/// Latencies of one kind of call, and the wall time they took.
struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    /// Quantile `q` in ms.
    fn at(&mut self, q: f64) -> f64 {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// A measured kind of call: its throughput run and its latency run.
struct Measured {
    throughput: Run,
    latency: Run,
}

impl Measured {
    fn row(&mut self, what: &str) -> String {
        format!(
            "{what} | {:.0} | {:.2} | {:.2}",
            self.throughput.rate(),
            self.latency.at(0.50),
            self.latency.at(0.99)
        )
    }
}

/// Run `calls` jobs over `lanes` lanes, timing each.
async fn timed<F, Fut>(calls: usize, lanes: usize, job: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let job = job.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for i in (lane..calls).step_by(lanes) {
                let t = Instant::now();
                job(i).await;
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::with_capacity(calls);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    Run {
        latencies,
        wall: started.elapsed(),
    }
}

/// Tokens packed in one buffer: a million separate strings would make the
/// measuring process's own heap (and so its cost per call) grow with the
/// number of sessions, which a server does not carry.
#[derive(Clone, Default)]
struct Tokens {
    text: String,
    ends: Vec<usize>,
}

impl Tokens {
    fn push(&mut self, token: &str) {
        self.text.push_str(token);
        self.ends.push(self.text.len());
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn extend(&mut self, other: Tokens) {
        for i in 0..other.len() {
            self.push(other.get(i));
        }
    }
}

fn user(u: usize) -> String {
    format!("user-{u:06}@example.com")
}

/// Create sessions `from..to` (user `i / per_user`), returning their
/// tokens in order, and the timing of the creates.
async fn load(engine: &Engine, from: usize, to: usize, per_user: usize) -> (Tokens, Run) {
    let tokens = Arc::new(std::sync::Mutex::new(vec![String::new(); to - from]));
    let slot = tokens.clone();
    let engine = engine.clone();
    let run = timed(to - from, LANES, move |i| {
        let engine = engine.clone();
        let slot = slot.clone();
        async move {
            let n = from + i;
            let created = engine
                .create(CreateRequest {
                    user_id: user(n / per_user),
                    user_agent: Some(USER_AGENT.into()),
                    ip: Some(format!("203.0.{}.{}", (n / 250) % 250, n % 250)),
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            slot.lock().unwrap()[i] = created.token.expose().to_owned();
        }
    })
    .await;
    let loose = std::mem::take(&mut *tokens.lock().unwrap());
    let mut packed = Tokens::default();
    for token in &loose {
        packed.push(token);
    }
    (packed, run)
}

/// Introspect a spread of `tokens`, and list a spread of `users`: each
/// once for throughput, once for latency.
async fn reads(engine: &Engine, tokens: Arc<Tokens>, users: usize) -> (Measured, Measured) {
    let introspect = |lanes: usize, salt: usize| {
        let e = engine.clone();
        let t = tokens.clone();
        timed(SAMPLES, lanes, move |i| {
            let e = e.clone();
            let t = t.clone();
            async move {
                // A spread over all tokens, not a hot few.
                let token = t.get((i * 7919 + salt) % t.len());
                assert!(e.introspect(token, true).await.unwrap().is_some());
            }
        })
    };
    let list = |lanes: usize, salt: usize| {
        let e = engine.clone();
        timed(LIST_SAMPLES, lanes, move |i| {
            let e = e.clone();
            async move {
                let listed = e
                    .list_user(&user((i * 104_729 + salt) % users))
                    .await
                    .unwrap();
                assert!(!listed.is_empty());
            }
        })
    };
    // The latency of introspection is the headline: the run with the
    // median p99 of five (a shared 2-vCPU machine has a noisy tail).
    let mut rounds = Vec::new();
    for salt in 1..=5 {
        rounds.push(introspect(LATENCY_LANES, salt).await);
    }
    rounds.sort_by(|a, b| {
        let (mut a, mut b) = (a.latencies.clone(), b.latencies.clone());
        a.sort();
        b.sort();
        a[a.len() * 99 / 100].cmp(&b[b.len() * 99 / 100])
    });
    let latency = rounds.swap_remove(2);
    let i = Measured {
        throughput: introspect(LANES, 0).await,
        latency,
    };
    let l = Measured {
        throughput: list(LANES, 0).await,
        latency: list(LATENCY_LANES, 1).await,
    };
    (i, l)
}

/// Creates measured for throughput (the load's own calls) and for latency
/// (`n` more, 4 in flight, for users past the loaded ones).
async fn create_latency(engine: &Engine, n: usize, first_user: usize) -> Run {
    let e = engine.clone();
    timed(n, LATENCY_LANES, move |i| {
        let e = e.clone();
        async move {
            e.create(CreateRequest {
                user_id: user(first_user + i),
                user_agent: Some(USER_AGENT.into()),
                ip: Some("198.51.100.7".into()),
                ..CreateRequest::default()
            })
            .await
            .unwrap();
        }
    })
    .await
}

/// `used_memory` of the data nodes that hold the data (masters).
type Memory = Box<dyn Fn() -> u64>;
/// Wait until replicas have caught up with their masters (so that a
/// measurement does not share the CPU with replication).
type Settle = Box<dyn Fn()>;

async fn scale(
    name: &str,
    url: &str,
    memory: Memory,
    settle: Settle,
    users: usize,
    per_user: usize,
) -> String {
    let policy = Policy {
        default_role: RolePolicy {
            max_sessions: u32::try_from(per_user).unwrap_or(u32::MAX),
            ..RolePolicy::default()
        },
        ..Policy::default()
    };
    let options = RedisOptions {
        timeout: Duration::from_secs(10),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(url, options).await.unwrap();
    let engine = Engine::new(Arc::new(store), policy);
    let total = users * per_user;
    let small = 10_000.min(total);
    let mut out = String::new();
    let before = memory();

    let (mut tokens, created) = load(&engine, 0, small, per_user).await;
    let bytes_small = (memory() - before) / small as u64;
    settle();
    let (mut i_small, mut l_small) =
        reads(&engine, Arc::new(tokens.clone()), small / per_user).await;
    let mut create_small = Measured {
        throughput: created,
        latency: create_latency(&engine, 2_000, 10_000_000).await,
    };

    let started = Instant::now();
    let last = 10_000.min(total - small);
    let (more, _) = load(&engine, small, total - last, per_user).await;
    tokens.extend(more);
    let (more, created) = load(&engine, total - last, total, per_user).await;
    tokens.extend(more);
    let loaded_in = started.elapsed();
    let bytes_large = (memory() - before) / total as u64;
    settle();
    let (mut i_large, mut l_large) = reads(&engine, Arc::new(tokens), users).await;
    let mut create_large = Measured {
        throughput: created,
        latency: create_latency(&engine, 2_000, 20_000_000).await,
    };

    let fmt_n = |n: usize| {
        if n >= 1_000_000 {
            format!("{}M", n / 1_000_000)
        } else {
            format!("{}k", n / 1_000)
        }
    };
    for (at, bytes, c, i, l) in [
        (
            small,
            bytes_small,
            &mut create_small,
            &mut i_small,
            &mut l_small,
        ),
        (
            total,
            bytes_large,
            &mut create_large,
            &mut i_large,
            &mut l_large,
        ),
    ] {
        let n = fmt_n(at);
        out.push_str(&format!(
            "| {name} | {n} | {bytes} | {} |\n",
            c.row("create")
        ));
        out.push_str(&format!("| {name} | {n} | | {} |\n", i.row("introspect")));
        out.push_str(&format!("| {name} | {n} | | {} |\n", l.row("list (10)")));
    }
    out.push_str(&format!(
        "\n{name}: loaded {total} sessions in {loaded_in:.0?}; introspect p99 at {} ÷ at {}: {:.2}\n\n",
        fmt_n(total),
        fmt_n(small),
        i_large.latency.at(0.99) / i_small.latency.at(0.99)
    ));
    out
}

fn used_memory(info: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let users = args.first().copied().unwrap_or(100_000);
    let per_user = args.get(1).copied().unwrap_or(10);
    println!(
        "{} sessions ({users} users x {per_user}), {LANES} calls in flight, near-cache off\n",
        users * per_user
    );
    println!(
        "| topology | sessions | bytes/session | call | calls/s ({LANES} in flight) | p50 ms ({LATENCY_LANES} in flight) | p99 ms |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|");

    let server = Arc::new(
        tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap(),
    );
    let s = server.clone();
    let memory: Memory = Box::new(move || used_memory(&s.command("INFO memory").unwrap()));
    let single = scale(
        "single Redis",
        &server.url(),
        memory,
        Box::new(|| {}),
        users,
        per_user,
    )
    .await;
    drop(server);

    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .unwrap(),
    );
    let c = cluster.clone();
    let memory: Memory = Box::new(move || {
        c.masters()
            .iter()
            .map(|port| used_memory(&c.command(*port, "INFO memory").unwrap()))
            .sum()
    });
    let c = cluster.clone();
    let settle: Settle = Box::new(move || {
        let offset = |port: u16, field: &str| -> Vec<i64> {
            c.command(port, "INFO replication")
                .unwrap()
                .lines()
                .filter_map(|l| {
                    if field == "slave" {
                        // slaveN:ip=…,port=…,state=online,offset=N,lag=…
                        l.split(',')
                            .find_map(|f| f.strip_prefix("offset="))
                            .filter(|_| l.starts_with("slave"))
                    } else {
                        l.strip_prefix("master_repl_offset:")
                    }
                })
                .filter_map(|v| v.trim().parse().ok())
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        for port in c.masters() {
            loop {
                let master = offset(port, "master").first().copied().unwrap_or(0);
                if offset(port, "slave").iter().all(|o| *o >= master) {
                    break;
                }
                assert!(Instant::now() < deadline, "replicas never caught up");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let clustered = scale(
        "Cluster (3+3)",
        &cluster.url(),
        memory,
        settle,
        users,
        per_user,
    )
    .await;
    drop(cluster);

    let mut notes = String::new();
    for text in [single, clustered] {
        let (rows, note) = text.split_once("\n\n").unwrap_or((&text, ""));
        println!("{rows}");
        notes.push_str(note.trim());
        notes.push('\n');
    }
    println!("\n{notes}");
}
