//! `GET /v1/users/{user_id}/history` on a real server: a whole lifecycle on
//! the embedded store and on PostgreSQL (an eviction by a role's limit, a rotation, a JWT-mode
//! refresh and the reuse of its retired token, an admin revocation with a
//! reason, "sign out my other devices", a logout, an expiry swept in the
//! background) lists exactly those events with their reasons, newest first,
//! and paging by `next_cursor` returns each exactly once. On Redis the route
//! answers 501.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};
use sessiond::config::RoleConfig;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// Create a session of alice with these extra fields; returns the answer.
async fn create(s: &TestServer, extra: Value) -> Value {
    let mut body = json!({"user_id": "alice", "user_agent": CHROME, "ip": "198.51.100.4"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    // Distinct creation times, so the oldest is one session.
    tokio::time::sleep(Duration::from_millis(5)).await;
    created
}

fn id(created: &Value) -> String {
    created["session"]["id"].as_str().unwrap().to_owned()
}

async fn page(s: &TestServer, query: &str) -> Value {
    let r = s
        .admin(Method::GET, &format!("/v1/users/alice/history{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// (type, reason, session id) of each event.
fn summary(events: &[Value]) -> Vec<(String, Option<String>, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["reason"].as_str().map(str::to_owned),
                e["session_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_lifecycle_is_listed_with_its_reasons_newest_first_on_the_embedded_store() {
    a_whole_lifecycle_is_listed_with_its_reasons_newest_first(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_lifecycle_is_listed_with_its_reasons_newest_first_on_postgres() {
    a_whole_lifecycle_is_listed_with_its_reasons_newest_first(Backend::Postgres).await;
}

async fn a_whole_lifecycle_is_listed_with_its_reasons_newest_first(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.roles.insert(
            "kiosk".into(),
            RoleConfig {
                max_sessions: 2,
                ..RoleConfig::default()
            },
        );
        c.refresh.reuse_grace = Duration::from_secs(1);
    })
    .await;
    let mut secrets = Vec::new();

    // The kiosk role allows 2 sessions: the third evicts the oldest.
    let l1 = create(&s, json!({"role": "kiosk"})).await;
    let l2 = create(&s, json!({"role": "kiosk"})).await;
    let l3 = create(&s, json!({"role": "kiosk"})).await;
    assert_eq!(l3["evicted"], json!([id(&l1)]));
    for c in [&l1, &l2, &l3] {
        secrets.push(c["token"].as_str().unwrap().to_owned());
    }
    let rotated = s.rotate(&id(&l2)).await;
    secrets.push(rotated.clone());

    // Data updates and introspections are not history.
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{}", id(&l2)))
        .json(&json!({"data": {"cart": [1, 2]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.active(&rotated).await);

    // JWT mode: one refresh, then the retired token after the grace.
    let j = create(&s, json!({"mode": "jwt"})).await;
    let r0 = j["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        s.anon(Method::POST, "/v1/tokens/refresh")
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let r = refresh(r0.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().await.unwrap();
    secrets.extend([
        r0.clone(),
        j["access_token"].as_str().unwrap().to_owned(),
        pair["refresh_token"].as_str().unwrap().to_owned(),
        pair["access_token"].as_str().unwrap().to_owned(),
    ]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    problem(refresh(r0).await.unwrap(), 401).await;

    // An operator revokes with a reason of the app's.
    let r = s
        .admin(
            Method::DELETE,
            &format!("/v1/sessions/{}?reason=password_changed", id(&l3)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // Two devices; the second signs out every other one, then logs out.
    let d1 = create(&s, json!({})).await;
    let d2 = create(&s, json!({})).await;
    let d2_token = d2["token"].as_str().unwrap().to_owned();
    secrets.extend([d1["token"].as_str().unwrap().to_owned(), d2_token.clone()]);
    let r = s
        .anon(Method::DELETE, "/v1/me/sessions")
        .bearer_auth(&d2_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"revoked": 2}));
    let r = s
        .anon(Method::POST, "/v1/me/logout")
        .bearer_auth(&d2_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // A session idle for its one second is swept in the background.
    let x = create(&s, json!({"idle_ttl_seconds": 1})).await;
    secrets.push(x["token"].as_str().unwrap().to_owned());
    let deadline = Instant::now() + Duration::from_secs(15);
    let all = loop {
        let all = page(&s, "?limit=1000").await;
        if all["events"][0]["type"] == "expired" {
            break all;
        }
        assert!(Instant::now() < deadline, "never swept: {all}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(all["next_cursor"], Value::Null);
    let events = all["events"].as_array().unwrap().clone();

    let e = |kind: &str, reason: Option<&str>, session: &Value| {
        (kind.to_owned(), reason.map(str::to_owned), id(session))
    };
    let expected = vec![
        e("expired", Some("expired"), &x),
        e("created", None, &x),
        e("revoked", Some("logout"), &d2),
        e("revoked", Some("signed_out_other_devices"), &d1),
        e("revoked", Some("signed_out_other_devices"), &l2),
        e("created", None, &d2),
        e("created", None, &d1),
        e("revoked", Some("password_changed"), &l3),
        e("revoked", Some("refresh_token_reuse"), &j),
        e("refreshed", None, &j),
        e("created", None, &j),
        e("rotated", None, &l2),
        e("created", None, &l3),
        e("revoked", Some("evicted_max_sessions"), &l1),
        e("created", None, &l2),
        e("created", None, &l1),
    ];
    assert_eq!(summary(&events), expected, "{all:#}");

    let fields: HashSet<&str> = [
        "seq",
        "at",
        "type",
        "reason",
        "session_id",
        "user_id",
        "device_kind",
        "ip",
    ]
    .into();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    for event in &events {
        let keys: HashSet<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, fields, "{event}");
        assert_eq!(event["user_id"], "alice");
        assert_eq!(event["device_kind"], "desktop");
        assert_eq!(event["ip"], "198.51.100.4");
        let at = event["at"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(at).is_ok(), "{at}");
    }
    let text = all.to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a token in the history");
    }

    // Two at a time through next_cursor: every event exactly once.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let p = page(&s, &query).await;
        let got = p["events"].as_array().unwrap();
        paged.extend(got.iter().cloned());
        match p["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(got.len(), 2, "{p}");
                query = format!("?limit=2&cursor={cursor}");
            }
            None => {
                assert_eq!(p["next_cursor"], Value::Null, "{p}");
                break;
            }
        }
    }
    assert_eq!(paged, events);

    // Each user has a history of their own.
    let r = s
        .admin(Method::GET, "/v1/users/bob/history")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"events": [], "next_cursor": null})
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_and_cursors_are_400_and_the_route_needs_the_api_key() {
    for backend in [Backend::Embedded, Backend::Postgres] {
        bad_limits_and_cursors_are_400(backend).await;
    }
}

async fn bad_limits_and_cursors_are_400(backend: Backend) {
    let s = TestServer::start(backend).await;
    for query in [
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?limit=-1",
        "?cursor=abc",
        "?cursor=-5",
        "?cursor=",
        "?before=3",
    ] {
        let r = s
            .admin(Method::GET, &format!("/v1/users/alice/history{query}"))
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    let r = s
        .anon(Method::GET, "/v1/users/alice/history")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_route_answers_501() {
    let s = TestServer::start(Backend::Redis).await;
    s.create("alice").await;
    let r = s
        .admin(Method::GET, "/v1/users/alice/history")
        .send()
        .await
        .unwrap();
    let body = problem(r, 501).await;
    assert_eq!(body["type"], "urn:sessiond:problem:not-implemented");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("history needs a SQL store (embedded or PostgreSQL)"),
        "{detail}"
    );
    // A store that keeps no history is not a failing store.
    let stats: Value = s
        .admin(Method::GET, "/v1/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["store_errors"], 0, "{stats}");
    s.shutdown().await;
}
