//! The event feed cases: every change emitted in order with its reason,
//! filters, and resuming from any cursor without a loss or a repeat, driven
//! through the engine on a manual clock, for every store that keeps a feed.
//! A store's test builds a [`HistoryWorld`] per case and calls
//! [`crate::event_tests!`].

use std::time::Duration;

use serde_json::json;
use sessiond_engine::{
    Aal, Clock, CreateRequest, DataUpdate, Engine, Error, Event, EventCursor, EventKind,
    EventKinds, EventQuery, EventsFrom, RevokeReason, SessionId,
};

use crate::history_cases::{HistoryWorld, login};

const MIN: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(10);

/// A query of everything from `from`, `limit` at a time.
pub fn query(from: EventsFrom, limit: u32) -> EventQuery {
    EventQuery {
        from,
        user_id: None,
        kinds: EventKinds::ALL,
        limit,
    }
}

/// The cursor of the feed's present end.
pub async fn now_cursor(e: &Engine) -> EventCursor {
    let page = e.events(&query(EventsFrom::Now, 1)).await.unwrap();
    assert!(page.events.is_empty(), "nothing follows now");
    page.cursor
}

/// Every event after `from` that `template` selects, read `limit` at a
/// time until a read finds nothing new.
pub async fn drain(e: &Engine, template: &EventQuery, from: EventCursor) -> Vec<Event> {
    let mut cursor = from;
    let mut events = Vec::new();
    loop {
        let page = e
            .events(&EventQuery {
                from: EventsFrom::After(cursor.clone()),
                ..template.clone()
            })
            .await
            .unwrap();
        assert!(page.events.len() <= template.limit as usize);
        events.extend(page.events);
        if page.cursor == cursor {
            return events;
        }
        cursor = page.cursor;
    }
}

/// Kind, reason and session of each event.
pub fn summary(events: &[Event]) -> Vec<(EventKind, Option<&str>, &SessionId)> {
    events
        .iter()
        .map(|e| (e.kind, e.reason.as_deref(), &e.session_id))
        .collect()
}

/// A full lifecycle emits every event in order, with its reason, and
/// nothing else; filters by user and kind select from the same order.
/// `w` evicts the oldest at its limit of 2.
pub async fn a_lifecycle_emits_every_event_in_order(w: HistoryWorld) {
    let e = &w.engine;
    let start = now_cursor(e).await;
    let t0 = w.clock.now();
    let s1 = e.create(login("alice")).await.unwrap().session;
    let serde_json::Value::Object(cart) = json!({"cart": [1, 2]}) else {
        unreachable!()
    };
    e.update_data(s1.id.as_str(), DataUpdate::Merge(cart))
        .await
        .unwrap();
    e.extend(s1.id.as_str(), Some(90 * MIN)).await.unwrap();
    e.authenticate(s1.id.as_str(), Aal::Aal2, "otp")
        .await
        .unwrap();
    e.rotate(s1.id.as_str()).await.unwrap();
    let bob = e.create(login("bob")).await.unwrap().session;
    w.clock.advance(Duration::from_millis(5));
    let s2 = e.create(login("alice")).await.unwrap().session;
    w.clock.advance(Duration::from_millis(5));
    let s3 = e.create(login("alice")).await.unwrap();
    assert_eq!(s3.evicted, vec![s1.id.clone()]);
    let s3 = s3.session;

    let jwt = e.create_jwt(login("carol")).await.unwrap();
    let j = jwt.session.id.clone();
    w.clock.advance(MIN);
    assert!(
        e.refresh(jwt.refresh_token.expose(), GRACE)
            .await
            .unwrap()
            .rotated
    );
    w.clock.advance(2 * GRACE);
    assert_eq!(
        e.refresh(jwt.refresh_token.expose(), GRACE)
            .await
            .unwrap_err(),
        Error::RefreshTokenReused
    );

    e.revoke_user(
        "alice",
        Some(s3.id.as_str()),
        RevokeReason::SignedOutOtherDevices,
    )
    .await
    .unwrap();
    e.revoke(s3.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    e.revoke(bob.id.as_str(), RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    let short = CreateRequest {
        idle_ttl: Some(MIN),
        ..login("dave")
    };
    let swept = e.create(short).await.unwrap().session;
    w.clock.advance(2 * MIN);
    assert_eq!((w.sweep)().await, 1);

    let events = drain(e, &query(EventsFrom::Oldest, 4), start.clone()).await;
    let expected = vec![
        (EventKind::Created, None, &s1.id),
        (EventKind::DataUpdated, None, &s1.id),
        (EventKind::Extended, None, &s1.id),
        (EventKind::Authenticated, Some("otp"), &s1.id),
        (EventKind::Rotated, None, &s1.id),
        (EventKind::Created, None, &bob.id),
        (EventKind::Created, None, &s2.id),
        (EventKind::Revoked, Some("evicted_max_sessions"), &s1.id),
        (EventKind::Created, None, &s3.id),
        (EventKind::Created, None, &j),
        (EventKind::Refreshed, None, &j),
        (EventKind::Revoked, Some("refresh_token_reuse"), &j),
        (EventKind::Revoked, Some("signed_out_other_devices"), &s2.id),
        (EventKind::Revoked, Some("logout"), &s3.id),
        (EventKind::Revoked, Some("revoked_by_admin"), &bob.id),
        (EventKind::Created, None, &swept.id),
        (EventKind::Expired, Some("expired"), &swept.id),
    ];
    assert_eq!(summary(&events), expected);
    let first = &events[0];
    assert_eq!((first.at, first.user_id.as_str()), (t0, "alice"));
    assert_eq!(first.device_kind.as_deref(), Some("desktop"));
    assert_eq!(first.ip.as_deref(), Some("203.0.113.7"));
    // An expiry is dated by the deadline that passed.
    assert_eq!(events[16].at, swept.expires_at);
    let mut cursors: Vec<_> = events.iter().map(|e| e.cursor.as_str()).collect();
    cursors.dedup();
    assert_eq!(cursors.len(), events.len(), "each event has its own cursor");

    // One user, some kinds: the same events, in the same order.
    let alice = drain(
        e,
        &EventQuery {
            user_id: Some("alice".into()),
            ..query(EventsFrom::Oldest, 2)
        },
        start.clone(),
    )
    .await;
    let only_alice: Vec<_> = events
        .iter()
        .filter(|e| e.user_id == "alice")
        .cloned()
        .collect();
    assert_eq!(alice, only_alice);
    let ends = drain(
        e,
        &EventQuery {
            kinds: EventKinds::of([EventKind::Revoked, EventKind::Expired]),
            ..query(EventsFrom::Oldest, 3)
        },
        start.clone(),
    )
    .await;
    let only_ends: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Revoked | EventKind::Expired))
        .cloned()
        .collect();
    assert_eq!(ends, only_ends);
    // Nothing follows now.
    let end = now_cursor(e).await;
    assert!(
        drain(e, &query(EventsFrom::Oldest, 10), end)
            .await
            .is_empty()
    );
}

