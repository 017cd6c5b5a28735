//! Revocations across a failover, on a real master, replica and three
//! sentinels: with `wait_replicas = 1`, no acknowledged revocation comes back
//! after the master is killed (`kill -9`) and its replica promoted; without
//! it, the test reports how many do. Replication is cut while the
//! revocations run (the replica's process stopped with `SIGSTOP`, its link
//! dropped by the master), as a partition or a lagging link would; the
//! replica resumes once the master is dead, and the sentinels promote it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{CreateRequest, Engine, Error, Policy, RevokeReason, Store};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_sentinel::RedisSentinel;

const SESSIONS: usize = 200;

fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill").arg(sig).arg(pid).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

fn pid_of(setup: &RedisSentinel, port: u16) -> String {
    let info = setup.command(port, "INFO server").unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_owned()
}

async fn engine(setup: &RedisSentinel, wait_replicas: u32) -> Engine {
    let options = RedisOptions {
        key_prefix: "durable:".into(),
        timeout: Duration::from_millis(1000),
        wait_replicas,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&setup.url(), options).await.unwrap();
    Engine::new(Arc::new(store) as Arc<dyn Store>, Policy::default())
}

/// Create, revoke all with the replica held back, kill the master, promote
/// the replica: (revocations acknowledged, acknowledged ones live again).
async fn run(wait_replicas: u32, hold_replica_back: bool) -> (usize, usize) {
    let mut setup = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let engine = engine(&setup, wait_replicas).await;
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let created = engine
            .create(CreateRequest {
                user_id: format!("user{}", i % 40),
                ..CreateRequest::default()
            })
            .await
            .unwrap();
        sessions.push((created.session.id.as_str().to_owned(), created.token));
    }
    // Everything created so far is on the replica.
    let master = setup.master_port();
    let replica = *setup.data_ports().iter().find(|p| **p != master).unwrap();
    let offset = |port: u16, field: &str| -> i64 {
        setup
            .command(port, "INFO replication")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    while offset(replica, "slave_repl_offset:") < offset(master, "master_repl_offset:") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replica_pid = pid_of(&setup, replica);
    if hold_replica_back {
        // The replica stops, and the master drops its link: nothing written
        // from now on reaches it (a stopped process cannot reconnect).
        signal(&replica_pid, "-STOP");
        setup.command(master, "CLIENT KILL TYPE replica").unwrap();
    }
    // Revoke them all at once; note which were acknowledged.
    let revocations = sessions.iter().map(|(id, _)| {
        let engine = engine.clone();
        let id = id.clone();
        async move { engine.revoke(&id, RevokeReason::Logout).await }
    });
    let results = futures_join_all(revocations).await;
    let acknowledged: Vec<bool> = results
        .iter()
        .map(|r| match r {
            Ok(_) => true,
            Err(Error::Unavailable(_)) => false,
            Err(other) => panic!("unexpected {other:?}"),
        })
        .collect();
    // Right after: the master dies, the replica resumes and is promoted.
    setup.kill_master();
    if hold_replica_back {
        signal(&replica_pid, "-CONT");
    }
    let setup = tokio::task::spawn_blocking(move || {
        setup.wait_for_new_master(master);
        setup
    })
    .await
    .unwrap();
    let after = engine_on_new_master(&setup, &engine).await;
    let mut back = 0;
    for ((_, token), acked) in sessions.iter().zip(&acknowledged) {
        if *acked
            && after
                .introspect(token.expose(), false)
                .await
                .unwrap()
                .is_some()
        {
            back += 1;
        }
    }
    let acked = acknowledged.iter().filter(|a| **a).count();
    drop(setup);
    (acked, back)
}

/// The engine, once its store reaches the promoted master (it follows by
/// itself; this waits until reads succeed).
async fn engine_on_new_master(_setup: &RedisSentinel, engine: &Engine) -> Engine {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while engine.ping().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no master after the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.clone()
}

/// `join_all` without a dependency: run every future on the runtime.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_no_acknowledged_revocation_comes_back_after_a_failover() {
    let (acked, back) = run(1, true).await;
    println!(
        "wait_replicas = 1, replica held back: {acked} of {SESSIONS} acknowledged, {back} came back"
    );
    assert_eq!(
        back, 0,
        "acknowledged revocations came back after the failover"
    );
    let (acked, back) = run(1, false).await;
    println!(
        "wait_replicas = 1, replica in step: {acked} of {SESSIONS} acknowledged, {back} came back"
    );
    assert_eq!(
        acked, SESSIONS,
        "a healthy replica acknowledges every revocation"
    );
    assert_eq!(
        back, 0,
        "acknowledged revocations came back after the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_acknowledged_revocations_can_come_back() {
    let (acked, back) = run(0, true).await;
    println!(
        "wait_replicas = 0, replica held back: {acked} of {SESSIONS} acknowledged, {back} came back"
    );
    assert_eq!(acked, SESSIONS);
    assert!(
        back > 0,
        "the replica was held back: the revocations should have been lost"
    );
    let (acked, back) = run(0, false).await;
    println!(
        "wait_replicas = 0, replica in step: {acked} of {SESSIONS} acknowledged, {back} came back"
    );
    assert_eq!(acked, SESSIONS);
}
