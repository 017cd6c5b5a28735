//! The store conformance suite: every case drives a store through the engine
//! and asserts what docs/store-contract.md promises. Each store runs all of it through
//! [`crate::conformance_tests!`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sessiond_engine::{
    CreateRequest, DataUpdate, DeviceKind, Engine, Error, LimitPolicy, ManualClock, Policy,
    RevokeReason, RolePolicy, Session, SessionData, SessionId, Store,
};

pub use crate::authentication_cases::*;
use crate::fixture::Fixture;
pub use crate::issued_before_cases::*;
pub use crate::listing_cases::*;
pub use crate::refresh_rotation::*;

const MIN: Duration = Duration::from_secs(60);
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

/// One case's world: a store, the clock its engine runs on.
pub struct Case {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The engine's clock; cases move it instead of sleeping.
    pub clock: ManualClock,
    _fixture: Fixture,
}

impl Case {
    /// A case over `fixture`, on `clock`.
    pub fn new(fixture: Fixture, clock: ManualClock) -> Self {
        Self {
            store: fixture.store.clone(),
            clock,
            _fixture: fixture,
        }
    }

    /// An engine on this case's store and clock with `policy`.
    pub fn engine_with(&self, policy: Policy) -> Engine {
        Engine::with_clock(self.store.clone(), policy, Arc::new(self.clock.clone()))
    }

    /// An engine with the suite's standard policy: default role 30 min idle,
    /// 30 days absolute, 10 sessions; role `admin` 15 min / 12 h / 2.
    pub fn engine(&self) -> Engine {
        self.engine_with(standard_policy())
    }
}

