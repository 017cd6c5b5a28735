//! The HTTP API of docs/http-api.md against both stores, with a real HTTP
//! client on a real socket: the full lifecycle and every status code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{API_KEY, Backend, TestServer, problem};
use reqwest::Method;
use serde_json::{Value, json};

every_store!(
    full_lifecycle,
    cookie_sessions_need_csrf_proof_for_changes,
    admin_errors_are_problems,
    public_errors_are_problems,
    limits_give_413_431_and_409,
    ops_routes_answer,
    user_responses_are_never_cached,
);

/// Every answer that carries a session, a token or a CSRF token says
/// `Cache-Control: no-store`; the JWKS stays cacheable.
async fn user_responses_are_never_cached(backend: Backend) {
    let s = TestServer::start(backend).await;
    let created = s
        .admin(Method::POST, "/v1/sessions")
        .json(&serde_json::json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    let no_store = |r: &reqwest::Response, what: &str| {
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
    };
    no_store(&created, "create");
    let token = created.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = format!("sessiond={token}");
    let me = s
        .anon(Method::GET, "/v1/me")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    no_store(&me, "/v1/me");
    let csrf = me.headers()["x-csrf-token"].to_str().unwrap().to_owned();
    for path in ["/v1/me/sessions", "/v1/auth"] {
        let r = s
            .anon(Method::GET, path)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        no_store(&r, path);
    }
    let r = s
        .anon(Method::GET, "/v1/me")
        .header("cookie", "sessiond=sds_wrong")
        .send()
        .await
        .unwrap();
    no_store(&r, "401");
    let r = s
        .anon(Method::POST, "/v1/me/logout")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().contains_key("set-cookie"));
    no_store(&r, "logout");
    let r = s
        .anon(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    s.shutdown().await;
}

async fn full_lifecycle(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Two devices of alice, one of bob.
    let (laptop, laptop_token) = s.create("alice").await;
    // Distinct creation times (milliseconds), so "newest first" is one order.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (phone, phone_token) = s.create("alice").await;
    let (_, bob_token) = s.create("bob").await;
    assert_eq!(laptop["device"]["kind"], "desktop");
    assert_eq!(laptop["device"]["browser"], "Chrome");
    assert!(laptop.get("token").is_none() && laptop.get("token_hash").is_none());

    // Introspect.
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": laptop_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["session"]["id"], laptop["id"]);
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": "sds_nope", "touch": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"active": false}));

    // Me, as the laptop (Bearer).
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(&laptop_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], laptop["id"]);

    // Admin list, newest first.
    let r = s
        .admin(Method::GET, "/v1/users/alice/sessions")
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["count"], 2);
    assert_eq!(list["sessions"][0]["id"], phone["id"]);

    // Patch: merge then replace; expiry unchanged.
    let id = laptop["id"].as_str().unwrap();
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {"cart": 3, "theme": "dark"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {"cart": null}}))
        .send()
        .await
        .unwrap();
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["data"], json!({"theme": "dark"}));
    assert_eq!(patched["expires_at"], laptop["expires_at"]);
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {"x": 1}, "merge": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"], json!({"x": 1}));

    // Extend (never past the absolute deadline) and get.
    let r = s
        .admin(Method::POST, &format!("/v1/sessions/{id}/extend"))
        .json(&json!({"idle_ttl_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Rotate: the old token is dead at once.
    let laptop_token2 = s.rotate(id).await;
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(&laptop_token)
        .send()
        .await
        .unwrap();
    let challenge = r.headers().get("www-authenticate").cloned();
    problem(r, 401).await;
    assert!(challenge.is_some());
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(&laptop_token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // My sessions, with `current`.
    let r = s
        .anon(Method::GET, "/v1/me/sessions")
        .bearer_auth(&laptop_token2)
        .send()
        .await
        .unwrap();
    let mine: Value = r.json().await.unwrap();
    let current: Vec<_> = mine["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop["id"]);

    // Forward auth.
    let r = s
        .anon(Method::GET, "/v1/auth")
        .bearer_auth(&laptop_token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user-id"], "alice");
    assert_eq!(r.headers()["x-session-id"], id);
    problem(s.anon(Method::GET, "/v1/auth").send().await.unwrap(), 401).await;

    // Revoke one device from the laptop; bob's session is not alice's to revoke.
    let phone_id = phone["id"].as_str().unwrap();
    let r = s
        .anon(Method::DELETE, &format!("/v1/me/sessions/{phone_id}"))
        .bearer_auth(&laptop_token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    problem(
        s.anon(Method::GET, "/v1/me")
            .bearer_auth(&phone_token)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    let (bob_session, _) = {
        let r = s
            .admin(Method::GET, "/v1/users/bob/sessions")
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        (v["sessions"][0].clone(), ())
    };
    let bob_id = bob_session["id"].as_str().unwrap();
    problem(
        s.anon(Method::DELETE, &format!("/v1/me/sessions/{bob_id}"))
            .bearer_auth(&laptop_token2)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    // Revoke others: create two more alice devices, sign them out.
    let (_, t3) = s.create("alice").await;
    s.create("alice").await;
    let r = s
        .anon(Method::DELETE, "/v1/me/sessions")
        .bearer_auth(&laptop_token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"revoked": 2}));
    problem(
        s.anon(Method::GET, "/v1/me")
            .bearer_auth(&t3)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    // Logout clears the cookie and ends the session.
    let r = s
        .anon(Method::POST, "/v1/me/logout")
        .bearer_auth(&laptop_token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("sessiond=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    problem(
        s.anon(Method::GET, "/v1/me")
            .bearer_auth(&laptop_token2)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    // Admin revoke and revoke-all; 204 also when already gone.
    let r = s
        .admin(
            Method::DELETE,
            &format!("/v1/sessions/{bob_id}?reason=password_changed"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .admin(Method::DELETE, &format!("/v1/sessions/{bob_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    problem(
        s.anon(Method::GET, "/v1/me")
            .bearer_auth(&bob_token)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    s.create("carol").await;
    let (keep, _) = s.create("carol").await;
    let keep_id = keep["id"].as_str().unwrap();
    let r = s
        .admin(
            Method::DELETE,
            &format!("/v1/users/carol/sessions?except={keep_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"revoked": 1}));

    // Stats count what happened.
    let r = s.admin(Method::GET, "/v1/stats").send().await.unwrap();
    let stats: Value = r.json().await.unwrap();
    assert_eq!(stats["store"], "ok");
    assert!(stats["created"].as_u64().unwrap() >= 7, "{stats}");
    // alice and bob are signed out everywhere; carol keeps one.
    assert_eq!(stats["live_sessions"], 1, "{stats}");
    // One device signed out from the laptop, two by "sign out the others".
    assert_eq!(stats["revoked_by_reason"]["revoked_by_user"], 1, "{stats}");
    assert_eq!(
        stats["revoked_by_reason"]["signed_out_other_devices"], 2,
        "{stats}"
    );
    s.shutdown().await;
}

async fn cookie_sessions_need_csrf_proof_for_changes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, token) = s.create("alice").await;
    let (other, _) = s.create("alice").await;
    let other_id = other["id"].as_str().unwrap();
    let cookie = format!("sessiond={token}");
    // Reads need no proof; /v1/me hands out the CSRF token.
    let r = s
        .anon(Method::GET, "/v1/me")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csrf = r.headers()["x-csrf-token"].to_str().unwrap().to_owned();
    // A change without proof: 403, and nothing happened.
    let path = format!("/v1/me/sessions/{other_id}");
    problem(
        s.anon(Method::DELETE, &path)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    let wrong = s
        .anon(Method::DELETE, &path)
        .header("cookie", &cookie)
        .header("x-csrf-token", "forged")
        .send()
        .await
        .unwrap();
    problem(wrong, 403).await;
    let cross = s
        .anon(Method::DELETE, &path)
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    problem(cross, 403).await;
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{other_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the refused change did nothing");
    // With the double-submit token: allowed.
    let r = s
        .anon(Method::DELETE, &path)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // A same-origin Origin header is no substitute for the token…
    let host = s.addr.to_string();
    let same_origin = || {
        s.anon(Method::DELETE, "/v1/me/sessions")
            .header("cookie", &cookie)
            .header("origin", format!("http://{host}"))
    };
    problem(same_origin().send().await.unwrap(), 403).await;
    // …a cross-site request is refused even with it (another scheme is
    // another origin; Sec-Fetch-Site speaks for the browser)…
    for (name, value) in [
        ("origin", format!("https://{host}")),
        ("origin", "null".to_owned()),
        ("sec-fetch-site", "cross-site".to_owned()),
    ] {
        let r = s
            .anon(Method::DELETE, "/v1/me/sessions")
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header(name, value)
            .send()
            .await
            .unwrap();
        problem(r, 403).await;
    }
    // …and with it, from the same origin: allowed.
    let r = same_origin()
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bearer needs no CSRF proof.
    let r = s
        .anon(Method::POST, "/v1/me/logout")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    s.shutdown().await;
}

async fn admin_errors_are_problems(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.limits.failed_auth_per_minute = 10_000).await;
    // 401: no key, wrong key.
    problem(
        s.anon(Method::GET, "/v1/users/alice/sessions")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    let r = s
        .anon(Method::GET, "/v1/users/alice/sessions")
        .bearer_auth("sdk_wrong")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    // 400: malformed JSON, unknown field, wrong type, empty user id, bad ip, bad reason.
    let bad_bodies = [
        "{",
        "[]",
        "null",
        r#"{"user_id": "a", "surprise": 1}"#,
        r#"{"user_id": 5}"#,
        r#"{"user_id": ""}"#,
        r#"{"user_id": "a", "ip": "nope"}"#,
        r#"{"user_id": "a", "idle_ttl_seconds": 0}"#,
        r#"{"user_id": "a", "data": [1]}"#,
    ];
    for body in bad_bodies {
        let r = s
            .admin(Method::POST, "/v1/sessions")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        problem(r, 400).await;
    }
    let (sess, _) = s.create("alice").await;
    let id = sess["id"].as_str().unwrap();
    problem(
        s.admin(
            Method::DELETE,
            &format!("/v1/sessions/{id}?reason=has%20space"),
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    problem(
        s.admin(Method::DELETE, &format!("/v1/sessions/{id}?surprise=1"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // An id of any shape that names no live session is 404, on every
    // route that takes one (a shape check would tell which are well formed).
    for bad in [
        "not-an-id",
        "x",
        "..%2F..%2Fetc",
        &"A".repeat(34),
        "%7Bx%7D",
    ] {
        let path = format!("/v1/sessions/{bad}");
        problem(s.admin(Method::GET, &path).send().await.unwrap(), 404).await;
        let patch = s.admin(Method::PATCH, &path).json(&json!({"data": {}}));
        problem(patch.send().await.unwrap(), 404).await;
        let extend = s
            .admin(Method::POST, &format!("{path}/extend"))
            .json(&json!({}));
        problem(extend.send().await.unwrap(), 404).await;
        let rotate = s.admin(Method::POST, &format!("{path}/rotate"));
        problem(rotate.send().await.unwrap(), 404).await;
        let r = s.admin(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(r.status(), 204, "DELETE {path}: gone already");
    }
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {}, "extra": true}))
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    // 415: no JSON content type.
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .body(r#"{"user_id":"a"}"#)
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    // 404: unknown session, unknown route; 405 wrong method.
    let ghost = format!("{}AAAAAAAAAAAAAAAAAAAAAA", &id[..11]);
    problem(
        s.admin(Method::GET, &format!("/v1/sessions/{ghost}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        s.admin(Method::PATCH, &format!("/v1/sessions/{ghost}"))
            .json(&json!({"data": {}}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        s.admin(Method::POST, &format!("/v1/sessions/{ghost}/rotate"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        s.admin(Method::POST, &format!("/v1/sessions/{ghost}/extend"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        s.admin(Method::GET, "/v1/nothing-here")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        s.admin(Method::PUT, "/v1/sessions").send().await.unwrap(),
        405,
    )
    .await;
    s.shutdown().await;
}

async fn public_errors_are_problems(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.limits.failed_auth_per_minute = 10_000).await;
    for path in ["/v1/me", "/v1/me/sessions", "/v1/auth"] {
        let r = s.anon(Method::GET, path).send().await.unwrap();
        assert!(r.headers().contains_key("www-authenticate"));
        problem(r, 401).await;
        for bad in [
            "",
            "x",
            "sds_",
            &"A".repeat(5000),
            "sds_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            problem(
                s.anon(Method::GET, path)
                    .bearer_auth(bad)
                    .send()
                    .await
                    .unwrap(),
                401,
            )
            .await;
            problem(
                s.anon(Method::GET, path)
                    .header("cookie", format!("sessiond={bad}"))
                    .send()
                    .await
                    .unwrap(),
                401,
            )
            .await;
        }
    }
    problem(
        s.anon(Method::POST, "/v1/me/logout").send().await.unwrap(),
        401,
    )
    .await;
    problem(
        s.anon(Method::DELETE, "/v1/me/sessions")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // Public routes do not accept the admin key as a session.
    problem(
        s.anon(Method::GET, "/v1/me")
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    s.shutdown().await;
}

async fn limits_give_413_431_and_409(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.max_sessions_policy = sessiond::config::MaxSessionsPolicy::Reject;
        c.roles.insert(
            "admin".into(),
            sessiond::config::RoleConfig {
                idle_ttl: std::time::Duration::from_secs(900),
                absolute_ttl: std::time::Duration::from_secs(3600),
                max_sessions: 2,
                ..Default::default()
            },
        );
    })
    .await;
    // Body over 64 KiB.
    let big = json!({"user_id": "a", "data": {"blob": "x".repeat(70 * 1024)}});
    problem(
        s.admin(Method::POST, "/v1/sessions")
            .json(&big)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    // Data over 16 KiB but body under 64 KiB.
    let data = json!({"user_id": "a", "data": {"blob": "x".repeat(17 * 1024)}});
    problem(
        s.admin(Method::POST, "/v1/sessions")
            .json(&data)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    let (sess, _) = s.create("a").await;
    let id = sess["id"].as_str().unwrap();
    let patch = json!({"data": {"blob": "x".repeat(17 * 1024)}});
    problem(
        s.admin(Method::PATCH, &format!("/v1/sessions/{id}"))
            .json(&patch)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    // Headers over 16 KiB: 431, also on public routes and unknown paths.
    for path in ["/v1/me", "/healthz", "/nowhere"] {
        problem(
            s.client
                .get(s.url(path))
                .header("x-padding", "p".repeat(17 * 1024))
                .send()
                .await
                .unwrap(),
            431,
        )
        .await;
    }
    // A long target counts too.
    problem(
        s.client
            .get(s.url(&format!("/v1/sessions/{}", "i".repeat(17 * 1024))))
            .send()
            .await
            .unwrap(),
        431,
    )
    .await;
    // User id over 256 bytes.
    let long = json!({"user_id": "u".repeat(257)});
    problem(
        s.admin(Method::POST, "/v1/sessions")
            .json(&long)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // 409: the reject policy.
    for _ in 0..2 {
        let r = s
            .admin(Method::POST, "/v1/sessions")
            .json(&json!({"user_id": "root", "role": "admin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(&json!({"user_id": "root", "role": "admin"}))
        .send()
        .await
        .unwrap();
    problem(r, 409).await;
    s.shutdown().await;
}

async fn ops_routes_answer(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.limits.failed_auth_per_minute = 10_000).await;
    assert_eq!(
        s.anon(Method::GET, "/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = s.anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ok", "store": "ok"})
    );
    s.create("alice").await;
    let r = s.anon(Method::GET, "/metrics").send().await.unwrap();
    let text = r.text().await.unwrap();
    for name in [
        "sessiond_http_requests_total",
        "sessiond_http_request_duration_seconds",
        "sessiond_sessions_created_total",
        "sessiond_live_sessions",
        "sessiond_store_operation_duration_seconds",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    let r = s.anon(Method::GET, "/openapi.json").send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Every route of docs/http-api.md is documented, with its methods.
    let expected = [
        ("post", "/v1/sessions"),
        ("get", "/v1/sessions"),
        ("post", "/v1/sessions/introspect"),
        ("get", "/v1/sessions/{id}"),
        ("patch", "/v1/sessions/{id}"),
        ("delete", "/v1/sessions/{id}"),
        ("post", "/v1/sessions/{id}/extend"),
        ("post", "/v1/sessions/{id}/rotate"),
        ("post", "/v1/sessions/{id}/authenticate"),
        ("get", "/v1/users/{user_id}/sessions"),
        ("delete", "/v1/users/{user_id}/sessions"),
        ("post", "/v1/users/{user_id}/revoke"),
        ("get", "/v1/users/{user_id}/history"),
        ("get", "/v1/users/{user_id}/presence"),
        ("put", "/v1/sessions/{id}/connections/{connection_id}"),
        ("delete", "/v1/sessions/{id}/connections/{connection_id}"),
        ("get", "/v1/events"),
        ("get", "/v1/stats"),
        ("post", "/v1/tokens/refresh"),
        ("get", "/v1/me"),
        ("get", "/v1/me/sessions"),
        ("get", "/v1/me/presence"),
        ("delete", "/v1/me/sessions/{id}"),
        ("delete", "/v1/me/sessions"),
        ("post", "/v1/me/logout"),
        ("get", "/v1/auth"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "documented operations: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} not documented"
        );
        // And the route exists: anything but 404-for-unknown-route / 405.
        let url_path = path
            .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .replace("{user_id}", "u")
            .replace("{connection_id}", "c");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = s.anon(m, &url_path).send().await.unwrap();
        assert_ne!(r.status(), 405, "{method} {path}");
        if r.status() == 404 {
            let body: Value = r.json().await.unwrap();
            assert_ne!(
                body["detail"], "no such route",
                "{method} {path} is not routed"
            );
        }
    }
    s.shutdown().await;
}
