//! Redis memory per realistic session: create USERS users with PER_USER
//! sessions each (110-byte user agent, IPv4, empty data) through the engine
//! on a private redis-server, and print `used_memory` growth per session:
//! without events, and with them (each session's `created` event, kept in
//! the feed for its retention).
//!
//! `cargo run --release -p sessiond-redis --example memory_probe -- [USERS] [PER_USER]`
//! (defaults 20000 and 5); `scripts/redis-memory` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{CreateRequest, Engine, Policy};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_server::RedisServer;

/// A 110-byte desktop Chrome user agent.
pub const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.64 Safari/537.36";

async fn used_memory(server: &RedisServer) -> u64 {
    let info = server.command("INFO memory").unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// Bytes of Redis memory per session after creating `users` × `per_user`
/// sessions on a fresh server, recording their events or not.
pub async fn bytes_per_session(users: usize, per_user: usize, record_events: bool) -> u64 {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let options = RedisOptions {
        record_events,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    let engine = Engine::new(Arc::new(store), Policy::default());
    let before = used_memory(&server).await;
    let mut tasks = tokio::task::JoinSet::new();
    let lanes = 16;
    for lane in 0..lanes {
        let engine = engine.clone();
        tasks.spawn(async move {
            for user in (lane..users).step_by(lanes) {
                for _ in 0..per_user {
                    engine
                        .create(CreateRequest {
                            user_id: format!("user-{user:06}@example.com"),
                            user_agent: Some(USER_AGENT.into()),
                            ip: Some("203.0.113.77".into()),
                            ..CreateRequest::default()
                        })
                        .await
                        .unwrap();
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = used_memory(&server).await;
    (after - before) / (users * per_user) as u64
}

#[allow(dead_code)] // also compiled into tests/memory.rs, which has its own main
#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let users = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let per_user = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    assert_eq!(USER_AGENT.len(), 110);
    let bytes = bytes_per_session(users, per_user, false).await;
    let with_events = bytes_per_session(users, per_user, true).await;
    println!(
        "{} sessions ({users} users x {per_user}): {bytes} bytes of Redis memory per session; \
         {with_events} with its created event in the feed ({} per event)",
        users * per_user,
        with_events.saturating_sub(bytes)
    );
}
