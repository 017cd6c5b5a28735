//! The HTML pages (askama templates under `templates/`) and the views of
//! sessions they show.

use askama::Template;
use sessiond_axum::SessionView;
use sessiond_engine::Timestamp;

use crate::users::DemoUser;

/// `GET /login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct Login {
    /// What went wrong with the last attempt.
    pub error: Option<String>,
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
    pub notice: Option<String>,
    pub csrf: String,
}

/// One session on the devices page.
pub struct DeviceRow {
    pub id: String,
    pub kind: String,
    pub browser: String,
    pub os: String,
    pub ip: String,
    pub last_seen: String,
    pub signed_in: String,
    pub current: bool,
}

fn or_unknown(v: Option<String>) -> String {
    v.filter(|s| !s.is_empty() && s != "UNKNOWN")
        .unwrap_or_else(|| "unknown".into())
}

/// "just now", "5 minutes ago", … from `now`.
pub fn ago(then: Timestamp, now: Timestamp) -> String {
    let secs = (now.as_millis() - then.as_millis()).max(0) / 1000;
    match secs {
        0..=59 => "just now".into(),
        60..=119 => "a minute ago".into(),
        120..=3599 => format!("{} minutes ago", secs / 60),
        3600..=7199 => "an hour ago".into(),
        7200..=86399 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

impl DeviceRow {
    /// The row for `s` at `now`.
    pub fn new(s: SessionView, now: Timestamp) -> Self {
        let d = s.device;
        Self {
            id: s.id.to_string(),
            kind: serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into()),
            browser: or_unknown(d.browser),
            os: or_unknown(d.os),
            ip: or_unknown(d.ip),
            last_seen: ago(s.last_seen_at, now),
            signed_in: s.created_at.to_rfc3339(),
            current: s.current == Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let t = |ms| Timestamp::from_millis(ms);
        assert_eq!(ago(t(0), t(30_000)), "just now");
        assert_eq!(ago(t(0), t(90_000)), "a minute ago");
        assert_eq!(ago(t(0), t(600_000)), "10 minutes ago");
        assert_eq!(ago(t(0), t(3 * 3_600_000)), "3 hours ago");
        assert_eq!(ago(t(0), t(2 * 86_400_000)), "2 days ago");
        assert_eq!(ago(t(10), t(0)), "just now");
    }
}
