//! Records saved in layout 1 (before sessions carried an authentication
//! context) stay usable: the engine reads them (authenticated at creation,
//! `aal1`, no methods), and every script that saves one (a data merge, a
//! step-up, a touch) writes it back in layout 2 with nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use sessiond_engine::{Aal, CreateRequest, DataUpdate, Engine, ManualClock, Policy, Session};
use sessiond_testkit::redis_server::RedisServer;

use common::{admin, all_keys, engine, store};

const PREFIX: &str = "layouts:";

/// Position of the first authentication field in a layout 2 record.
const AUTH_AT: usize = 16;

async fn create(e: &Engine, user: &str) -> (Session, String) {
    let created = e
        .create(CreateRequest {
            user_id: user.into(),
            data: match json!({"theme": "dark", "cart": [1, 2]}) {
                Value::Object(m) => m,
                _ => unreachable!(),
            },
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Firefox/120.0".into()),
            ip: Some("192.0.2.7".into()),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    (created.session, created.token.expose().to_owned())
}

/// The key of the one record of `session` (its user has no other).
async fn record_key(admin: &mut MultiplexedConnection, session: &Session) -> String {
    let keys: Vec<String> = all_keys(admin)
        .await
        .into_iter()
        .filter(|k| k.contains(&format!(":{}:r:", session.id.shard())))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().unwrap()
}

/// The record's fields.
async fn fields(admin: &mut MultiplexedConnection, key: &str) -> Vec<Value> {
    let raw: Vec<u8> = redis::cmd("GET").arg(key).query_async(admin).await.unwrap();
    rmp_serde::from_slice(&raw).unwrap()
}

/// Rewrite the record at `key` as layout 1 saved it: version 1, without the
/// three authentication fields; its TTL kept.
async fn downgrade(admin: &mut MultiplexedConnection, key: &str) {
    let mut f = fields(admin, key).await;
    assert_eq!(f[0], json!(2));
    f[0] = json!(1);
    f.drain(AUTH_AT..AUTH_AT + 3);
    let raw = rmp_serde::to_vec(&f).unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(raw)
        .arg("KEEPTTL")
        .query_async(admin)
        .await
        .unwrap();
}

fn assert_first_factor_at_creation(s: &Session) {
    assert_eq!(s.auth.aal, Aal::Aal1);
    assert!(s.auth.amr.is_empty());
    assert_eq!(s.auth.authenticated_at, s.created_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_1_records_are_read_and_saved_again_as_layout_2() {
    let server = RedisServer::start();
    let store = store(&server, PREFIX, Duration::from_secs(2)).await;
    let clock = ManualClock::new();
    let e = engine(&store, Policy::default(), &clock);
    let mut admin = admin(&server).await;

    let (read, read_token) = create(&e, "reader").await;
    let (merged, _) = create(&e, "merger").await;
    let (stepped, _) = create(&e, "stepper").await;
    let (touched, touched_token) = create(&e, "toucher").await;
    let mut keys = Vec::new();
    for s in [&read, &merged, &stepped, &touched] {
        let key = record_key(&mut admin, s).await;
        downgrade(&mut admin, &key).await;
        assert_eq!(fields(&mut admin, &key).await[0], json!(1));
        keys.push(key);
    }

    // Read by the engine (no script): the same session, first factor.
    let got = e.introspect(&read_token, false).await.unwrap().unwrap();
    assert_first_factor_at_creation(&got);
    assert_eq!(
        (&got.id, &got.data, &got.device, got.expires_at),
        (&read.id, &read.data, &read.device, read.expires_at)
    );
    assert_eq!(e.get(read.id.as_str()).await.unwrap(), got);

    // A merge (a script) reads layout 1 and saves layout 2, data kept.
    let update = DataUpdate::Merge(match json!({"lang": "fr"}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    });
    let after = e.update_data(merged.id.as_str(), update).await.unwrap();
    assert_first_factor_at_creation(&after);
    assert_eq!(
        Value::Object(after.data.clone()),
        json!({"theme": "dark", "cart": [1, 2], "lang": "fr"})
    );
    assert_eq!(fields(&mut admin, &keys[1]).await[0], json!(2));
    assert_eq!(e.get(merged.id.as_str()).await.unwrap(), after);

    // A step-up (a script) on layout 1: the level rises, layout 2 saved.
    let after = e
        .authenticate(stepped.id.as_str(), Aal::Aal2, "otp")
        .await
        .unwrap();
    assert_eq!(after.auth.aal, Aal::Aal2);
    assert_eq!(after.auth.amr, vec!["otp".to_owned()]);
    assert_eq!(
        Value::Object(after.data.clone()),
        json!({"theme": "dark", "cart": [1, 2]})
    );
    let f = fields(&mut admin, &keys[2]).await;
    assert_eq!((f[0].clone(), f[AUTH_AT + 1].clone()), (json!(2), json!(2)));

    // A due touch (a script) on layout 1: the idle deadline moves on.
    clock.advance(Duration::from_secs(120));
    let after = e.introspect(&touched_token, true).await.unwrap().unwrap();
    assert_first_factor_at_creation(&after);
    assert!(after.expires_at > touched.expires_at);
    assert_eq!(fields(&mut admin, &keys[3]).await[0], json!(2));
    assert_eq!(
        e.introspect(&touched_token, false).await.unwrap().unwrap(),
        after
    );
}
