//! The demo site in a real headless Chromium, driven over WebDriver
//! (chromedriver): two browsers are two devices of one user; one signs the
//! other out, which lands on the login page at its next click; a form post
//! without the CSRF token is refused; after signing out, Back shows no
//! signed-in page. Screenshots go to
//! `target/browser-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use sessiond_axum::{CookieSettings, EngineBackend, SessionLayer};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::Engine;
use tempfile::TempDir;

const LAPTOP_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36";

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_program(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{names:?} not found on PATH: install Debian's chromium and chromium-driver \
         (scripts/test does, as root)"
    );
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(find_program(&["chromedriver"]))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(&status).await
            && r.status().is_success()
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A browser of its own (its own profile: its own cookies) posing as a device.
async fn open_browser(driver: &Driver, profile: &Path, user_agent: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": find_program(&["chromium", "chromium-browser"]),
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--window-size=1100,800",
                format!("--user-data-dir={}", profile.display()),
                format!("--user-agent={user_agent}"),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The demo on a free port, over a fresh embedded store.
async fn start_demo(dir: &Path) -> SocketAddr {
    let store = EmbeddedStore::open(dir.join("store"), EmbeddedOptions::default())
        .await
        .unwrap();
    let engine = Engine::new(Arc::new(store), sessiond_demo::policy());
    let cookie = CookieSettings {
        name: "demo_session".into(),
        ..CookieSettings::default()
    };
    let layer = SessionLayer::new(EngineBackend::new(engine))
        .with_cookie(cookie)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sessiond_demo::app(layer).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, &png).unwrap();
    path
}

/// Poll until `check` holds (pages load after clicks), or fail with `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn path_of(browser: &Client) -> String {
    browser
        .current_url()
        .await
        .map(|u| u.path().to_owned())
        .unwrap_or_default()
}

async fn text_of(browser: &Client, css: &str) -> Option<String> {
    browser
        .find(Locator::Css(css))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

async fn count(browser: &Client, css: &str) -> usize {
    browser
        .find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn click(browser: &Client, css: &str) {
    let element = browser.find(Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

async fn submit_login(browser: &Client, user: &str, password: &str) {
    let field = browser.find(Locator::Id("username")).await.unwrap();
    field.send_keys(user).await.unwrap();
    let field = browser.find(Locator::Id("password")).await.unwrap();
    field.send_keys(password).await.unwrap();
    click(browser, "#sign-in").await;
}

/// Go to the home page and wait until it shows `counter`.
async fn open_home(browser: &Client, base: &str, counter: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    eventually("the home page", || async {
        text_of(browser, "#counter").await.as_deref() == Some(counter)
    })
    .await;
}

async fn sign_in(browser: &Client, base: &str, user: &str, password: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    eventually("the login page", || async {
        path_of(browser).await == "/login"
    })
    .await;
    submit_login(browser, user, password).await;
    eventually("the home page", || async {
        text_of(browser, "#user").await.as_deref() == Some(user)
    })
    .await;
}

async fn click_count(browser: &Client, expect: &str) {
    click(browser, "#count").await;
    eventually(&format!("counter {expect}"), || async {
        text_of(browser, "#counter").await.as_deref() == Some(expect)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_sign_out_and_csrf_in_chromium() {
    tokio::time::timeout(Duration::from_secs(180), scenario())
        .await
        .expect("the browser scenario finishes within 3 minutes");
}

async fn scenario() {
    let dir = TempDir::new().unwrap();
    let addr = start_demo(dir.path()).await;
    let base = format!("http://{addr}");
    let driver = start_driver().await;
    let laptop = open_browser(&driver, &dir.path().join("laptop-profile"), LAPTOP_UA).await;
    let phone = open_browser(&driver, &dir.path().join("phone-profile"), PHONE_UA).await;

    // A wrong password is refused.
    laptop.goto(&format!("{base}/login")).await.unwrap();
    submit_login(&laptop, "alice", "builder").await;
    eventually("the login error", || async {
        text_of(&laptop, "#error").await.is_some()
    })
    .await;

    // Two devices sign in as alice; the counter lives in each one's session.
    sign_in(&laptop, &base, "alice", "wonderland").await;
    click_count(&laptop, "1").await;
    click_count(&laptop, "2").await;
    sign_in(&phone, &base, "alice", "wonderland").await;
    click_count(&phone, "1").await;
    screenshot(&laptop, "home.png").await;

    // Both show on the devices page, the laptop marked as this device.
    laptop.goto(&format!("{base}/devices")).await.unwrap();
    eventually("two devices", || async {
        count(&laptop, "tr.device").await == 2
    })
    .await;
    let current = text_of(&laptop, "tr.device.current").await.unwrap();
    assert!(
        current.contains("desktop") && current.contains("this device"),
        "{current}"
    );
    assert!(current.contains("Windows"), "{current}");
    let other = text_of(&laptop, "tr.device:not(.current)").await.unwrap();
    assert!(
        other.contains("smartphone") || other.contains("mobile"),
        "{other}"
    );
    assert!(other.contains("Android"), "{other}");
    assert!(other.contains("127.0.0.1"), "{other}");
    let before = screenshot(&laptop, "devices-two-devices.png").await;

    // The laptop signs the phone out.
    click(&laptop, "tr.device:not(.current) button.sign-out").await;
    eventually("one device left", || async {
        count(&laptop, "tr.device").await == 1 && text_of(&laptop, "#notice").await.is_some()
    })
    .await;
    assert_eq!(count(&laptop, "tr.device.current").await, 1);
    let after = screenshot(&laptop, "devices-after-sign-out.png").await;

    // The phone's next click lands on the login page.
    click(&phone, "#devices-link").await;
    eventually("the phone bounced to /login", || async {
        path_of(&phone).await == "/login" && count(&phone, "#login-form").await == 1
    })
    .await;
    screenshot(&phone, "phone-signed-out.png").await;

    // A form post without the CSRF token: 403, and nothing changes.
    open_home(&laptop, &base, "2").await;
    let status = laptop
        .execute(
            "return fetch('/count', {method: 'POST', \
             headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'x=1'}) \
             .then(r => r.status)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    laptop
        .execute(
            "document.querySelector('#count-form input[name=csrf_token]').remove()",
            vec![],
        )
        .await
        .unwrap();
    click(&laptop, "#count").await;
    eventually("the refusal", || async {
        laptop
            .source()
            .await
            .is_ok_and(|html| html.contains("missing CSRF token"))
    })
    .await;
    screenshot(&laptop, "csrf-refused.png").await;
    open_home(&laptop, &base, "2").await;

    // Sign out, then Back: the signed-in page is not shown again from a
    // cache (it was served no-store); the browser asks again and is sent to
    // the login page.
    click(&laptop, "#logout").await;
    eventually("signed out", || async {
        path_of(&laptop).await == "/login" && count(&laptop, "#login-form").await == 1
    })
    .await;
    laptop.back().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shown = laptop.source().await.unwrap();
    assert!(
        text_of(&laptop, "#user").await.is_none() && !shown.contains("id=\"logout\""),
        "Back showed a signed-in page after sign-out"
    );
    screenshot(&laptop, "back-after-sign-out.png").await;

    for shot in [before, after] {
        let size = std::fs::metadata(&shot).unwrap().len();
        assert!(size > 10_000, "{} is {size} bytes", shot.display());
    }
    laptop.close().await.unwrap();
    phone.close().await.unwrap();
}