/// Reading from the cursor of any event gives exactly the events after it.
pub async fn resuming_from_any_cursor_gives_the_rest_once(w: HistoryWorld) {
    let e = &w.engine;
    let start = now_cursor(e).await;
    // Distinct users: no evictions at the world's limit of 2.
    for i in 0..40 {
        e.create(login(&format!("user{i}"))).await.unwrap();
    }
    let all = drain(e, &query(EventsFrom::Oldest, 1000), start.clone()).await;
    assert_eq!(all.len(), 40);
    for (i, event) in all.iter().enumerate() {
        let rest = drain(e, &query(EventsFrom::Oldest, 6), event.cursor.clone()).await;
        assert_eq!(rest, all[i + 1..], "after event {i}");
    }
    // From the oldest kept: the same events at the end.
    let oldest = drain_from(e, EventsFrom::Oldest).await;
    assert!(oldest.ends_with(&all));
    // A read for one user moves past the others' events, so that its
    // reader does not stay behind events that may leave the feed.
    let nobody = e
        .events(&EventQuery {
            user_id: Some("nobody".into()),
            ..query(EventsFrom::After(start), 10)
        })
        .await
        .unwrap();
    assert!(nobody.events.is_empty());
    assert_eq!(nobody.cursor, now_cursor(e).await);
}

async fn drain_from(e: &Engine, from: EventsFrom) -> Vec<Event> {
    let first = e.events(&query(from, 1000)).await.unwrap();
    let mut events = first.events;
    events.extend(drain(e, &query(EventsFrom::Oldest, 1000), first.cursor).await);
    events
}

/// Bad limits, users and cursors are typed errors, never a silent skip.
pub async fn bad_reads_are_typed_errors(w: HistoryWorld) {
    let e = &w.engine;
    let invalid = |r: Result<_, Error>, field: &str| match r {
        Err(Error::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected Invalid({field}), got {other:?}"),
    };
    invalid(e.events(&query(EventsFrom::Now, 0)).await, "limit");
    invalid(e.events(&query(EventsFrom::Now, 1001)).await, "limit");
    let user = |u: &str| EventQuery {
        user_id: Some(u.into()),
        ..query(EventsFrom::Now, 10)
    };
    invalid(e.events(&user("")).await, "user_id");
    let after = |c: &str| query(EventsFrom::After(EventCursor::parse(c).unwrap()), 10);
    invalid(e.events(&after("nonsense")).await, "cursor");
    // A cursor past the newest event is not one of this store's.
    e.create(login("alice")).await.unwrap();
    let head = now_cursor(e).await;
    let beyond = format!(
        "{}{}",
        head.as_str().trim_end_matches(|c: char| c.is_ascii_digit()),
        u64::MAX / 2
    );
    invalid(e.events(&after(&beyond)).await, "cursor");
    assert!(
        e.events(&query(EventsFrom::After(head), 1000))
            .await
            .is_ok()
    );
}

/// One `#[tokio::test]` per event case; `$factory` is an
/// `async fn(ManualClock, LimitPolicy) -> HistoryWorld`.
#[macro_export]
macro_rules! event_tests {
    ($factory:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_lifecycle_emits_every_event_in_order() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::event_cases::a_lifecycle_emits_every_event_in_order(world).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn resuming_from_any_cursor_gives_the_rest_once() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::event_cases::resuming_from_any_cursor_gives_the_rest_once(world).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn bad_reads_are_typed_errors() {
            let world = $factory(
                $crate::ManualClock::new(),
                sessiond_engine::LimitPolicy::EvictOldest,
            )
            .await;
            $crate::event_cases::bad_reads_are_typed_errors(world).await;
        }
    };
}
