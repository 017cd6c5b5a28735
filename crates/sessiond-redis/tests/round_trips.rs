//! Every write is exactly one command on the wire: one EVALSHA (or, once
//! after the server lost its scripts, a refused EVALSHA and one EVAL); an
//! introspection is one plain GET, followed by one EVALSHA only when a touch
//! is due. Checked two ways: a proxy logging each command the store sends,
//! and the server's INFO commandstats (which also counts commands run inside
//! scripts, so only its EVALSHA/EVAL lines are compared).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::json;
use sessiond_engine::{Aal, Clock, CreateRequest, DataUpdate, ManualClock, Policy, RevokeReason};
use sessiond_testkit::redis_server::RedisServer;

use common::{CommandLog, admin, command_calls, engine, reset_stats, store_at};

fn data(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Server-side calls of EVALSHA and EVAL since the last reset.
async fn script_calls(admin: &mut MultiplexedConnection) -> (u64, u64) {
    let calls = command_calls(admin).await;
    (
        calls.get("evalsha").copied().unwrap_or(0),
        calls.get("eval").copied().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_one_command() {
    let server = RedisServer::start();
    let log = CommandLog::start(server.port());
    let mut admin = admin(&server).await;
    let store = store_at(&log.url(), "rt:", Duration::from_secs(2)).await;
    let clock = ManualClock::new();
    let policy = Policy {
        touch_interval: Duration::from_secs(60),
        ..Policy::default()
    };
    let e = engine(&store, policy, &clock);
    let user = || CreateRequest {
        user_id: "alice".into(),
        data: data(json!({"a": 1})),
        ..CreateRequest::default()
    };

    // Runs `op` once and checks it cost exactly one EVALSHA.
    macro_rules! once {
        ($name:literal, $op:expr) => {{
            reset_stats(&mut admin).await;
            log.clear();
            let out = $op.await;
            assert_eq!(log.take(), ["EVALSHA"], "{} on the wire", $name);
            assert_eq!(
                script_calls(&mut admin).await,
                (1, 0),
                "{} by the server",
                $name
            );
            out
        }};
    }

    // Runs `op` once and checks it cost exactly `wire` and no script.
    macro_rules! reads {
        ($name:literal, $wire:expr, $scripts:expr, $op:expr) => {{
            reset_stats(&mut admin).await;
            log.clear();
            let out = $op.await;
            assert_eq!(log.take(), $wire, "{} on the wire", $name);
            assert_eq!(
                script_calls(&mut admin).await,
                ($scripts, 0),
                "{} by the server",
                $name
            );
            out
        }};
    }

    let created = once!("create", e.create(user())).unwrap();
    let other = e.create(user()).await.unwrap();
    let token = created.token.expose().to_owned();
    let id = created.session.id.as_str().to_owned();

    clock.advance(Duration::from_secs(61));
    let touched = reads!(
        "introspect, touch due",
        ["GET", "EVALSHA"],
        1,
        e.introspect(&token, true)
    )
    .unwrap()
    .unwrap();
    assert_eq!(touched.last_seen_at, clock.now(), "the touch was due");
    clock.advance(Duration::from_secs(1));
    let untouched = reads!(
        "introspect, touch not due",
        ["GET"],
        0,
        e.introspect(&token, true)
    )
    .unwrap()
    .unwrap();
    assert_eq!(untouched.last_seen_at, touched.last_seen_at, "no touch due");
    reads!(
        "introspect, no touch",
        ["GET"],
        0,
        e.introspect(&token, false)
    )
    .unwrap()
    .unwrap();
    reads!(
        "introspect, unknown token",
        ["GET"],
        0,
        e.introspect(
            sessiond_engine::SessionToken::generate(&created.session.id.shard()).expose(),
            true
        )
    )
    .unwrap();
    once!("get", e.get(&id)).unwrap();
    let merge = DataUpdate::Merge(data(json!({"b": 2, "a": null})));
    let merged = once!("update merge", e.update_data(&id, merge)).unwrap();
    assert_eq!(merged.data, data(json!({"b": 2})));
    let replace = DataUpdate::Replace(data(json!({"c": [3]})));
    let replaced = once!("update replace", e.update_data(&id, replace)).unwrap();
    assert_eq!(replaced.data, data(json!({"c": [3]})));
    once!("extend", e.extend(&id, Some(Duration::from_secs(3600)))).unwrap();
    once!("extend by own ttl", e.extend(&id, None)).unwrap();
    once!("authenticate", e.authenticate(&id, Aal::Aal2, "otp")).unwrap();
    let by_id = once!("rotate by id", e.rotate(&id)).unwrap();
    once!("rotate by token", e.rotate_token(by_id.token.expose())).unwrap();
    let jwt = once!("create jwt", e.create_jwt(user())).unwrap();
    let grace = Duration::from_secs(10);
    let t0 = jwt.refresh_token.expose().to_owned();
    assert!(once!("refresh", e.refresh(&t0, grace)).unwrap().rotated);
    assert!(
        !once!("refresh, grace replay", e.refresh(&t0, grace))
            .unwrap()
            .rotated
    );
    e.revoke(jwt.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    assert_eq!(once!("list_user", e.list_user("alice")).unwrap().len(), 2);
    assert_eq!(once!("count_user", e.count_user("alice")).unwrap(), 2);
    let gone = once!(
        "revoke",
        e.revoke(other.session.id.as_str(), RevokeReason::Logout)
    );
    assert!(gone.unwrap());
    e.create(user()).await.unwrap();
    let spared = Some(id.as_str());
    let revoked = once!(
        "revoke_user",
        e.revoke_user("alice", spared, RevokeReason::RevokedByUser)
    );
    assert_eq!(revoked.unwrap().len(), 1);
    log.clear();
    e.ping().await.unwrap();
    assert_eq!(log.take(), ["PING"]);
}

/// Runs `op` after the server forgot its scripts: a refused EVALSHA and one
/// EVAL (which caches the script again), then exactly one EVALSHA.
async fn after_script_flush<F, Fut>(server: &RedisServer, log: &CommandLog, op: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut admin = admin(server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    reset_stats(&mut admin).await;
    log.clear();
    op().await;
    assert_eq!(log.take(), ["EVALSHA", "EVAL"]);
    assert_eq!(script_calls(&mut admin).await, (1, 1));
    reset_stats(&mut admin).await;
    op().await;
    assert_eq!(log.take(), ["EVALSHA"]);
    assert_eq!(script_calls(&mut admin).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_scripts_cost_one_extra_command_once() {
    let server = RedisServer::start();
    let log = CommandLog::start(server.port());
    let store = store_at(&log.url(), "rt:", Duration::from_secs(2)).await;
    let clock = ManualClock::new();
    let e = engine(&store, Policy::default(), &clock);
    let bob = || CreateRequest {
        user_id: "bob".into(),
        ..CreateRequest::default()
    };
    let id = e.create(bob()).await.unwrap().session.id.to_string();
    after_script_flush(&server, &log, || async {
        e.get(&id).await.unwrap();
    })
    .await;
    after_script_flush(&server, &log, || async {
        e.create(bob()).await.unwrap();
    })
    .await;
}
