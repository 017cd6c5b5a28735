//! History, the event feed and presence on PostgreSQL: the shared history,
//! event and presence cases (`sessiond_testkit::history_cases`,
//! `event_cases`, `presence_cases`) bare and behind the near-cache, then
//! what is this store's own: events past the retentions left out and pruned
//! in batches (on demand and by the background sweep), a cursor from before
//! them refused, a cursor kept across a server restart, a reader that never
//! passes a transaction still open, whatever order the `seq`s were taken
//! in, and heartbeats, closes, sweeps and a revocation racing on one
//! session's connections, each change recorded once.
//!
//! The feed hands out events only up to the oldest transaction still running
//! anywhere on the server, so the cases of this binary run one at a time:
//! another case's transaction in flight would hold back this one's events
//! for a moment, and a read in that moment would look like the end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sessiond_engine::{
    CacheOptions, CachedStore, Clock, DataUpdate, Engine, Error, EventKind, EventKinds, EventQuery,
    EventRetention, EventsFrom, HistoryKind, LimitPolicy, ManualClock, Policy, RevokeReason, Store,
};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_testkit::event_cases::{drain, now_cursor, query, summary as feed_summary};
use sessiond_testkit::history_cases::{HistoryWorld, Sweep, login, summary};
use sessiond_testkit::postgres_server::PostgresServer;
use sessiond_testkit::{Shared, wait_serving};
use tokio::sync::{Mutex, MutexGuard};

static SERVER: Shared<PostgresServer> = Shared::new();
static CASE: AtomicUsize = AtomicUsize::new(0);
/// Held by each case on the shared server for as long as it runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const MIN: Duration = Duration::from_secs(60);

/// A fresh schema on the shared server, for one case at a time.
struct Case {
    server: Arc<PostgresServer>,
    schema: String,
    _turn: MutexGuard<'static, ()>,
}

async fn case() -> Case {
    let turn = ONE_AT_A_TIME.lock().await;
    let server = tokio::task::spawn_blocking(|| SERVER.get(PostgresServer::start))
        .await
        .unwrap();
    Case {
        server,
        schema: format!("history{}", CASE.fetch_add(1, Ordering::Relaxed)),
        _turn: turn,
    }
}

/// Options for `schema` on `clock`, with no background sweep.
fn options(schema: &str, clock: &ManualClock) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_owned(),
        clock: Arc::new(clock.clone()),
        sweep_interval: Duration::ZERO,
        ..PostgresOptions::default()
    }
}

async fn open(url: &str, options: PostgresOptions) -> PostgresStore {
    PostgresStore::connect(url, options).await.unwrap()
}

async fn world(cached: bool, clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    let case = case().await;
    let url = case.server.url();
    let store = Arc::new(open(&url, options(&case.schema, &clock)).await);
    let (sweeper, sweep_clock) = (store.clone(), clock.clone());
    let sweep: Sweep = Box::new(move || {
        let (store, clock) = (sweeper.clone(), sweep_clock.clone());
        Box::pin(async move { store.sweep(&clock).await.unwrap() })
    });
    let outer: Arc<dyn Store> = if cached {
        // The cache owns a store of its own on the same schema.
        let cached = CachedStore::new(
            open(&url, options(&case.schema, &clock)).await,
            CacheOptions::default(),
        );
        wait_serving(cached.cache()).await;
        Arc::new(cached)
    } else {
        store
    };
    HistoryWorld::new(outer, clock, limit_policy, sweep, case)
}

async fn bare(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    world(false, clock, limit_policy).await
}

async fn cached(clock: ManualClock, limit_policy: LimitPolicy) -> HistoryWorld {
    world(true, clock, limit_policy).await
}

mod bare {
    sessiond_testkit::history_tests!(super::bare);
    sessiond_testkit::event_tests!(super::bare);
    sessiond_testkit::presence_tests!(super::bare);
}

mod cached {
    sessiond_testkit::history_tests!(super::cached);
    sessiond_testkit::event_tests!(super::cached);
    sessiond_testkit::presence_tests!(super::cached);
}

/// How many rows the events table of `schema` holds.
fn stored_events(server: &PostgresServer, schema: &str) -> String {
    server
        .sql(&format!("SELECT count(*) FROM {schema}.events"))
        .unwrap()
}

