//! The layer's behaviour, the same on every backend: cookies, login and
//! fixation, data saved in at most one write, logout, devices, CSRF.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Call, DESKTOP_UA, Harness, MOBILE_UA};
use serde_json::json;
use sessiond_engine::Op;

layer_tests!(
    anonymous_requests_reach_handlers_without_a_session,
    login_sets_a_hardened_cookie_and_records_the_device,
    data_survives_between_requests,
    a_handler_that_changes_nothing_writes_nothing,
    login_replaces_the_presented_session,
    logout_ends_the_session_and_clears_the_cookie,
    devices_and_signing_out_other_devices,
    unsafe_cookie_requests_need_the_csrf_token,
    cross_origin_changes_are_refused,
    bearer_requests_need_no_csrf_token,
);

async fn anonymous_requests_reach_handlers_without_a_session(h: Harness) {
    let r = h.send(Call::get("/me")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(h.send(Call::get("/maybe")).await.body, "anonymous");
    let plain = h.send(Call::get("/plain")).await;
    assert_eq!(plain.body, "plain");
    assert!(plain.set_cookies().is_empty());
    // Anonymous pages stay cacheable (the app decides).
    assert!(!plain.headers.contains_key("cache-control"));
    // No credential, no store call at all (a remote server's own statistics
    // gauge counts live sessions in the background).
    let calls = h.store.observer().counts();
    let session_calls: u64 = calls
        .iter()
        .filter(|(op, _)| !matches!(**op, "count_live" | "ping"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(session_calls, 0, "{calls:?}");
    // A token that names nothing is anonymous too, and its cookie is cleared.
    let r = h
        .send(Call::get("/maybe").cookie("sds_not-a-real-token"))
        .await;
    assert_eq!(r.body, "anonymous");
    assert!(r.clears_cookie(), "{:?}", r.set_cookies());
    let r = h
        .send(Call::get("/me").cookie("sds_not-a-real-token"))
        .await;
    assert_eq!(r.status, 401);
    // The app can tell "your session ended" from "never signed in".
    assert_eq!(h.send(Call::get("/ended")).await.body, "false");
    let r = h
        .send(Call::get("/ended").cookie("sds_not-a-real-token"))
        .await;
    assert_eq!(r.body, "true");
}

async fn login_sets_a_hardened_cookie_and_records_the_device(h: Harness) {
    let r = h
        .send(
            Call::post("/login")
                .header("user-agent", MOBILE_UA)
                .form("user=alice&role="),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let c = &cookies[0];
    let token = r.new_token().unwrap();
    assert!(token.starts_with("sds_"), "a session token: {c}");
    for attr in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(c.contains(attr), "{attr} missing from {c}");
    }
    // Lives as long as the session's absolute lifetime (30 days by default).
    let max_age: u64 = c.split("Max-Age=").nth(1).unwrap().parse().unwrap();
    assert!((30 * 86400 - 5..=30 * 86400).contains(&max_age), "{c}");
    assert_eq!(r.headers["cache-control"], "no-store");

    let me = h.send(Call::get("/me").cookie(&token)).await;
    // A page rendered for a signed-in user is not kept by any cache (after
    // a sign-out, Back must not show it).
    assert_eq!(me.headers["cache-control"], "no-store");
    let me = me.json();
    assert_eq!(me["user"], "alice");
    assert_eq!(me["id"], r.body);
    let devices = h.send(Call::get("/devices").cookie(&token)).await.json();
    let device = &devices[0]["device"];
    assert_eq!(device["kind"], "mobile");
    assert_eq!(device["os"], "iPhone");
    assert_eq!(device["ip"], "192.0.2.44");
    assert_eq!(device["user_agent"], MOBILE_UA);

    // A role from the form, and bad input is a clear 400 that creates nothing.
    let admin = h
        .send(Call::post("/login").form("user=root&role=admin"))
        .await;
    let admin_token = admin.new_token().unwrap();
    let me = h.send(Call::get("/me").cookie(&admin_token)).await.json();
    assert_eq!(me["role"], "admin");
    let empty = h.send(Call::post("/login").form("user=&role=")).await;
    assert_eq!(empty.status, 400, "{}", empty.body);
    assert!(empty.set_cookies().is_empty());
}

async fn data_survives_between_requests(h: Harness) {
    let (token, csrf) = h.login("bob", DESKTOP_UA).await;
    for expected in 1..=3 {
        let r = h
            .send(Call::post("/count").cookie(&token).csrf(&csrf))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, expected.to_string());
    }
    h.send(Call::post("/set3").cookie(&token).csrf(&csrf)).await;
    let data = &h.send(Call::get("/me").cookie(&token)).await.json()["data"];
    assert_eq!(
        *data,
        json!({"count": 3, "a": 1, "b": {"nested": [1, 2]}, "c": "three"})
    );
    let r = h
        .send(Call::post("/remove/b").cookie(&token).csrf(&csrf))
        .await;
    assert_eq!(r.body, "true");
    let r = h
        .send(Call::post("/remove/b").cookie(&token).csrf(&csrf))
        .await;
    assert_eq!(r.body, "false");
    let data = &h.send(Call::get("/me").cookie(&token)).await.json()["data"];
    assert_eq!(*data, json!({"count": 3, "a": 1, "c": "three"}));
    // Reading a key as the wrong type is the app's bug: 500, nothing leaks.
    let r = h.send(Call::get("/wrong-type").cookie(&token)).await;
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("count"), "{}", r.body);
}

async fn a_handler_that_changes_nothing_writes_nothing(h: Harness) {
    let (token, csrf) = h.login("carol", DESKTOP_UA).await;
    let before = h.store.observer().counts();
    let writes = h.store.observer().writes();

    // Reading the session: one introspection (its touch is coalesced: none
    // is due within the touch interval), no write.
    let r = h.send(Call::get("/noop").cookie(&token)).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty());
    let r = h.send(Call::get("/plain").cookie(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.store.observer().writes(),
        writes,
        "{:?}",
        h.store.observer().counts()
    );
    assert_eq!(
        h.store.observer().calls(Op::Introspect),
        before["introspect"] + 2
    );

    // Three changes in one handler: exactly one write.
    let r = h.send(Call::post("/set3").cookie(&token).csrf(&csrf)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        h.store.observer().writes(),
        writes + 1,
        "{:?}",
        h.store.observer().counts()
    );
    assert_eq!(
        h.store.observer().calls(Op::UpdateData),
        before.get("update_data").copied().unwrap_or(0) + 1
    );

    // Setting a value it already has is no change: no write.
    let r = h.send(Call::post("/same").cookie(&token).csrf(&csrf)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.store.observer().writes(),
        writes + 1,
        "{:?}",
        h.store.observer().counts()
    );
    // Removing a key that is not there is no change either.
    h.send(Call::post("/remove/zzz").cookie(&token).csrf(&csrf))
        .await;
    assert_eq!(
        h.store.observer().writes(),
        writes + 1,
        "{:?}",
        h.store.observer().counts()
    );
    // And nothing but introspections was called on the way.
    let after = h.store.observer().counts();
    for (op, n) in &after {
        let was = before.get(op).copied().unwrap_or(0);
        if !matches!(*op, "introspect" | "update_data" | "count_live" | "ping") {
            assert_eq!(*n, was, "unexpected {op} calls: {after:?}");
        }
    }
}

async fn login_replaces_the_presented_session(h: Harness) {
    let (first, csrf) = h.login("dave", DESKTOP_UA).await;
    let r = h
        .send(
            Call::post("/login")
                .cookie(&first)
                .csrf(&csrf)
                .form("user=dave&role="),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.new_token().unwrap();
    assert_ne!(first, second, "a login always hands out a new token");
    let old = h.send(Call::get("/me").cookie(&first)).await;
    assert_eq!(old.status, 401, "the token presented at login is dead");
    assert!(old.clears_cookie());
    assert_eq!(h.send(Call::get("/me").cookie(&second)).await.status, 200);
    let devices = h.send(Call::get("/devices").cookie(&second)).await.json();
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    // The CSRF token goes with the token.
    let new_csrf = h.send(Call::get("/me").cookie(&second)).await.json()["csrf"].clone();
    assert_ne!(new_csrf, json!(csrf));
}

async fn logout_ends_the_session_and_clears_the_cookie(h: Harness) {
    let (token, csrf) = h.login("erin", DESKTOP_UA).await;
    let r = h
        .send(Call::post("/logout").cookie(&token).csrf(&csrf))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.clears_cookie(), "{:?}", r.set_cookies());
    assert_eq!(h.send(Call::get("/me").cookie(&token)).await.status, 401);
    assert_eq!(
        h.send(Call::get("/ended").cookie(&token)).await.body,
        "true"
    );
    let sessions = h.engine.list_user("erin").await.unwrap();
    assert!(sessions.is_empty());
}

async fn devices_and_signing_out_other_devices(h: Harness) {
    let (laptop, laptop_csrf) = h.login("frank", DESKTOP_UA).await;
    // Distinct creation times (milliseconds), so "newest first" is one order.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (phone, _) = h.login("frank", MOBILE_UA).await;
    let (other_user, other_csrf) = h.login("grace", DESKTOP_UA).await;

    let devices = h.send(Call::get("/devices").cookie(&laptop)).await.json();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0]["device"]["kind"], "mobile", "newest first");
    assert_eq!(devices[0]["current"], false);
    assert_eq!(devices[1]["device"]["kind"], "desktop");
    assert_eq!(devices[1]["current"], true);
    let phone_id = devices[0]["id"].as_str().unwrap().to_owned();

    // Another user cannot end frank's sessions.
    let r = h
        .send(
            Call::post(&format!("/sign-out/{phone_id}"))
                .cookie(&other_user)
                .csrf(&other_csrf),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(h.send(Call::get("/me").cookie(&phone)).await.status, 200);

    // "Sign out all other devices" from the laptop.
    let r = h
        .send(Call::post("/others").cookie(&laptop).csrf(&laptop_csrf))
        .await;
    assert_eq!(r.body, "1");
    let r = h.send(Call::get("/me").cookie(&phone)).await;
    assert_eq!(r.status, 401);
    assert!(r.clears_cookie());
    assert_eq!(h.send(Call::get("/me").cookie(&laptop)).await.status, 200);
    assert_eq!(
        h.send(Call::get("/me").cookie(&other_user)).await.status,
        200
    );

    // One device by id.
    let (tablet, _) = h.login("frank", MOBILE_UA).await;
    let tablet_id = h.send(Call::get("/me").cookie(&tablet)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .send(
            Call::post(&format!("/sign-out/{tablet_id}"))
                .cookie(&laptop)
                .csrf(&laptop_csrf),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.send(Call::get("/me").cookie(&tablet)).await.status, 401);
    // Its own id: a logout.
    let laptop_id = h.send(Call::get("/me").cookie(&laptop)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .send(
            Call::post(&format!("/sign-out/{laptop_id}"))
                .cookie(&laptop)
                .csrf(&laptop_csrf),
        )
        .await;
    assert!(r.clears_cookie());
    assert_eq!(h.send(Call::get("/me").cookie(&laptop)).await.status, 401);
}

async fn unsafe_cookie_requests_need_the_csrf_token(h: Harness) {
    let (token, csrf) = h.login("heidi", DESKTOP_UA).await;
    let writes = h.store.observer().writes();
    let refused = [
        Call::post("/count").cookie(&token),
        Call::post("/count").cookie(&token).csrf("wrong"),
        Call::post("/count").cookie(&token).csrf(&csrf[1..]),
        Call::post("/note").cookie(&token).form("note=hi"),
        Call::post("/note")
            .cookie(&token)
            .form("note=hi&csrf_token=wrong"),
        // The header wins over the form: a wrong header is refused.
        Call::post("/note")
            .cookie(&token)
            .csrf("wrong")
            .form(&format!("note=hi&csrf_token={csrf}")),
        Call::new(axum::http::Method::DELETE, "/count").cookie(&token),
    ];
    for call in refused {
        let r = h.send(call).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    assert_eq!(
        h.store.observer().writes(),
        writes,
        "refused requests change nothing"
    );

    // Header, or form field (the handler still reads the whole form).
    let r = h
        .send(Call::post("/count").cookie(&token).csrf(&csrf))
        .await;
    assert_eq!(r.status, 200);
    let r = h
        .send(
            Call::post("/note")
                .cookie(&token)
                .form(&format!("note=hello+world&csrf_token={csrf}")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "hello world");
    // A form too large to look into (and no header): 413, not a guess.
    let big = format!("note={}&csrf_token={csrf}", "x".repeat(5000));
    let r = h.send(Call::post("/note").cookie(&token).form(&big)).await;
    assert_eq!(r.status, 413);
    // Safe methods need nothing.
    assert_eq!(h.send(Call::get("/me").cookie(&token)).await.status, 200);
}

async fn cross_origin_changes_are_refused(h: Harness) {
    let (token, csrf) = h.login("ivan", DESKTOP_UA).await;
    let refused = [
        Call::post("/login")
            .header("origin", "https://evil.test")
            .form("user=ivan&role="),
        Call::post("/login")
            .header("sec-fetch-site", "cross-site")
            .form("user=ivan&role="),
        Call::post("/count")
            .cookie(&token)
            .csrf(&csrf)
            .header("origin", "null"),
    ];
    for call in refused {
        let r = h.send(call).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.set_cookies().is_empty());
    }
    // Another scheme is another origin: this http app refuses an https page.
    let https = h
        .send(
            Call::post("/count")
                .cookie(&token)
                .csrf(&csrf)
                .header("origin", "https://app.test"),
        )
        .await;
    assert_eq!(https.status, 403, "{}", https.body);
    let same = h
        .send(
            Call::post("/count")
                .cookie(&token)
                .csrf(&csrf)
                .header("origin", "http://app.test")
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
}

async fn bearer_requests_need_no_csrf_token(h: Harness) {
    let (token, _) = h.login("judy", DESKTOP_UA).await;
    let r = h
        .send(Call::post("/count").header("authorization", &format!("Bearer {token}")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "1");
    // Not even from another origin: a page cannot make a browser send it.
    let r = h
        .send(
            Call::post("/count")
                .header("authorization", &format!("Bearer {token}"))
                .header("origin", "https://elsewhere.test"),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = h
        .send(Call::get("/me").header("authorization", "Bearer sds_nothing"))
        .await;
    assert_eq!(r.status, 401);
    assert!(
        r.set_cookies().is_empty(),
        "a Bearer failure leaves cookies alone"
    );
}
