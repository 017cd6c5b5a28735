//! `POST /v1/users/{user_id}/revoke` on every store: what was issued before
//! the time goes, also what racing creates and refreshes were making; access
//! tokens issued before it are refused; bad input is a 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};
use sessiond_engine::{Clock, SystemClock, Timestamp};

every_store!(
    revoking_before_a_time_beats_racing_creates_and_refreshes,
    bad_revoke_requests_are_400s,
);

const USER: &str = "racer";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.limits.failed_auth_per_minute = 100_000;
        // Room for every session of the case: none is evicted.
        if let Some(default) = c.roles.get_mut("default") {
            default.max_sessions = 1000;
        } else {
            c.roles.insert(
                "default".into(),
                sessiond::config::RoleConfig {
                    idle_ttl: Duration::from_secs(1800),
                    absolute_ttl: Duration::from_secs(86_400),
                    max_sessions: 1000,
                    ..Default::default()
                },
            );
        }
    })
    .await
}

fn at(v: &Value) -> Timestamp {
    serde_json::from_value(v.clone()).unwrap()
}

async fn create_jwt(s: &TestServer) -> reqwest::Response {
    s.admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": USER, "mode": "jwt"}))
        .send()
        .await
        .unwrap()
}

async fn refresh(s: &TestServer, token: &str) -> reqwest::Response {
    s.anon(Method::POST, "/v1/tokens/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

async fn me_status(s: &TestServer, access_token: &str) -> u16 {
    s.anon(Method::GET, "/v1/me")
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn live(s: &TestServer, id: &str) -> bool {
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("GET session: {other}"),
    }
}

/// What one racing request got.
enum Raced {
    /// A create: the session, its access and refresh tokens.
    Created(Value, String, String),
    /// A create refused by the revocation.
    Refused,
    /// A refresh of an old chain: the new access and refresh tokens.
    Refreshed(String, String),
    /// A refresh that found its chain gone.
    RefreshFailed,
}

/// 100 creates and refreshes started before T race the revocation: after
/// it no session created before T is live (but the exception), no refresh
/// of such a chain succeeds, access tokens issued before T are refused (the
/// exception's too), and what is created after T lives.
async fn revoking_before_a_time_beats_racing_creates_and_refreshes(backend: Backend) {
    let s = std::sync::Arc::new(start(backend).await);
    let mut old = Vec::new();
    for _ in 0..20 {
        let r = create_jwt(&s).await;
        assert_eq!(r.status(), 201);
        old.push(r.json::<Value>().await.unwrap());
    }
    let keep = old[0].clone();
    let keep_id = keep["session"]["id"].as_str().unwrap().to_owned();

    let mut tasks = Vec::new();
    for n in 0..100 {
        let s = s.clone();
        let chain = old[1 + n % 19]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let r = create_jwt(&s).await;
                match r.status().as_u16() {
                    201 => {
                        let body: Value = r.json().await.unwrap();
                        Raced::Created(
                            body["session"].clone(),
                            body["access_token"].as_str().unwrap().to_owned(),
                            body["refresh_token"].as_str().unwrap().to_owned(),
                        )
                    }
                    _ => {
                        let body = problem(r, 409).await;
                        assert_eq!(
                            body["type"],
                            "urn:sessiond:problem:issued-before-revocation"
                        );
                        Raced::Refused
                    }
                }
            } else {
                let r = refresh(&s, &chain).await;
                match r.status().as_u16() {
                    200 => {
                        let body: Value = r.json().await.unwrap();
                        Raced::Refreshed(
                            body["access_token"].as_str().unwrap().to_owned(),
                            body["refresh_token"].as_str().unwrap().to_owned(),
                        )
                    }
                    401 => Raced::RefreshFailed,
                    other => panic!("refresh: {other}"),
                }
            }
        }));
    }
    // T a little ahead, so that creates under way when the revocation lands
    // read times before it: some are refused, some are made and revoked.
    let t = SystemClock.now().plus(Duration::from_millis(40));
    let r = s
        .admin(Method::POST, &format!("/v1/users/{USER}/revoke"))
        .json(&json!({"issued_before": t.to_rfc3339(), "except": keep_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked = r.json::<Value>().await.unwrap()["revoked"]
        .as_u64()
        .unwrap();
    assert!(revoked >= 19, "revoked {revoked}");

    let mut raced = Vec::new();
    for task in tasks {
        raced.push(task.await.unwrap());
    }
    // Past the second of T: tokens issued from now on have `iat` after it.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    for result in &raced {
        match result {
            Raced::Created(session, access, refresh_token) => {
                let id = session["id"].as_str().unwrap();
                if at(&session["created_at"]) < t {
                    assert!(!live(&s, id).await, "{id} created before T is live");
                    assert_eq!(refresh(&s, refresh_token).await.status(), 401);
                    assert!(!s.active(access).await);
                    assert_eq!(me_status(&s, access).await, 401);
                } else {
                    assert!(live(&s, id).await, "{id} created after T is gone");
                }
            }
            Raced::Refreshed(access, refresh_token) => {
                assert!(!s.active(access).await);
                assert_eq!(me_status(&s, access).await, 401);
                assert_eq!(refresh(&s, refresh_token).await.status(), 401);
            }
            Raced::Refused | Raced::RefreshFailed => {}
        }
    }
    for chain in &old[1..] {
        let id = chain["session"]["id"].as_str().unwrap();
        assert!(!live(&s, id).await);
        assert_eq!(
            refresh(&s, chain["refresh_token"].as_str().unwrap())
                .await
                .status(),
            401
        );
        assert!(!s.active(chain["access_token"].as_str().unwrap()).await);
    }
    // Whatever is live was created at or after T, but the exception.
    let list: Value = s
        .admin(Method::GET, &format!("/v1/users/{USER}/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for session in list["sessions"].as_array().unwrap() {
        assert!(session["id"] == keep_id.as_str() || at(&session["created_at"]) >= t);
    }

    // The exception lives, but its access token issued before T does not;
    // a refresh gives it one that works.
    assert!(live(&s, &keep_id).await);
    let old_access = keep["access_token"].as_str().unwrap();
    assert!(!s.active(old_access).await);
    assert_eq!(me_status(&s, old_access).await, 401);
    let r = refresh(&s, keep["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert!(s.active(fresh_access).await);
    assert_eq!(me_status(&s, fresh_access).await, 200);

    // Sessions created after T live, and their tokens work.
    for _ in 0..3 {
        let r = create_jwt(&s).await;
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        let access = body["access_token"].as_str().unwrap();
        assert!(s.active(access).await);
        assert_eq!(me_status(&s, access).await, 200);
        assert_eq!(
            refresh(&s, body["refresh_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
    }
    match std::sync::Arc::try_unwrap(s) {
        Ok(s) => s.shutdown().await,
        Err(_) => panic!("server still shared"),
    }
}

/// Unparsable or missing times, unknown fields, a malformed exception, a
/// bad user id or reason, a time far ahead: 400 problem+json, nothing
/// revoked. No API key: 401.
async fn bad_revoke_requests_are_400s(backend: Backend) {
    let s = start(backend).await;
    let (session, token) = s.create("alice").await;
    let now = SystemClock.now().to_rfc3339();
    let path = "/v1/users/alice/revoke";
    let ahead = SystemClock
        .now()
        .plus(Duration::from_secs(3600))
        .to_rfc3339();
    for body in [
        json!({}),
        json!({"issued_before": "yesterday"}),
        json!({"issued_before": 12}),
        json!({"issued_before": "2026-13-40T00:00:00Z"}),
        json!({"issued_before": now, "extra": true}),
        json!({"issued_before": now, "except": "not-an-id"}),
        json!({"issued_before": now, "reason": "no spaces allowed"}),
        json!({"issued_before": ahead}),
    ] {
        let r = s
            .admin(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    for bad_user in [
        format!("/v1/users/{}/revoke", "u".repeat(257)),
        "/v1/users//revoke".into(),
        "/v1/users/%07/revoke".into(),
    ] {
        let r = s
            .admin(Method::POST, &bad_user)
            .json(&json!({"issued_before": now}))
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    let r = s
        .admin(Method::POST, path)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    let r = s
        .anon(Method::POST, path)
        .json(&json!({"issued_before": now}))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    assert!(s.active(&token).await, "{session}");

    // And a good one, with a reason.
    let r = s
        .admin(Method::POST, path)
        .json(&json!({"issued_before": SystemClock.now().plus(Duration::from_millis(1)).to_rfc3339(), "reason": "password_changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"revoked": 1}));
    assert!(!s.active(&token).await);
    s.shutdown().await;
}
