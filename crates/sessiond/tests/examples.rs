//! The example apps under `examples/` against a real `sessiond serve` (this
//! build's binary, embedded store, a free port): the FastAPI app's `pytest`
//! suite and the Express app's `node --test` suite must pass, and the
//! README's Python and Node blocks must be the marked parts of their files.
//! `scripts/test` installs what the apps need (pip, `npm ci`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sdk_examples-key-0123456789";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `sessiond serve` on a free port; killed on drop.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    common::without_our_env(&mut cmd);
    let child = cmd
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--store")
        .arg(format!("embedded:{}", dir.path().join("store").display()))
        .env("SESSIOND_API_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        url: format!("http://{listen}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "sessiond never listened on {listen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Run `cmd` in `dir` against `server`; panic with its output unless it
/// succeeds.
fn run_suite(server: &Server, dir: &Path, cmd: &mut Command, install_hint: &str) {
    let out = cmd
        .current_dir(dir)
        .env("SESSIOND_URL", &server.url)
        .env("SESSIOND_API_KEY", KEY)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({install_hint}): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({install_hint})\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

#[test]
fn the_fastapi_example_passes_its_tests() {
    let server = serve();
    run_suite(
        &server,
        &root().join("examples/python-fastapi"),
        Command::new("python3").args(["-m", "pytest", "-q", "-p", "no:cacheprovider"]),
        "scripts/test installs its packages: python3 -m pip install -r examples/python-fastapi/requirements.txt",
    );
}

#[test]
fn the_express_example_passes_its_tests() {
    let dir = root().join("examples/node-express");
    let hint = "scripts/test installs its packages: npm ci in examples/node-express";
    assert!(
        dir.join("node_modules/express").exists(),
        "express is missing ({hint})"
    );
    let server = serve();
    run_suite(&server, &dir, Command::new("node").arg("--test"), hint);
}

/// The lines of `path` between its `readme:start` and `readme:end` marks.
fn marked(path: &str) -> String {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("--- readme:start ---"))
        .unwrap();
    let end = lines
        .iter()
        .position(|l| l.contains("--- readme:end ---"))
        .unwrap();
    lines[start + 1..end].join("\n")
}

/// The README code block whose first line is `first`, without that line.
fn readme_block(first: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == first)
        .unwrap_or_else(|| panic!("no README block starting with {first:?}"));
    let end = start + lines[start..].iter().position(|l| *l == "```").unwrap();
    lines[start + 1..end].join("\n")
}

#[test]
fn the_readme_blocks_are_the_example_files() {
    assert_eq!(
        readme_block("# examples/python-fastapi/app.py"),
        marked("examples/python-fastapi/app.py"),
        "README's Python block and examples/python-fastapi/app.py differ"
    );
    assert_eq!(
        readme_block("// examples/node-express/app.js"),
        marked("examples/node-express/app.js"),
        "README's Node block and examples/node-express/app.js differ"
    );
}
