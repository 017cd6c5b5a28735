//! Conformance cases of the listing of all users' sessions: each filter
//! alone and together, pages that hand out every session that stayed live
//! exactly once while others are created, rotated and revoked between and
//! during the pages, and bad input as typed errors.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sessiond_engine::{
    Clock, CreateRequest, DeviceKind, Engine, Error, RevokeReason, Session, SessionFilter,
    SessionId,
};

use crate::conformance::Case;

const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// Which of the sessions made a filter should select.
type Wanted<'a> = Box<dyn Fn(&Session) -> bool + 'a>;

fn request(user: &str, user_agent: Option<&str>, ip: Option<&str>) -> CreateRequest {
    CreateRequest {
        user_id: user.into(),
        user_agent: user_agent.map(str::to_owned),
        ip: ip.map(str::to_owned),
        ..CreateRequest::default()
    }
}

/// Every page of `filter` from the start, `limit` at a time, calling
/// `between` after each page; the sessions in the order handed out.
pub async fn walk_all(
    e: &Engine,
    filter: &SessionFilter,
    limit: u32,
    mut between: impl AsyncFnMut(usize),
) -> Vec<Session> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for page_no in 0.. {
        let page = e
            .list_sessions(filter.clone(), Some(limit), cursor.as_deref())
            .await
            .unwrap();
        assert!(
            page.sessions.len() <= limit as usize,
            "a page over its limit"
        );
        out.extend(page.sessions);
        match page.next_cursor {
            Some(next) => cursor = Some(next.as_str().to_owned()),
            None => return out,
        }
        assert!(page_no < 100_000, "the walk does not end");
        between(page_no).await;
    }
    unreachable!()
}

fn id_set(sessions: &[Session]) -> HashSet<SessionId> {
    let set: HashSet<SessionId> = sessions.iter().map(|s| s.id.clone()).collect();
    assert_eq!(set.len(), sessions.len(), "a session was handed out twice");
    set
}

