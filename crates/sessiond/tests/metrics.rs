//! `/metrics` as Prometheus tooling sees it: the Python `prometheus_client`
//! parser reads it and every family follows the naming conventions (one
//! `sessiond_` prefix, units in names, HELP and TYPE on every family); the
//! live-sessions gauge follows creations and revocations on both stores
//! without `/v1/stats` being called; `admin_listen` moves `/metrics` off the
//! main listener.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Backend, TestServer};
use reqwest::Method;

/// Run the naming lint on `text`; panic with its findings.
fn lint(text: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/lint.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is required (scripts/test installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "prometheus_client is missing: run scripts/test (it installs it) or `python3 -m pip install prometheus_client`\n{stderr}"
    );
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n--- metrics ---\n{text}"
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

async fn metrics_text(s: &TestServer) -> String {
    let r = s.anon(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn conventions_and_live_gauge(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut ids = Vec::new();
    for user in ["alice", "alice", "bob"] {
        let (session, token) = s.create(user).await;
        assert!(s.active(&token).await);
        ids.push(session["id"].as_str().unwrap().to_owned());
    }
    // No /v1/stats call: the gauge follows this server's changes.
    assert_eq!(s.metric("sessiond_live_sessions").await, Some(3.0));
    let r = s
        .admin(Method::DELETE, &format!("/v1/sessions/{}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.metric("sessiond_live_sessions").await, Some(2.0));
    assert_eq!(
        s.metric("sessiond_sessions_revoked_total{reason=\"revoked_by_admin\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(s.metric("sessiond_sessions_created_total").await, Some(3.0));
    // A failed request and a store call, so that every family has samples.
    let r = s.anon(Method::GET, "/v1/me").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let text = metrics_text(&s).await;
    for family in [
        "sessiond_http_requests_total",
        "sessiond_http_request_duration_seconds",
        "sessiond_store_operation_duration_seconds",
        "sessiond_live_sessions",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family}\n{text}"
        );
    }
    lint(&text);
    s.shutdown().await;
}

#[tokio::test]
async fn metrics_follow_the_conventions_on_the_embedded_store() {
    conventions_and_live_gauge(Backend::Embedded).await;
}

#[tokio::test]
async fn metrics_follow_the_conventions_on_redis() {
    conventions_and_live_gauge(Backend::Redis).await;
}

/// With `admin_listen`, `/metrics` is served there and not on `listen`; the
/// API stays on `listen` only.
#[tokio::test]
async fn admin_listen_serves_the_operator_routes_apart() {
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.admin_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let admin = s.admin_addr().expect("an admin address");
    assert_ne!(admin, s.addr);
    let r = s.anon(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let get = |path: &str| s.client.get(format!("http://{admin}{path}")).send();
    let r = get("/metrics").await.unwrap();
    assert_eq!(r.status(), 200);
    lint(&r.text().await.unwrap());
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    assert_eq!(get("/v1/me").await.unwrap().status(), 404);
    assert_eq!(get("/v1/stats").await.unwrap().status(), 404);
    // The API and the health checks are still on the main listener.
    let r = s.anon(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, token) = s.create("alice").await;
    assert!(s.active(&token).await);
    s.shutdown().await;
}
