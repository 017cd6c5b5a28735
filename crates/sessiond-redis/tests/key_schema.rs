//! The key schema as Redis sees it: one Cluster slot per user (its bucket's,
//! which holds the bucket's event stream too), the configured prefix on every
//! key, a TTL on every key after every operation, user indexes that shed dead
//! members, and no token anywhere, events included.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::json;
use sessiond_engine::{
    CreateRequest, DataUpdate, Engine, ManualClock, Policy, RevokeReason, ShardTag,
};
use sessiond_testkit::redis_server::RedisServer;

use common::{admin, all_keys, engine, key_slot, store, sweeping_store};

const PREFIX: &str = "ks:";

fn data(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn request(user: &str, idle: Option<Duration>) -> CreateRequest {
    CreateRequest {
        user_id: user.into(),
        data: data(json!({"cart": [1, 2], "theme": "dark"})),
        user_agent: Some("curl/8.0".into()),
        idle_ttl: idle,
        ..CreateRequest::default()
    }
}

async fn pttl(admin: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(admin)
        .await
        .unwrap()
}

async fn zcard(admin: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(admin)
        .await
        .unwrap()
}

/// The start of every key of `user`'s shard tag:
/// `<prefix>v3:{<bucket>}:<tag>:`, the bucket being the first byte the
/// tag's base64url characters encode.
fn base_of(user: &str) -> String {
    let tag = ShardTag::of_user(user);
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    let t = tag.as_str().as_bytes();
    let bucket = (value(t[0]) << 2) | (value(t[1]) >> 4);
    format!("{PREFIX}v3:{{{bucket:02x}}}:{tag}:")
}

/// Whether `key` is a bucket's own (its event stream, the stream's floor,
/// its deadline set) rather than a session's.
fn is_bucket_key(key: &str) -> bool {
    ["}:e", "}:f", "}:x"].iter().any(|end| key.ends_with(end))
}

/// The keys that hold sessions (not their bucket's).
async fn session_keys(admin: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys = all_keys(admin).await;
    keys.retain(|k| !is_bucket_key(k));
    keys
}

/// Every key is the user's or its bucket's: prefixed, in the slot of the
/// user's bucket, with a TTL; the index lives at least as long as each
/// session record.
async fn check_keys(admin: &mut MultiplexedConnection, user: &str, step: &str) {
    let keys = all_keys(admin).await;
    let base = base_of(user);
    let slot = key_slot(&base);
    let index = format!("{base}i");
    let index_ttl = pttl(admin, &index).await;
    for key in &keys {
        let bucket = &base[..base.find("}:").unwrap() + 2];
        assert!(
            key.starts_with(&base) || (is_bucket_key(key) && key.starts_with(bucket)),
            "{step}: {key} is not under {base}"
        );
        assert_eq!(key_slot(key), slot, "{step}: {key} is in another slot");
        let ttl = pttl(admin, key).await;
        assert!(ttl > 0, "{step}: {key} has no TTL ({ttl})");
        if key.starts_with(&format!("{base}r:")) {
            assert!(
                index_ttl >= ttl - 50,
                "{step}: index ttl {index_ttl} < {key} ttl {ttl}"
            );
        }
    }
}

#[test]
fn key_slots_follow_the_cluster_specification() {
    assert_eq!(key_slot("123456789"), 0x31C3);
    assert_eq!(key_slot("foo"), 12182);
    assert_eq!(key_slot("somekey"), 11058);
    assert_eq!(key_slot("a{foo}b"), key_slot("foo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_in_the_user_slot_prefixed_and_expiring() {
    let server = RedisServer::start();
    let mut admin = admin(&server).await;
    let store = store(&server, PREFIX, Duration::from_secs(2)).await;
    let clock = ManualClock::new();
    let e = engine(&store, Policy::default(), &clock);
    let user = "alice@example.com";

    let a = e.create(request(user, None)).await.unwrap();
    let b = e.create(request(user, None)).await.unwrap();
    check_keys(&mut admin, user, "create").await;
    assert_eq!(
        session_keys(&mut admin).await.len(),
        3,
        "2 records, 1 index"
    );
    let id = a.session.id.as_str();

    clock.advance(Duration::from_secs(120));
    e.introspect(a.token.expose(), true).await.unwrap().unwrap();
    check_keys(&mut admin, user, "touch").await;
    let merge = DataUpdate::Merge(data(json!({"theme": null, "lang": "fr"})));
    e.update_data(id, merge).await.unwrap();
    check_keys(&mut admin, user, "merge").await;
    e.update_data(id, DataUpdate::Replace(data(json!({"x": 1}))))
        .await
        .unwrap();
    check_keys(&mut admin, user, "replace").await;
    e.update_data(id, DataUpdate::Replace(data(json!({}))))
        .await
        .unwrap();
    check_keys(&mut admin, user, "replace with nothing").await;
    clock.advance(Duration::from_secs(120));
    e.extend(id, Some(Duration::from_secs(7200))).await.unwrap();
    check_keys(&mut admin, user, "extend").await;
    let rotated = e.rotate(id).await.unwrap();
    check_keys(&mut admin, user, "rotate by id").await;
    e.rotate_token(rotated.token.expose()).await.unwrap();
    check_keys(&mut admin, user, "rotate by token").await;
    assert_eq!(
        session_keys(&mut admin).await.len(),
        3,
        "records under old tokens are gone"
    );
    e.list_user(user).await.unwrap();
    e.count_user(user).await.unwrap();
    check_keys(&mut admin, user, "list and count").await;
    assert!(
        e.revoke(b.session.id.as_str(), RevokeReason::Logout)
            .await
            .unwrap()
    );
    check_keys(&mut admin, user, "revoke").await;
    assert_eq!(session_keys(&mut admin).await.len(), 2);
    e.create(request(user, None)).await.unwrap();
    e.revoke_user(user, Some(id), RevokeReason::RevokedByUser)
        .await
        .unwrap();
    check_keys(&mut admin, user, "revoke_user").await;
    e.revoke_user(user, None, RevokeReason::RevokedByUser)
        .await
        .unwrap();
    assert_eq!(
        session_keys(&mut admin).await,
        Vec::<String>::new(),
        "revoking all leaves nothing but the events"
    );
}

/// A stream entry's field and value, as stored.
type Field = (Vec<u8>, Vec<u8>);

/// Every key and every value on the server, as text (binary values lossily).
async fn dump(admin: &mut MultiplexedConnection) -> Vec<String> {
    let mut out = Vec::new();
    for key in all_keys(admin).await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(admin)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => {
                let raw: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(admin)
                    .await
                    .unwrap();
                vec![String::from_utf8_lossy(&raw).into_owned()]
            }
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(admin)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(admin)
                .await
                .unwrap(),
            "stream" => {
                // Events are packed (MessagePack): read lossily, as records.
                let entries: Vec<(String, Vec<Field>)> = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query_async(admin)
                    .await
                    .unwrap();
                let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
                entries
                    .into_iter()
                    .flat_map(|(id, fields)| {
                        std::iter::once(id)
                            .chain(fields.into_iter().flat_map(|(f, v)| [text(f), text(v)]))
                    })
                    .collect()
            }
            other => panic!("unexpected type {other} of {key}"),
        };
        out.push(key);
        out.extend(values);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_value_holds_a_token() {
    let server = RedisServer::start();
    let mut admin = admin(&server).await;
    let store = store(&server, PREFIX, Duration::from_secs(2)).await;
    let e = Engine::new(Arc::new(store), Policy::default());
    let mut tokens = Vec::new();
    for user in ["alice", "bob"] {
        let created = e.create(request(user, None)).await.unwrap();
        tokens.push(created.token.clone());
        let rotated = e.rotate_token(created.token.expose()).await.unwrap();
        tokens.push(rotated.token.clone());
        tokens.push(e.rotate(created.session.id.as_str()).await.unwrap().token);
    }
    let everything = dump(&mut admin).await.join("\n");
    for token in &tokens {
        let secret = &token.expose()[4 + 11..]; // after `sds_` and the shard tag
        assert!(!everything.contains(token.expose()), "a token is stored");
        assert!(!everything.contains(secret), "a token's secret is stored");
    }
    // What is stored instead: (the start of) the hash of each current token.
    for current in [&tokens[2], &tokens[5]] {
        assert!(everything.contains(&current.digest().hash.to_base64()[..32]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_index_sheds_dead_members_and_everything_expires() {
    let server = RedisServer::start();
    let mut admin = admin(&server).await;
    let store = sweeping_store(&server, PREFIX, Duration::from_millis(200)).await;
    let e = Engine::new(Arc::new(store), Policy::default()); // the real clock
    let user = "carol";
    let index = format!("{}i", base_of(user));

    for _ in 0..3 {
        e.create(request(user, Some(Duration::from_secs(1))))
            .await
            .unwrap();
    }
    assert_eq!(zcard(&mut admin, &index).await, 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.create(request(user, Some(Duration::from_secs(2))))
        .await
        .unwrap();
    assert_eq!(zcard(&mut admin, &index).await, 1, "create pruned the dead");
    assert_eq!(e.list_user(user).await.unwrap().len(), 1);
    assert_eq!(e.count_user(user).await.unwrap(), 1);

    // With no further call, every key of the sessions goes by itself (the
    // store's sweep removes them at their deadline; Redis's TTLs would a
    // grace later); the bucket's events stay for their retention.
    let started = Instant::now();
    while !session_keys(&mut admin).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "keys outlived their sessions: {:?}",
            all_keys(&mut admin).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = all_keys(&mut admin).await;
    assert!(left.iter().all(|k| k.ends_with("}:e")), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_sessions_are_deleted_on_sight_before_redis_expires_them() {
    // The engine's clock runs ahead of Redis: reads judge liveness by it,
    // and the scripts remove what is dead by it, whatever Redis's TTLs say.
    let server = RedisServer::start();
    let mut admin = admin(&server).await;
    let store = store(&server, PREFIX, Duration::from_secs(2)).await;
    let clock = ManualClock::new();
    let e = engine(&store, Policy::default(), &clock);
    let user = "dave";
    let index = format!("{}i", base_of(user));
    let short = Some(Duration::from_secs(60));
    let old: Vec<_> = [
        e.create(request(user, short)).await.unwrap(),
        e.create(request(user, short)).await.unwrap(),
    ]
    .into_iter()
    .map(|c| c.token)
    .collect();
    let long = e
        .create(request(user, Some(Duration::from_secs(3600))))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));

    // A read (one GET) sees them dead at once…
    for token in &old {
        assert!(e.introspect(token.expose(), false).await.unwrap().is_none());
    }
    // …and the next script that looks at the index deletes them.
    assert_eq!(e.count_user(user).await.unwrap(), 1);
    assert_eq!(zcard(&mut admin, &index).await, 1);
    let keys: BTreeSet<String> = session_keys(&mut admin).await.into_iter().collect();
    assert_eq!(keys.len(), 2, "one record, the index: {keys:?}");
    let th = &long.token.digest().hash.to_base64()[..32];
    assert!(keys.iter().any(|k| k.ends_with(th)));
    // Past the last deadline, one look removes the rest.
    clock.advance(Duration::from_secs(3600));
    assert!(
        e.introspect(long.token.expose(), false)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(e.count_user(user).await.unwrap(), 0);
    assert!(session_keys(&mut admin).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_with_a_nul_byte_survives_the_record() {
    // Records are MessagePack: any bytes in keys and values survive, through
    // the scripts' rewrites too.
    let server = RedisServer::start();
    let store = store(&server, PREFIX, Duration::from_secs(2)).await;
    let e = Engine::new(Arc::new(store), Policy::default());
    let mut req = request("dave", None);
    req.data = data(json!({"a\u{0}b": "x\u{0}y", "plain": 1}));
    let created = e.create(req).await.unwrap();
    let got = e.get(created.session.id.as_str()).await.unwrap();
    assert_eq!(got.data, created.session.data);
    let seen = e
        .introspect(created.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.data, created.session.data);
    let merged = e
        .update_data(
            created.session.id.as_str(),
            DataUpdate::Merge(data(json!({"more\u{0}": [0]}))),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.len(), 3);
    assert_eq!(merged.data["a\u{0}b"], "x\u{0}y");
}
