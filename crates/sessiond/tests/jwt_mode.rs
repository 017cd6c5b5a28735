//! JWT mode over HTTP on both stores: create, offline-verifiable access
//! tokens accepted by introspection, `/v1/me` and `/v1/auth`, refresh
//! rotation with the grace replay and reuse detection, JWKS, and hostile
//! tokens (never a 500).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};

every_store!(
    jwt_lifecycle,
    rotation_by_id_kills_access_tokens_at_once,
    refresh_replays_within_grace_and_revokes_on_reuse,
    hostile_access_tokens_get_401,
);

async fn create_jwt(s: &TestServer, user: &str) -> Value {
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": user, "role": "staff", "mode": "jwt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header(jwt: &str) -> Value {
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

async fn introspect(s: &TestServer, token: &str) -> Value {
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh(s: &TestServer, token: &str) -> reqwest::Response {
    s.anon(Method::POST, "/v1/tokens/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

fn with_staff_role(c: &mut sessiond::config::Config) {
    c.roles.insert(
        "staff".into(),
        sessiond::config::RoleConfig {
            idle_ttl: Duration::from_secs(900),
            absolute_ttl: Duration::from_secs(3600),
            max_sessions: 5,
            ..Default::default()
        },
    );
    c.limits.failed_auth_per_minute = 10_000;
}

/// Rotation is "the old credential is dead at once" (privilege change): for
/// a JWT-mode session that includes its unexpired access tokens.
async fn rotation_by_id_kills_access_tokens_at_once(backend: Backend) {
    let s = TestServer::start_with(backend, with_staff_role).await;
    let created = create_jwt(&s, "alice").await;
    let access = created["access_token"].as_str().unwrap();
    let id = created["session"]["id"].as_str().unwrap();
    let me = || s.anon(Method::GET, "/v1/me").bearer_auth(access);
    let auth = || s.anon(Method::GET, "/v1/auth").bearer_auth(access);
    assert_eq!(me().send().await.unwrap().status(), 200);
    assert_eq!(auth().send().await.unwrap().status(), 200);
    assert_eq!(introspect(&s, access).await["active"], true);

    let new_token = s.rotate(id).await;

    problem(me().send().await.unwrap(), 401).await;
    problem(auth().send().await.unwrap(), 401).await;
    assert_eq!(introspect(&s, access).await, json!({"active": false}));
    // The refresh chain ended too; the new credential works.
    let r = refresh(&s, created["refresh_token"].as_str().unwrap()).await;
    problem(r, 401).await;
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(&new_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.shutdown().await;
}

async fn jwt_lifecycle(backend: Backend) {
    let s = TestServer::start_with(backend, with_staff_role).await;
    let created = create_jwt(&s, "alice").await;
    let access = created["access_token"].as_str().unwrap();
    let refresh_token = created["refresh_token"].as_str().unwrap();
    assert!(refresh_token.starts_with("sdr_"));
    assert_eq!(created["session"]["mode"], "jwt");
    let id = created["session"]["id"].as_str().unwrap();
    let expires_in = created["expires_in"].as_u64().unwrap();
    assert!((890..=900).contains(&expires_in), "{expires_in}");
    assert!(created.get("token").is_none());

    // Claims and header.
    let c = claims(access);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["sid"], id);
    assert_eq!(c["jti"], format!("{id}.0"));
    assert_eq!(c["role"], "staff");
    assert_eq!(c["iss"], "sessiond");
    assert_eq!(c["aud"], "sessiond");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 900);
    let h = header(access);
    assert_eq!(h["alg"], "EdDSA");

    // JWKS publishes the signing key, with cache headers.
    let r = s
        .anon(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let jwks: Value = r.json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [h["kid"].as_str().unwrap()]);
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");

    // The access token works wherever a credential is taken.
    let seen = introspect(&s, access).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["session"]["id"], id);
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .anon(Method::GET, "/v1/auth")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-session-id"], id);
    assert_eq!(r.headers()["x-user-id"], "alice");
    assert_eq!(r.headers()["x-user-role"], "staff");
    // A refresh token is not an access token.
    assert_eq!(introspect(&s, refresh_token).await["active"], false);

    // Refresh.
    let r = refresh(&s, refresh_token).await;
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().await.unwrap();
    let access2 = pair["access_token"].as_str().unwrap();
    assert_ne!(pair["refresh_token"], refresh_token);
    assert_eq!(claims(access2)["jti"], format!("{id}.1"));
    assert_eq!(pair["session"]["id"], id);
    assert_eq!(introspect(&s, access2).await["active"], true);

    // Revocation is immediate for introspection and /v1/me, whatever `exp`.
    let r = s
        .anon(Method::POST, "/v1/me/logout")
        .bearer_auth(access2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(introspect(&s, access).await["active"], false);
    assert_eq!(introspect(&s, access2).await["active"], false);
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(access2)
        .send()
        .await
        .unwrap();
    let r = problem(r, 401).await;
    assert!(r["detail"].is_string());
    problem(
        refresh(&s, pair["refresh_token"].as_str().unwrap()).await,
        401,
    )
    .await;
    s.shutdown().await;
}

async fn refresh_replays_within_grace_and_revokes_on_reuse(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        with_staff_role(c);
        c.refresh.reuse_grace = Duration::from_millis(1500);
    })
    .await;
    let created = create_jwt(&s, "bob").await;
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let t0 = created["refresh_token"].as_str().unwrap().to_owned();
    // Two racing tabs: both get the very same pair.
    let (a, b) = tokio::join!(refresh(&s, &t0), refresh(&s, &t0));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["refresh_token"], b["refresh_token"]);
    assert_eq!(a["access_token"], b["access_token"]);
    // After the grace period the retired token revokes the session.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = problem(refresh(&s, &t0).await, 401).await;
    assert!(r["detail"].as_str().unwrap().contains("reuse"), "{r}");
    problem(
        s.admin(Method::GET, &format!("/v1/sessions/{id}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(refresh(&s, a["refresh_token"].as_str().unwrap()).await, 401).await;
    assert_eq!(
        introspect(&s, a["access_token"].as_str().unwrap()).await["active"],
        false
    );
    // Counted as a revocation by reason.
    let metrics = s
        .anon(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("refresh_token_reuse") && !l.starts_with('#')),
        "{metrics}"
    );
    // Bad refresh bodies.
    problem(refresh(&s, "sdr_nope").await, 401).await;
    problem(
        s.anon(Method::POST, "/v1/tokens/refresh")
            .json(&json!({"refresh_token": t0, "extra": 1}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    s.shutdown().await;
}

async fn hostile_access_tokens_get_401(backend: Backend) {
    let s = TestServer::start_with(backend, with_staff_role).await;
    let created = create_jwt(&s, "carol").await;
    let access = created["access_token"].as_str().unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let payload = claims(access);
    let h = header(access);
    let kid = h["kid"].as_str().unwrap();
    let jwks: Value = s
        .anon(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let hs256 = |secret: &[u8]| {
        use hmac::{Hmac, Mac};
        let head = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
        let input = format!("{head}.{}", parts[1]);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    let mut tampered = payload.clone();
    tampered["sub"] = json!("mallory");
    let mut hostile: Vec<String> = vec![
        String::from("."),
        String::from(".."),
        String::from("..."),
        format!("{}.{}", parts[0], parts[1]),
        format!("{access}.x"),
        format!("{}!.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}$.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}%", parts[0], parts[1], parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        // alg none, with and without a signature.
        format!("{}.{}.", b64(&json!({"alg": "none", "kid": kid})), parts[1]),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "none", "kid": kid})),
            parts[1],
            parts[2]
        ),
        // HS256 with the public key as the secret (raw, base64url, JWK JSON).
        hs256(&URL_SAFE_NO_PAD.decode(x).unwrap()),
        hs256(x.as_bytes()),
        hs256(jwks["keys"][0].to_string().as_bytes()),
        // Unknown kid, no kid, another algorithm on this key.
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "kid": "nope"})),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA"})),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "ES256", "kid": kid})),
            parts[1],
            parts[2]
        ),
        // Payload changed under the old signature.
        format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]),
        // A huge (8 KiB) header.
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "kid": kid, "pad": "p".repeat(8000)})),
            parts[1],
            parts[2]
        ),
    ];
    // Every single-character change of the signature.
    for i in (0..parts[2].len()).step_by(7) {
        let mut sig = parts[2].as_bytes().to_vec();
        sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
        hostile.push(format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            String::from_utf8(sig).unwrap()
        ));
    }
    for token in &hostile {
        let r = s
            .anon(Method::GET, "/v1/me")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        problem(r, 401).await;
        let r = s
            .anon(Method::GET, "/v1/auth")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{token}");
        assert_eq!(introspect(&s, token).await["active"], false, "{token}");
    }
    // The real one still works.
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.shutdown().await;
}
