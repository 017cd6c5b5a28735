//! The `sessiond` binary end to end: `config check|print` and the operator
//! commands on an embedded store in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{CreateRequest, Engine, Policy, Store};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// The binary, run in `dir`, with no `SESSIOND_*` variable of ours leaking in.
fn sessiond(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    cmd.current_dir(dir).args(args);
    common::without_our_env(&mut cmd);
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The server keeps sessions it has read in memory (the near-cache); a
/// revocation by the command line, another process on the same database,
/// reaches its very next answer.
#[test]
fn a_revocation_from_the_command_line_reaches_a_running_server_at_once() {
    let rt = runtime();
    let server = rt.block_on(common::TestServer::start(common::Backend::Embedded));
    let store = server.embedded_store_url();
    let work = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let (session, token) = rt.block_on(server.create("alice"));
        assert!(rt.block_on(server.active(&token)));
        assert!(rt.block_on(server.active(&token)), "answered from memory");
        let id = session["id"].as_str().unwrap();
        let (code, out, err) = run(&mut sessiond(
            work.path(),
            &["sessions", "revoke", id, "--store", &store],
        ));
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, format!("revoked {id}\n"));
        assert!(
            !rt.block_on(server.active(&token)),
            "round {round}: the server still answered active"
        );
    }
    let (_, token) = rt.block_on(server.create("bob"));
    assert!(rt.block_on(server.active(&token)));
    let (code, _, err) = run(&mut sessiond(
        work.path(),
        &["sessions", "revoke-user", "bob", "--store", &store],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(!rt.block_on(server.active(&token)));
    let hits = rt
        .block_on(server.metric("sessiond_cache_lookups_total{result=\"hit\"}"))
        .unwrap();
    assert!(hits >= 5.0, "{hits}");
    rt.block_on(server.shutdown());
}

#[test]
fn config_check_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessiond.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:8080\"\n[roles.admin]\nidle_ttl = \"15m\"\nabsolute_ttl = \"12h\"\nmax_sessions = 2\n",
    )
    .unwrap();
    let (code, out, err) = run(sessiond(dir.path(), &["config", "check"]).arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("ok: {}\n", file.display()));
    assert_eq!(err, "");
}

#[test]
fn config_check_names_key_and_value_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[jwt]\naccess_ttl = \"15 parsecs\"\n",
            r#"invalid config: jwt.access_ttl = "15 parsecs" (from bad.toml:2): expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
        ),
        (
            "listn = \"1\"\n",
            r#"invalid config: unknown key "listn" in bad.toml:1 (did you mean "listen"?)"#,
        ),
        (
            "store = \"redis+cluster://h1\"\n",
            r#"invalid config: store = "redis+cluster://h1" (from bad.toml:1): "h1" has no port; expected redis+cluster://HOST:PORT,HOST:PORT,… (or rediss+cluster:// for TLS)"#,
        ),
        (
            "store = \"redis+sentinel://s1:26379,s2:26379\"\n",
            r#"invalid config: store = "redis+sentinel://s1:26379,s2:26379" (from bad.toml:1): the sentinel URL names no master; expected redis+sentinel://HOST:PORT,HOST:PORT,…/MASTER_NAME (or rediss+sentinel:// for TLS)"#,
        ),
        (
            "max_sessions_policy = \"random\"\n",
            r#"invalid config: max_sessions_policy = "random" (from bad.toml:1): expected one of evict_oldest, reject"#,
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        let (code, out, err) = run(&mut sessiond(dir.path(), &["config", "check", "bad.toml"]));
        assert_eq!(code, 2, "{text}");
        assert_eq!(out, "");
        assert_eq!(err, format!("{expected}\n"));
    }
    let (code, _, err) = run(&mut sessiond(
        dir.path(),
        &["config", "check", "missing.toml"],
    ));
    assert_eq!(code, 2);
    assert!(
        err.starts_with("invalid config: cannot read missing.toml: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

/// Every error of a file at once, one line each, in the file's order.
#[test]
fn config_check_reports_every_error_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "strict_roles = \"yes\"\n[limits]\nmax_body_bytes = 12.7\n[cookie]\nsecure = \"off\"\n",
    )
    .unwrap();
    let (code, out, err) = run(&mut sessiond(dir.path(), &["config", "check", "bad.toml"]));
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            r#"invalid config: strict_roles = "yes" (from bad.toml:1): expected true or false"#,
            "invalid config: limits.max_body_bytes = 12.7 (from bad.toml:3): expected a whole number above 0",
            r#"invalid config: cookie.secure = "off" (from bad.toml:5): expected true or false"#,
        ]
    );
}

