//! The CSRF policy table (`sessiond_testkit::csrf_cases`) against the
//! server's cookie routes: `DELETE /v1/me/sessions` changes state, `GET
//! /v1/me` reads. The axum layer runs the same table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestServer};
use reqwest::Method;
use sessiond_testkit::csrf_cases::{Auth, CASES, with_host};

async fn csrf_of(s: &TestServer, token: &str) -> String {
    let r = s
        .anon(Method::GET, "/v1/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.headers()["x-csrf-token"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csrf_table_on_the_servers_cookie_routes() {
    let direct = TestServer::start(Backend::Embedded).await;
    let proxied = TestServer::start_with(Backend::Embedded, |c| {
        c.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
    })
    .await;
    let mut wrong = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let s = if case.via_trusted_proxy {
            &proxied
        } else {
            &direct
        };
        let host = s.addr.to_string();
        let (_, token) = s.create(&format!("user{i}")).await;
        let (_, other) = s.create(&format!("other{i}")).await;
        let (method, path) = if case.changes_state {
            (Method::DELETE, "/v1/me/sessions")
        } else {
            (Method::GET, "/v1/me")
        };
        let mut request = s.anon(method, path);
        request = match case.auth {
            Auth::Bearer => request.bearer_auth(&token),
            Auth::CookieOnly => request.header("cookie", format!("sessiond={token}")),
            Auth::CookieWithToken => request
                .header("cookie", format!("sessiond={token}"))
                .header("x-csrf-token", csrf_of(s, &token).await),
            Auth::CookieWithWrongToken => request
                .header("cookie", format!("sessiond={token}"))
                .header("x-csrf-token", csrf_of(s, &other).await),
        };
        for (name, value) in case.headers {
            request = request.header(*name, with_host(value, &host));
        }
        let status = request.send().await.unwrap().status().as_u16();
        if let Err(why) = case.judge(status) {
            wrong.push(why);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    direct.shutdown().await;
    proxied.shutdown().await;
}
