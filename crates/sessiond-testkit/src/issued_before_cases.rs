//! Conformance cases of "revoke everything issued before T": the older
//! sessions go, newer ones and the exception stay, the user's not-before mark
//! refuses older sessions (also racing creates) until it expires.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sessiond_engine::{
    Clock, CreateRequest, Engine, Error, HistoryKind, ManualClock, Policy, RevokeReason,
    RolePolicy, SessionId, Timestamp,
};

use crate::conformance::{Case, standard_policy};

const SEC: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_secs(10);

fn user(id: &str) -> CreateRequest {
    CreateRequest {
        user_id: id.into(),
        ..CreateRequest::default()
    }
}

/// An engine on the case's store whose clock lags the case's by `lag`, as
/// a server whose create started before a revocation elsewhere.
fn lagging(c: &Case, policy: Policy, lag: Duration) -> (Engine, ManualClock) {
    let clock = ManualClock::new();
    let ahead = c.clock.now().as_millis() - clock.now().as_millis();
    let lag_ms = i64::try_from(lag.as_millis()).unwrap();
    // ManualClock only moves forward: bring it to the case's clock minus `lag`.
    clock.advance(Duration::from_millis(
        u64::try_from((ahead - lag_ms).max(0)).unwrap(),
    ));
    assert!(clock.now() < c.clock.now());
    let engine = Engine::with_clock(c.store.clone(), policy, Arc::new(clock.clone()));
    (engine, clock)
}

/// Sessions created before T go (but the exception), with `revoked` events;
/// those created at or after T, and other users', stay; a refresh chain
/// created before T is dead; access tokens issued before T by a session
/// created before it are refused.
pub async fn revoke_issued_before_spares_newer_and_the_exception(c: Case) {
    let e = c.engine();
    let old1 = e.create(user("alice")).await.unwrap();
    let old2 = e.create(user("alice")).await.unwrap();
    let keep = e.create(user("alice")).await.unwrap();
    let old_jwt = e.create_jwt(user("alice")).await.unwrap();
    let bob = e.create(user("bob")).await.unwrap();
    let t0 = c.clock.now();
    c.clock.advance(SEC);
    let t = c.clock.now();
    let at_t = e.create(user("alice")).await.unwrap();
    c.clock.advance(SEC);
    let newer = e.create_jwt(user("alice")).await.unwrap();

    let revoked = e
        .revoke_issued_before(
            "alice",
            t,
            Some(keep.session.id.as_str()),
            RevokeReason::RevokedByAdmin,
        )
        .await
        .unwrap();
    let expected: HashSet<SessionId> = [&old1, &old2]
        .iter()
        .map(|s| s.session.id.clone())
        .chain([old_jwt.session.id.clone()])
        .collect();
    assert_eq!(revoked.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(revoked.len(), 3);

    let live: HashSet<SessionId> = e
        .list_user("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let want: HashSet<SessionId> = [
        keep.session.id.clone(),
        at_t.session.id.clone(),
        newer.session.id.clone(),
    ]
    .into_iter()
    .collect();
    assert_eq!(live, want);
    for gone in [&old1, &old2] {
        assert_eq!(
            e.introspect(gone.token.expose(), false).await.unwrap(),
            None
        );
    }
    assert_eq!(
        e.refresh(old_jwt.refresh_token.expose(), GRACE)
            .await
            .unwrap_err(),
        Error::NotFound
    );
    assert!(e.refresh(newer.refresh_token.expose(), GRACE).await.is_ok());
    assert!(
        e.introspect(bob.token.expose(), false)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        c.store.not_before("alice", c.clock.now()).await.unwrap(),
        Some(t)
    );
    assert_eq!(
        c.store.not_before("bob", c.clock.now()).await.unwrap(),
        None
    );

    // Access tokens: the exception's issued before T are refused, after T
    // taken; a session created at or after T issued all of its after T.
    let keep_id = keep.session.id.as_str();
    assert_eq!(
        e.access_session(keep_id, t0).await.unwrap_err(),
        Error::NotFound
    );
    assert!(e.access_session(keep_id, t).await.is_ok());
    assert!(
        e.access_session(newer.session.id.as_str(), t0)
            .await
            .is_ok()
    );
    assert!(e.access_session(bob.session.id.as_str(), t0).await.is_ok());

    // Each revoked session left a `revoked` event with the reason.
    match e.history("alice", Some(1000), None).await {
        Ok(page) => {
            let revoked_events: HashSet<SessionId> = page
                .events
                .iter()
                .filter(|ev| {
                    ev.kind == HistoryKind::Revoked
                        && ev.reason.as_deref() == Some("revoked_by_admin")
                })
                .map(|ev| ev.session_id.clone())
                .collect();
            assert_eq!(revoked_events, expected);
        }
        Err(Error::Unsupported(_)) => {}
        Err(other) => panic!("history: {other:?}"),
    }

    // Nothing left to revoke before T; the exception goes when not spared.
    let again = e
        .revoke_issued_before("alice", t, None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert_eq!(again, vec![keep.session.id.clone()]);
}

/// Once the mark is set, a create whose session is older than it (a server
/// whose clock read a time before T) is refused, opaque or JWT, and leaves
/// nothing behind; creates at or after T, and other users', work. The mark
/// only moves forward.
pub async fn creates_older_than_the_mark_are_refused(c: Case) {
    let e = c.engine();
    c.clock.advance(10 * SEC);
    let t = c.clock.now();
    let (late, late_clock) = lagging(&c, standard_policy(), 5 * SEC);
    e.revoke_issued_before("alice", t, None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert_eq!(
        late.create(user("alice")).await.unwrap_err(),
        Error::IssuedBeforeRevocation
    );
    assert_eq!(
        late.create_jwt(user("alice")).await.unwrap_err(),
        Error::IssuedBeforeRevocation
    );
    assert_eq!(e.count_user("alice").await.unwrap(), 0);
    assert!(late.create(user("bob")).await.is_ok());
    assert!(e.create(user("alice")).await.is_ok());

    // An earlier time does not lower the mark.
    let earlier = Timestamp::from_millis(t.as_millis() - 3000);
    e.revoke_issued_before("alice", earlier, None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert_eq!(
        c.store.not_before("alice", c.clock.now()).await.unwrap(),
        Some(t)
    );
    late_clock.advance(3 * SEC);
    assert_eq!(
        late.create(user("alice")).await.unwrap_err(),
        Error::IssuedBeforeRevocation
    );
    late_clock.advance(2 * SEC);
    assert_eq!(late_clock.now(), t);
    assert!(late.create(user("alice")).await.is_ok());
    assert_eq!(e.count_user("alice").await.unwrap(), 2);

    // A later time raises it.
    c.clock.advance(SEC);
    let later = c.clock.now();
    let revoked = e
        .revoke_issued_before("alice", later, None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2);
    assert_eq!(
        c.store.not_before("alice", c.clock.now()).await.unwrap(),
        Some(later)
    );
}

/// Creates racing a revocation of everything issued before a time after
/// theirs: each one either is refused or created a session the revocation
/// removed; none is left.
pub async fn revoke_issued_before_racing_creates_leaves_none_older(c: Case) {
    // Room for all of them: no create evicts another.
    let mut policy = standard_policy();
    policy.default_role.max_sessions = 100;
    let e = c.engine_with(policy);
    let t = c.clock.now().plus(Duration::from_millis(1));
    let mut tasks = Vec::new();
    for n in 0..40 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                e.create(user("alice")).await.map(|c| c.session.id)
            } else {
                e.create_jwt(user("alice")).await.map(|c| c.session.id)
            }
        }));
    }
    tokio::task::yield_now().await;
    let revoked = e
        .revoke_issued_before("alice", t, None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    let mut created = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(id) => {
                created.insert(id);
            }
            Err(Error::IssuedBeforeRevocation) => {}
            Err(other) => panic!("create: {other:?}"),
        }
    }
    assert_eq!(revoked.into_iter().collect::<HashSet<_>>(), created);
    assert_eq!(e.count_user("alice").await.unwrap(), 0);
}

