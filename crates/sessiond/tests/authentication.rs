//! The authentication context over HTTP on every store: a session carries
//! `authenticated_at`, `aal` and `amr`; `POST /v1/sessions/{id}/authenticate`
//! steps it up without a new token; introspection, `/v1/me` and `/v1/auth`
//! enforce `min_aal` and `max_age` with their own problem types (and
//! `/v1/auth` its per-path rules); access tokens carry the claims.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};

every_store!(
    step_up_raises_the_level_and_min_aal_passes_only_after_it,
    max_age_expires_and_a_new_authentication_renews_it,
    forward_auth_rules_apply_by_path,
    access_tokens_carry_the_authentication_claims,
    bad_authentication_input_is_4xx,
);

const INSUFFICIENT: &str = "urn:sessiond:problem:insufficient_aal";
const REAUTH: &str = "urn:sessiond:problem:reauthentication_required";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.limits.failed_auth_per_minute = 100_000;
        c.forward_auth.insert(
            "admin".into(),
            sessiond::config::ForwardAuthRule {
                path_prefix: "/admin".into(),
                min_aal: Some(sessiond_engine::Aal::Aal2),
                max_age: None,
            },
        );
        c.forward_auth.insert(
            "payments".into(),
            sessiond::config::ForwardAuthRule {
                path_prefix: "/admin/payments".into(),
                min_aal: Some(sessiond_engine::Aal::Aal2),
                max_age: Some(Duration::from_secs(1)),
            },
        );
    })
    .await
}

async fn create(s: &TestServer, body: Value) -> Value {
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn introspect(s: &TestServer, body: Value) -> reqwest::Response {
    s.admin(Method::POST, "/v1/sessions/introspect")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn authenticate(s: &TestServer, id: &str, body: Value) -> reqwest::Response {
    s.admin(Method::POST, &format!("/v1/sessions/{id}/authenticate"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn me(s: &TestServer, token: &str, query: &str) -> reqwest::Response {
    s.anon(Method::GET, &format!("/v1/me{query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn step_up_raises_the_level_and_min_aal_passes_only_after_it(backend: Backend) {
    let s = start(backend).await;
    let created = create(
        &s,
        json!({"user_id": "alice", "aal": "aal1", "amr": ["pwd"]}),
    )
    .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["session"]["aal"], "aal1");
    assert_eq!(created["session"]["amr"], json!(["pwd"]));
    assert_eq!(
        created["session"]["authenticated_at"],
        created["session"]["created_at"]
    );

    // Below the level: every check names the problem.
    let p = problem(
        introspect(&s, json!({"token": token, "min_aal": "aal2"})).await,
        401,
    )
    .await;
    assert_eq!(p["type"], INSUFFICIENT);
    assert_eq!(p["min_aal"], "aal2");
    let r = me(&s, &token, "?min_aal=aal2").await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_user_authentication")
    );
    assert_eq!(problem(r, 401).await["type"], INSUFFICIENT);
    let r = s
        .anon(Method::GET, "/v1/auth?min_aal=aal2")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 401).await["type"], INSUFFICIENT);
    // The query form of introspection says the same.
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect?min_aal=aal2")
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 401).await["type"], INSUFFICIENT);
    // Without a requirement the session is as active as ever.
    let r = introspect(&s, json!({"token": token})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);

    // Step up: the level rises, the method is added, the token stays.
    let r = authenticate(&s, &id, json!({"aal": "aal2", "method": "otp"})).await;
    assert_eq!(r.status(), 200);
    let up: Value = r.json().await.unwrap();
    assert_eq!(up["aal"], "aal2");
    assert_eq!(up["amr"], json!(["pwd", "otp"]));
    assert!(
        up["authenticated_at"].as_str().unwrap()
            >= created["session"]["authenticated_at"].as_str().unwrap()
    );

    let r = introspect(&s, json!({"token": token, "min_aal": "aal2"})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["session"]["aal"], "aal2");
    assert_eq!(me(&s, &token, "?min_aal=aal2").await.status(), 200);
    let r = s
        .anon(Method::GET, "/v1/auth?min_aal=aal2")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-session-aal"], "aal2");
    // aal3 is still out of reach.
    let p = problem(me(&s, &token, "?min_aal=aal3").await, 401).await;
    assert_eq!(p["type"], INSUFFICIENT);
    // A lower level later never lowers it.
    let r = authenticate(&s, &id, json!({"aal": "aal1", "method": "pwd"})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["aal"], "aal2");
    let got: Value = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["aal"], "aal2");
    assert_eq!(got["amr"], json!(["pwd", "otp"]));
    // A revoked session cannot be stepped up, nor can an unknown one.
    let r = s
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    problem(
        authenticate(&s, &id, json!({"aal": "aal3", "method": "hwk"})).await,
        404,
    )
    .await;
    problem(
        authenticate(&s, "nope", json!({"aal": "aal3", "method": "hwk"})).await,
        404,
    )
    .await;
    s.shutdown().await;
}

