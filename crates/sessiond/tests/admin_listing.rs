//! `GET /v1/sessions` on every store: 10,000 sessions of 2,000 users paged
//! at two page sizes, each exactly once also while others come and go;
//! every filter alone and together; bad input is a 400 problem; no API
//! key, no listing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TestServer, problem};
use futures_util::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};

every_store!(
    ten_thousand_sessions_page_each_once,
    each_filter_selects_its_sessions,
    bad_listing_requests_are_400s,
    listing_needs_the_api_key,
);

const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.limits.failed_auth_per_minute = 100_000;
        // Room for every session of a case: none is evicted.
        c.roles.insert(
            "default".into(),
            sessiond::config::RoleConfig {
                max_sessions: 1000,
                ..sessiond::config::RoleConfig::default()
            },
        );
        // A page of 1,000 sessions from a debug build on a busy machine may
        // take longer than the 500 ms the outage tests give Redis and
        // PostgreSQL.
        c.store_timeout = Duration::from_secs(10);
    })
    .await
}

/// Create a session; its JSON.
async fn create(s: &TestServer, body: Value) -> Value {
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["session"].clone()
}

/// Create sessions for each body, `at_once` requests at a time.
async fn create_all(s: &TestServer, bodies: Vec<Value>, at_once: usize) -> Vec<Value> {
    stream::iter(bodies)
        .map(|body| create(s, body))
        .buffer_unordered(at_once)
        .collect()
        .await
}

