//! The HTML pages (askama templates under `templates/`) and the views of
//! sessions they show: device names people read ("Chrome on Windows"), an
//! icon per kind, times in words.

use askama::Template;
use sessiond_axum::SessionView;
use sessiond_engine::{DeviceKind, Timestamp};

use crate::users::DemoUser;

/// `GET /login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct Login {
    /// What went wrong with the last attempt.
    pub error: Option<String>,
    /// Why the user is here again (shown once).
    pub notice: Option<String>,
    /// The demo accounts, to show their passwords.
    pub users: &'static [DemoUser],
}

/// `GET /`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct Home {
    pub user: String,
    pub role: String,
    pub counter: u64,
    pub data_json: String,
    pub csrf: String,
}

/// `GET /devices`.
#[derive(Template)]
#[template(path = "devices.html")]
pub struct Devices {
    pub user: String,
    pub devices: Vec<DeviceRow>,
    /// Whether the page shows (and follows) which devices are online.
    pub live: bool,
    /// What the last action did (shown once).
    pub notice: Option<String>,
    pub csrf: String,
}

/// `GET /devices/…/sign-out`: are you sure?
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct Confirm {
    pub title: String,
    pub message: String,
    /// Where the confirming form posts.
    pub action: String,
    pub button: String,
    pub csrf: String,
}

/// One session on the devices page.
pub struct DeviceRow {
    pub id: String,
    /// "Chrome on Windows".
    pub name: String,
    /// "Computer", "Phone", "Tablet", …
    pub kind: String,
    /// Inline SVG of the kind.
    pub icon: &'static str,
    pub ip: String,
    /// "Active now" / "Last active 5 minutes ago".
    pub last_active: String,
    /// "Signed in 3 days ago".
    pub signed_in: String,
    /// The exact sign-in time (RFC 3339), for a tooltip.
    pub signed_in_at: String,
    pub current: bool,
    /// It holds a live connection (a page open on it) now.
    pub online: bool,
}

/// A browser name as people say it.
fn browser_name(raw: &str) -> Option<String> {
    let name = match raw.trim() {
        "" | "UNKNOWN" | "unknown" | "Other" => return None,
        "Mobile Safari" | "Mobile Safari UI/WKWebView" | "Safari Mobile" => "Safari",
        "Chrome Mobile" | "Chrome Mobile iOS" | "Chrome Mobile WebView" | "Chromium" => "Chrome",
        "Firefox Mobile" | "Firefox iOS" => "Firefox",
        "Edge Mobile" | "Microsoft Edge" => "Edge",
        "Samsung Internet" | "Opera" | "Vivaldi" | "Brave" | "Yandex Browser" => raw.trim(),
        other => other,
    };
    Some(name.to_owned())
}

/// An operating system name as people say it (no versions: "Windows",
/// "macOS", "iOS", "Android", "Linux", "ChromeOS").
fn os_name(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let lower = raw.to_ascii_lowercase();
    let name = if lower.is_empty() || lower == "unknown" || lower == "other" {
        return None;
    } else if lower.starts_with("windows") {
        "Windows"
    } else if lower.starts_with("mac") {
        "macOS"
    } else if lower.starts_with("ios") || lower.starts_with("iphone") || lower.starts_with("ipad") {
        "iOS"
    } else if lower.starts_with("android") {
        "Android"
    } else if lower.starts_with("chrome os") || lower.starts_with("chromeos") {
        "ChromeOS"
    } else if lower.contains("linux") || lower == "ubuntu" || lower == "fedora" {
        "Linux"
    } else {
        raw
    };
    Some(name.to_owned())
}

/// "Chrome on Windows", "Safari on iOS", "Firefox", "Unknown device".
pub fn device_name(browser: Option<&str>, os: Option<&str>) -> String {
    match (browser.and_then(browser_name), os.and_then(os_name)) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => "Unknown device".to_owned(),
    }
}

const ICON_COMPUTER: &str = r#"<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><rect x="3" y="4" width="18" height="12" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M8 20h8M12 16v4" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>"#;
const ICON_PHONE: &str = r#"<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><rect x="7" y="2" width="10" height="20" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M11 18h2" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>"#;
const ICON_TABLET: &str = r#"<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><rect x="4" y="2" width="16" height="20" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M11 18h2" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>"#;
const ICON_OTHER: &str = r#"<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2"/><path d="M12 8v5M12 16h.01" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>"#;