#[test]
fn a_bad_environment_value_stops_any_command_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(sessiond(dir.path(), &["config", "print"])
            .env("SESSIOND_LIMITS__MAX_BODY_BYTES", "lots"));
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "invalid config: limits.max_body_bytes = \"lots\" (from environment variable SESSIOND_LIMITS__MAX_BODY_BYTES): expected a whole number above 0\n"
    );
}

/// An app's own `SESSIOND_URL` (or any variable that names no setting) is
/// a warning, not a reason to refuse every command.
#[test]
fn stray_environment_variables_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    sessiond_jwt::KeyRing::load_or_create(
        &dir.path().join("data/keys"),
        sessiond_jwt::Algorithm::EdDSA,
        1_700_000_000,
    )
    .unwrap();
    let (code, out, err) = run(sessiond(
        dir.path(),
        &["keys", "rotate", "--data-dir", "data", "--delay", "0s"],
    )
    .env("SESSIOND_URL", "http://127.0.0.1:7420"));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("new signing key "), "{out}");
    assert_eq!(
        err,
        "warning: ignoring environment variable SESSIOND_URL: sessiond has no setting \"url\"\n"
    );
    let (code, out, err) = run(sessiond(dir.path(), &["config", "print"])
        .env("SESSIOND_URL", "http://127.0.0.1:7420")
        .env("SESSIOND_LISTEN", "127.0.0.1:9"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:9\""), "{out}");
    assert_eq!(
        err,
        "warning: ignoring environment variable SESSIOND_URL: sessiond has no setting \"url\"\n"
    );
}