async fn max_age_expires_and_a_new_authentication_renews_it(backend: Backend) {
    let s = start(backend).await;
    let created = create(&s, json!({"user_id": "bob", "amr": ["pwd"]})).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        introspect(&s, json!({"token": token, "max_age": 60}))
            .await
            .status(),
        200
    );
    assert_eq!(me(&s, &token, "?max_age=60").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let p = problem(
        introspect(&s, json!({"token": token, "max_age": 1})).await,
        401,
    )
    .await;
    assert_eq!(p["type"], REAUTH);
    assert_eq!(p["max_age"], 1);
    let r = me(&s, &token, "?max_age=1").await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("max_age=\"1\"")
    );
    assert_eq!(problem(r, 401).await["type"], REAUTH);
    let r = s
        .anon(Method::GET, "/v1/auth?max_age=1")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 401).await["type"], REAUTH);
    // Both unmet: the level is reported first (a step-up settles both).
    let p = problem(
        introspect(&s, json!({"token": token, "max_age": 1, "min_aal": "aal2"})).await,
        401,
    )
    .await;
    assert_eq!(p["type"], INSUFFICIENT);
    // The user signs in again: the session is fresh with the same token.
    let r = authenticate(&s, &id, json!({"method": "pwd"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(me(&s, &token, "?max_age=1").await.status(), 200);
    // An app may say when the user authenticated, in the past.
    let then = "2020-01-01T00:00:00Z";
    let old = create(&s, json!({"user_id": "bob", "authenticated_at": then})).await;
    assert_eq!(
        old["session"]["authenticated_at"],
        "2020-01-01T00:00:00.000Z"
    );
    let p = problem(
        introspect(&s, json!({"token": old["token"], "max_age": 86_400})).await,
        401,
    )
    .await;
    assert_eq!(p["type"], REAUTH);
    s.shutdown().await;
}

async fn forward_auth_rules_apply_by_path(backend: Backend) {
    let s = start(backend).await;
    let created = create(&s, json!({"user_id": "carol"})).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let auth = |path: &'static str, header: &'static str| {
        s.anon(Method::GET, "/v1/auth")
            .bearer_auth(&token)
            .header(header, path)
            .send()
    };
    assert_eq!(
        auth("/home", "x-forwarded-uri").await.unwrap().status(),
        200
    );
    let r = auth("/admin/users?x=1", "x-forwarded-uri").await.unwrap();
    assert_eq!(problem(r, 401).await["type"], INSUFFICIENT);
    let r = auth("/admin", "x-original-uri").await.unwrap();
    assert_eq!(problem(r, 401).await["type"], INSUFFICIENT);
    let r = authenticate(&s, &id, json!({"aal": "aal2", "method": "webauthn"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        auth("/admin/users", "x-original-uri")
            .await
            .unwrap()
            .status(),
        200
    );
    // The longest prefix wins: payments also need a fresh authentication.
    assert_eq!(
        auth("/admin/payments/1", "x-forwarded-uri")
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = auth("/admin/payments/1", "x-forwarded-uri").await.unwrap();
    assert_eq!(problem(r, 401).await["type"], REAUTH);
    assert_eq!(
        auth("/admin/users", "x-forwarded-uri")
            .await
            .unwrap()
            .status(),
        200
    );
    s.shutdown().await;
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn access_tokens_carry_the_authentication_claims(backend: Backend) {
    let s = start(backend).await;
    let created = create(
        &s,
        json!({"user_id": "dave", "mode": "jwt", "aal": "aal2", "amr": ["pwd", "otp"]}),
    )
    .await;
    let c = claims(created["access_token"].as_str().unwrap());
    assert_eq!(c["acr"], "aal2");
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    let auth_time = c["auth_time"].as_u64().unwrap();
    assert!(auth_time <= c["iat"].as_u64().unwrap());
    // The access token's session must meet a requirement too.
    let access = created["access_token"].as_str().unwrap();
    let p = problem(
        introspect(&s, json!({"token": access, "min_aal": "aal3"})).await,
        401,
    )
    .await;
    assert_eq!(p["type"], INSUFFICIENT);
    assert_eq!(me(&s, access, "?min_aal=aal2").await.status(), 200);
    // After a step-up, the next refresh carries the new context.
    let id = created["session"]["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = authenticate(&s, id, json!({"aal": "aal3", "method": "hwk"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(me(&s, access, "?min_aal=aal3").await.status(), 200);
    let r = s
        .anon(Method::POST, "/v1/tokens/refresh")
        .json(&json!({"refresh_token": created["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().await.unwrap();
    let c = claims(pair["access_token"].as_str().unwrap());
    assert_eq!(c["acr"], "aal3");
    assert_eq!(c["amr"], json!(["pwd", "otp", "hwk"]));
    assert!(c["auth_time"].as_u64().unwrap() > auth_time);
    s.shutdown().await;
}

async fn bad_authentication_input_is_4xx(backend: Backend) {
    let s = start(backend).await;
    let created = create(&s, json!({"user_id": "erin"})).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"user_id": "erin", "aal": "aal4"}),
        json!({"user_id": "erin", "aal": 2}),
        json!({"user_id": "erin", "amr": "pwd"}),
        json!({"user_id": "erin", "amr": ["has space"]}),
        json!({"user_id": "erin", "authenticated_at": "yesterday"}),
        json!({"user_id": "erin", "authenticated_at": "2999-01-01T00:00:00Z"}),
    ] {
        let r = s
            .admin(Method::POST, "/v1/sessions")
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    for body in [
        json!({}),
        json!({"aal": "aal2"}),
        json!({"aal": "aal9", "method": "otp"}),
        json!({"method": ""}),
        json!({"method": "otp", "extra": 1}),
    ] {
        problem(authenticate(&s, &id, body).await, 400).await;
    }
    for body in [
        json!({"token": token, "min_aal": "high"}),
        json!({"token": token, "max_age": -1}),
        json!({"token": token, "max_age": "soon"}),
    ] {
        problem(introspect(&s, body).await, 400).await;
    }
    problem(me(&s, &token, "?min_aal=aal7").await, 400).await;
    problem(me(&s, &token, "?max_age=x").await, 400).await;
    // Without the API key the step-up route is closed.
    let r = s
        .anon(Method::POST, &format!("/v1/sessions/{id}/authenticate"))
        .json(&json!({"aal": "aal3", "method": "hwk"}))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let got: Value = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["aal"], "aal1", "nothing changed");
    s.shutdown().await;
}
