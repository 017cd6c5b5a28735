//! Damaged rows: a row whose JSON or id no longer decodes is reported as
//! `StoreError::Corrupt` by every read of it, never a panic, and can still be
//! revoked; the other rows are unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    Clock, CreateRequest, DataUpdate, Engine, Error, ManualClock, Policy, RevokeReason, Store,
    StoreError,
};

struct World {
    dir: tempfile::TempDir,
    store: EmbeddedStore,
    engine: Engine,
    clock: ManualClock,
}

async fn world() -> World {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            clock: Arc::new(clock.clone()),
            ..EmbeddedOptions::default()
        },
    )
    .await
    .unwrap();
    let policy = Policy {
        store_timeout: Duration::from_secs(60),
        ..Policy::default()
    };
    let engine = Engine::with_clock(Arc::new(store.clone()), policy, Arc::new(clock.clone()));
    World {
        dir,
        store,
        engine,
        clock,
    }
}

/// Run `sql` on the database file behind the store's back.
fn tamper(w: &World, sql: &str, id: &str) {
    let conn = rusqlite::Connection::open(w.dir.path().join("sessions.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(conn.execute(sql, [id]).unwrap(), 1);
}

fn user(id: &str) -> CreateRequest {
    CreateRequest {
        user_id: id.into(),
        ..CreateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_data_is_corrupt_for_every_read_and_can_be_revoked() {
    let w = world().await;
    let e = &w.engine;
    let bad = e.create(user("alice")).await.unwrap();
    let good = e.create(user("bob")).await.unwrap();
    tamper(
        &w,
        "UPDATE sessions SET data = '{\"unterminated\": [1, 2' WHERE id = ?1",
        bad.session.id.as_str(),
    );

    let now = w.clock.now();
    let id = &bad.session.id;
    assert!(matches!(
        w.store.get(id, now).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(e.get(id.as_str()).await, Err(Error::Corrupt(_))));
    assert!(matches!(
        e.introspect(bad.token.expose(), false).await,
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        e.introspect(bad.token.expose(), true).await,
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(e.list_user("alice").await, Err(Error::Corrupt(_))));
    assert!(matches!(
        e.update_data(id.as_str(), DataUpdate::Replace(serde_json::Map::new()))
            .await,
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        e.extend(id.as_str(), None).await,
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        e.rotate(id.as_str()).await,
        Err(Error::Corrupt(_))
    ));
    // Counting needs no decoding; the store keeps serving other sessions.
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
    assert_eq!(e.get(good.session.id.as_str()).await.unwrap(), good.session);
    w.store.ping().await.unwrap();

    assert!(
        e.revoke(id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap()
    );
    assert_eq!(e.get(id.as_str()).await, Err(Error::NotFound));
    assert!(e.list_user("alice").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_damaged_columns_are_corrupt_too() {
    let w = world().await;
    let e = &w.engine;
    let cases = [
        "UPDATE sessions SET device = 'not json' WHERE id = ?1",
        "UPDATE sessions SET data = '[1, 2]' WHERE id = ?1",
        "UPDATE sessions SET idle_ttl_ms = -5 WHERE id = ?1",
        // Keep the row findable by token while breaking the id it carries.
        "UPDATE sessions SET id = '../../etc/passwd' WHERE id = ?1",
    ];
    for (n, sql) in cases.iter().enumerate() {
        let user_id = format!("user-{n}");
        let created = e.create(user(&user_id)).await.unwrap();
        tamper(&w, sql, created.session.id.as_str());
        let seen = e.introspect(created.token.expose(), false).await;
        assert!(matches!(seen, Err(Error::Corrupt(_))), "{sql}: {seen:?}");
        let listed = e.list_user(&user_id).await;
        assert!(
            matches!(listed, Err(Error::Corrupt(_))),
            "{sql}: {listed:?}"
        );
        // Wiping the user's sessions clears even a row with a broken id.
        let wiped = e
            .revoke_user(&user_id, None, RevokeReason::RevokedByAdmin)
            .await;
        assert_eq!(e.count_user(&user_id).await.unwrap(), 0, "{sql}: {wiped:?}");
    }
}
