//! What recording events costs writes on Redis: create-and-revoke cycles
//! (64 in flight, realistic sessions) through the engine on a private
//! redis-server, in alternating rounds with events recorded and not, and
//! the ratio of their throughputs from the same run.
//!
//! `cargo run --release -p sessiond-redis --example events_overhead -- [CYCLES] [ROUNDS]`
//! (defaults 20000 and 3); `scripts/events-overhead` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_engine::{CreateRequest, Engine, Policy, RevokeReason};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_server::RedisServer;

/// A 110-byte desktop Chrome user agent.
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.64 Safari/537.36";

const IN_FLIGHT: usize = 64;

/// Create-then-revoke cycles per second over `engine`.
async fn cycles_per_second(engine: &Engine, cycles: usize, round: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..IN_FLIGHT {
        let engine = engine.clone();
        tasks.spawn(async move {
            for n in (lane..cycles).step_by(IN_FLIGHT) {
                let created = engine
                    .create(CreateRequest {
                        user_id: format!("user-{round}-{n:07}@example.com"),
                        user_agent: Some(USER_AGENT.into()),
                        ip: Some("203.0.113.77".into()),
                        ..CreateRequest::default()
                    })
                    .await
                    .unwrap();
                engine
                    .revoke(created.session.id.as_str(), RevokeReason::Logout)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    cycles as f64 / started.elapsed().as_secs_f64()
}

async fn engine(server: &RedisServer, record_events: bool, prefix: &str) -> Engine {
    let options = RedisOptions {
        key_prefix: prefix.to_owned(),
        record_events,
        sweep_interval: Duration::ZERO,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    Engine::new(Arc::new(store), Policy::default())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let cycles: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let with = engine(&server, true, "on:").await;
    let without = engine(&server, false, "off:").await;
    // Warm up both (scripts loaded, connections open, allocator grown).
    cycles_per_second(&with, 2_000, 1000).await;
    cycles_per_second(&without, 2_000, 1001).await;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so that drift favours neither.
        if round % 2 == 0 {
            on.push(cycles_per_second(&with, cycles, 2 * round).await);
            off.push(cycles_per_second(&without, cycles, 2 * round + 1).await);
        } else {
            off.push(cycles_per_second(&without, cycles, 2 * round + 1).await);
            on.push(cycles_per_second(&with, cycles, 2 * round).await);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on_rate, off_rate) = (median(&mut on), median(&mut off));
    println!("| events | create+revoke cycles/s (median of {rounds}) | rounds |");
    println!("|---|---:|---|");
    println!("| recorded | {on_rate:.0} | {on:.0?} |");
    println!("| not recorded | {off_rate:.0} | {off:.0?} |");
    println!(
        "\nWith events: {:.1}% fewer cycles per second ({cycles} cycles of create + revoke per round, {IN_FLIGHT} in flight).",
        (1.0 - on_rate / off_rate) * 100.0
    );
}
