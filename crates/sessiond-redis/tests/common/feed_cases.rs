//! Feed cases that need a Redis of their own kind (one server or a
//! Cluster) at a URL: the size bound across buckets, and a reader stopped in
//! the middle of 10,000 events.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{
    CreateRequest, Engine, Error, EventKind, EventQuery, EventRetention, EventsFrom, ManualClock,
    Policy,
};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::event_cases::{drain, now_cursor, query};
use sessiond_testkit::history_cases::login;

async fn store(url: &str, prefix: &str, retention: EventRetention) -> RedisStore {
    let options = RedisOptions {
        key_prefix: prefix.to_owned(),
        event_retention: retention,
        sweep_interval: Duration::ZERO,
        ..RedisOptions::default()
    };
    RedisStore::connect(url, options).await.unwrap()
}

/// Past the size bound the oldest events leave (across buckets, in feed
/// order); a cursor before them is refused, and the oldest kept are the
/// newest ones.
pub async fn the_oldest_leave_past_the_size_bound(url: &str, prefix: &str) {
    let retention = EventRetention {
        max_events: 5,
        ..EventRetention::default()
    };
    let store = store(url, prefix, retention).await;
    let clock = ManualClock::new();
    let e = Engine::with_clock(
        Arc::new(store.clone()),
        Policy::default(),
        Arc::new(clock.clone()),
    );
    let start = now_cursor(&e).await;
    for i in 0..40 {
        e.create(login(&format!("user{i}"))).await.unwrap();
    }
    let all = drain(&e, &query(EventsFrom::Oldest, 1000), start.clone()).await;
    assert_eq!(all.len(), 40);
    let mut retired = 0;
    while retired < 35 {
        let n = store.retire_events().await.unwrap();
        assert!(n > 0, "retired {retired} of 35");
        retired += n;
    }
    assert_eq!(retired, 35, "exactly the excess");
    let kept = e.events(&query(EventsFrom::Oldest, 1000)).await.unwrap();
    assert_eq!(kept.events, all[35..]);
    for cursor in [&start, &all[0].cursor, &all[33].cursor] {
        match e
            .events(&query(EventsFrom::After(cursor.clone()), 10))
            .await
        {
            Err(Error::CursorExpired(_)) => {}
            other => panic!("expected CursorExpired after {cursor}, got {other:?}"),
        }
    }
    // The last retired event's cursor still has every follower.
    let rest = drain(&e, &query(EventsFrom::Oldest, 3), all[34].cursor.clone()).await;
    assert_eq!(rest, all[35..]);
}

/// While 10,000 sessions are created, a reader reads a part of their events
/// and stops; another resumes from its last cursor once the writes are
/// done. Together they have every event, each once.
pub async fn a_reader_stopped_mid_stream_resumes_with_every_event_once(url: &str, prefix: &str) {
    const TOTAL: usize = 10_000;
    let store = store(url, prefix, EventRetention::default()).await;
    let e = Engine::new(Arc::new(store), Policy::default());
    let start = now_cursor(&e).await;
    let mut writers = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let e = e.clone();
        writers.spawn(async move {
            for n in (lane..TOTAL).step_by(16) {
                e.create(CreateRequest {
                    user_id: format!("user{n}"),
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            }
        });
    }
    // The first reader, while the writes go on; it stops part way.
    let mut seen = Vec::new();
    let mut cursor = start;
    while seen.len() < TOTAL / 3 {
        let page = e
            .events(&EventQuery {
                from: EventsFrom::After(cursor.clone()),
                ..query(EventsFrom::Oldest, 250)
            })
            .await
            .unwrap();
        seen.extend(page.events);
        cursor = page.cursor;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    // The second resumes from the first one's last cursor.
    seen.extend(drain(&e, &query(EventsFrom::Oldest, 1000), cursor).await);
    assert_eq!(seen.len(), TOTAL);
    assert!(seen.iter().all(|ev| ev.kind == EventKind::Created));
    let ids: HashSet<_> = seen.iter().map(|ev| ev.cursor.clone()).collect();
    assert_eq!(ids.len(), TOTAL, "each event once");
    let sessions: HashSet<_> = seen.iter().map(|ev| ev.session_id.clone()).collect();
    assert_eq!(sessions.len(), TOTAL);
}