/// A connection of its own to the server, outside any store.
async fn raw_client(server: &PostgresServer) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_retention_are_left_out_then_pruned() {
    let case = case().await;
    let (server, schema) = (&case.server, &case.schema);
    let clock = ManualClock::new();
    let options = PostgresOptions {
        history_retention: 60 * MIN,
        ..options(schema, &clock)
    };
    let store = Arc::new(open(&server.url(), options).await);
    let e = Engine::with_clock(store.clone(), Policy::default(), Arc::new(clock.clone()));
    let old = e.create(login("alice")).await.unwrap().session;
    e.revoke(old.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    clock.advance(45 * MIN);
    let recent = e.create(login("alice")).await.unwrap().session;
    assert_eq!(
        e.history("alice", None, None).await.unwrap().events.len(),
        3
    );

    clock.advance(30 * MIN);
    let events = e.history("alice", None, None).await.unwrap().events;
    assert_eq!(
        summary(&events),
        vec![(HistoryKind::Created, None, &recent.id)]
    );
    let stored = || stored_events(server, schema);
    assert_eq!(stored(), "3", "left out before it is pruned");
    assert_eq!(store.prune_history(&clock).await.unwrap(), 2);
    assert_eq!(store.prune_history(&clock).await.unwrap(), 0);
    assert_eq!(stored(), "1");
    assert_eq!(e.history("alice", None, None).await.unwrap().events, events);
    assert!(clock.now() > recent.created_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_feed_retention_leave_it_and_a_cursor_before_them_is_refused() {
    let case = case().await;
    let clock = ManualClock::new();
    let options = PostgresOptions {
        event_retention: EventRetention {
            max_age: 10 * MIN,
            ..EventRetention::default()
        },
        ..options(&case.schema, &clock)
    };
    let store = Arc::new(open(&case.server.url(), options).await);
    let e = Engine::with_clock(store.clone(), Policy::default(), Arc::new(clock.clone()));
    let start = now_cursor(&e).await;
    let old = e.create(login("alice")).await.unwrap().session;
    e.update_data(old.id.as_str(), DataUpdate::Merge(serde_json::Map::new()))
        .await
        .unwrap();
    let seen = drain(&e, &query(EventsFrom::Oldest, 10), start.clone()).await;
    assert_eq!(seen.len(), 2);
    clock.advance(11 * MIN);
    let recent = e.create(login("alice")).await.unwrap().session;
    // Not retired yet: everything is still there.
    assert_eq!(
        drain(&e, &query(EventsFrom::Oldest, 10), start.clone())
            .await
            .len(),
        3
    );
    store.prune_history(&clock).await.unwrap();

    // Resuming from before the retired events would skip them: refused.
    for from in [start.clone(), seen[0].cursor.clone()] {
        match e.events(&query(EventsFrom::After(from), 10)).await {
            Err(Error::CursorExpired(detail)) => assert!(detail.contains("retention"), "{detail}"),
            other => panic!("expected CursorExpired, got {other:?}"),
        }
    }
    // From the last retired one, nothing was missed.
    let rest = drain(&e, &query(EventsFrom::Oldest, 10), seen[1].cursor.clone()).await;
    assert_eq!(
        feed_summary(&rest),
        vec![(EventKind::Created, None, &recent.id)]
    );
    let oldest = e.events(&query(EventsFrom::Oldest, 10)).await.unwrap();
    assert_eq!(oldest.events, rest);
    // The data update is gone from the table; the lifecycle event stays in
    // the history until the history's own retention.
    assert_eq!(stored_events(&case.server, &case.schema), "2");
    assert_eq!(
        e.history("alice", None, None).await.unwrap().events.len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_keeps_at_most_its_count() {
    let case = case().await;
    let clock = ManualClock::new();
    let options = PostgresOptions {
        event_retention: EventRetention {
            max_events: 5,
            ..EventRetention::default()
        },
        ..options(&case.schema, &clock)
    };
    let store = Arc::new(open(&case.server.url(), options).await);
    let e = Engine::with_clock(store.clone(), Policy::default(), Arc::new(clock.clone()));
    let start = now_cursor(&e).await;
    for i in 0..8 {
        e.create(login(&format!("user{i}"))).await.unwrap();
    }
    let all = drain(&e, &query(EventsFrom::Oldest, 100), start.clone()).await;
    assert_eq!(all.len(), 8);
    store.prune_history(&clock).await.unwrap();
    let kept = e
        .events(&query(EventsFrom::Oldest, 100))
        .await
        .unwrap()
        .events;
    assert_eq!(kept, all[3..]);
    assert!(matches!(
        e.events(&query(EventsFrom::After(all[1].cursor.clone()), 10))
            .await,
        Err(Error::CursorExpired(_))
    ));
    assert_eq!(
        drain(&e, &query(EventsFrom::Oldest, 100), all[2].cursor.clone()).await,
        all[3..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweep_retires_events_too() {
    let case = case().await;
    let clock = ManualClock::new();
    let options = PostgresOptions {
        sweep_interval: Duration::from_millis(20),
        event_retention: EventRetention {
            max_events: 2,
            ..EventRetention::default()
        },
        ..options(&case.schema, &clock)
    };
    let store = Arc::new(open(&case.server.url(), options).await);
    let e = Engine::with_clock(store, Policy::default(), Arc::new(clock.clone()));
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            e.create(login(&format!("user{i}")))
                .await
                .unwrap()
                .session
                .id,
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kept = e.events(&query(EventsFrom::Oldest, 100)).await.unwrap();
        let ids: Vec<_> = kept.events.iter().map(|e| e.session_id.clone()).collect();
        if ids == created[3..] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never retired: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_resumes_across_a_restart() {
    // A server of its own, stopped as a crash would stop it: transaction
    // ids, and so cursors, carry on after it.
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap();
    let clock = ManualClock::new();
    let store = open(&server.url(), options("sessiond", &clock)).await;
    let e = Engine::with_clock(Arc::new(store), Policy::default(), Arc::new(clock.clone()));
    let start = now_cursor(&e).await;
    let s = e.create(login("alice")).await.unwrap().session;
    let before = drain(&e, &query(EventsFrom::Oldest, 10), start).await;
    assert_eq!(before.len(), 1);
    drop(e);
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let store = open(&server.url(), options("sessiond", &clock)).await;
    let e = Engine::with_clock(Arc::new(store), Policy::default(), Arc::new(clock.clone()));
    e.revoke(s.id.as_str(), RevokeReason::Logout).await.unwrap();
    let after = drain(&e, &query(EventsFrom::Oldest, 10), before[0].cursor.clone()).await;
    assert_eq!(
        feed_summary(&after),
        vec![(EventKind::Revoked, Some("logout"), &s.id)]
    );
}

/// Record an event in `tx`, a transaction of a connection of its own, and
/// return its `seq`.
async fn insert_event(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    kind: EventKind,
    session: &sessiond_engine::Session,
) -> i64 {
    tx.query_one(
        &format!(
            "INSERT INTO {schema}.events (recorded_at, at, kind, session_id, user_id)
             VALUES (1, 1, $1, $2, $3) RETURNING seq"
        ),
        &[&kind.as_str(), &session.id.as_str(), &session.user_id],
    )
    .await
    .unwrap()
    .get(0)
}

/// The order problem: transaction A takes its `seq` first, B takes a later
/// one and commits first. A reader going by `seq` would hand out B's event,
/// move its cursor past A's, and never see A's. The feed holds B's back
/// until A ends, then hands out both, A's first, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_passes_a_transaction_still_open() {
    let case = case().await;
    let clock = ManualClock::new();
    let store = Arc::new(open(&case.server.url(), options(&case.schema, &clock)).await);
    let e = Engine::with_clock(store, Policy::default(), Arc::new(clock.clone()));
    let start = now_cursor(&e).await;
    let alice = e.create(login("alice")).await.unwrap().session;

    let mut a = raw_client(&case.server).await;
    let tx_a = a.transaction().await.unwrap();
    let seq_a = insert_event(&tx_a, &case.schema, EventKind::DataUpdated, &alice).await;
    // B: the store's own transaction, committed while A is open.
    let bob = e.create(login("bob")).await.unwrap().session;
    let seq_b: i64 = raw_client(&case.server)
        .await
        .query_one(
            &format!(
                "SELECT seq FROM {}.events WHERE session_id = $1",
                case.schema
            ),
            &[&bob.id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(seq_b > seq_a, "B's committed event has the later seq");

    let seen = drain(&e, &query(EventsFrom::Oldest, 10), start.clone()).await;
    assert_eq!(
        feed_summary(&seen),
        vec![(EventKind::Created, None, &alice.id)],
        "nothing after A's event while A is open"
    );
    let held = e
        .events(&query(EventsFrom::After(seen[0].cursor.clone()), 10))
        .await
        .unwrap();
    assert!(held.events.is_empty());
    // The cursor may move up to the horizon, never past A's event.

    tx_a.commit().await.unwrap();
    let rest = drain(&e, &query(EventsFrom::Oldest, 10), seen[0].cursor.clone()).await;
    assert_eq!(
        feed_summary(&rest),
        vec![
            (EventKind::DataUpdated, None, &alice.id),
            (EventKind::Created, None, &bob.id),
        ]
    );
    let from_held = drain(&e, &query(EventsFrom::Oldest, 10), held.cursor).await;
    assert_eq!(from_held, rest);
    // From the start, each of the three once, in the feed's order.
    let all = drain(&e, &query(EventsFrom::Oldest, 1), start).await;
    assert_eq!(all[..1], seen[..]);
    assert_eq!(all[1..], rest[..]);
}

/// `Now` is the horizon: what comes after it is exactly what no reader
/// could have read yet: the events of transactions still open, of those
/// that committed behind one still open, and of those not started. A
/// reader that read everything up to it and one that starts from it
/// together see every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_is_the_horizon_of_transactions_still_open() {
    let case = case().await;
    let clock = ManualClock::new();
    let store = Arc::new(open(&case.server.url(), options(&case.schema, &clock)).await);
    let e = Engine::with_clock(store, Policy::default(), Arc::new(clock.clone()));
    let start = now_cursor(&e).await;
    let carol = e.create(login("carol")).await.unwrap().session;

    let mut a = raw_client(&case.server).await;
    let tx_a = a.transaction().await.unwrap();
    insert_event(&tx_a, &case.schema, EventKind::Extended, &carol).await;
    // Committed, but behind A.
    let dave = e.create(login("dave")).await.unwrap().session;
    let now = now_cursor(&e).await;
    assert!(
        drain(&e, &query(EventsFrom::Oldest, 10), now.clone())
            .await
            .is_empty()
    );
    let before_now = drain(&e, &query(EventsFrom::Oldest, 10), start.clone()).await;
    assert_eq!(
        feed_summary(&before_now),
        vec![(EventKind::Created, None, &carol.id)]
    );
    // Not started at `now`.
    let erin = e.create(login("erin")).await.unwrap().session;
    tx_a.commit().await.unwrap();

    let after_now = drain(&e, &query(EventsFrom::Oldest, 10), now).await;
    assert_eq!(
        feed_summary(&after_now),
        vec![
            (EventKind::Extended, None, &carol.id),
            (EventKind::Created, None, &dave.id),
            (EventKind::Created, None, &erin.id),
        ]
    );
    let all = drain(&e, &query(EventsFrom::Oldest, 10), start).await;
    assert_eq!(all, [before_now, after_now].concat());
}

/// Many writers at once, a reader reading along in small pages: every
/// event reaches the reader exactly once, in the order a later read from
/// the start finds them, however the writers' commits interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_reading_along_concurrent_writers_gets_every_event_once() {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let case = case().await;
    let clock = ManualClock::new();
    let store = Arc::new(open(&case.server.url(), options(&case.schema, &clock)).await);
    let e = Arc::new(Engine::with_clock(
        store,
        Policy::default(),
        Arc::new(clock.clone()),
    ));
    let start = now_cursor(&e).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (e, done, mut cursor) = (e.clone(), done.clone(), start.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                // Once the writers are done, a read that finds nothing is
                // the end.
                let finished = done.load(Ordering::SeqCst);
                let page = e
                    .events(&query(EventsFrom::After(cursor.clone()), 7))
                    .await
                    .unwrap();
                let empty = page.events.is_empty();
                seen.extend(page.events);
                cursor = page.cursor;
                if finished && empty {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let e = e.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let login = login(&format!("writer{w}user{i}"));
                    ids.push(e.create(login).await.unwrap().session.id);
                }
                ids
            })
        })
        .collect();
    let mut created = Vec::new();
    for writer in writers {
        created.extend(writer.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    assert_eq!(seen.len(), WRITERS * EACH);
    let mut ids: Vec<_> = seen.iter().map(|e| e.session_id.clone()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    created.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(ids, created, "each created session's event, once");
    assert_eq!(
        drain(&e, &query(EventsFrom::Oldest, 1000), start).await,
        seen
    );
}

/// An extension that does not move the deadline changes nothing, and so
/// records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_that_moves_nothing_records_nothing() {
    let case = case().await;
    let clock = ManualClock::new();
    let store = Arc::new(open(&case.server.url(), options(&case.schema, &clock)).await);
    let e = Engine::with_clock(store, Policy::default(), Arc::new(clock.clone()));
    let start = now_cursor(&e).await;
    let s = e.create(login("alice")).await.unwrap().session;
    let same = e.extend(s.id.as_str(), Some(MIN)).await.unwrap();
    assert_eq!(same.expires_at, s.expires_at);
    clock.advance(MIN);
    let later = e.extend(s.id.as_str(), None).await.unwrap();
    assert!(later.expires_at > s.expires_at);
    assert_eq!(
        e.get(s.id.as_str()).await.unwrap().expires_at,
        later.expires_at
    );
    let events = drain(&e, &query(EventsFrom::Oldest, 10), start).await;
    assert_eq!(
        feed_summary(&events),
        vec![
            (EventKind::Created, None, &s.id),
            (EventKind::Extended, None, &s.id)
        ]
    );
}

/// Heartbeats, closes, sweeps and a revocation racing on one session: a
/// connection opens once however many first heartbeats race, an expired one
/// is closed once (by a heartbeat or by the sweep, whichever comes first)
/// and opened once again, of racing closes one closes it, and a revocation
/// leaves no connection of its session behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_heartbeats_closes_and_sweeps_record_each_change_once() {
    const RACERS: usize = 12;
    let case = case().await;
    let clock = ManualClock::new();
    let store = Arc::new(open(&case.server.url(), options(&case.schema, &clock)).await);
    let e = Arc::new(Engine::with_clock(
        store.clone(),
        Policy::default(),
        Arc::new(clock.clone()),
    ));
    let start = now_cursor(&e).await;
    let s = e.create(login("alice")).await.unwrap().session;
    let id = s.id.as_str().to_owned();
    let beats = |n: usize| {
        (0..n)
            .map(|_| {
                let (e, id) = (e.clone(), id.clone());
                tokio::spawn(async move { e.beat_connection(&id, "ws", None, None).await })
            })
            .collect::<Vec<_>>()
    };
    let opened_of = |results: Vec<Result<sessiond_engine::Beaten, Error>>| {
        results
            .into_iter()
            .filter(|r| r.as_ref().unwrap().opened)
            .count()
    };
    let mut first = Vec::new();
    for b in beats(RACERS) {
        first.push(b.await.unwrap());
    }
    assert_eq!(opened_of(first), 1, "opened once");

    // Expired: heartbeats and sweeps race to close it.
    let expired_at = clock.now().plus(Duration::from_secs(60));
    clock.advance(Duration::from_secs(61));
    let sweeps: Vec<_> = (0..4)
        .map(|_| {
            let (store, clock) = (store.clone(), clock.clone());
            tokio::spawn(async move { store.sweep(&clock).await.unwrap() })
        })
        .collect();
    let mut again = Vec::new();
    for b in beats(RACERS) {
        again.push(b.await.unwrap());
    }
    for s in sweeps {
        s.await.unwrap();
    }
    assert_eq!(opened_of(again), 1, "opened once again");
    assert!(e.presence("alice").await.unwrap().online());

    // Racing closes: one closes it.
    let closes: Vec<_> = (0..RACERS)
        .map(|_| {
            let (e, id) = (e.clone(), id.clone());
            tokio::spawn(async move { e.close_connection(&id, "ws").await.unwrap() })
        })
        .collect();
    let mut closed = 0;
    for c in closes {
        closed += usize::from(c.await.unwrap());
    }
    assert_eq!(closed, 1, "closed once");

    // A revocation racing heartbeats of many connections: none outlives it.
    let connections: Vec<_> = (0..RACERS)
        .map(|i| {
            let (e, id) = (e.clone(), id.clone());
            tokio::spawn(async move { e.beat_connection(&id, &format!("c{i}"), None, None).await })
        })
        .collect();
    e.revoke(&id, RevokeReason::Logout).await.unwrap();
    for c in connections {
        match c.await.unwrap() {
            Ok(_) | Err(Error::NotFound) => {}
            Err(other) => panic!("a heartbeat failed: {other}"),
        }
    }
    assert!(e.presence("alice").await.unwrap().devices.is_empty());
    assert_eq!(
        case.server
            .sql(&format!("SELECT count(*) FROM {}.connections", case.schema))
            .unwrap(),
        "0"
    );

    let events = drain(
        &e,
        &EventQuery {
            kinds: EventKinds::of([EventKind::ConnectionOpened, EventKind::ConnectionClosed]),
            ..query(EventsFrom::Oldest, 100)
        },
        start,
    )
    .await;
    let ws: Vec<_> = events
        .iter()
        .take(4)
        .map(|e| (e.kind, e.reason.as_deref(), e.at))
        .collect();
    assert_eq!(
        ws,
        vec![
            (EventKind::ConnectionOpened, None, s.created_at),
            (EventKind::ConnectionClosed, Some("expired"), expired_at),
            (EventKind::ConnectionOpened, None, clock.now()),
            (EventKind::ConnectionClosed, Some("closed"), clock.now()),
        ]
    );
    // Then one opening for each connection the revocation let in, and no
    // close: the session's end covers them.
    assert!(
        events[4..]
            .iter()
            .all(|e| e.kind == EventKind::ConnectionOpened)
    );
}
