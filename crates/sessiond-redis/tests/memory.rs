//! A realistic session (110-byte user agent, IPv4, empty data, its index
//! entry) costs at most 600 bytes of Redis memory; its `created` event in
//! the feed at most 250 more. `scripts/redis-memory`
//! measures the same with 100,000 sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/memory_probe.rs"]
mod probe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_session_costs_at_most_600_bytes() {
    let bytes = probe::bytes_per_session(2_000, 5, false).await;
    println!("{bytes} bytes per session");
    assert!(bytes <= 600, "{bytes} bytes per session");
    // An event in the feed costs far less than its session (they leave by
    // the feed's retention and size bound, not with the sessions).
    let with_events = probe::bytes_per_session(2_000, 5, true).await;
    println!("{with_events} bytes per session with its created event");
    assert!(
        with_events - bytes <= 250,
        "{} bytes per event",
        with_events - bytes
    );
}