/// Each filter alone and all together select exactly the live sessions
/// they name, at any page size; an IP matches as an address whatever its
/// spelling; expired and revoked sessions are never listed.
pub async fn listing_filters_each_and_together(c: Case) {
    let e = c.engine();
    let mut made: Vec<Session> = Vec::new();
    let gone = e
        .create(request("gone", Some(DESKTOP), None))
        .await
        .unwrap();
    e.revoke(gone.session.id.as_str(), RevokeReason::Logout)
        .await
        .unwrap();
    let short = e
        .create(CreateRequest {
            idle_ttl: Some(Duration::from_secs(5)),
            ..request("short", Some(DESKTOP), Some("192.0.2.1"))
        })
        .await
        .unwrap();
    c.clock.advance(Duration::from_secs(10));
    let t0 = c.clock.now();
    let agents = [Some(DESKTOP), Some(IPHONE), Some(IPAD), Some(BOT), None];
    let ips = [
        Some("192.0.2.1"),
        Some("2001:DB8:0:0::7"),
        Some("198.51.100.20"),
        None,
    ];
    let mut times = Vec::new();
    for n in 0..40 {
        let user = format!("user-{}", n % 9);
        let s = e
            .create(request(&user, agents[n % agents.len()], ips[n % ips.len()]))
            .await
            .unwrap();
        made.push(s.session);
        times.push(c.clock.now());
        c.clock.advance(Duration::from_millis(10));
    }
    assert!(
        e.get(short.session.id.as_str()).await.is_err(),
        "the short session expired"
    );
    let everyone = SessionFilter::default();
    let cases: Vec<(SessionFilter, Wanted<'_>)> = vec![
        (everyone.clone(), Box::new(|_| true)),
        (
            SessionFilter {
                user_id: Some("user-4".into()),
                ..everyone.clone()
            },
            Box::new(|s| s.user_id == "user-4"),
        ),
        (
            SessionFilter {
                device_kind: Some(DeviceKind::Mobile),
                ..everyone.clone()
            },
            Box::new(|s| s.device.kind == DeviceKind::Mobile),
        ),
        (
            SessionFilter {
                device_kind: Some(DeviceKind::Unknown),
                ..everyone.clone()
            },
            Box::new(|s| s.device.user_agent.is_none()),
        ),
        (
            SessionFilter {
                ip: Some("192.0.2.1".parse().unwrap()),
                ..everyone.clone()
            },
            Box::new(|s| s.device.ip.as_deref() == Some("192.0.2.1")),
        ),
        (
            // Another spelling of the address a session was created with.
            SessionFilter {
                ip: Some("2001:db8::7".parse().unwrap()),
                ..everyone.clone()
            },
            Box::new(|s| s.device.ip.as_deref() == Some("2001:DB8:0:0::7")),
        ),
        (
            SessionFilter {
                ip: Some("::ffff:192.0.2.1".parse().unwrap()),
                ..everyone.clone()
            },
            Box::new(|_| false),
        ),
        (
            SessionFilter {
                created_after: Some(times[19]),
                ..everyone.clone()
            },
            Box::new(|s| s.created_at > times[19]),
        ),
        (
            SessionFilter {
                created_after: Some(t0.plus(Duration::from_secs(3600))),
                ..everyone.clone()
            },
            Box::new(|_| false),
        ),
        (
            SessionFilter {
                user_id: Some("user-2".into()),
                ip: Some("192.0.2.1".parse::<IpAddr>().unwrap()),
                device_kind: Some(DeviceKind::Desktop),
                created_after: Some(t0),
            },
            Box::new(|s| {
                s.user_id == "user-2"
                    && s.created_at > t0
                    && s.device.ip.as_deref() == Some("192.0.2.1")
                    && s.device.kind == DeviceKind::Desktop
            }),
        ),
        (
            SessionFilter {
                user_id: Some("nobody".into()),
                ..everyone.clone()
            },
            Box::new(|_| false),
        ),
    ];
    for (filter, wanted) in &cases {
        let expected: HashSet<SessionId> = made
            .iter()
            .filter(|s| wanted(s))
            .map(|s| s.id.clone())
            .collect();
        for limit in [1, 3, 1000] {
            let listed = walk_all(&e, filter, limit, async |_| {}).await;
            assert_eq!(id_set(&listed), expected, "{filter:?}, limit {limit}");
            for s in &listed {
                let made = made.iter().find(|m| m.id == s.id).unwrap();
                assert_eq!(s, made, "listed as stored");
            }
        }
    }
    let combined = &cases[cases.len() - 2].0;
    assert!(
        !walk_all(&e, combined, 5, async |_| {}).await.is_empty(),
        "the combined filter matches something: {combined:?}"
    );
}

