//! Durability across close and reopen: every acknowledged create, update,
//! rotation, extension, touch and revocation is exactly what a reopened store
//! holds; a closed store refuses work; bad directories and unknown schema
//! versions fail to open with an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    CreateRequest, DataUpdate, Engine, Error, ManualClock, Policy, RevokeReason, Store, StoreError,
};

const MIN: Duration = Duration::from_secs(60);

fn options(clock: &ManualClock) -> EmbeddedOptions {
    EmbeddedOptions {
        clock: Arc::new(clock.clone()),
        ..EmbeddedOptions::default()
    }
}

fn engine(store: &EmbeddedStore, clock: &ManualClock) -> Engine {
    let policy = Policy {
        store_timeout: Duration::from_secs(60),
        ..Policy::default()
    };
    Engine::with_clock(Arc::new(store.clone()), policy, Arc::new(clock.clone()))
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn user(id: &str) -> CreateRequest {
    CreateRequest {
        user_id: id.into(),
        ..CreateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopened_store_holds_exactly_what_was_acknowledged() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = EmbeddedStore::open(dir.path().join("nested/data"), options(&clock))
        .await
        .unwrap();
    let e = engine(&store, &clock);

    let merged = e
        .create(CreateRequest {
            data: obj(json!({"a": 1, "b": 2})),
            role: Some("staff".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".into()),
            ip: Some("192.0.2.7".into()),
            ..user("alice")
        })
        .await
        .unwrap();
    clock.advance(MIN);
    let rotated = e.create(user("alice")).await.unwrap();
    clock.advance(MIN);
    let revoked = e.create(user("alice")).await.unwrap();
    let extended = e.create(user("bob")).await.unwrap();
    let touched = e.create(user("bob")).await.unwrap();

    let merged_now = e
        .update_data(
            merged.session.id.as_str(),
            DataUpdate::Merge(obj(json!({"b": null, "c": [1, "x"]}))),
        )
        .await
        .unwrap();
    let new_token = e.rotate(rotated.session.id.as_str()).await.unwrap();
    assert!(
        e.revoke(revoked.session.id.as_str(), RevokeReason::Logout)
            .await
            .unwrap()
    );
    clock.advance(5 * MIN);
    let extended_now = e
        .extend(extended.session.id.as_str(), Some(90 * MIN))
        .await
        .unwrap();
    let touched_now = e
        .introspect(touched.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched_now.last_seen_at, e.now(), "the touch was due");
    let alice_before = e.list_user("alice").await.unwrap();
    let bob_before = e.list_user("bob").await.unwrap();
    store.close().await;

    let store = EmbeddedStore::open(dir.path().join("nested/data"), options(&clock))
        .await
        .unwrap();
    let e = engine(&store, &clock);
    assert_eq!(e.get(merged.session.id.as_str()).await.unwrap(), merged_now);
    assert_eq!(
        serde_json::Value::Object(merged_now.data.clone()),
        json!({"a": 1, "c": [1, "x"]})
    );
    assert_eq!(
        e.introspect(rotated.token.expose(), false).await.unwrap(),
        None
    );
    assert_eq!(
        e.introspect(new_token.token.expose(), false).await.unwrap(),
        Some(new_token.session.clone())
    );
    assert_eq!(
        e.get(revoked.session.id.as_str()).await,
        Err(Error::NotFound)
    );
    assert_eq!(
        e.get(extended.session.id.as_str()).await.unwrap(),
        extended_now
    );
    assert_eq!(
        e.get(touched.session.id.as_str()).await.unwrap(),
        touched_now
    );
    assert_eq!(e.list_user("alice").await.unwrap(), alice_before);
    assert_eq!(e.list_user("bob").await.unwrap(), bob_before);
    assert_eq!(alice_before.len(), 2);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_keeps_queued_writes() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = EmbeddedStore::open(dir.path(), options(&clock))
        .await
        .unwrap();
    let e = engine(&store, &clock);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            e.create(user(&format!("carol-{i}")))
                .await
                .unwrap()
                .session
                .id,
        );
    }
    drop(e);
    drop(store);
    let store = EmbeddedStore::open(dir.path(), options(&clock))
        .await
        .unwrap();
    for id in &ids {
        assert!(store.get(id, clock_now(&clock)).await.unwrap().is_some());
    }
}

fn clock_now(clock: &ManualClock) -> sessiond_engine::Timestamp {
    use sessiond_engine::Clock;
    clock.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_is_unavailable_and_can_be_reopened() {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = EmbeddedStore::open(dir.path(), options(&clock))
        .await
        .unwrap();
    let e = engine(&store, &clock);
    let created = e.create(user("dave")).await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
    store.close().await; // closing twice is harmless

    let now = clock_now(&clock);
    let unavailable = |r: Result<(), StoreError>| {
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    };
    unavailable(store.ping().await);
    unavailable(store.get(&created.session.id, now).await.map(drop));
    unavailable(store.count_user("dave", now).await.map(drop));
    unavailable(
        store
            .revoke(&created.session.id, &RevokeReason::Logout, now)
            .await
            .map(drop),
    );
    unavailable(store.sweep_now().await.map(drop));
    assert!(matches!(
        e.create(user("dave")).await,
        Err(Error::Unavailable(_))
    ));

    let store = EmbeddedStore::open(dir.path(), options(&clock))
        .await
        .unwrap();
    assert_eq!(
        store.count_user("dave", now).await.unwrap(),
        1,
        "the refused create wrote nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_directories_and_newer_schemas_fail_to_open() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = EmbeddedStore::open(&file, EmbeddedOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("sessions.db"), vec![0x5a; 8192]).unwrap();
    let err = EmbeddedStore::open(&garbage, EmbeddedOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    let newer = dir.path().join("newer");
    let store = EmbeddedStore::open(&newer, EmbeddedOptions::default())
        .await
        .unwrap();
    store.close().await;
    let conn = rusqlite::Connection::open(newer.join("sessions.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = EmbeddedStore::open(&newer, EmbeddedOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("99")),
        "{err:?}"
    );
}
