//! `/openapi.json` as third-party tools see it: `openapi-spec-validator`
//! (from PyPI) finds no error in it, and `openapi-typescript` (from npm)
//! generates types from it that the code in `tests/openapi_client/check.ts`
//! type-checks against with `tsc --strict`. `scripts/test` installs both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Backend, TestServer};
use reqwest::Method;

/// The document as a running server serves it, written to `dir`.
async fn served_document(dir: &Path) -> PathBuf {
    let s = TestServer::start(Backend::Embedded).await;
    let r = s.anon(Method::GET, "/openapi.json").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    s.shutdown().await;
    let path = dir.join("openapi.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// Run `cmd`; panic with its output unless it succeeds.
fn run(cmd: &mut Command, install_hint: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({install_hint}): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({install_hint})\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn the_document_passes_openapi_spec_validator() {
    let dir = tempfile::tempdir().unwrap();
    let document = served_document(dir.path()).await;
    let out = run(
        Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&document),
        "scripts/test installs it: python3 -m pip install openapi-spec-validator",
    );
    assert!(out.contains("OK"), "{out}");
}

#[tokio::test]
async fn a_generated_typescript_client_type_checks() {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi_client");
    let bin = client.join("node_modules/.bin");
    let hint = "scripts/test installs them: npm ci in crates/sessiond/tests/openapi_client";
    assert!(
        bin.join("openapi-typescript").exists() && bin.join("tsc").exists(),
        "openapi-typescript and typescript are missing ({hint})"
    );
    let dir = tempfile::tempdir().unwrap();
    let document = served_document(dir.path()).await;
    std::fs::copy(client.join("check.ts"), dir.path().join("check.ts")).unwrap();
    std::fs::copy(
        client.join("tsconfig.json"),
        dir.path().join("tsconfig.json"),
    )
    .unwrap();
    run(
        Command::new(bin.join("openapi-typescript"))
            .arg(&document)
            .arg("-o")
            .arg(dir.path().join("generated/api.d.ts")),
        hint,
    );
    run(
        Command::new(bin.join("tsc"))
            .args(["--noEmit", "-p"])
            .arg(dir.path()),
        hint,
    );
}
