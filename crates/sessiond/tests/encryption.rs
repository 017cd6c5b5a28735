//! Encryption at rest on every store: with `[encryption] key_file`, the API
//! answers as before, but the raw store (the SQLite files, a Redis dump,
//! the PostgreSQL tables as text) holds neither the user agent, the IP nor
//! any data value; `sessiond keys rotate --data` adds a key that seals new
//! writes while the old records stay readable, and a record whose key is
//! gone is a 500 problem, never garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

every_store!(sealed_values_never_reach_the_store_in_the_clear);

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 GrepUA7731";
const IP: &str = "198.51.100.77";
const SECRETS: [&str; 4] = ["GrepUA7731", "DATA-VALUE-5521", "DATA-VALUE-6632", IP];

/// Everything the store holds, as bytes.
fn raw_store(s: &TestServer) -> Vec<u8> {
    if let Some(path) = s.store_url.strip_prefix("embedded:") {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                out.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(out.len() > 4096, "the SQLite files were read");
        return out;
    }
    if let Some(redis) = &s.redis {
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(["-p", &redis.port().to_string()])
                .args(args)
                .output()
                .expect("redis-cli (installed with redis-server)");
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // An uncompressed dump, so that nothing hides in LZF.
        cli(&["CONFIG", "SET", "rdbcompression", "no"]);
        assert!(cli(&["SAVE"]).contains("OK"));
        let dir = cli(&["CONFIG", "GET", "dir"]);
        let dir = dir.lines().nth(1).unwrap().trim().to_owned();
        let dump = std::fs::read(PathBuf::from(dir).join("dump.rdb")).unwrap();
        assert!(dump.len() > 1000, "the dump holds the keys");
        return dump;
    }
    let out = Command::new("psql")
        .arg(&s.store_url)
        .args([
            "-At",
            "-c",
            "SELECT t::text FROM sessiond.sessions t UNION ALL SELECT t::text FROM sessiond.events t",
        ])
        .output()
        .expect("psql (postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 500, "the tables were read");
    out.stdout
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn create(s: &TestServer, user: &str, card: &str) -> Value {
    let r = s
        .admin(Method::POST, "/v1/sessions")
        .json(
            &json!({"user_id": user, "user_agent": UA, "ip": IP, "data": {"card": card, "n": 42}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn get(s: &TestServer, id: &str) -> Value {
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn rotate(key_file: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["keys", "rotate", "--data", "--key-file"])
        .arg(key_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("new data key k2"));
}

async fn sealed_values_never_reach_the_store_in_the_clear(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("data.keys");
    let path = key_file.clone();
    let s = TestServer::start_with(backend, move |c| c.encryption.key_file = Some(path)).await;
    assert!(key_file.exists(), "created at start-up");

    let first = create(&s, "alice", "DATA-VALUE-5521").await;
    let id = first["session"]["id"].as_str().unwrap().to_owned();
    let token = first["token"].as_str().unwrap().to_owned();
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {"note": "DATA-VALUE-6632"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The API sees the plain values.
    let got = get(&s, &id).await;
    assert_eq!(got["device"]["user_agent"], UA);
    assert_eq!(got["device"]["ip"], IP);
    assert_eq!(got["device"]["browser"], "Chrome");
    assert_eq!(
        got["data"],
        json!({"card": "DATA-VALUE-5521", "n": 42, "note": "DATA-VALUE-6632"})
    );
    let r = s
        .admin(Method::POST, "/v1/sessions/introspect")
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["session"]["data"]["card"], "DATA-VALUE-5521");
    let listed: Value = s
        .admin(Method::GET, "/v1/users/alice/sessions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["sessions"][0]["device"]["ip"], IP);

    // The admin listing filters by the opened IP.
    let page: Value = s
        .admin(Method::GET, &format!("/v1/sessions?ip={IP}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(page["sessions"][0]["device"]["user_agent"], UA);
    let none: Value = s
        .admin(Method::GET, "/v1/sessions?ip=192.0.2.1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["sessions"], json!([]));

    // The store does not.
    let raw = raw_store(&s);
    for secret in SECRETS {
        assert!(!holds(&raw, secret), "{secret} is in the raw store");
    }
    assert!(holds(&raw, "sdenc:"), "sealed values are there");
    assert!(holds(&raw, ":k1:"));

    // A new key seals new writes; the old records still open.
    rotate(&key_file);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = create(&s, "bob", "DATA-VALUE-5521").await;
    let raw = raw_store(&s);
    assert!(holds(&raw, ":k2:"), "new writes use the new key");
    for secret in SECRETS {
        assert!(!holds(&raw, secret), "{secret} is in the raw store");
    }
    assert_eq!(get(&s, &id).await["data"]["note"], "DATA-VALUE-6632");
    let bob = second["session"]["id"].as_str().unwrap();
    assert_eq!(get(&s, bob).await["device"]["user_agent"], UA);

    // Without the key that sealed a record, reading it is an error, never
    // garbage and never its content.
    let text = std::fs::read_to_string(&key_file).unwrap();
    let only_new: String = text
        .lines()
        .filter(|l| l.starts_with("k2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&key_file, only_new).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = s
        .admin(Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains("urn:sessiond:problem:internal"), "{body}");
    assert!(
        !body.contains("DATA-VALUE") && !body.contains("k1"),
        "{body}"
    );
    assert_eq!(
        get(&s, bob).await["data"]["card"],
        "DATA-VALUE-5521",
        "k2's records still open"
    );

    // A value that looks sealed is not the app's to write.
    let r = s
        .admin(Method::PATCH, &format!("/v1/sessions/{id}"))
        .json(&json!({"data": {"x": "sdenc:1:k1:AAAA"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.shutdown().await;
}