/// The mark lasts the longest absolute lifetime of any role after T, then
/// it is gone.
pub async fn the_mark_expires(c: Case) {
    let hour = Duration::from_secs(3600);
    let mut policy = standard_policy();
    policy.default_role = RolePolicy {
        idle_ttl: 30 * 60 * SEC,
        absolute_ttl: hour,
        max_sessions: 10,
    };
    policy.roles.insert(
        "admin".into(),
        RolePolicy {
            idle_ttl: 30 * 60 * SEC,
            absolute_ttl: 2 * hour,
            max_sessions: 2,
        },
    );
    let e = c.engine_with(policy.clone());
    c.clock.advance(10 * SEC);
    let t = c.clock.now();
    let (late, _) = lagging(&c, policy, 5 * SEC);
    e.revoke_issued_before("alice", t, None, RevokeReason::RevokedByAdmin)
        .await
        .unwrap();
    assert_eq!(
        late.create(user("alice")).await.unwrap_err(),
        Error::IssuedBeforeRevocation
    );
    c.clock.advance(2 * hour - SEC);
    assert_eq!(
        c.store.not_before("alice", c.clock.now()).await.unwrap(),
        Some(t)
    );
    c.clock.advance(SEC);
    assert_eq!(
        c.store.not_before("alice", c.clock.now()).await.unwrap(),
        None
    );
    assert!(e.create(user("alice")).await.is_ok());
}

/// Bad input is a typed error and changes nothing.
pub async fn revoke_issued_before_bad_input(c: Case) {
    let e = c.engine();
    let s = e.create(user("alice")).await.unwrap();
    let now = c.clock.now();
    for bad in [String::new(), "x".repeat(257), "a\u{7}b".into()] {
        assert!(matches!(
            e.revoke_issued_before(&bad, now, None, RevokeReason::RevokedByAdmin)
                .await,
            Err(Error::Invalid {
                field: "user_id",
                ..
            })
        ));
    }
    assert!(matches!(
        e.revoke_issued_before("alice", now, Some("nope"), RevokeReason::RevokedByAdmin)
            .await,
        Err(Error::Invalid { field: "id", .. })
    ));
    assert!(matches!(
        e.revoke_issued_before(
            "alice",
            now.plus(Duration::from_secs(61)),
            None,
            RevokeReason::RevokedByAdmin
        )
        .await,
        Err(Error::Invalid {
            field: "issued_before",
            ..
        })
    ));
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
    assert_eq!(c.store.not_before("alice", now).await.unwrap(), None);
    assert!(e.get(s.session.id.as_str()).await.is_ok());
}
