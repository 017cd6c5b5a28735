//! Expiry sweeping: `sweep_now` deletes exactly the rows whose deadline has
//! passed by the store's clock, and the background sweeper does the same on
//! its own, only once the clock says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    Clock, CreateRequest, Device, Engine, LimitPolicy, ManualClock, NewSession, Policy, RolePolicy,
    Session, SessionData, SessionId, SessionToken, ShardTag, Store,
};

const MIN: Duration = Duration::from_secs(60);

struct World {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    engine: Engine,
    clock: ManualClock,
}

impl World {
    async fn new(sweep_interval: Duration) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let clock = ManualClock::new();
        let store = EmbeddedStore::open(
            dir.path(),
            EmbeddedOptions {
                clock: Arc::new(clock.clone()),
                sweep_interval,
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
            store_timeout: Duration::from_secs(60),
            ..Policy::default()
        };
        let engine = Engine::with_clock(Arc::new(store.clone()), policy, Arc::new(clock.clone()));
        Self {
            _dir: dir,
            store,
            engine,
            clock,
        }
    }

    /// Create `n` sessions with this idle timeout and lifetime.
    async fn create(&self, n: usize, idle: Duration, absolute: Duration) -> Vec<SessionId> {
        let mut ids = Vec::new();
        for i in 0..n {
            let created = self
                .engine
                .create(CreateRequest {
                    user_id: format!("user-{}", i % 37),
                    idle_ttl: Some(idle),
                    absolute_ttl: Some(absolute),
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            ids.push(created.session.id);
        }
        ids
    }

    /// Insert a session straight through the store with an idle deadline
    /// `idle` and an absolute one `absolute` from now, in any order.
    async fn insert_with_deadlines(&self, idle: Duration, absolute: Duration) -> SessionId {
        let now = self.engine.now();
        let shard = ShardTag::of_user("direct");
        let session = Session {
            id: SessionId::generate(&shard),
            user_id: "direct".into(),
            role: None,
            data: SessionData::new(),
            device: Device::default(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(idle),
            absolute_expires_at: now.plus(absolute),
            idle_ttl_ms: u64::try_from(idle.as_millis()).unwrap(),
            mode: sessiond_engine::Mode::Opaque,
            auth: sessiond_engine::AuthContext::at(now),
        };
        let new = NewSession {
            token: SessionToken::generate(&shard).digest(),
            refresh: None,
            session,
            max_sessions: u32::MAX,
            limit_policy: LimitPolicy::Reject,
        };
        self.store.create(&new, now).await.unwrap();
        new.session.id
    }

    /// Rows physically in the file, dead or alive.
    fn rows(&self) -> i64 {
        rows_in(self._dir.path())
    }
}

fn rows_in(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("sessions.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_now_deletes_exactly_the_expired_rows() {
    let w = World::new(Duration::ZERO).await;
    // More idle-expiring rows than one sweep batch, some whose absolute
    // deadline comes before their idle one, and some that stay.
    let idle_short = w.create(1500, MIN, 24 * 60 * MIN).await;
    let mut absolute_short = Vec::new();
    for _ in 0..30 {
        absolute_short.push(w.insert_with_deadlines(60 * MIN, 2 * MIN).await);
    }
    let long = w.create(40, 60 * MIN, 24 * 60 * MIN).await;
    assert_eq!(w.store.sweep_now().await.unwrap(), 0, "nothing is due yet");

    w.clock.advance(MIN);
    assert_eq!(
        w.store.sweep_now().await.unwrap(),
        1500,
        "deadline reached is expired"
    );
    assert_eq!(w.rows(), 70);
    w.clock.advance(MIN);
    assert_eq!(w.store.sweep_now().await.unwrap(), 30);
    assert_eq!(
        w.store.sweep_now().await.unwrap(),
        0,
        "a second sweep finds nothing"
    );
    assert_eq!(w.rows(), 40);

    let now = w.engine.now();
    for id in &long {
        assert!(
            w.store.get(id, now).await.unwrap().is_some(),
            "{id} was live"
        );
    }
    for id in idle_short.iter().chain(&absolute_short) {
        assert!(w.store.get(id, now).await.unwrap().is_none());
    }
    assert_eq!(live_sessions(&w).await, 40);
}

/// Live sessions of every user the tests create, as the store counts them.
async fn live_sessions(w: &World) -> u64 {
    let mut total = w.store.count_user("direct", w.engine.now()).await.unwrap();
    for u in 0..37 {
        total += w
            .store
            .count_user(&format!("user-{u}"), w.engine.now())
            .await
            .unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_keeps_a_session_from_being_swept() {
    let w = World::new(Duration::ZERO).await;
    let created = w
        .engine
        .create(CreateRequest {
            user_id: "alice".into(),
            idle_ttl: Some(10 * MIN),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    w.clock.advance(9 * MIN);
    assert!(
        w.engine
            .introspect(created.token.expose(), true)
            .await
            .unwrap()
            .is_some()
    );
    w.clock.advance(9 * MIN);
    assert_eq!(
        w.store.sweep_now().await.unwrap(),
        0,
        "the touch moved its deadline"
    );
    w.clock.advance(MIN);
    assert_eq!(w.store.sweep_now().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sweeper_follows_the_store_clock() {
    let w = World::new(Duration::from_millis(20)).await;
    w.create(1200, MIN, 24 * 60 * MIN).await;
    let long = w.create(10, 60 * MIN, 24 * 60 * MIN).await;

    // Wall time passes, the store's clock does not: nothing is swept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.rows(), 1210);

    w.clock.advance(2 * MIN);
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.rows() != 10 {
        assert!(
            Instant::now() < deadline,
            "background sweep left {} rows",
            w.rows()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = w.engine.now();
    for id in &long {
        assert!(w.store.get(id, now).await.unwrap().is_some());
    }
    // The store keeps serving while and after the sweeper works.
    w.create(5, MIN, MIN).await;
    assert_eq!(w.rows(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeping_stops_with_the_store() {
    let w = World::new(Duration::from_millis(10)).await;
    w.create(3, MIN, MIN).await;
    w.store.close().await;
    assert!(
        w.store.sweep_now().await.is_err(),
        "closed stores refuse to sweep"
    );
    w.clock.advance(2 * MIN);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.rows(), 3, "no sweep after close");
}

/// A not-before mark is kept until its end and then swept with the expired
/// sessions: no row outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_now_deletes_ended_not_before_marks() {
    let w = World::new(Duration::ZERO).await;
    let marks = |dir: &Path| -> i64 {
        let conn = rusqlite::Connection::open(dir.join("sessions.db")).unwrap();
        conn.query_row("SELECT count(*) FROM not_before", [], |r| r.get(0))
            .unwrap()
    };
    let t = w.clock.now();
    let revocation = |user: &str, before| sessiond_engine::IssuedBefore {
        user_id: user.to_owned(),
        before,
        except: None,
        reason: sessiond_engine::RevokeReason::RevokedByAdmin,
        mark_ttl_ms: u64::try_from((60 * MIN).as_millis()).unwrap(),
    };
    for user in ["alice", "bob"] {
        w.store
            .revoke_issued_before(&revocation(user, t), t)
            .await
            .unwrap();
    }
    w.clock.advance(30 * MIN);
    let now = w.clock.now();
    w.store
        .revoke_issued_before(&revocation("bob", now), now)
        .await
        .unwrap();
    w.store.sweep_now().await.unwrap();
    assert_eq!(marks(w._dir.path()), 2);
    w.clock.advance(30 * MIN);
    w.store.sweep_now().await.unwrap();
    assert_eq!(
        marks(w._dir.path()),
        1,
        "alice's mark ended, bob's moved on"
    );
    assert_eq!(
        w.store.not_before("alice", w.clock.now()).await.unwrap(),
        None
    );
    assert!(
        w.store
            .not_before("bob", w.clock.now())
            .await
            .unwrap()
            .is_some()
    );
    w.clock.advance(30 * MIN);
    w.store.sweep_now().await.unwrap();
    assert_eq!(marks(w._dir.path()), 0);
}