/// What a kind of device is called, and its icon.
pub fn kind_label(kind: DeviceKind) -> (&'static str, &'static str) {
    match kind {
        DeviceKind::Desktop => ("Computer", ICON_COMPUTER),
        DeviceKind::Mobile => ("Phone", ICON_PHONE),
        DeviceKind::Tablet => ("Tablet", ICON_TABLET),
        DeviceKind::Bot => ("Automated client", ICON_OTHER),
        DeviceKind::Unknown => ("Device", ICON_OTHER),
    }
}

/// `n` and the unit, singular or plural: "1 day", "3 days".
fn count(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// "just now", "a minute ago", "5 minutes ago", "an hour ago", "yesterday",
/// "3 days ago", "a month ago", "2 years ago", … from `now`.
pub fn ago(then: Timestamp, now: Timestamp) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let secs = (now.as_millis() - then.as_millis()).max(0) / 1000;
    match secs {
        s if s < MINUTE => "just now".into(),
        s if s < 2 * MINUTE => "a minute ago".into(),
        s if s < HOUR => format!("{} ago", count(s / MINUTE, "minute")),
        s if s < 2 * HOUR => "an hour ago".into(),
        s if s < DAY => format!("{} ago", count(s / HOUR, "hour")),
        s if s < 2 * DAY => "yesterday".into(),
        s if s < 30 * DAY => format!("{} ago", count(s / DAY, "day")),
        s if s < 60 * DAY => "a month ago".into(),
        s if s < 365 * DAY => format!("{} ago", count(s / (30 * DAY), "month")),
        s if s < 2 * 365 * DAY => "a year ago".into(),
        s => format!("{} ago", count(s / (365 * DAY), "year")),
    }
}

impl DeviceRow {
    /// The row for `s` at `now`, `online` or not.
    pub fn new(s: SessionView, now: Timestamp, online: bool) -> Self {
        let d = s.device;
        let (kind, icon) = kind_label(d.kind);
        let current = s.current == Some(true);
        Self {
            id: s.id.to_string(),
            name: device_name(d.browser.as_deref(), d.os.as_deref()),
            kind: kind.to_owned(),
            icon,
            ip: d
                .ip
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "unknown address".into()),
            last_active: if current {
                "Active now".to_owned()
            } else {
                format!("Last active {}", ago(s.last_seen_at, now))
            },
            signed_in: format!("Signed in {}", ago(s.created_at, now)),
            signed_in_at: s.created_at.to_rfc3339(),
            current,
            online,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_have_correct_plurals() {
        let t = |secs: i64| Timestamp::from_millis(secs * 1000);
        let cases = [
            (30, "just now"),
            (90, "a minute ago"),
            (600, "10 minutes ago"),
            (3_700, "an hour ago"),
            (3 * 3_600, "3 hours ago"),
            (86_400 + 10, "yesterday"),
            (2 * 86_400, "2 days ago"),
            (40 * 86_400, "a month ago"),
            (90 * 86_400, "3 months ago"),
            (400 * 86_400, "a year ago"),
            (800 * 86_400, "2 years ago"),
        ];
        for (secs, words) in cases {
            assert_eq!(ago(t(0), t(secs)), words, "{secs} s");
        }
        assert_eq!(ago(t(10), t(0)), "just now");
        for secs in (0..3 * 365 * 86_400).step_by(3_607) {
            let words = ago(t(0), t(secs));
            assert!(!words.starts_with("1 "), "{secs}: {words}");
        }
    }

    #[test]
    fn device_names_read_as_people_say_them() {
        let cases = [
            (Some("Chrome"), Some("Windows 10"), "Chrome on Windows"),
            (Some("Mobile Safari"), Some("iOS"), "Safari on iOS"),
            (Some("Safari"), Some("Mac OSX"), "Safari on macOS"),
            (Some("Firefox"), Some("Mac OS X"), "Firefox on macOS"),
            (Some("Chrome Mobile"), Some("Android"), "Chrome on Android"),
            (Some("Firefox"), Some("Ubuntu"), "Firefox on Linux"),
            (Some("Firefox"), None, "Firefox"),
            (Some("UNKNOWN"), Some("UNKNOWN"), "Unknown device"),
            (Some("unknown"), Some(""), "Unknown device"),
            (None, None, "Unknown device"),
        ];
        for (browser, os, name) in cases {
            assert_eq!(device_name(browser, os), name, "{browser:?} {os:?}");
        }
        assert_eq!(kind_label(DeviceKind::Mobile).0, "Phone");
        assert_eq!(kind_label(DeviceKind::Unknown).0, "Device");
    }
}
