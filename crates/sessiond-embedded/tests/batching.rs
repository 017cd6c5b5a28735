//! Group commit: many concurrent writes share transactions without being
//! lost, duplicated or mixed up, and an operation that fails inside a shared
//! transaction rolls back alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    Clock, CreateRequest, DataUpdate, Engine, ManualClock, Policy, RolePolicy, Store, StoreError,
};

async fn open(max_batch: usize, clock: &ManualClock) -> (tempfile::TempDir, EmbeddedStore, Engine) {
    let dir = tempfile::TempDir::new().unwrap();
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            clock: Arc::new(clock.clone()),
            max_batch,
            readers: 2,
            ..EmbeddedOptions::default()
        },
    )
    .await
    .unwrap();
    let policy = Policy {
        default_role: RolePolicy {
            max_sessions: u32::MAX,
            ..RolePolicy::default()
        },
        store_timeout: Duration::from_secs(120),
        ..Policy::default()
    };
    let engine = Engine::with_clock(Arc::new(store.clone()), policy, Arc::new(clock.clone()));
    (dir, store, engine)
}

async fn concurrent_creates_all_land(max_batch: usize, n: usize) {
    let clock = ManualClock::new();
    let (dir, store, e) = open(max_batch, &clock).await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut data = serde_json::Map::new();
            data.insert("i".into(), json!(i));
            let created = e
                .create(CreateRequest {
                    user_id: format!("user-{}", i % 40),
                    data,
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            (i, created.session.id)
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        made.push(t.await.unwrap());
    }
    let now = clock.now();
    let distinct: HashSet<_> = made.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        distinct.len(),
        n,
        "every create answered with its own session"
    );
    for (i, id) in &made {
        let s = store.get(id, now).await.unwrap().unwrap();
        assert_eq!(s.data["i"], json!(i), "each caller got its own answer");
        assert_eq!(s.user_id, format!("user-{}", i % 40));
    }
    let mut listed = HashSet::new();
    for u in 0..40 {
        let sessions = store.list_user(&format!("user-{u}"), now).await.unwrap();
        assert_eq!(
            store.count_user(&format!("user-{u}"), now).await.unwrap() as usize,
            sessions.len()
        );
        listed.extend(sessions.into_iter().map(|s| s.id));
    }
    assert_eq!(listed, distinct, "nothing lost, nothing extra");
    store.close().await;
    let conn = rusqlite::Connection::open(dir.path().join("sessions.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, n, "no duplicate rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_share_commits_without_loss() {
    concurrent_creates_all_land(256, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_of_one_work_too() {
    concurrent_creates_all_land(1, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_operation_rolls_back_alone() {
    let clock = ManualClock::new();
    let (_dir, store, e) = open(256, &clock).await;
    let session = e
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap()
        .session;
    let store: Arc<dyn Store> = Arc::new(store);
    let now = clock.now();
    // Interleave merges that fit with merges that would take the data over
    // the limit; they queue together and commit in shared transactions.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, id) = (store.clone(), session.id.clone());
        tasks.push(tokio::spawn(async move {
            let value = if i % 2 == 0 {
                json!(i)
            } else {
                json!("x".repeat(10_000))
            };
            let mut change = serde_json::Map::new();
            change.insert(format!("k{i}"), value);
            (
                i,
                store
                    .update_data(&id, &DataUpdate::Merge(change), 5_000, now)
                    .await,
            )
        }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(Some(_))) if i % 2 == 0 => applied += 1,
            (i, Err(StoreError::DataTooLarge { max: 5_000, .. })) if i % 2 == 1 => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(applied, 100);
    let data = store.get(&session.id, now).await.unwrap().unwrap().data;
    let keys: HashSet<_> = data.keys().cloned().collect();
    let expected: HashSet<_> = (0..200).step_by(2).map(|i| format!("k{i}")).collect();
    assert_eq!(
        keys, expected,
        "every fitting merge kept, every oversize one undone"
    );
}