/// Pages from the start to the end give every session that stayed live
/// through the whole walk exactly once (none twice, none missed), while
/// sessions are created, rotated and revoked between the pages and by
/// concurrent tasks during them (which also rotate sessions the walk is
/// reading); sessions revoked before the walk never show up.
pub async fn listing_pages_give_each_session_once(c: Case) {
    let e = c.engine();
    let mut stable: Vec<Session> = Vec::new();
    let mut doomed: Vec<Session> = Vec::new();
    for n in 0..240 {
        let s = e
            .create(request(&format!("user-{}", n % 60), Some(DESKTOP), None))
            .await
            .unwrap()
            .session;
        if n % 4 == 3 {
            doomed.push(s);
        } else {
            stable.push(s);
        }
    }
    let revoked_before: Vec<SessionId> = doomed.drain(..20).map(|s| s.id).collect();
    for id in &revoked_before {
        e.revoke(id.as_str(), RevokeReason::RevokedByAdmin)
            .await
            .unwrap();
    }
    // Concurrent churn: users of their own come and go during the walk.
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..4)
        .map(|t| {
            let (e, stop) = (e.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("churn-{t}-{}", n % 7);
                    let made = e.create(request(&user, None, None)).await.unwrap();
                    if n % 2 == 0 {
                        e.revoke(made.session.id.as_str(), RevokeReason::Logout)
                            .await
                            .unwrap();
                    }
                    n += 1;
                    tokio::task::yield_now().await;
                }
                n
            })
        })
        .collect();
    // And stable sessions are rotated all along (a rotation files a session
    // under a new token hash: a walk must follow it, not lose it).
    let rotator = {
        let (e, stop) = (e.clone(), stop.clone());
        let ids: Vec<SessionId> = stable.iter().step_by(3).map(|s| s.id.clone()).collect();
        tokio::spawn(async move {
            let mut rotated = 0;
            while !stop.load(Ordering::Relaxed) {
                for id in &ids {
                    e.rotate(id.as_str()).await.unwrap();
                    rotated += 1;
                }
                tokio::task::yield_now().await;
            }
            rotated
        })
    };
    let mut doomed_left = doomed.clone();
    let to_rotate: Vec<SessionId> = stable.iter().step_by(5).map(|s| s.id.clone()).collect();
    let mut between_no = 0;
    let listed = walk_all(&e, &SessionFilter::default(), 7, async |page| {
        // Between pages: revoke one of the doomed, rotate stable ones, and
        // create sessions for old and new users.
        if let Some(s) = doomed_left.pop() {
            e.revoke(s.id.as_str(), RevokeReason::RevokedByAdmin)
                .await
                .unwrap();
        }
        for id in to_rotate.iter().skip(page % 5).step_by(9) {
            e.rotate(id.as_str()).await.unwrap();
        }
        e.create(request(&format!("late-{page}"), None, None))
            .await
            .unwrap();
        between_no += 1;
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut churned = 0;
    for t in churners {
        churned += t.await.unwrap();
    }
    assert!(rotator.await.unwrap() > 0);
    assert!(between_no > 20, "the walk took {between_no} pages");
    assert!(churned > 0);
    let seen = id_set(&listed);
    for s in &stable {
        assert!(seen.contains(&s.id), "a session live all along was missed");
    }
    for id in &revoked_before {
        assert!(!seen.contains(id), "a session revoked before the walk");
    }
    // Whatever else was listed was live at some point of the walk: a
    // doomed, late or churned session, once.
    let doomed_ids: HashSet<&SessionId> = doomed.iter().map(|s| &s.id).collect();
    let stable_ids: HashSet<&SessionId> = stable.iter().map(|s| &s.id).collect();
    for s in &listed {
        if !stable_ids.contains(&s.id) && !doomed_ids.contains(&s.id) {
            assert!(
                s.user_id.starts_with("late-") || s.user_id.starts_with("churn-"),
                "{}",
                s.user_id
            );
        }
    }
    // A walk after the churn: exactly the live sessions.
    let live_now = walk_all(&e, &SessionFilter::default(), 1000, async |_| {}).await;
    let count = e.count_live().await.unwrap();
    assert_eq!(
        u64::try_from(id_set(&live_now).len()).unwrap(),
        count,
        "one walk of a quiet store lists every live session"
    );
}

/// Bad limits, cursors and user ids are typed errors; a cursor the store
/// could not have made is one too (on the `cursor` field).
pub async fn listing_bad_input_is_a_typed_error(c: Case) {
    let e = c.engine();
    e.create(request("alice", None, None)).await.unwrap();
    let invalid = |r: Result<_, Error>, field: &str| match r {
        Err(Error::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected Invalid({field}), got {other:?}"),
    };
    let all = SessionFilter::default();
    for limit in [0, 1001, u32::MAX] {
        invalid(
            e.list_sessions(all.clone(), Some(limit), None).await,
            "limit",
        );
    }
    for cursor in ["", "no spaces", "é", "zz.top", "s.nope", "b.999", "-1"] {
        invalid(
            e.list_sessions(all.clone(), None, Some(cursor)).await,
            "cursor",
        );
    }
    let long = "x".repeat(300);
    invalid(
        e.list_sessions(all.clone(), None, Some(&long)).await,
        "cursor",
    );
    for user in ["", "new\nline"] {
        let filter = SessionFilter {
            user_id: Some(user.into()),
            ..SessionFilter::default()
        };
        invalid(e.list_sessions(filter, None, None).await, "user_id");
    }
    // The default page holds what there is, and says it is the last.
    let page = e.list_sessions(all, None, None).await.unwrap();
    assert_eq!(page.sessions.len(), 1);
    assert_eq!(page.next_cursor, None);
}
