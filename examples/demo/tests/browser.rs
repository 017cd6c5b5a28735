//! The demo site in a real headless Chromium, driven over WebDriver
//! (chromedriver): two browsers are two devices of one user; the devices
//! page names them as people do, shows which are online and follows that
//! live, and has no horizontal overflow at 390 px; signing a device (or all
//! others) out asks first and says what it did once; the signed-out device's
//! open page goes to the login page by itself within 2 s, told why, once; a
//! form post without the CSRF token is refused; after signing out, Back
//! shows no signed-in page. Screenshots (desktop, 390 px, the confirmation,
//! the phone signed out live) go to `target/browser-screenshots/`.
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
use sessiond_demo::live::Live;
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
    let live = Live::over_engine(engine.clone()).unwrap();
    let cookie = CookieSettings {
        name: "demo_session".into(),
        ..CookieSettings::default()
    };
    let layer = SessionLayer::new(EngineBackend::new(engine))
        .with_cookie(cookie)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        sessiond_demo::app(layer, Some(live)).into_make_service_with_connect_info::<SocketAddr>();
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

    // Both show on the devices page, the laptop marked as this device, with
    // names people read; the phone's open page (and this one) holds a socket,
    // so both are online.
    laptop.goto(&format!("{base}/devices")).await.unwrap();
    eventually("two devices", || async {
        count(&laptop, "li.device").await == 2
    })
    .await;
    eventually("both devices online", || async {
        count(&laptop, "li.device .badge.online:not([hidden])").await == 2
    })
    .await;
    let current = text_of(&laptop, "li.device.current").await.unwrap();
    assert!(
        current.contains("Chrome on Windows") && current.contains("This device"),
        "{current}"
    );
    assert!(
        current.contains("Computer") && current.contains("Active now"),
        "{current}"
    );
    let other = text_of(&laptop, "li.device:not(.current)").await.unwrap();
    assert!(other.contains("Chrome on Android"), "{other}");
    assert!(
        other.contains("Online now") && current.contains("Online now"),
        "{current} / {other}"
    );
    assert!(
        other.contains("Phone") && other.contains("127.0.0.1"),
        "{other}"
    );
    assert!(other.contains("Signed in just now"), "{other}");
    for raw in ["unknown", "mobile", "desktop", "Mac OSX"] {
        assert!(
            !current.contains(raw) && !other.contains(raw),
            "{raw}: {current} / {other}"
        );
    }
    screenshot(&laptop, "devices-online.png").await;

    // Presence is followed live, without reloading the page: the phone leaves
    // its page and goes offline, then comes back online.
    laptop
        .execute("window.notReloaded = true", vec![])
        .await
        .unwrap();
    phone.goto("about:blank").await.unwrap();
    eventually("the phone offline", || async {
        text_of(&laptop, "li.device:not(.current)")
            .await
            .is_some_and(|t| t.contains("Chrome on Android") && !t.contains("Online now"))
    })
    .await;
    open_home(&phone, &base, "1").await;
    eventually("the phone online again", || async {
        text_of(&laptop, "li.device:not(.current)")
            .await
            .is_some_and(|t| t.contains("Online now"))
    })
    .await;
    let reloaded = laptop
        .execute("return window.notReloaded !== true", vec![])
        .await
        .unwrap();
    assert_eq!(reloaded, json!(false), "the devices page was reloaded");
    let before = screenshot(&laptop, "devices-desktop.png").await;

    // At 390 px the list is cards, and nothing overflows sideways.
    laptop.set_window_size(390, 844).await.unwrap();
    eventually("a 390 px viewport", || async {
        laptop
            .execute("return window.innerWidth", vec![])
            .await
            .is_ok_and(|w| w.as_u64().is_some_and(|w| w <= 400))
    })
    .await;
    let overflow = laptop
        .execute(
            "const e = document.documentElement; \
             const wide = [...document.querySelectorAll('body *')] \
               .filter(n => n.getBoundingClientRect().right > e.clientWidth + 1) \
               .map(n => n.tagName + '.' + n.className); \
             return {scroll: e.scrollWidth, client: e.clientWidth, wide: wide};",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow["scroll"].as_u64() <= overflow["client"].as_u64()
            && overflow["wide"].as_array().is_some_and(Vec::is_empty),
        "horizontal overflow at 390 px: {overflow}"
    );
    let sign_out_visible = laptop
        .execute(
            "const b = document.querySelector('li.device:not(.current) .sign-out') \
               .getBoundingClientRect(); \
             return b.left >= 0 && b.right <= document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        sign_out_visible,
        json!(true),
        "Sign out is on screen at 390 px"
    );
    let narrow = screenshot(&laptop, "devices-390px.png").await;
    laptop.set_window_size(1100, 800).await.unwrap();

    // Signing the phone out asks first; Cancel changes nothing.
    click(&laptop, "li.device:not(.current) .sign-out").await;
    eventually("the confirmation", || async {
        count(&laptop, "#confirm").await == 1
    })
    .await;
    let question = text_of(&laptop, "#confirm h1").await.unwrap();
    assert_eq!(question, "Sign out Chrome on Android?");
    let confirm = screenshot(&laptop, "confirm-sign-out.png").await;
    click(&laptop, "#cancel").await;
    eventually("back on the devices page", || async {
        count(&laptop, "li.device").await == 2
    })
    .await;
    click(&laptop, "li.device:not(.current) .sign-out").await;
    eventually("the confirmation", || async {
        count(&laptop, "#confirm-button").await == 1
    })
    .await;
    // The phone is left alone on its page: once signed out, its socket is
    // closed and the page goes to the login page by itself.
    assert_eq!(path_of(&phone).await, "/");
    let started = Instant::now();
    click(&laptop, "#confirm-button").await;
    while !(path_of(&phone).await == "/login" && count(&phone, "#login-form").await == 1) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the phone never reached the login page by itself"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    eprintln!("the phone reached the login page {took:?} after the sign-out");
    assert!(
        took < Duration::from_secs(2),
        "the phone took {took:?} to reach the login page"
    );
    // It is told why, once.
    assert_eq!(
        text_of(&phone, "#notice").await.as_deref(),
        Some("You were signed out from another device.")
    );
    screenshot(&phone, "phone-live-signed-out.png").await;

    eventually("one device left", || async {
        count(&laptop, "li.device").await == 1 && text_of(&laptop, "#notice").await.is_some()
    })
    .await;
    assert_eq!(
        text_of(&laptop, "#notice").await.as_deref(),
        Some("Signed out 1 device.")
    );
    assert_eq!(path_of(&laptop).await, "/devices", "no notice in the URL");
    let listed = text_of(&laptop, "#devices").await.unwrap();
    assert!(!listed.contains("Chrome on Android"), "{listed}");
    let after = screenshot(&laptop, "devices-after-sign-out.png").await;
    // The notice is shown once.
    laptop.refresh().await.unwrap();
    eventually("the reloaded page", || async {
        count(&laptop, "li.device").await == 1
    })
    .await;
    assert_eq!(count(&laptop, "#notice").await, 0, "the notice came back");

    // The phone's login notice is shown once.
    phone.refresh().await.unwrap();
    eventually("the reloaded login page", || async {
        count(&phone, "#login-form").await == 1
    })
    .await;
    assert_eq!(
        count(&phone, "#notice").await,
        0,
        "the login notice came back"
    );

    // A device that signs in shows up by itself on an open devices page.
    sign_in(&phone, &base, "alice", "wonderland").await;
    eventually("two devices again", || async {
        count(&laptop, "li.device").await == 2
    })
    .await;

    // "Sign out all other devices" asks too, and says how many went.
    click(&laptop, "#sign-out-others").await;
    eventually("the confirmation", || async {
        text_of(&laptop, "#confirm h1").await.as_deref() == Some("Sign out all other devices?")
    })
    .await;
    screenshot(&laptop, "confirm-sign-out-others.png").await;
    click(&laptop, "#confirm-button").await;
    eventually("alone again", || async {
        count(&laptop, "li.device").await == 1
            && text_of(&laptop, "#notice").await.as_deref() == Some("Signed out 1 device.")
    })
    .await;
    eventually("the phone signed out by itself", || async {
        path_of(&phone).await == "/login"
            && text_of(&phone, "#notice").await.as_deref()
                == Some("You were signed out from another device.")
    })
    .await;

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

    for shot in [before, narrow, confirm, after] {
        let size = std::fs::metadata(&shot).unwrap().len();
        assert!(size > 10_000, "{} is {size} bytes", shot.display());
    }
    laptop.close().await.unwrap();
    phone.close().await.unwrap();
}
