//! The README's quickstart works as written: start the real `sessiond serve`
//! binary with its defaults in an empty directory, run the walk-through's
//! shell block against it, then stop it with SIGTERM (graceful shutdown).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn walkthrough() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("walk-through start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walk-through end marker");
    let block = &readme[start..end];
    let body = block.split_once("```sh\n").unwrap().1;
    body.rsplit_once("```").unwrap().0.to_owned()
}

#[test]
fn quickstart_walkthrough_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Exactly the README's command, but for the port (tests run in parallel).
    let mut server = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("SESSIOND_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(
        line.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{line}"
    );

    // The generated key is private to its owner.
    let key_file = dir.path().join("data/api_key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &walkthrough()])
        .current_dir(dir.path())
        .env("API", format!("http://127.0.0.1:{port}"))
        .output()
        .expect("bash (and curl, jq) must be installed: scripts/test installs them");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "walk-through failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    // What the walk-through shows is what the README says it shows.
    assert!(out.contains("\"active\": true"), "{out}");
    assert!(out.contains("\"cart\": 3"), "{out}");
    assert!(out.contains("\"current\": true"), "{out}");
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.len() == 3 && l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(codes, ["204", "401", "204"], "{out}");
    let history: Vec<&str> = out.lines().filter(|l| l.starts_with("{\"type\"")).collect();
    assert_eq!(
        history,
        [
            r#"{"type":"revoked","reason":"logout"}"#,
            r#"{"type":"revoked","reason":"revoked_by_user"}"#,
            r#"{"type":"rotated","reason":null}"#,
            r#"{"type":"created","reason":null}"#,
        ],
        "{out}"
    );

    // SIGTERM: graceful shutdown, exit 0, and the key never in the logs.
    let key = std::fs::read_to_string(&key_file).unwrap();
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(
        logs.contains("api_key"),
        "the key file's path is logged:\n{logs}"
    );
    assert!(!logs.contains(key.trim()), "the API key reached the logs");
}