#[test]
fn config_print_shows_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessiond.toml");
    std::fs::write(
        &file,
        "api_key = \"file-key-0123456789abcdef\"\nstore = \"redis://:hunter2@cache:6379/\"\n",
    )
    .unwrap();
    let (code, out, err) = run(sessiond(
        dir.path(),
        &["config", "print", "--listen", "127.0.0.1:9000"],
    )
    .arg("--config")
    .arg(&file)
    .env("SESSIOND_JWT__ACCESS_TTL", "5m")
    .env("SESSIOND_API_KEY", "env-key-0123456789abcdef"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("api_key = \"***\""), "{out}");
    assert!(!out.contains("0123456789abcdef"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("store = \"redis://:***@cache:6379/\""),
        "{out}"
    );
    assert!(out.contains("listen = \"127.0.0.1:9000\""), "{out}");
    assert!(out.contains("access_ttl = \"5m\""), "{out}");
    // What is printed is a valid config file again.
    let printed = dir.path().join("printed.toml");
    std::fs::write(
        &printed,
        out.replace("\"***\"", "\"another-key-0123456789\""),
    )
    .unwrap();
    let (code, _, err) = run(sessiond(dir.path(), &["config", "check"]).arg(&printed));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn operator_commands_list_and_revoke_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store_url = format!("embedded:{}", db.display());
    let rt = runtime();
    let ids: Vec<String> = rt.block_on(async {
        let store = EmbeddedStore::open(&db, EmbeddedOptions::default())
            .await
            .unwrap();
        let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, Policy::default());
        let mut ids = Vec::new();
        for (i, user) in ["alice", "alice", "alice", "bob"].iter().enumerate() {
            let created = engine
                .create(CreateRequest {
                    user_id: (*user).to_owned(),
                    user_agent: Some(CHROME.to_owned()),
                    ip: Some(format!("203.0.113.{i}")),
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            ids.push(created.session.id.as_str().to_owned());
            // Distinct creation times, so "newest first" is one order.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        store.close().await;
        ids
    });
    let store_flag = ["--store", store_url.as_str()];
    let op = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(store_flag);
        run(&mut sessiond(dir.path(), &all))
    };

    let (code, out, err) = op(&["sessions", "list", "--user", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for column in ["ID", "CREATED", "LAST SEEN", "EXPIRES", "DEVICE", "IP"] {
        assert!(lines[0].contains(column), "{out}");
    }
    // Newest first.
    assert!(lines[1].starts_with(&ids[2]), "{out}");
    assert!(lines[3].starts_with(&ids[0]), "{out}");
    assert!(lines[1].contains("desktop/Chrome/Windows 10"), "{out}");
    assert!(lines[1].contains("203.0.113.2"), "{out}");

    let (code, out, err) = op(&["sessions", "revoke", &ids[0], "--reason", "stolen_laptop"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("revoked {}\n", ids[0]));
    let (code, out, _) = op(&["sessions", "revoke", &ids[0]]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing revoked"), "{out}");

    let (code, out, err) = op(&["sessions", "revoke-user", "alice", "--except", &ids[2]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "revoked 1 session of user \"alice\"\n");

    let (code, out, _) = op(&["sessions", "list", "--user", "alice"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with(&ids[2]));

    // No server runs here: the store answers what it can.
    let (code, out, err) = op(&["stats", "--user", "bob", "--url", "http://127.0.0.1:1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("note: "), "{err}");
    assert!(out.contains(": ok\nlive sessions: 2\n"), "{out}");
    assert!(out.contains("user \"bob\": 1 live sessions"), "{out}");
    let (code, out, _) = op(&["stats", "--json", "--user", "bob"]);
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["live_sessions"], 2, "{out}");
    assert_eq!(stats["store"], "ok", "{out}");
    assert_eq!(stats["user"]["live_sessions"], 1, "{out}");

    let (code, out, err) = op(&["sessions", "list", "--user", "alice", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["count"], 1, "{out}");
    assert_eq!(list["sessions"][0]["id"], ids[2].as_str(), "{out}");
    assert_eq!(list["sessions"][0]["device"]["browser"], "Chrome", "{out}");

    let (code, out, _) = op(&["sessions", "list", "--user", "carol"]);
    assert_eq!(code, 0);
    assert_eq!(out, "no live sessions for user \"carol\"\n");

    // Bad input is a usage error.
    let (code, _, _) = op(&["sessions", "revoke", "not-a-session-id"]);
    assert_eq!(code, 2);

    // The engine agrees with what the commands said.
    rt.block_on(async {
        let store = EmbeddedStore::open(&db, EmbeddedOptions::default())
            .await
            .unwrap();
        let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, Policy::default());
        assert_eq!(engine.count_user("alice").await.unwrap(), 1);
        assert_eq!(engine.count_user("bob").await.unwrap(), 1);
        store.close().await;
    });
}

/// `sessiond stats` asks the running server and prints the totals of
/// `/v1/stats`, as text or JSON.
#[test]
fn stats_prints_the_running_servers_totals() {
    let rt = runtime();
    let server = rt.block_on(common::TestServer::start(common::Backend::Embedded));
    let (session, _) = rt.block_on(server.create("alice"));
    rt.block_on(server.create("alice"));
    let id = session["id"].as_str().unwrap();
    let r = rt
        .block_on(
            server
                .admin(
                    reqwest::Method::DELETE,
                    &format!("/v1/sessions/{id}?reason=logout"),
                )
                .send(),
        )
        .unwrap();
    assert_eq!(r.status(), 204);
    let work = tempfile::tempdir().unwrap();
    let url = server.url("");
    let store = server.embedded_store_url();
    let stats = |extra: &[&str]| {
        let mut args = vec!["stats", "--url", url.as_str(), "--store", store.as_str()];
        args.extend(extra);
        run(sessiond(work.path(), &args).env("SESSIOND_API_KEY", common::API_KEY))
    };
    let (code, out, err) = stats(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    for line in [
        format!("server: {url}"),
        "live sessions: 1".to_owned(),
        "created since start: 2".to_owned(),
        "revoked since start: 1 (logout 1)".to_owned(),
        "store errors since start: 0".to_owned(),
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in\n{out}");
    }
    let (code, out, err) = stats(&["--json", "--user", "alice"]);
    assert_eq!(code, 0, "{err}");
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let served: serde_json::Value = rt
        .block_on(async {
            server
                .admin(reqwest::Method::GET, "/v1/stats")
                .send()
                .await
                .unwrap()
                .json()
                .await
        })
        .unwrap();
    for field in [
        "live_sessions",
        "created",
        "revoked_by_reason",
        "store_errors",
        "store",
    ] {
        assert_eq!(printed[field], served[field], "{field}: {out}");
    }
    assert_eq!(printed["user"]["live_sessions"], 1);
    // A key the server refuses is an error, not a silent fallback.
    let (code, _, err) = run(sessiond(
        work.path(),
        &["stats", "--url", url.as_str(), "--store", store.as_str()],
    )
    .env("SESSIOND_API_KEY", "sdk_some-other-key-0123456789"));
    assert_eq!(code, 1);
    assert!(err.contains("refused the API key"), "{err}");
    rt.block_on(server.shutdown());
}

#[test]
fn an_unreachable_store_is_a_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&mut sessiond(
        dir.path(),
        &["stats", "--store", "redis://:pw@127.0.0.1:1/"],
    ));
    assert_eq!(code, 1, "{out}{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{err}");
    assert!(!err.contains("pw@"), "{err}");

    let (code, _, err) = run(&mut sessiond(
        dir.path(),
        &["stats", "--store", "embedded:"],
    ));
    assert_eq!(code, 2);
    assert!(
        err.starts_with("invalid config: store = \"embedded:\" (from flag --store): "),
        "{err}"
    );
}

/// `sessiond history` reads the lifecycle events straight from the store,
/// as a table or as the body of `GET /v1/users/{user_id}/history`, a page
/// at a time; a store that keeps none (Redis) is a runtime error.
#[test]
fn history_prints_a_users_events_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store_url = format!("embedded:{}", db.display());
    let rt = runtime();
    let ids: Vec<String> = rt.block_on(async {
        let store = EmbeddedStore::open(&db, EmbeddedOptions::default())
            .await
            .unwrap();
        let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, Policy::default());
        let mut ids = Vec::new();
        for i in 0..2 {
            let created = engine
                .create(CreateRequest {
                    user_id: "alice".to_owned(),
                    user_agent: Some(CHROME.to_owned()),
                    ip: Some(format!("203.0.113.{i}")),
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            ids.push(created.session.id.as_str().to_owned());
        }
        engine
            .revoke(&ids[0], sessiond_engine::RevokeReason::RevokedByAdmin)
            .await
            .unwrap();
        store.close().await;
        ids
    });
    let op = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--store", store_url.as_str()]);
        run(&mut sessiond(dir.path(), &all))
    };

    let (code, out, err) = op(&["history", "--user", "alice"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for column in ["SEQ", "AT", "TYPE", "REASON", "SESSION", "DEVICE", "IP"] {
        assert!(lines[0].contains(column), "{out}");
    }
    assert!(
        lines[1].contains(" revoked ") && lines[1].contains(" revoked_by_admin "),
        "{out}"
    );
    assert!(
        lines[1].contains(&ids[0]) && lines[1].contains("desktop"),
        "{out}"
    );
    assert!(
        lines[2].contains(" created ") && lines[2].contains(&ids[1]),
        "{out}"
    );
    assert!(lines[2].ends_with("203.0.113.1"), "{out}");
    assert!(lines[3].contains(&ids[0]), "{out}");

    // Two at a time: the cursor leads to the rest.
    let (code, out, _) = op(&["history", "--user", "alice", "--limit", "2"]);
    assert_eq!(code, 0);
    let more = out.lines().last().unwrap();
    let cursor = more
        .strip_prefix("older events follow: add --cursor ")
        .unwrap_or_else(|| panic!("{out}"));
    let (code, out, _) = op(&["history", "--user", "alice", "--cursor", cursor]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().contains(&ids[0]), "{out}");

    let (code, out, err) = op(&["history", "--user", "alice", "--json", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(page["events"][0]["type"], "revoked", "{out}");
    assert_eq!(page["events"][0]["reason"], "revoked_by_admin", "{out}");
    assert_eq!(page["next_cursor"], cursor, "{out}");

    let (code, out, _) = op(&["history", "--user", "carol"]);
    assert_eq!(code, 0);
    assert_eq!(out, "no history for user \"carol\"\n");

    // Bad input is a usage error.
    let (code, _, err) = op(&["history", "--user", "alice", "--limit", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid limit"), "{err}");
    let (code, _, err) = op(&["history", "--user", "alice", "--cursor", "x"]);
    assert_eq!(code, 2, "{err}");

    // Redis keeps no history.
    let redis = sessiond_testkit::redis_server::RedisServer::start();
    let (code, _, err) = run(&mut sessiond(
        dir.path(),
        &["history", "--user", "alice", "--store", &redis.url()],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("history needs a SQL store"), "{err}");
}

/// `sessiond events tail` prints the feed straight from the store as JSON
/// lines: what is kept (`--oldest --no-follow`), after an id, filtered;
/// following, it prints a change made by a running server as it happens.
#[test]
fn events_tail_prints_the_feed_as_json_lines_and_follows_it() {
    use std::io::{BufRead as _, BufReader};
    let rt = runtime();
    let server = rt.block_on(common::TestServer::start(common::Backend::Embedded));
    let store = server.embedded_store_url();
    let work = tempfile::tempdir().unwrap();
    let (alice, token) = rt.block_on(server.create("alice"));
    let (bob, _) = rt.block_on(server.create("bob"));
    let op = |args: &[&str]| {
        let mut all = vec!["events", "tail"];
        all.extend(args);
        all.extend(["--store", store.as_str()]);
        run(&mut sessiond(work.path(), &all))
    };
    let (code, out, err) = op(&["--oldest", "--no-follow"]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0]["type"], "created");
    assert_eq!(events[0]["session_id"], alice["id"]);
    assert_eq!(events[1]["session_id"], bob["id"]);
    assert!(!out.contains(&token));

    let first = events[0]["id"].as_str().unwrap();
    let (code, out, _) = op(&["--after", first, "--no-follow"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, out, _) = op(&["--oldest", "--no-follow", "--user", "bob"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() == 1 && out.contains("\"bob\""), "{out}");
    let (code, out, _) = op(&["--oldest", "--no-follow", "--types", "revoked"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, _, err) = op(&["--types", "touched", "--no-follow"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--types"), "{err}");
    let (code, _, err) = op(&["--after", "not an id", "--no-follow"]);
    assert_eq!(code, 2, "{err}");

    // Following from the last event: a revocation by the server shows up
    // as a line.
    let last = events[1]["id"].as_str().unwrap();
    let mut child = sessiond(
        work.path(),
        &[
            "events", "tail", "--after", last, "--types", "revoked", "--store", &store,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let id = alice["id"].as_str().unwrap();
    let r = rt
        .block_on(
            server
                .admin(
                    reqwest::Method::DELETE,
                    &format!("/v1/sessions/{id}?reason=logout"),
                )
                .send(),
        )
        .unwrap();
    assert_eq!(r.status(), 204);
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "revoked");
    assert_eq!(event["reason"], "logout");
    assert_eq!(event["session_id"], alice["id"]);
}
