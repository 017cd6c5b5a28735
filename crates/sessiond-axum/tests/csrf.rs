//! The CSRF policy table (`sessiond_testkit::csrf_cases`) against the layer:
//! `POST /count` changes the session's data, `GET /me` reads it. The server
//! runs the same table on its cookie routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use sessiond_axum::{CookieSettings, EngineBackend, SessionLayer, TrustedProxies};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{CreateRequest, Engine, Policy, csrf_token_for};
use sessiond_testkit::csrf_cases::{Auth, CASES, with_host};
use tower::ServiceExt;

const HOST: &str = "app.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csrf_table_on_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    let engine = Engine::new(Arc::new(store), Policy::default());
    let layer = SessionLayer::new(EngineBackend::new(engine.clone()))
        .with_cookie(CookieSettings {
            name: "sid".into(),
            ..CookieSettings::default()
        })
        .unwrap()
        .with_trusted_proxies(TrustedProxies::parse(&["127.0.0.1"]).unwrap());
    let app = common::routes().layer(layer);
    let login = |user: String| {
        let engine = engine.clone();
        async move {
            let created = engine
                .create(CreateRequest {
                    user_id: user,
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            created.token.expose().to_owned()
        }
    };
    let mut wrong = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let token = login(format!("user{i}")).await;
        let other = login(format!("other{i}")).await;
        let (method, path) = if case.changes_state {
            (Method::POST, "/count")
        } else {
            (Method::GET, "/me")
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST);
        request = match case.auth {
            Auth::Bearer => request.header("authorization", format!("Bearer {token}")),
            Auth::CookieOnly => request.header("cookie", format!("sid={token}")),
            Auth::CookieWithToken => request
                .header("cookie", format!("sid={token}"))
                .header("x-csrf-token", csrf_token_for(&token)),
            Auth::CookieWithWrongToken => request
                .header("cookie", format!("sid={token}"))
                .header("x-csrf-token", csrf_token_for(&other)),
        };
        for (name, value) in case.headers {
            request = request.header(*name, with_host(value, HOST));
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: [u8; 4] = if case.via_trusted_proxy {
            [127, 0, 0, 1]
        } else {
            [192, 0, 2, 44]
        };
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((peer, 50000))));
        let status = app
            .clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16();
        if let Err(why) = case.judge(status) {
            wrong.push(why);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
