//! A realistic session (110-byte user agent, IPv4, empty data, its index
//! entry) costs at most 600 bytes of Redis memory. `scripts/redis-memory`
//! measures the same with 100,000 sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/memory_probe.rs"]
mod probe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_session_costs_at_most_600_bytes() {
    let bytes = probe::bytes_per_session(2_000, 5).await;
    println!("{bytes} bytes per session");
    assert!(bytes <= 600, "{bytes} bytes per session");
}
