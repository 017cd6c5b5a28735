//! Sign-in under attack: 64 concurrent wrong passwords for one account hash
//! at most `concurrent_hashes` at a time, and past the per-account budget
//! they are refused (429) without hashing at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sessiond_axum::{CookieSettings, EngineBackend, SessionLayer};
use sessiond_demo::throttle::{LoginGuard, LoginLimits};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::Engine;

async fn start(dir: &std::path::Path, guard: Arc<LoginGuard>) -> SocketAddr {
    let store = EmbeddedStore::open(dir.join("store"), EmbeddedOptions::default())
        .await
        .unwrap();
    let engine = Engine::new(Arc::new(store), sessiond_demo::policy());
    let layer = SessionLayer::new(EngineBackend::new(engine))
        .with_cookie(CookieSettings {
            secure: false,
            ..CookieSettings::default()
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sessiond_demo::app_with_guard(layer, None, guard)
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn login(client: &reqwest::Client, addr: SocketAddr, user: &str, password: &str) -> u16 {
    client
        .post(format!("http://{addr}/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_capped_and_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let guard = Arc::new(LoginGuard::new(LoginLimits {
        concurrent_hashes: 2,
        queue_wait: Duration::from_secs(30),
        per_account_per_minute: 10,
        per_address_per_minute: 100,
    }));
    let addr = start(dir.path(), guard.clone()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let attempts: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { login(&client, addr, "alice", "guess").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked, 10, "{statuses:?}");
    assert_eq!(refused, 54, "{statuses:?}");
    assert!(
        guard.peak_concurrent_hashes() <= 2,
        "{}",
        guard.peak_concurrent_hashes()
    );
    // The right password for alice waits out the account's budget too…
    assert_eq!(login(&client, addr, "alice", "wonderland").await, 429);
    // …while another account signs in.
    assert_eq!(login(&client, addr, "bob", "builder").await, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_spray_many_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let guard = Arc::new(LoginGuard::new(LoginLimits {
        concurrent_hashes: 2,
        queue_wait: Duration::from_secs(30),
        per_account_per_minute: 10,
        per_address_per_minute: 5,
    }));
    let addr = start(dir.path(), guard).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(login(&client, addr, &format!("user{i}"), "guess").await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
}
