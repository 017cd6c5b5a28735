//! Device binding on every store: a role bound to `ip_prefix` and
//! `ua_family` revokes (reason `binding_mismatch`) or flags a session
//! presented from another network or browser, at introspection (the body's
//! `ip`/`user_agent`) and at `/v1/auth` (the client address behind a trusted
//! proxy, `X-Forwarded-For` or `X-Real-IP`, and `User-Agent`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};
use sessiond_engine::{BindTo, OnMismatch};

every_store!(binding_revokes_or_flags_a_session_presented_elsewhere);

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.limits.failed_auth_per_minute = 100_000;
        c.trusted_proxies = vec!["127.0.0.1".into()];
        for (name, on_mismatch) in [("bound", OnMismatch::Revoke), ("watched", OnMismatch::Flag)] {
            c.roles.insert(
                name.into(),
                sessiond::config::RoleConfig {
                    bind: vec![BindTo::IpPrefix, BindTo::UaFamily],
                    on_mismatch,
                    ..Default::default()
                },
            );
        }
    })
    .await
}

async fn create(s: &TestServer, role: &str) -> (String, String) {
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(
            &json!({"user_id": "alice", "role": role, "ip": "198.51.100.7", "user_agent": CHROME}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["session"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn introspect(s: &TestServer, token: &str, ip: &str, ua: &str) -> Value {
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": token, "ip": ip, "user_agent": ua}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn binding_revokes_or_flags_a_session_presented_elsewhere(backend: Backend) {
    let s = start(backend).await;

    // revoke: the same /24 and browser family pass; another network ends it.
    let (token, id) = create(&s, "bound").await;
    let same = introspect(&s, &token, "198.51.100.200", CHROME).await;
    assert_eq!(same["active"], true);
    assert!(same.get("risk").is_none());
    let moved = introspect(&s, &token, "203.0.113.5", CHROME).await;
    assert_eq!(moved, json!({"active": false}));
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    assert_eq!(
        introspect(&s, &token, "198.51.100.7", CHROME).await["active"],
        false,
        "revoked means gone"
    );
    // Another browser family ends it too.
    let (token, _) = create(&s, "bound").await;
    assert_eq!(
        introspect(&s, &token, "198.51.100.7", FIREFOX).await["active"],
        false
    );

    // flag: active, with what was broken; the session stays.
    let (token, id) = create(&s, "watched").await;
    let risky = introspect(&s, &token, "2001:db8::1", FIREFOX).await;
    assert_eq!(risky["active"], true);
    assert_eq!(
        risky["risk"]["binding_mismatch"],
        json!(["ip_prefix", "ua_family"])
    );
    let fine = introspect(&s, &token, "198.51.100.8", CHROME).await;
    assert!(fine.get("risk").is_none());
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Forward-auth reads the client behind the trusted proxy.
    let auth = |token: String, header: &'static str, ip: &'static str, ua: &'static str| {
        s.anon(Method::GET, "/v1/auth")
            .bearer_auth(token)
            .header(header, ip)
            .header("user-agent", ua)
            .send()
    };
    let r = auth(token.clone(), "x-forwarded-for", "198.51.100.9", CHROME)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-session-risk").is_none());
    let r = auth(token.clone(), "x-real-ip", "192.0.2.1", CHROME)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-session-risk"], "binding_mismatch=ip_prefix");
    let (bound, bound_id) = create(&s, "bound").await;
    let r = auth(bound.clone(), "x-forwarded-for", "198.51.100.9", CHROME)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = auth(bound.clone(), "x-forwarded-for", "192.0.2.1", CHROME)
        .await
        .unwrap();
    problem(r, 401).await;
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{bound_id}"))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    // A session of a role without binding is never checked.
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": "alice", "ip": "198.51.100.7", "user_agent": CHROME}))
        .send()
        .await
        .unwrap();
    let plain: Value = r.json().await.unwrap();
    let free = introspect(&s, plain["token"].as_str().unwrap(), "203.0.113.5", FIREFOX).await;
    assert_eq!(free["active"], true);
    assert!(free.get("risk").is_none());
    // A bad ip is a 400.
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": token, "ip": "not-an-ip"}))
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    s.shutdown().await;
}
