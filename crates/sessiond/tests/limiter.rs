//! The failed-credential limiter: only failures count, a valid credential is
//! never refused, admin keys and session credentials have separate budgets,
//! and the client address comes from forwarding headers only when the peer
//! is a trusted proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{API_KEY, Backend, TestServer, problem};
use reqwest::Method;

/// A well-formed but unknown session token (reaches the store).
const GUESS: &str = "sds_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

async fn me(s: &TestServer, token: &str) -> reqwest::Response {
    s.anon(Method::GET, "/v1/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn auth_cookie(s: &TestServer, token: &str) -> reqwest::Response {
    s.anon(Method::GET, "/v1/auth")
        .header("cookie", format!("sessiond={token}"))
        .send()
        .await
        .unwrap()
}

async fn stats_with_key(s: &TestServer, key: &str) -> reqwest::Response {
    s.client
        .get(s.url("/v1/stats"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// 60 bogus tokens from one address, then that address's valid token and the
/// API key: both 200. The bogus ones beyond the budget get 429.
async fn valid_credentials_are_never_throttled(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, token) = s.create("alice").await;
    let mut statuses = Vec::new();
    for i in 0..60 {
        let r = if i % 2 == 0 {
            me(&s, GUESS).await
        } else {
            auth_cookie(&s, "sds_nonsense").await
        };
        statuses.push(r.status().as_u16());
    }
    // The default budget is 30 failures a minute: 401 first, then 429.
    assert!(statuses[..30].iter().all(|&c| c == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|&c| c == 429), "{statuses:?}");
    let r = me(&s, GUESS).await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429).await;

    assert_eq!(me(&s, &token).await.status(), 200);
    assert_eq!(auth_cookie(&s, &token).await.status(), 200);
    let r = s
        .anon(Method::GET, "/v1/auth")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user-id"], "alice");
    assert_eq!(stats_with_key(&s, API_KEY).await.status(), 200);
    s.shutdown().await;
}

/// Wrong API keys spend the admin budget only, bogus tokens the session
/// budget only.
async fn admin_and_session_budgets_are_separate(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.limits.failed_auth_per_minute = 5).await;
    let (_, token) = s.create("alice").await;
    for _ in 0..5 {
        problem(stats_with_key(&s, "sdk_wrong-key-0123456789").await, 401).await;
    }
    problem(stats_with_key(&s, "sdk_wrong-key-0123456789").await, 429).await;
    // Session credentials from the same address still get their own 5.
    for _ in 0..5 {
        problem(me(&s, GUESS).await, 401).await;
    }
    problem(me(&s, GUESS).await, 429).await;
    // And refresh tokens count in the session budget.
    let r = s
        .anon(Method::POST, "/v1/tokens/refresh")
        .json(&serde_json::json!({"refresh_token": "sdr_nonsense"}))
        .send()
        .await
        .unwrap();
    problem(r, 429).await;
    // Valid credentials of both kinds pass.
    assert_eq!(stats_with_key(&s, API_KEY).await.status(), 200);
    assert_eq!(me(&s, &token).await.status(), 200);
    s.shutdown().await;
}

/// `failed_auth_per_minute = 0` turns the limit off.
async fn zero_turns_the_limit_off(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.limits.failed_auth_per_minute = 0).await;
    for _ in 0..40 {
        problem(me(&s, GUESS).await, 401).await;
        problem(stats_with_key(&s, "sdk_wrong-key-0123456789").await, 401).await;
    }
    s.shutdown().await;
}

/// From an untrusted peer, `X-Forwarded-For` changes nothing: a guesser
/// cannot spread its failures over made-up addresses.
async fn forwarded_for_from_untrusted_peers_is_ignored(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.limits.failed_auth_per_minute = 3).await;
    for i in 0..3 {
        let r = s
            .anon(Method::GET, "/v1/me")
            .bearer_auth(GUESS)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        problem(r, 401).await;
    }
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(GUESS)
        .header("x-forwarded-for", "203.0.113.99")
        .header("forwarded", "for=198.51.100.1")
        .send()
        .await
        .unwrap();
    problem(r, 429).await;
    s.shutdown().await;
}

/// Behind a trusted proxy (here: loopback), each forwarded client has its
/// own budget, and the address recorded at login is the client's.
async fn clients_behind_a_trusted_proxy_are_told_apart(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.limits.failed_auth_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".into(), "::1".into()];
    })
    .await;
    let (_, token) = s.create("alice").await;
    let from = |client: &'static str, token: &str| {
        s.anon(Method::GET, "/v1/auth")
            .bearer_auth(token)
            .header("x-forwarded-for", format!("1.1.1.1, {client}"))
    };
    for _ in 0..3 {
        problem(from("203.0.113.1", GUESS).send().await.unwrap(), 401).await;
    }
    problem(from("203.0.113.1", GUESS).send().await.unwrap(), 429).await;
    // Another client behind the same proxy is not affected…
    problem(from("203.0.113.2", GUESS).send().await.unwrap(), 401).await;
    // …and a valid user behind it never is.
    assert_eq!(
        from("203.0.113.1", &token).send().await.unwrap().status(),
        200
    );
    s.shutdown().await;
}

every_store!(
    valid_credentials_are_never_throttled,
    admin_and_session_budgets_are_separate,
    zero_turns_the_limit_off,
    forwarded_for_from_untrusted_peers_is_ignored,
    clients_behind_a_trusted_proxy_are_told_apart,
);
