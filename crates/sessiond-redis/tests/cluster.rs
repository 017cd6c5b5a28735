//! The store conformance suite on a real local Redis Cluster (3 masters, 3
//! replicas): every case under its own key prefix, the cases sharing one
//! cluster while any of them runs. Also: scripts reach every master, the
//! live count scans every master, and a session's keys sit in one slot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sessiond_engine::{Engine, Policy, Store};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::redis_cluster::RedisCluster;
use sessiond_testkit::{Fixture, ManualClock};

/// The running cluster, if some case holds it (the last one out stops it).
static CLUSTER: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
static CASE: AtomicUsize = AtomicUsize::new(0);

fn shared_cluster() -> Arc<RedisCluster> {
    let mut slot = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(RedisCluster::start());
    *slot = Arc::downgrade(&cluster);
    cluster
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

mod conformance {
    sessiond_testkit::conformance_tests!(super::fixture);
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