/// The suite's standard policy (see [`Case::engine`]).
pub fn standard_policy() -> Policy {
    let mut policy = Policy {
        store_timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    policy.roles.insert(
        "admin".into(),
        RolePolicy {
            idle_ttl: 15 * MIN,
            absolute_ttl: 12 * 60 * MIN,
            max_sessions: 2,
        },
    );
    policy
}

fn limited(max: u32, limit_policy: LimitPolicy) -> Policy {
    Policy {
        default_role: RolePolicy {
            max_sessions: max,
            ..RolePolicy::default()
        },
        limit_policy,
        ..standard_policy()
    }
}

fn obj(v: Value) -> SessionData {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn user(id: &str) -> CreateRequest {
    CreateRequest {
        user_id: id.into(),
        ..CreateRequest::default()
    }
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

/// Every field given at creation comes back from `get` and `introspect`.
pub async fn create_then_get_returns_every_field(c: Case) {
    let e = c.engine();
    let created = e
        .create(CreateRequest {
            user_id: "alice".into(),
            role: Some("admin".into()),
            data: obj(json!({"cart": [1, 2, {"x": null}], "n": 12345678901234567_i64, "f": 1.5, "s": "é", "empty": {}, "arr": []})),
            user_agent: Some(IPHONE.into()),
            ip: Some("2001:db8::1".into()),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let s = &created.session;
    assert!(created.evicted.is_empty());
    assert_eq!(s.user_id, "alice");
    assert_eq!(s.role.as_deref(), Some("admin"));
    assert_eq!(s.device.kind, DeviceKind::Mobile);
    assert_eq!(s.device.ip.as_deref(), Some("2001:db8::1"));
    assert_eq!(s.expires_at, s.created_at.plus(15 * MIN));
    assert_eq!(s.absolute_expires_at, s.created_at.plus(12 * 60 * MIN));
    assert_eq!(s.last_seen_at, s.created_at);
    assert_eq!(s.idle_ttl_ms, 15 * 60 * 1000);

    let got = e.get(s.id.as_str()).await.unwrap();
    assert_eq!(&got, s, "get returns exactly what create stored");
    let seen = e.introspect(created.token.expose(), false).await.unwrap();
    assert_eq!(seen.as_ref(), Some(s));
    // The session record never carries the token or its hash.
    let json = serde_json::to_string(&got).unwrap();
    assert!(!json.contains(created.token.expose()));
    assert!(!json.contains(&created.token.digest().hash.to_base64()));
}

/// Introspection finds the session of its token and no other.
pub async fn introspect_finds_only_the_right_token(c: Case) {
    let e = c.engine();
    let a = e.create(user("alice")).await.unwrap();
    let b = e.create(user("alice")).await.unwrap();
    let other = e.create(user("bob")).await.unwrap();
    for (t, s) in [
        (&a.token, &a.session),
        (&b.token, &b.session),
        (&other.token, &other.session),
    ] {
        assert_eq!(
            e.introspect(t.expose(), true).await.unwrap().unwrap().id,
            s.id
        );
    }
    // Well-formed but unknown token (same shard as alice): inactive.
    let forged = sessiond_engine::SessionToken::generate(&a.session.id.shard());
    assert_eq!(e.introspect(forged.expose(), true).await.unwrap(), None);
    // A token of the right shape whose secret is one character off (in the
    // middle: the last character only takes 16 values).
    let mut off: Vec<char> = a.token.expose().chars().collect();
    off[30] = if off[30] == 'A' { 'B' } else { 'A' };
    let off: String = off.into_iter().collect();
    assert_eq!(e.introspect(&off, true).await.unwrap(), None);
}

/// Touches are coalesced by the touch interval and slide the idle deadline.
pub async fn touch_is_coalesced_and_slides_idle_expiry(c: Case) {
    let e = c.engine();
    let created = e.create(user("alice")).await.unwrap();
    let t = created.token.expose();
    let s0 = created.session;

    c.clock.advance(Duration::from_secs(30));
    let s1 = e.introspect(t, true).await.unwrap().unwrap();
    assert_eq!(
        s1.last_seen_at, s0.last_seen_at,
        "touch within 60 s is coalesced"
    );
    assert_eq!(s1.expires_at, s0.expires_at);

    c.clock.advance(Duration::from_secs(31));
    let now = e.now();
    let s2 = e.introspect(t, false).await.unwrap().unwrap();
    assert_eq!(s2.last_seen_at, s0.last_seen_at, "touch=false never writes");

    let s3 = e.introspect(t, true).await.unwrap().unwrap();
    assert_eq!(s3.last_seen_at, now);
    assert_eq!(s3.expires_at, now.plus(30 * MIN));
    assert_eq!(
        e.get(s0.id.as_str()).await.unwrap(),
        s3,
        "the touch was stored"
    );

    // Kept alive by activity well past the first idle deadline.
    for _ in 0..5 {
        c.clock.advance(20 * MIN);
        assert!(e.introspect(t, true).await.unwrap().is_some());
    }
    assert!(e.now() > s0.expires_at);

    // The interval is capped at a quarter of the idle timeout: with a 2 min
    // idle timeout a session is touched every 30 s, to the millisecond.
    let short = e
        .create(CreateRequest {
            idle_ttl: Some(2 * MIN),
            ..user("bob")
        })
        .await
        .unwrap();
    c.clock.advance(Duration::from_millis(29_999));
    let s = e
        .introspect(short.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.last_seen_at, short.session.last_seen_at,
        "29.999 s: not yet due"
    );
    c.clock.advance(Duration::from_millis(1));
    let s = e
        .introspect(short.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_seen_at, e.now(), "30 s: due");
    assert_eq!(s.expires_at, e.now().plus(2 * MIN));
}

/// With no activity the session ends at its idle deadline, everywhere.
pub async fn idle_expiry_ends_a_session(c: Case) {
    let e = c.engine();
    let created = e.create(user("alice")).await.unwrap();
    let keep = e.create(user("alice")).await.unwrap();
    c.clock.advance(29 * MIN);
    assert!(
        e.introspect(keep.token.expose(), true)
            .await
            .unwrap()
            .is_some()
    );
    c.clock.advance(MIN - Duration::from_millis(1));
    let alive = e.introspect(created.token.expose(), false).await.unwrap();
    assert!(alive.is_some(), "live 1 ms before the idle deadline");
    c.clock.advance(Duration::from_millis(1));
    let id = created.session.id.as_str();
    assert_eq!(
        e.introspect(created.token.expose(), true).await.unwrap(),
        None
    );
    assert_eq!(e.get(id).await, Err(Error::NotFound));
    assert_eq!(
        e.update_data(id, DataUpdate::Merge(obj(json!({"a": 1}))))
            .await,
        Err(Error::NotFound)
    );
    assert_eq!(e.extend(id, None).await, Err(Error::NotFound));
    assert!(matches!(e.rotate(id).await, Err(Error::NotFound)));
    assert!(!e.revoke(id, RevokeReason::Logout).await.unwrap());
    assert_eq!(
        ids(&e.list_user("alice").await.unwrap()),
        vec![keep.session.id.clone()]
    );
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
}

/// Activity never moves the absolute deadline.
pub async fn absolute_deadline_never_slides(c: Case) {
    let e = c.engine();
    let created = e
        .create(CreateRequest {
            idle_ttl: Some(30 * MIN),
            absolute_ttl: Some(60 * MIN),
            ..user("alice")
        })
        .await
        .unwrap();
    let abs = created.session.absolute_expires_at;
    let t = created.token.expose();
    for _ in 0..5 {
        c.clock.advance(10 * MIN);
        let s = e.introspect(t, true).await.unwrap().unwrap();
        assert_eq!(s.absolute_expires_at, abs);
        assert!(
            s.expires_at <= abs,
            "idle deadline capped by the absolute one"
        );
    }
    let s = e
        .extend(created.session.id.as_str(), Some(24 * 60 * MIN))
        .await
        .unwrap();
    assert_eq!(s.expires_at, abs);
    c.clock.advance(10 * MIN - Duration::from_millis(1));
    let alive = e.introspect(t, true).await.unwrap();
    assert!(alive.is_some(), "live 1 ms before the absolute deadline");
    c.clock.advance(Duration::from_millis(1));
    assert_eq!(
        e.introspect(t, true).await.unwrap(),
        None,
        "gone at the absolute deadline"
    );
    // An idle timeout longer than the lifetime is clamped to it.
    let clamped = e
        .create(CreateRequest {
            idle_ttl: Some(120 * MIN),
            absolute_ttl: Some(60 * MIN),
            ..user("bob")
        })
        .await
        .unwrap();
    assert_eq!(
        clamped.session.expires_at,
        clamped.session.absolute_expires_at
    );
}

/// A merge sets and removes only the keys it names and leaves expiry alone.
pub async fn merge_keeps_other_keys_and_expiry(c: Case) {
    let e = c.engine();
    let created = e
        .create(CreateRequest {
            data: obj(json!({"a": 1, "b": {"x": 1}, "c": "keep"})),
            ..user("alice")
        })
        .await
        .unwrap();
    let id = created.session.id.as_str();
    c.clock.advance(5 * MIN);
    let s = e
        .update_data(
            id,
            DataUpdate::Merge(obj(
                json!({"a": 2, "b": {"y": 2}, "c": null, "d": [1, "two", 3.25]}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.data.clone()),
        json!({"a": 2, "b": {"y": 2}, "d": [1, "two", 3.25]})
    );
    assert_eq!(s.expires_at, created.session.expires_at, "expiry unchanged");
    assert_eq!(s.last_seen_at, created.session.last_seen_at);
    assert_eq!(e.get(id).await.unwrap().data, s.data);
    let s = e
        .update_data(id, DataUpdate::Merge(SessionData::new()))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.data),
        json!({"a": 2, "b": {"y": 2}, "d": [1, "two", 3.25]})
    );
}

/// A replace swaps the whole object, including to empty.
pub async fn replace_swaps_the_whole_object(c: Case) {
    let e = c.engine();
    let created = e
        .create(CreateRequest {
            data: obj(json!({"a": 1, "b": 2})),
            ..user("alice")
        })
        .await
        .unwrap();
    let id = created.session.id.as_str();
    let s = e
        .update_data(id, DataUpdate::Replace(obj(json!({"z": true}))))
        .await
        .unwrap();
    assert_eq!(Value::Object(s.data), json!({"z": true}));
    let s = e
        .update_data(id, DataUpdate::Replace(SessionData::new()))
        .await
        .unwrap();
    assert!(s.data.is_empty());
    assert!(e.get(id).await.unwrap().data.is_empty());
    assert_eq!(
        e.get(id).await.unwrap().expires_at,
        created.session.expires_at
    );
}

/// An update that would take data over the limit fails and changes nothing.
pub async fn oversize_update_changes_nothing(c: Case) {
    let e = c.engine_with(Policy {
        max_data_bytes: 100,
        ..standard_policy()
    });
    let created = e
        .create(CreateRequest {
            data: obj(json!({"a": "x".repeat(40)})),
            ..user("alice")
        })
        .await
        .unwrap();
    let id = created.session.id.as_str();
    // Each update alone is small; merged the data would be over 100 bytes.
    let err = e
        .update_data(id, DataUpdate::Merge(obj(json!({"b": "y".repeat(60)}))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DataTooLarge { max: 100, .. }),
        "{err:?}"
    );
    assert_eq!(e.get(id).await.unwrap().data, created.session.data);
    // The same merge fits when it also removes the old key: the size is that
    // of the result.
    let frees_room = obj(json!({"a": null, "b": "y".repeat(60)}));
    let s = e
        .update_data(id, DataUpdate::Merge(frees_room))
        .await
        .unwrap();
    assert_eq!(Value::Object(s.data), json!({"b": "y".repeat(60)}));
    // Replacing instead fits.
    e.update_data(id, DataUpdate::Replace(obj(json!({"b": "y".repeat(60)}))))
        .await
        .unwrap();
    // Too large on its own is refused before the store.
    let err = e
        .update_data(id, DataUpdate::Replace(obj(json!({"c": "z".repeat(200)}))))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DataTooLarge { .. }));
    assert_eq!(
        Value::Object(e.get(id).await.unwrap().data),
        json!({"b": "y".repeat(60)})
    );
}

/// Concurrent merges of different keys are all applied (no lost update).
pub async fn concurrent_merges_of_different_keys_all_survive(c: Case) {
    let e = c.engine();
    let created = e.create(user("alice")).await.unwrap();
    let id = created.session.id.to_string();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (e, id) = (e.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            e.update_data(&id, DataUpdate::Merge(obj(json!({format!("k{i}"): i}))))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let data = e.get(&id).await.unwrap().data;
    assert_eq!(data.len(), 64);
    for i in 0..64 {
        assert_eq!(data[&format!("k{i}")], json!(i));
    }
}

/// Extend pushes the idle deadline, never shortens it, never passes the
/// absolute one.
pub async fn extend_never_passes_absolute_deadline(c: Case) {
    let e = c.engine();
    let created = e
        .create(CreateRequest {
            absolute_ttl: Some(120 * MIN),
            ..user("alice")
        })
        .await
        .unwrap();
    let id = created.session.id.as_str();
    c.clock.advance(10 * MIN);
    let now = e.now();
    let s = e.extend(id, Some(60 * MIN)).await.unwrap();
    assert_eq!(s.expires_at, now.plus(60 * MIN));
    let s = e.extend(id, Some(5 * MIN)).await.unwrap();
    assert_eq!(s.expires_at, now.plus(60 * MIN), "extend never shortens");
    c.clock.advance(50 * MIN);
    let now = e.now();
    let s = e.extend(id, None).await.unwrap();
    assert_eq!(
        s.expires_at,
        now.plus(30 * MIN),
        "default: the session's own idle timeout"
    );
    let s = e.extend(id, Some(600 * MIN)).await.unwrap();
    assert_eq!(s.expires_at, s.absolute_expires_at);
    assert_eq!(e.get(id).await.unwrap().expires_at, s.absolute_expires_at);
    // Still live past the original idle deadline thanks to the extension.
    c.clock.advance(59 * MIN);
    assert!(
        e.introspect(created.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
}

/// Rotation by id gives a new token; the old one is dead at once.
pub async fn rotate_by_id_kills_the_old_token(c: Case) {
    let e = c.engine();
    let created = e
        .create(CreateRequest {
            data: obj(json!({"k": "v"})),
            ..user("alice")
        })
        .await
        .unwrap();
    let rotated = e.rotate(created.session.id.as_str()).await.unwrap();
    assert_ne!(rotated.token.expose(), created.token.expose());
    assert_eq!(rotated.session.id, created.session.id);
    assert_eq!(rotated.session.data, created.session.data);
    assert_eq!(
        e.introspect(created.token.expose(), true).await.unwrap(),
        None
    );
    let s = e
        .introspect(rotated.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.id, created.session.id);
    // By token: only the current token rotates.
    assert!(matches!(
        e.rotate_token(created.token.expose()).await,
        Err(Error::NotFound)
    ));
    let again = e.rotate_token(rotated.token.expose()).await.unwrap();
    assert_eq!(
        e.introspect(rotated.token.expose(), false).await.unwrap(),
        None
    );
    assert!(
        e.introspect(again.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
}

/// 200 concurrent rotations presenting the same token: exactly one wins.
pub async fn concurrent_rotations_of_one_token_have_one_winner(c: Case) {
    let e = c.engine();
    let created = e.create(user("alice")).await.unwrap();
    let token = created.token.expose().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (e, token) = (e.clone(), token.clone());
        tasks.push(tokio::spawn(async move { e.rotate_token(&token).await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => winners.push(r),
            Err(Error::NotFound) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    assert_eq!(e.introspect(&token, false).await.unwrap(), None);
    let s = e
        .introspect(winners[0].token.expose(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.id, created.session.id);
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
}

/// Revoked means gone, for every operation.
pub async fn revoke_is_final(c: Case) {
    let e = c.engine();
    let created = e.create(user("alice")).await.unwrap();
    let id = created.session.id.as_str();
    assert!(
        e.revoke(id, RevokeReason::Other("password_changed".into()))
            .await
            .unwrap()
    );
    assert!(
        !e.revoke(id, RevokeReason::Logout).await.unwrap(),
        "second revoke is a no-op"
    );
    assert_eq!(
        e.introspect(created.token.expose(), true).await.unwrap(),
        None
    );
    assert_eq!(e.get(id).await, Err(Error::NotFound));
    assert_eq!(
        e.update_data(id, DataUpdate::Merge(obj(json!({"a": 1}))))
            .await,
        Err(Error::NotFound)
    );
    assert_eq!(e.extend(id, Some(MIN)).await, Err(Error::NotFound));
    assert!(matches!(e.rotate(id).await, Err(Error::NotFound)));
    assert!(matches!(
        e.rotate_token(created.token.expose()).await,
        Err(Error::NotFound)
    ));
    assert_eq!(e.count_user("alice").await.unwrap(), 0);
    assert!(e.list_user("alice").await.unwrap().is_empty());
    assert_eq!(
        e.get(id).await,
        Err(Error::NotFound),
        "no write above brought it back"
    );
}

/// Touches, merges and extends racing a revoke never bring the session back.
pub async fn touch_racing_revoke_never_resurrects(c: Case) {
    let e = c.engine_with(Policy {
        touch_interval: Duration::from_millis(0),
        ..standard_policy()
    });
    for round in 0..10 {
        let created = e.create(user("alice")).await.unwrap();
        let id = created.session.id.to_string();
        let token = created.token.expose().to_owned();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (e, id, token) = (e.clone(), id.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut issued = Vec::new();
                for _ in 0..5 {
                    let _ = e.introspect(&token, true).await.unwrap();
                    let _ = e
                        .update_data(&id, DataUpdate::Merge(obj(json!({format!("k{i}"): round}))))
                        .await;
                    let _ = e.extend(&id, Some(60 * MIN)).await;
                    if let Ok(r) = e.rotate(&id).await {
                        issued.push(r.token.expose().to_owned());
                    }
                    if let Ok(r) = e.rotate_token(&token).await {
                        issued.push(r.token.expose().to_owned());
                    }
                }
                issued
            }));
        }
        let revoker = {
            let (e, id) = (e.clone(), id.clone());
            tokio::spawn(async move { e.revoke(&id, RevokeReason::RevokedByAdmin).await.unwrap() })
        };
        let mut issued = Vec::new();
        for t in tasks {
            issued.extend(t.await.unwrap());
        }
        assert!(revoker.await.unwrap());
        assert_eq!(e.get(&id).await, Err(Error::NotFound));
        assert_eq!(e.introspect(&token, false).await.unwrap(), None);
        for t in &issued {
            let seen = e.introspect(t, false).await.unwrap();
            assert_eq!(seen, None, "a rotated token outlived the revoke");
        }
    }
    assert_eq!(e.count_user("alice").await.unwrap(), 0);
    assert!(e.list_user("alice").await.unwrap().is_empty());
}

/// A user's sessions come back newest first and only theirs.
pub async fn list_is_newest_first_and_per_user(c: Case) {
    let e = c.engine();
    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(e.create(user("alice")).await.unwrap().session.id);
        c.clock.advance(Duration::from_secs(1));
    }
    e.create(user("bob")).await.unwrap();
    made.reverse();
    assert_eq!(ids(&e.list_user("alice").await.unwrap()), made);
    assert_eq!(e.count_user("alice").await.unwrap(), 4);
    assert_eq!(e.count_user("bob").await.unwrap(), 1);
    assert_eq!(e.count_user("carol").await.unwrap(), 0);
    assert!(e.list_user("carol").await.unwrap().is_empty());
    // Sessions created in the same millisecond: all listed, ties by id, descending.
    let mut same_ms: Vec<_> = futures_join(&e, "dave", 5).await;
    same_ms.sort();
    same_ms.reverse();
    assert_eq!(ids(&e.list_user("dave").await.unwrap()), same_ms);
}

async fn futures_join(e: &Engine, user_id: &str, n: usize) -> Vec<SessionId> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (e, u) = (e.clone(), user_id.to_owned());
        tasks.push(tokio::spawn(async move {
            e.create(user(&u)).await.unwrap().session.id
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// "Sign out everywhere else": all but one session revoked, ids returned.
pub async fn revoke_user_spares_only_the_exception(c: Case) {
    let e = c.engine();
    let keep = e.create(user("alice")).await.unwrap();
    let mut others = HashSet::new();
    let mut other_tokens = Vec::new();
    for _ in 0..3 {
        let created = e.create(user("alice")).await.unwrap();
        others.insert(created.session.id);
        other_tokens.push(created.token);
    }
    let bob = e.create(user("bob")).await.unwrap();
    let revoked = e
        .revoke_user(
            "alice",
            Some(keep.session.id.as_str()),
            RevokeReason::RevokedByUser,
        )
        .await
        .unwrap();
    assert_eq!(revoked.into_iter().collect::<HashSet<_>>(), others);
    for t in &other_tokens {
        assert_eq!(e.introspect(t.expose(), true).await.unwrap(), None);
    }
    assert_eq!(
        ids(&e.list_user("alice").await.unwrap()),
        vec![keep.session.id.clone()]
    );
    assert!(
        e.introspect(keep.token.expose(), true)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        e.introspect(bob.token.expose(), true)
            .await
            .unwrap()
            .is_some()
    );
    let revoked = e
        .revoke_user("alice", None, RevokeReason::Logout)
        .await
        .unwrap();
    assert_eq!(revoked, vec![keep.session.id.clone()]);
    assert_eq!(e.count_user("alice").await.unwrap(), 0);
    assert!(
        e.revoke_user("alice", None, RevokeReason::Logout)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(e.count_user("bob").await.unwrap(), 1);
}

/// Over the limit with `evict_oldest`, the oldest sessions make room.
pub async fn evict_oldest_makes_room(c: Case) {
    let e = c.engine();
    let first = e
        .create(CreateRequest {
            role: Some("admin".into()),
            ..user("root")
        })
        .await
        .unwrap();
    c.clock.advance(Duration::from_secs(1));
    let second = e
        .create(CreateRequest {
            role: Some("admin".into()),
            ..user("root")
        })
        .await
        .unwrap();
    c.clock.advance(Duration::from_secs(1));
    // Activity on the oldest does not make it younger: eviction is by creation.
    e.introspect(first.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    let third = e
        .create(CreateRequest {
            role: Some("admin".into()),
            ..user("root")
        })
        .await
        .unwrap();
    assert_eq!(third.evicted, vec![first.session.id.clone()]);
    assert_eq!(
        e.introspect(first.token.expose(), true).await.unwrap(),
        None
    );
    assert_eq!(
        ids(&e.list_user("root").await.unwrap()),
        vec![third.session.id.clone(), second.session.id.clone()]
    );
}

/// Over the limit with `reject`, nothing is created and nothing is lost.
pub async fn reject_policy_refuses_and_keeps_existing(c: Case) {
    let e = c.engine_with(limited(2, LimitPolicy::Reject));
    let a = e.create(user("alice")).await.unwrap();
    let b = e.create(user("alice")).await.unwrap();
    assert_eq!(
        e.create(user("alice")).await.unwrap_err(),
        Error::LimitReached { max: 2 }
    );
    assert_eq!(e.count_user("alice").await.unwrap(), 2);
    assert!(
        e.introspect(a.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        e.introspect(b.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
    // Another user is not affected; freeing a slot admits a new one.
    e.create(user("bob")).await.unwrap();
    e.revoke(a.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    e.create(user("alice")).await.unwrap();
}

/// Expired sessions do not count toward `max_sessions`.
pub async fn expired_sessions_do_not_count_toward_the_limit(c: Case) {
    let e = c.engine_with(limited(2, LimitPolicy::Reject));
    e.create(user("alice")).await.unwrap();
    e.create(user("alice")).await.unwrap();
    c.clock.advance(31 * MIN);
    let fresh = e.create(user("alice")).await.unwrap();
    assert!(fresh.evicted.is_empty());
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
    // Expired sessions are neither counted nor reported as evicted: with two
    // expired and two live sessions, a third live one evicts the oldest live.
    let e = c.engine_with(limited(2, LimitPolicy::EvictOldest));
    e.create(user("carol")).await.unwrap();
    e.create(user("carol")).await.unwrap();
    c.clock.advance(31 * MIN);
    let live1 = e.create(user("carol")).await.unwrap();
    c.clock.advance(Duration::from_secs(1));
    let live2 = e.create(user("carol")).await.unwrap();
    assert!(live2.evicted.is_empty());
    c.clock.advance(Duration::from_secs(1));
    let third = e.create(user("carol")).await.unwrap();
    assert_eq!(third.evicted, vec![live1.session.id.clone()]);
    let listed = ids(&e.list_user("carol").await.unwrap());
    assert_eq!(
        listed,
        vec![third.session.id.clone(), live2.session.id.clone()]
    );
}

/// 200 concurrent creates for one user never leave more than the limit live.
pub async fn concurrent_creates_never_exceed_the_limit(c: Case) {
    let e = c.engine_with(limited(5, LimitPolicy::EvictOldest));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            e.create(user("alice")).await.unwrap()
        }));
    }
    let mut created = HashSet::new();
    let mut evicted = Vec::new();
    for t in tasks {
        let c = t.await.unwrap();
        created.insert(c.session.id);
        evicted.extend(c.evicted);
    }
    assert_eq!(created.len(), 200);
    let evicted_set: HashSet<_> = evicted.iter().cloned().collect();
    assert_eq!(evicted_set.len(), evicted.len(), "no session evicted twice");
    assert_eq!(
        evicted.len(),
        195,
        "every create beyond the limit evicted exactly one"
    );
    let live: HashSet<_> = ids(&e.list_user("alice").await.unwrap())
        .into_iter()
        .collect();
    assert_eq!(live.len(), 5);
    assert_eq!(e.count_user("alice").await.unwrap(), 5);
    assert!(live.is_disjoint(&evicted_set));
    assert_eq!(&live | &evicted_set, created);
}

/// With `reject`, exactly `max_sessions` of 200 concurrent creates succeed.
pub async fn concurrent_creates_with_reject_admit_exactly_the_limit(c: Case) {
    let e = c.engine_with(limited(7, LimitPolicy::Reject));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move { e.create(user("alice")).await }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::LimitReached { max: 7 }) => rejected += 1,
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!((ok, rejected), (7, 193));
    assert_eq!(e.count_user("alice").await.unwrap(), 7);
}

/// "Sign out everywhere" racing new logins: every session created is either
/// reported revoked or still live afterwards, never both, never neither.
pub async fn revoke_user_racing_creates_loses_nothing(c: Case) {
    let e = c.engine_with(limited(1000, LimitPolicy::Reject));
    let mut creators = Vec::new();
    for _ in 0..100 {
        let e = e.clone();
        creators.push(tokio::spawn(async move {
            e.create(user("alice")).await.unwrap().session.id
        }));
    }
    let mut revokers = Vec::new();
    for _ in 0..10 {
        let e = e.clone();
        revokers.push(tokio::spawn(async move {
            e.revoke_user("alice", None, RevokeReason::RevokedByAdmin)
                .await
                .unwrap()
        }));
    }
    let mut created = HashSet::new();
    for t in creators {
        created.insert(t.await.unwrap());
    }
    let mut revoked = Vec::new();
    for t in revokers {
        revoked.extend(t.await.unwrap());
    }
    let revoked_set: HashSet<_> = revoked.iter().cloned().collect();
    assert_eq!(revoked_set.len(), revoked.len(), "no session revoked twice");
    let live: HashSet<_> = ids(&e.list_user("alice").await.unwrap())
        .into_iter()
        .collect();
    assert!(live.is_disjoint(&revoked_set));
    assert_eq!(&live | &revoked_set, created);
    assert_eq!(e.count_user("alice").await.unwrap() as usize, live.len());
}

/// Boundary-sized and unusual inputs are stored and returned exactly.
pub async fn odd_and_large_inputs(c: Case) {
    let e = c.engine();
    let long_user = "u".repeat(256);
    let long_unicode = "é".repeat(128); // 256 bytes
    let users = [
        long_user.as_str(),
        long_unicode.as_str(),
        "用户🦀",
        "{brace}:colon*star?[x]",
        "with space",
        "a",
    ];
    let big = obj(json!({"blob": "x".repeat(16 * 1024 - 4 - 2)}));
    assert_eq!(sessiond_engine::data_size(&big), 16 * 1024);
    for u in users {
        let created = e
            .create(CreateRequest {
                data: big.clone(),
                user_agent: Some("🦀".repeat(300)),
                ..user(u)
            })
            .await
            .unwrap();
        let got = e
            .introspect(created.token.expose(), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.user_id, u);
        assert_eq!(got.data, big);
        assert_eq!(
            ids(&e.list_user(u).await.unwrap()),
            vec![created.session.id.clone()]
        );
        let s = e
            .update_data(
                created.session.id.as_str(),
                DataUpdate::Replace(obj(
                    json!({"ключ": "值", "": "empty key", "nested": {"a": [[], {}]}}),
                )),
            )
            .await
            .unwrap();
        assert_eq!(
            Value::Object(s.data.clone()),
            json!({"ключ": "值", "": "empty key", "nested": {"a": [[], {}]}})
        );
        assert_eq!(
            e.get(created.session.id.as_str()).await.unwrap().data,
            s.data
        );
        assert_eq!(
            e.revoke_user(u, None, RevokeReason::Logout)
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let empty = e.create(user("empty")).await.unwrap();
    assert!(
        e.get(empty.session.id.as_str())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // Numbers keep their exact form.
    let nums = obj(json!({"big": 9007199254740993_u64, "neg": -12345678901234_i64, "f": 0.1}));
    let s = e
        .update_data(empty.session.id.as_str(), DataUpdate::Replace(nums.clone()))
        .await
        .unwrap();
    assert_eq!(s.data, nums);
    assert_eq!(e.get(empty.session.id.as_str()).await.unwrap().data, nums);
}

/// Bad input is a typed error, never a panic and never a store write.
pub async fn bad_input_is_a_typed_error(c: Case) {
    let e = c.engine();
    let invalid = |r: Result<_, Error>, field: &str| match r {
        Err(Error::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected Invalid({field}), got {other:?}"),
    };
    invalid(e.create(user("")).await.map(|_| ()), "user_id");
    invalid(
        e.create(user(&"u".repeat(257))).await.map(|_| ()),
        "user_id",
    );
    invalid(e.create(user("new\nline")).await.map(|_| ()), "user_id");
    invalid(
        e.create(CreateRequest {
            ip: Some("not an ip".into()),
            ..user("a")
        })
        .await
        .map(|_| ()),
        "ip",
    );
    invalid(
        e.create(CreateRequest {
            role: Some(String::new()),
            ..user("a")
        })
        .await
        .map(|_| ()),
        "role",
    );
    invalid(
        e.create(CreateRequest {
            idle_ttl: Some(Duration::ZERO),
            ..user("a")
        })
        .await
        .map(|_| ()),
        "idle_ttl",
    );
    invalid(
        e.create(CreateRequest {
            absolute_ttl: Some(Duration::from_secs(401 * 24 * 3600)),
            ..user("a")
        })
        .await
        .map(|_| ()),
        "absolute_ttl",
    );
    let too_big = e
        .create(CreateRequest {
            data: obj(json!({"blob": "x".repeat(16 * 1024)})),
            ..user("a")
        })
        .await;
    assert!(matches!(too_big, Err(Error::DataTooLarge { .. })));
    // Unknown roles: default policy unless strict.
    assert!(
        e.create(CreateRequest {
            role: Some("ghost".into()),
            ..user("a")
        })
        .await
        .is_ok()
    );
    let strict = c.engine_with(Policy {
        strict_roles: true,
        ..standard_policy()
    });
    invalid(
        strict
            .create(CreateRequest {
                role: Some("ghost".into()),
                ..user("a")
            })
            .await
            .map(|_| ()),
        "role",
    );
    // Malformed tokens of any length or bytes.
    let mut tokens: Vec<String> = vec![
        String::new(),
        "sds_".into(),
        "\u{0}".into(),
        "x".repeat(100_000),
        "sds_🦀".into(),
    ];
    tokens.extend((0..=200).map(|n| "A".repeat(n)));
    tokens.extend((0..=200).map(|n| format!("sds_{}", "-".repeat(n))));
    for t in &tokens {
        invalid(e.introspect(t, true).await.map(|_| ()), "token");
        invalid(e.rotate_token(t).await.map(|_| ()), "token");
    }
    // An id of any other shape names no session: not found, as a
    // well-formed one that does not exist, so its shape tells nothing.
    for id in ["", "nope", "../../etc/passwd", &"a".repeat(34), "{x}"] {
        assert_eq!(e.get(id).await, Err(Error::NotFound), "{id:?}");
        assert_eq!(e.extend(id, None).await, Err(Error::NotFound), "{id:?}");
        assert!(matches!(e.rotate(id).await, Err(Error::NotFound)), "{id:?}");
        assert_eq!(
            e.revoke(id, RevokeReason::Logout).await,
            Ok(false),
            "{id:?}"
        );
        // An id to spare is bad input: a typo must not revoke them all.
        invalid(
            e.revoke_user("a", Some(id), RevokeReason::Logout)
                .await
                .map(|_| ()),
            "id",
        );
    }
    // A well-formed id that does not exist.
    let ghost = SessionId::generate(&sessiond_engine::ShardTag::of_user("a"));
    assert_eq!(e.get(ghost.as_str()).await, Err(Error::NotFound));
    invalid(e.list_user("").await.map(|_| ()), "user_id");
    assert_eq!(
        e.count_user("a").await.unwrap(),
        1,
        "no invalid call wrote anything"
    );
}

/// The global live count follows creates and revokes (expiry is each store's
/// own: Redis counts keys its TTLs have not yet removed).
pub async fn live_count_follows_creates_and_revokes(c: Case) {
    let e = c.engine();
    assert_eq!(e.count_live().await.unwrap(), 0);
    let a = e.create(user("alice")).await.unwrap();
    e.create(user("bob")).await.unwrap();
    e.create(user("carol")).await.unwrap();
    assert_eq!(e.count_live().await.unwrap(), 3);
    e.revoke(a.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    assert_eq!(e.count_live().await.unwrap(), 2);
    e.revoke_user("bob", None, RevokeReason::Logout)
        .await
        .unwrap();
    assert_eq!(e.count_live().await.unwrap(), 1);
}
