//! A script that fails inside Redis is reported with the file and line it
//! failed at (`get.lua:7`, `common.lua:40`), not the position in the
//! concatenated source Redis ran.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use sessiond_engine::{CreateRequest, Error, ManualClock, Policy};
use sessiond_testkit::redis_server::RedisServer;

#[tokio::test]
async fn script_errors_point_at_the_real_file_and_line() {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let store = common::store(&server, "t:", Duration::from_secs(2)).await;
    let clock = ManualClock::new();
    let engine = common::engine(&store, Policy::default(), &clock);
    let created = engine
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    // Damage the index: a string where a sorted set belongs.
    let mut admin = common::admin(&server).await;
    let key = common::all_keys(&mut admin)
        .await
        .into_iter()
        .find(|k| k.ends_with(":i"))
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("not a sorted set")
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = engine.get(created.session.id.as_str()).await.unwrap_err();
    let Error::Corrupt(message) = &err else {
        panic!("expected a corrupt record: {err:?}")
    };
    assert!(message.contains("WRONGTYPE"), "{message}");
    assert!(!message.contains("user_script"), "{message}");
    let (file, line) = message
        .rsplit_once("on @")
        .and_then(|(_, at)| at.trim_end_matches('.').split_once(':'))
        .expect("a file:line position");
    assert!(file.ends_with(".lua"), "{message}");
    let source =
        std::fs::read_to_string(format!("{}/src/lua/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let n: usize = line.parse().unwrap();
    let text = source.lines().nth(n - 1).unwrap();
    assert!(text.contains("redis.call"), "{file}:{n} is {text:?}");
}
