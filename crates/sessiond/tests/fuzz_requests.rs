//! Property test of request parsing: random methods, paths, headers,
//! credentials and bodies never produce a 500 or a dropped connection, and
//! every 4xx is problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{API_KEY, Backend, TestServer};
use proptest::prelude::*;
use reqwest::Method;

const ROUTES: &[&str] = &[
    "/v1/sessions",
    "/v1/sessions/introspect",
    "/v1/sessions/{id}",
    "/v1/sessions/{id}/extend",
    "/v1/sessions/{id}/rotate",
    "/v1/sessions/{id}/authenticate",
    "/v1/users/{id}/sessions",
    "/v1/stats",
    "/v1/tokens/refresh",
    "/v1/me",
    "/v1/me/sessions",
    "/v1/me/sessions/{id}",
    "/v1/me/logout",
    "/v1/auth",
    "/.well-known/jwks.json",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/nope",
];

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "\\PC{0,200}".prop_map(String::into_bytes),
        (
            "\\PC{0,40}",
            prop_oneof![
                Just("null".to_owned()),
                Just("{}".to_owned()),
                Just("[]".to_owned()),
                "-?[0-9]{1,30}",
                "\"\\PC{0,40}\""
            ],
            proptest::collection::vec(("[a-z_]{1,12}", "\\PC{0,20}"), 0..4),
        )
            .prop_map(|(user, data, extra)| {
                let mut fields = vec![
                    format!("\"user_id\": {}", serde_json::to_string(&user).unwrap()),
                    format!("\"data\": {data}"),
                ];
                for (k, v) in extra {
                    fields.push(format!(
                        "{}: {}",
                        serde_json::to_string(&k).unwrap(),
                        serde_json::to_string(&v).unwrap()
                    ));
                }
                format!("{{{}}}", fields.join(",")).into_bytes()
            }),
    ]
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    auth: Option<String>,
    cookie: Option<String>,
    json: bool,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop_oneof![
            Just(Method::GET),
            Just(Method::POST),
            Just(Method::PATCH),
            Just(Method::DELETE),
            Just(Method::PUT)
        ],
        proptest::sample::select(ROUTES),
        prop_oneof![
            Just("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
            "[A-Za-z0-9_%.~-]{0,80}"
        ],
        proptest::option::of(prop_oneof![
            Just(API_KEY.to_owned()),
            "sds_[A-Za-z0-9_-]{0,60}",
            "[ -~]{0,80}"
        ]),
        proptest::option::of("[ -~]{0,80}"),
        any::<bool>(),
        body(),
        proptest::option::of(
            "[a-z]{1,8}=[A-Za-z0-9%]{0,12}(&[a-z]{1,8}=[A-Za-z0-9_%.-]{0,12}){0,2}",
        ),
    )
        .prop_map(|(method, route, id, auth, cookie, json, body, query)| Req {
            method,
            path: format!(
                "{}{}",
                route.replace("{id}", &id),
                query.map(|q| format!("?{q}")).unwrap_or_default()
            ),
            auth,
            cookie,
            json,
            body,
        })
}

#[test]
fn no_request_gets_a_500_and_every_4xx_is_a_problem() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start_with(Backend::Embedded, |c| {
        c.limits.failed_auth_per_minute = 1_000_000
    }));
    let config = ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(req in request())| {
        let mut b = server.client.request(req.method.clone(), server.url(&req.path));
        if let Some(a) = &req.auth {
            b = b.header("authorization", format!("Bearer {a}"));
        }
        if let Some(c) = &req.cookie {
            b = b.header("cookie", c);
        }
        if req.json {
            b = b.header("content-type", "application/json");
        }
        let Ok(built) = b.body(req.body.clone()).build() else {
            // The client refused to build it (invalid header or URL): nothing was sent.
            return Ok(());
        };
        let response = rt.block_on(server.client.execute(built));
        let response = response.map_err(|e| TestCaseError::fail(format!("connection failed: {e}")))?;
        let status = response.status().as_u16();
        prop_assert!(status != 500, "500 for {req:?}");
        if (400..500).contains(&status) {
            let ct = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
            prop_assert_eq!(ct.as_deref(), Some("application/problem+json"), "{} for {:?}", status, req);
        }
    });
    rt.block_on(server.shutdown());
}