/// One page: `GET /v1/sessions?{query}`.
async fn page(s: &TestServer, query: &str) -> Value {
    let r = s
        .admin(Method::GET, &format!("/v1/sessions?{query}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{query}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every page of `query` from the start, `limit` at a time, calling
/// `between` after each; the session ids in the order handed out, and the
/// number of pages.
async fn walk(
    s: &TestServer,
    query: &str,
    limit: u32,
    mut between: impl AsyncFnMut(usize),
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = format!("{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", encode(c)));
        }
        let body = page(s, &q).await;
        pages += 1;
        let sessions = body["sessions"].as_array().unwrap();
        assert!(sessions.len() <= limit as usize);
        for session in sessions {
            assert!(session.get("token").is_none(), "never a token");
            ids.push(session["id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(body["next_cursor"].is_null());
                return (ids, pages);
            }
        }
        assert!(pages < 100_000, "the walk does not end");
        between(pages).await;
    }
}

/// Percent-encode a query value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ids, checked to be each there once.
fn once(ids: &[String]) -> HashSet<&str> {
    let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(set.len(), ids.len(), "a session was handed out twice");
    set
}

/// 10,000 sessions of 2,000 users: walked 1,000 and 97 at a time, each
/// exactly once; then walked again while 300 others are revoked and new
/// ones created between the pages: each of the 10,000 exactly once.
async fn ten_thousand_sessions_page_each_once(backend: Backend) {
    let s = Arc::new(start(backend).await);
    let started = Instant::now();
    let bodies: Vec<Value> = (0..10_300)
        .map(|n| json!({"user_id": format!("user-{}", n % 2000), "user_agent": DESKTOP, "ip": "192.0.2.7"}))
        .collect();
    let made = create_all(&s, bodies, 32).await;
    let created_in = started.elapsed();
    let (extra, stable) = made.split_at(300);
    let stable: HashSet<&str> = stable.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(stable.len(), 10_000);
    for session in extra {
        let id = session["id"].as_str().unwrap();
        let r = s
            .admin(Method::DELETE, &format!("/v1/sessions/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let extra: Vec<Value> = create_all(
        &s,
        (0..300)
            .map(|n| json!({"user_id": format!("extra-{n}")}))
            .collect(),
        32,
    )
    .await;

    let mut report = format!("{backend:?}: 10,300 creates in {created_in:.2?}");
    for limit in [1000, 97] {
        let started = Instant::now();
        let (ids, pages) = walk(&s, "", limit, async |_| {}).await;
        let took = started.elapsed();
        let seen = once(&ids);
        assert_eq!(seen.len(), 10_300, "limit {limit}");
        assert!(stable.iter().all(|id| seen.contains(id)), "limit {limit}");
        assert!(pages > 10_300 / limit as usize, "{pages} pages");
        report.push_str(&format!(
            "; a walk at limit {limit}: {pages} pages in {took:.2?}"
        ));
    }

    // Again, while the extra sessions go and others come, between pages.
    let mut doomed: Vec<String> = extra
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    let mut late = 0;
    let started = Instant::now();
    let (ids, pages) = walk(&s, "", 250, async |_| {
        for _ in 0..8 {
            if let Some(id) = doomed.pop() {
                let r = s
                    .admin(Method::DELETE, &format!("/v1/sessions/{id}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204);
            }
        }
        create(&s, json!({"user_id": format!("late-{late}")})).await;
        create(&s, json!({"user_id": "user-7"})).await;
        late += 1;
    })
    .await;
    let took = started.elapsed();
    let seen = once(&ids);
    assert!(stable.iter().all(|id| seen.contains(id)), "one was missed");
    assert!(late > 30, "{late} pages");
    report.push_str(&format!(
        "; a walk at limit 250 with changes between pages: {pages} pages in {took:.2?}"
    ));
    eprintln!("{report}");
    Arc::try_unwrap(s).ok().unwrap().shutdown().await;
}

/// Each filter alone and all together, on sessions of several users,
/// devices, addresses and times; paged 2 at a time they give the same.
async fn each_filter_selects_its_sessions(backend: Backend) {
    let s = start(backend).await;
    let mut made = Vec::new();
    let agents = [Some(DESKTOP), Some(IPHONE), Some(IPAD), None];
    let ips = [Some("198.51.100.4"), Some("2001:DB8:0::9"), None];
    for n in 0..24 {
        let mut body = json!({"user_id": format!("filter-{}", n % 4)});
        if let Some(ua) = agents[n % agents.len()] {
            body["user_agent"] = json!(ua);
        }
        if let Some(ip) = ips[n % ips.len()] {
            body["ip"] = json!(ip);
        }
        made.push(create(&s, body).await);
        // Creation times apart, for `created_after`.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let middle = made[11]["created_at"].as_str().unwrap().to_owned();
    let ids_where = |keep: &dyn Fn(&Value) -> bool| -> HashSet<String> {
        made.iter()
            .filter(|v| keep(v))
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases: Vec<(String, HashSet<String>)> = vec![
        (String::new(), ids_where(&|_| true)),
        (
            "user_id=filter-2".into(),
            ids_where(&|v| v["user_id"] == "filter-2"),
        ),
        (
            "device_kind=mobile".into(),
            ids_where(&|v| v["device"]["kind"] == "mobile"),
        ),
        (
            "device_kind=tablet".into(),
            ids_where(&|v| v["device"]["kind"] == "tablet"),
        ),
        (
            "device_kind=unknown".into(),
            ids_where(&|v| v["device"]["kind"] == "unknown"),
        ),
        ("device_kind=bot".into(), HashSet::new()),
        (
            "ip=198.51.100.4".into(),
            ids_where(&|v| v["device"]["ip"] == "198.51.100.4"),
        ),
        (
            // Another spelling of the address.
            format!("ip={}", encode("2001:db8::9")),
            ids_where(&|v| v["device"]["ip"] == "2001:DB8:0::9"),
        ),
        (
            format!("created_after={}", encode(&middle)),
            ids_where(&|v| v["created_at"].as_str().unwrap() > middle.as_str()),
        ),
        (
            format!(
                "user_id=filter-1&device_kind=mobile&ip={}&created_after={}",
                encode("2001:db8::9"),
                encode(made[5]["created_at"].as_str().unwrap())
            ),
            ids_where(&|v| {
                v["user_id"] == "filter-1"
                    && v["device"]["kind"] == "mobile"
                    && v["device"]["ip"] == "2001:DB8:0::9"
                    && v["created_at"].as_str() > made[5]["created_at"].as_str()
            }),
        ),
    ];
    for (query, expected) in &cases {
        let body = page(&s, query).await;
        let listed: Vec<String> = body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(body["next_cursor"].is_null(), "{query}");
        let listed: HashSet<String> = once(&listed).into_iter().map(str::to_owned).collect();
        assert_eq!(&listed, expected, "{query}");
        let (paged, _) = walk(&s, query, 2, async |_| {}).await;
        let paged: HashSet<String> = once(&paged).into_iter().map(str::to_owned).collect();
        assert_eq!(&paged, expected, "{query}, 2 at a time");
    }
    let combined = &cases[cases.len() - 1].1;
    assert_eq!(combined.len(), 1, "the combined filter finds n = 13");
    // The sessions are shown as everywhere else.
    let body = page(&s, "user_id=filter-3").await;
    for shown in body["sessions"].as_array().unwrap() {
        let r = s
            .admin(
                Method::GET,
                &format!("/v1/sessions/{}", shown["id"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(&r.json::<Value>().await.unwrap(), shown);
    }
    s.shutdown().await;
}

/// Bad limits, filters and cursors, and unknown parameters, are 400
/// problems that name what is wrong.
async fn bad_listing_requests_are_400s(backend: Backend) {
    let s = start(backend).await;
    s.create("alice").await;
    for (query, names) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("device_kind=phone", "device_kind"),
        ("device_kind=", "device_kind"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-13-01T00:00:00Z", "created_after"),
        ("ip=999.1.1.1", "ip"),
        ("ip=203.0.113", "ip"),
        ("ip=alice", "ip"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=", "cursor"),
        ("cursor=%C3%A9", "cursor"),
        ("user_id=", "user_id"),
        ("colour=red", "colour"),
    ] {
        let r = s
            .admin(Method::GET, &format!("/v1/sessions?{query}"))
            .send()
            .await
            .unwrap();
        let body = problem(r, 400).await;
        assert!(
            body["detail"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }
    // A cursor of another page size or filter is fine.
    let first = page(&s, "limit=1").await;
    assert_eq!(first["sessions"].as_array().unwrap().len(), 1);
    s.shutdown().await;
}

/// Without the API key (or with another) the listing is a 401 problem.
async fn listing_needs_the_api_key(backend: Backend) {
    let s = start(backend).await;
    s.create("alice").await;
    let r = s.anon(Method::GET, "/v1/sessions").send().await.unwrap();
    problem(r, 401).await;
    let r = s
        .anon(Method::GET, "/v1/sessions?limit=1")
        .bearer_auth("sdk_not-the-api-key-0123456789")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let (_, token) = s.create("bob").await;
    let r = s
        .anon(Method::GET, "/v1/sessions")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    s.shutdown().await;
}
