//! The near-cache over the embedded store: hits never read SQLite, and a
//! change made through another store on the same database (as
//! `sessiond sessions revoke` from another process does) is seen by the very
//! next lookup, whether or not this process wrote in between.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    CacheOptions, CachedStore, CreateRequest, DataUpdate, Engine, NearCache, Policy, RevokeReason,
};
use tempfile::TempDir;

struct Two {
    _dir: TempDir,
    cached: Arc<CachedStore<EmbeddedStore>>,
    /// The server's engine, behind the cache.
    a: Engine,
    /// Another store on the same database: another process, as far as the
    /// cache can tell.
    b: Engine,
}

async fn two() -> Two {
    let dir = TempDir::new().unwrap();
    let options = || EmbeddedOptions {
        sweep_interval: Duration::ZERO,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open(dir.path(), options()).await.unwrap();
    let other = EmbeddedStore::open(dir.path(), options()).await.unwrap();
    let cached = Arc::new(CachedStore::new(store, CacheOptions::default()));
    Two {
        a: Engine::new(cached.clone(), Policy::default()),
        b: Engine::new(Arc::new(other), Policy::default()),
        cached,
        _dir: dir,
    }
}

fn user(name: &str) -> CreateRequest {
    CreateRequest {
        user_id: name.into(),
        ..CreateRequest::default()
    }
}

fn cache(t: &Two) -> &NearCache {
    t.cached.cache()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_introspections_are_hits() {
    let t = two().await;
    let token = t.a.create(user("alice")).await.unwrap().token;
    for _ in 0..50 {
        assert!(
            t.a.introspect(token.expose(), true)
                .await
                .unwrap()
                .is_some()
        );
    }
    let s = cache(&t).stats();
    assert_eq!((s.misses, s.hits), (1, 49), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_revoking_is_seen_by_the_next_lookup() {
    let t = two().await;
    for round in 0..200 {
        let created = t.a.create(user(&format!("u{round}"))).await.unwrap();
        let token = created.token.expose();
        assert!(t.a.introspect(token, false).await.unwrap().is_some());
        assert!(t.a.introspect(token, false).await.unwrap().is_some());
        t.b.revoke(created.session.id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap();
        assert!(
            t.a.introspect(token, false).await.unwrap().is_none(),
            "round {round}: served a session revoked by another process"
        );
    }
    let s = cache(&t).stats();
    assert!(s.hits >= 200 && s.flushes >= 200, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_change_followed_by_a_local_write_is_still_seen() {
    let t = two().await;
    let created = t.a.create(user("alice")).await.unwrap();
    let token = created.token.expose();
    t.a.introspect(token, false).await.unwrap().unwrap();
    let update = DataUpdate::Merge(match json!({"plan": "pro"}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    });
    t.b.update_data(created.session.id.as_str(), update)
        .await
        .unwrap();
    // This process writes before it looks again: its writer sees a
    // generation it did not write and drops the cache.
    t.a.create(user("bob")).await.unwrap();
    let seen = t.a.introspect(token, false).await.unwrap().unwrap();
    assert_eq!(seen.data.get("plan"), Some(&json!("pro")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_keep_the_rest_of_the_cache() {
    let t = two().await;
    let alice = t.a.create(user("alice")).await.unwrap();
    let bob = t.a.create(user("bob")).await.unwrap();
    for token in [&alice.token, &bob.token] {
        t.a.introspect(token.expose(), false)
            .await
            .unwrap()
            .unwrap();
    }
    t.a.revoke(alice.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    assert!(
        t.a.introspect(alice.token.expose(), false)
            .await
            .unwrap()
            .is_none()
    );
    let hits = cache(&t).stats().hits;
    t.a.introspect(bob.token.expose(), false)
        .await
        .unwrap()
        .unwrap();
    let s = cache(&t).stats();
    assert_eq!(
        s.hits,
        hits + 1,
        "bob's record survived alice's revocation: {s:?}"
    );
    assert_eq!(s.flushes, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_serves_nothing_from_memory() {
    let t = two().await;
    let token = t.a.create(user("alice")).await.unwrap().token;
    t.a.introspect(token.expose(), false)
        .await
        .unwrap()
        .unwrap();
    sessiond_engine::Store::close(t.cached.as_ref())
        .await
        .unwrap();
    assert!(t.a.introspect(token.expose(), false).await.is_err());
}
