//! `sessiond serve` as a process: it binds before it writes anything, keeps
//! its files private whatever the umask, and exits within the drain timeout
//! on SIGTERM even with a client stuck mid-request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `sessiond serve ARGS` in `dir` under umask 022, with no `SESSIOND_*`
/// variable of ours leaking in.
fn serve(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir)
        .arg("-c")
        .arg("umask 022; exec \"$0\" serve \"$@\"")
        .arg(env!("CARGO_BIN_EXE_sessiond"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::without_our_env(&mut cmd);
    cmd
}

/// Start the server and wait for its "listening" line; returns the address.
fn start(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("sessiond listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

fn term(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

fn http(addr: &str, request: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_busy_port_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = serve(dir.path(), &["--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files written before bind: {left:?}");
}

#[test]
fn every_file_is_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(&mut serve(dir.path(), &["--listen", "127.0.0.1:0"]));
    let data = dir.path().join("data");
    let key = std::fs::read_to_string(data.join("api_key")).unwrap();
    let body = r#"{"user_id":"alice","ip":"192.0.2.1"}"#;
    let response = http(
        &addr,
        &format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            key.trim(),
            body.len()
        ),
    );
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    // While it runs (WAL and shared-memory files exist) and after it stops.
    for phase in ["running", "stopped"] {
        let mut seen = 0;
        let mut stack = vec![data.clone()];
        while let Some(d) = stack.pop() {
            assert_eq!(mode(&d), 0o700, "{phase}: {}", d.display());
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    seen += 1;
                    assert_eq!(mode(&p), 0o600, "{phase}: {}", p.display());
                }
            }
        }
        // api_key, signing_keys.json, sessions.db (+ -wal, -shm running).
        assert!(seen >= 3, "{phase}: only {seen} files");
        if phase == "running" {
            assert!(data.join("sessions.db-wal").exists());
            term(&child);
            assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
        }
    }
}

#[test]
fn an_open_data_directory_is_made_private_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("sessions.db"), b"").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("sessions.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (mut child, _) = start(&mut serve(dir.path(), &["--listen", "127.0.0.1:0"]));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("sessions.db")), 0o600);
    term(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
    let log = stderr_of(&mut child);
    assert!(log.contains("now mode 700"), "{log}");
    assert!(log.contains("now mode 600"), "{log}");
}

#[test]
fn sigterm_exits_within_the_drain_even_with_a_half_sent_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve(dir.path(), &["--listen", "127.0.0.1:0"]);
    cmd.env("SESSIOND_LIMITS__DRAIN_TIMEOUT", "2s")
        .env("SESSIOND_LIMITS__HEADER_READ_TIMEOUT", "60s");
    let (mut child, addr) = start(&mut cmd);
    let mut stuck = TcpStream::connect(&addr).unwrap();
    stuck
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x")
        .unwrap();
    let mut in_flight = TcpStream::connect(&addr).unwrap();
    in_flight
        .write_all(b"POST /v1/tokens/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    term(&child);
    let exited = wait_exit(&mut child, Duration::from_secs(10));
    let took = exited.expect("still running 10 s after SIGTERM");
    assert!(took < Duration::from_millis(3500), "exit took {took:?}");
}

#[test]
fn data_dir_moves_the_embedded_store_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = start(&mut serve(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "state"],
    ));
    term(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
    for file in ["api_key", "sessions.db", "keys/signing_keys.json"] {
        assert!(dir.path().join("state").join(file).exists(), "{file}");
    }
    assert!(!dir.path().join("data").exists());
}
