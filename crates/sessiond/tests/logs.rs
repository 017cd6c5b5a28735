//! No token ever reaches the logs: capture every log line of a full lifecycle
//! on both stores (sessiond's own crates at TRACE) and search it for every
//! token, CSRF token and the API key that crossed the wire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{API_KEY, Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every secret the lifecycle handled.
async fn lifecycle(s: &TestServer, secrets: &mut Vec<String>) {
    let (a, t1) = s.create("alice").await;
    let (b, t2) = s.create("alice").await;
    secrets.extend([t1.clone(), t2.clone()]);
    let id = a["id"].as_str().unwrap();
    s.admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": t1}))
        .send()
        .await
        .unwrap();
    let r = s
        .anon(Method::GET, "/v1/me")
        .header("cookie", format!("sessiond={t1}"))
        .send()
        .await
        .unwrap();
    secrets.push(r.headers()["x-csrf-token"].to_str().unwrap().to_owned());
    s.anon(Method::GET, "/v1/me/sessions")
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    s.admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {"k": "v"}}))
        .send()
        .await
        .unwrap();
    let r = s
        .admin(Method::POST, &format!("/v1/sessions/{id}/rotate"))
        .send()
        .await
        .unwrap();
    let rotated: Value = r.json().await.unwrap();
    let t3 = rotated["token"].as_str().unwrap().to_owned();
    secrets.push(t3.clone());
    // Failures log too: old token, a guess, a wrong API key.
    s.anon(Method::GET, "/v1/me")
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    s.anon(Method::GET, "/v1/auth")
        .bearer_auth(&t3)
        .send()
        .await
        .unwrap();
    s.anon(Method::GET, "/v1/users/alice/sessions")
        .bearer_auth("sdk_wrong-key-that-is-secret")
        .send()
        .await
        .unwrap();
    secrets.push("sdk_wrong-key-that-is-secret".into());
    let bid = b["id"].as_str().unwrap();
    s.anon(Method::DELETE, &format!("/v1/me/sessions/{bid}"))
        .bearer_auth(&t3)
        .send()
        .await
        .unwrap();
    s.anon(Method::POST, "/v1/me/logout")
        .bearer_auth(&t3)
        .send()
        .await
        .unwrap();
    // JWT mode: access and refresh tokens, a grace replay, a reuse.
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": "jwt-user", "mode": "jwt"}))
        .send()
        .await
        .unwrap();
    let created: Value = r.json().await.unwrap();
    let access = created["access_token"].as_str().unwrap().to_owned();
    let r0 = created["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend([access.clone(), r0.clone()]);
    for _ in 0..2 {
        let r = s
            .anon(Method::POST, "/v1/tokens/refresh")
            .json(&json!({"refresh_token": r0}))
            .send()
            .await
            .unwrap();
        let pair: Value = r.json().await.unwrap();
        secrets.push(pair["access_token"].as_str().unwrap().to_owned());
        secrets.push(pair["refresh_token"].as_str().unwrap().to_owned());
    }
    s.admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": access}))
        .send()
        .await
        .unwrap();
    s.anon(Method::GET, "/v1/me")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    s.anon(Method::GET, "/v1/me")
        .bearer_auth(format!("{access}x"))
        .send()
        .await
        .unwrap();
    // A token in a body field that fails to parse.
    s.admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": 1, "token": t3}))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_the_logs() {
    let captured = Captured::default();
    let filter = EnvFilter::new(
        "info,sessiond=trace,sessiond_engine=trace,sessiond_embedded=trace,sessiond_redis=trace,tower_http=trace,axum=trace",
    );
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut secrets = vec![API_KEY.to_owned()];
    for backend in [Backend::Embedded, Backend::Redis] {
        let s = TestServer::start(backend).await;
        lifecycle(&s, &mut secrets).await;
        s.shutdown().await;
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: one access line per request at least, with ids.
    let access_lines = logs
        .lines()
        .filter(|l| l.contains("request_id") && l.contains("status"))
        .count();
    assert!(
        access_lines >= 2 * 12,
        "only {access_lines} access log lines:\n{logs}"
    );
    assert!(logs.contains("session_id"));
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        // Not even the random part of a token.
        if let Some(rest) = secret.strip_prefix("sds_") {
            assert!(
                !logs.contains(&rest[11..]),
                "a token's secret part reached the logs"
            );
        }
        if let Some(rest) = secret.strip_prefix("sdr_") {
            assert!(
                !logs.contains(&rest[11..]),
                "a refresh token's family and secret reached the logs"
            );
        }
        // Nor the signature of an access token.
        if let Some((_, signature)) = secret.rsplit_once('.') {
            assert!(
                !logs.contains(signature),
                "an access token reached the logs"
            );
        }
    }
}
