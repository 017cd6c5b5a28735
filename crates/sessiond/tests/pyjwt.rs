//! A third-party verifier accepts sessiond's access tokens: PyJWT (from
//! PyPI, installed by `scripts/test`) verifies them offline through the JWKS
//! endpoint, for both algorithms; a long-lived `PyJWKClient` never fails
//! while `sessiond keys rotate` rolls the key over; after the expiry of the
//! old key's tokens, it rejects a token of the old key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

const TTL: Duration = Duration::from_secs(4);

/// Run the Python verifier; `Ok(sid)` or `Err(why)`.
fn pyjwt(s: &TestServer, token: &str, ignore_exp: bool) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyjwt/verify.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(s.url("/.well-known/jwks.json"))
        .arg(token)
        .args(["sessiond", "sessiond"]);
    if ignore_exp {
        cmd.arg("--ignore-exp");
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("python3 is required for this test (scripts/test installs PyJWT): {e}")
    });
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "PyJWT is not installed: run scripts/test (it installs PyJWT[crypto]) or `python3 -m pip install 'PyJWT[crypto]'`\n{stderr}"
    );
    match out.status.code() {
        Some(0) => Ok(stdout.trim_start_matches("accepted ").to_owned()),
        Some(3) => Err(stdout),
        _ => panic!("verifier crashed: {stdout}\n{stderr}"),
    }
}

async fn access_token(s: &TestServer, user: &str) -> (String, String) {
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": user, "mode": "jwt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["session"]["id"].as_str().unwrap().to_owned(),
    )
}

fn kid(jwt: &str) -> String {
    let h = jwt.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

async fn verify_blocking(s: &TestServer, token: &str, ignore_exp: bool) -> Result<String, String> {
    tokio::task::block_in_place(|| pyjwt(s, token, ignore_exp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_through_jwks_and_drops_the_old_key_after_rotation() {
    let s = TestServer::start_with(Backend::Embedded, |c| c.jwt.access_ttl = TTL).await;
    let data_dir = s.data_dir();
    let (old, sid) = access_token(&s, "alice").await;
    assert_eq!(verify_blocking(&s, &old, false).await, Ok(sid));
    // A token of another issuer's key or tampered is refused by PyJWT too.
    let mut forged = old.clone();
    forged.pop();
    forged.push(if old.ends_with('A') { 'B' } else { 'A' });
    assert!(verify_blocking(&s, &forged, false).await.is_err());

    // Rotate with the operator command, as on a production host, signing
    // with the new key at once.
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["keys", "rotate", "--delay", "0s", "--data-dir"])
        .arg(&data_dir)
        .env("SESSIOND_JWT__ACCESS_TTL", format!("{}s", TTL.as_secs()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated_at = Instant::now();

    // The server signs with the new key within a couple of seconds.
    let new = loop {
        let (token, _) = access_token(&s, "bob").await;
        if kid(&token) != kid(&old) {
            break token;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(3),
            "new key not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(verify_blocking(&s, &new, false).await.is_ok());
    // The old key stays published while its tokens may be live.
    assert!(verify_blocking(&s, &old, true).await.is_ok());

    // Once every token of the old key has expired, the key is gone from the
    // JWKS: even with the expiry check off, PyJWT cannot verify the old token.
    tokio::time::sleep((TTL + Duration::from_secs(1)).saturating_sub(rotated_at.elapsed())).await;
    let why = verify_blocking(&s, &old, true).await.unwrap_err();
    assert!(
        why.contains("PyJWKClientError") || why.contains("signing key"),
        "{why}"
    );
    // With the expiry check on it is refused as expired anyway.
    assert!(verify_blocking(&s, &old, false).await.is_err());
    let (fresh, sid) = access_token(&s, "carol").await;
    assert_eq!(verify_blocking(&s, &fresh, false).await, Ok(sid));
    s.shutdown().await;
}

/// PyJWT verifies the authentication claims (`auth_time`, `acr`, `amr`)
/// of a session created at `aal2` with two methods, and of the next token
/// after a step-up to `aal3`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_reads_the_authentication_claims() {
    let s = TestServer::start_with(Backend::Embedded, |_| {}).await;
    let verify = |token: String| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyjwt/verify.py");
        let jwks = s.url("/.well-known/jwks.json");
        tokio::task::block_in_place(move || {
            let out = Command::new("python3")
                .arg(script)
                .arg(jwks)
                .arg(token)
                .args(["sessiond", "sessiond", "--auth-claims"])
                .output()
                .expect("python3 is required (scripts/test installs PyJWT)");
            let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json = stdout.splitn(3, ' ').nth(2).unwrap().to_owned();
            serde_json::from_str::<Value>(&json).unwrap()
        })
    };
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": "alice", "mode": "jwt", "aal": "aal2", "amr": ["pwd", "otp"]}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let c = verify(body["access_token"].as_str().unwrap().to_owned());
    assert_eq!(c["acr"], "aal2");
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    let id = body["session"]["id"].as_str().unwrap();
    let r = s
        .admin(Method::POST, &format!("/v1/sessions/{id}/authenticate"))
        .json(&json!({"aal": "aal3", "method": "hwk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .anon(Method::POST, "/v1/tokens/refresh")
        .json(&json!({"refresh_token": body["refresh_token"]}))
        .send()
        .await
        .unwrap();
    let pair: Value = r.json().await.unwrap();
    let c = verify(pair["access_token"].as_str().unwrap().to_owned());
    assert_eq!(c["acr"], "aal3");
    assert_eq!(c["amr"], json!(["pwd", "otp", "hwk"]));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_es256_tokens() {
    let s = TestServer::start_with(Backend::Embedded, |c| c.jwt.algorithm = "ES256".into()).await;
    let (token, sid) = access_token(&s, "alice").await;
    let h: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(h["alg"], "ES256");
    assert_eq!(verify_blocking(&s, &token, false).await, Ok(sid));
    s.shutdown().await;
}

/// The rollover as a Python service sees it: one `PyJWKClient` (its JWKS
/// cache and its 30 s cooldown on refetching for an unknown `kid`, scaled
/// down here with the rollover delay) verifies fresh tokens continuously
/// while `sessiond keys rotate` runs. The new key is published first and
/// signs only after the delay, so no verification fails; with no delay the
/// client meets an unknown kid inside its cooldown and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_pyjwt_client_never_fails_across_a_key_rotation() {
    let delay = Duration::from_secs(6);
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.jwt.rollover_delay = delay;
        c.limits.failed_auth_per_minute = 10_000;
    })
    .await;
    let r = s
        .anon(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyjwt/rollover.py");
    let verifier = std::process::Command::new("python3")
        .arg(script)
        .arg(s.url(""))
        .arg(common::API_KEY)
        // Run 12 s; cache the JWKS 60 s (never expires here); refetch for
        // an unknown kid at most every 5 s.
        .args(["12", "60", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is required for this test (scripts/test installs PyJWT)");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["keys", "rotate", "--data-dir"])
        .arg(s.data_dir())
        .env("SESSIOND_JWT__ROLLOVER_DELAY", "6s")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("signing from"), "{said}");
    let out = tokio::task::spawn_blocking(move || verifier.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("ModuleNotFoundError"),
        "verifier failed (PyJWT missing? run scripts/test): {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["ok"].as_u64().unwrap() > 20, "{report}");
    // Both keys signed during the run: the rollover did happen.
    assert_eq!(report["kids"].as_array().unwrap().len(), 2, "{report}");
    s.shutdown().await;
}
