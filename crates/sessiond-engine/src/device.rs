//! What a session knows of the device it was created on: the raw user agent and
//! IP, and the kind, OS and browser parsed from the user agent by `woothee`.

use serde::{Deserialize, Serialize};

/// Maximum user-agent length kept; longer ones are cut (on a char boundary).
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// Broad class of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeviceKind {
    /// Desktop or laptop browser.
    Desktop,
    /// Phone.
    Mobile,
    /// Tablet.
    Tablet,
    /// Crawler or automated client.
    Bot,
    /// Could not tell.
    #[default]
    Unknown,
}

impl DeviceKind {
    /// The wire name, e.g. `desktop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Mobile => "mobile",
            Self::Tablet => "tablet",
            Self::Bot => "bot",
            Self::Unknown => "unknown",
        }
    }
}

/// Device facts of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// User agent as sent by the client (truncated to 512 bytes).
    pub user_agent: Option<String>,
    /// Client IP address as reported by the app.
    pub ip: Option<String>,
    /// Device class.
    pub kind: DeviceKind,
    /// Operating system name, e.g. "Windows 10", "iOS", "Android".
    pub os: Option<String>,
    /// Browser name, e.g. "Chrome", "Firefox", "Safari".
    pub browser: Option<String>,
}

impl Device {
    /// Parse `user_agent` and record `ip`.
    pub fn from_request(user_agent: Option<&str>, ip: Option<&str>) -> Self {
        let user_agent = user_agent.map(|ua| truncate(ua, MAX_USER_AGENT_BYTES));
        let mut device = Device {
            ip: ip.map(str::to_owned),
            ..Device::default()
        };
        if let Some(ua) = user_agent.as_deref()
            && let Some(parsed) = woothee::parser::Parser::new().parse(ua)
        {
            device.kind = kind_of(parsed.category, parsed.os, ua);
            device.os = known(parsed.os);
            device.browser = known(parsed.name);
        }
        device.user_agent = user_agent;
        device
    }
}

fn known(value: &str) -> Option<String> {
    (value != woothee::woothee::VALUE_UNKNOWN && !value.is_empty()).then(|| value.to_owned())
}

/// Map woothee's categories onto ours. woothee files tablets under
/// "smartphone"; iPads and Android devices without "Mobile" are tablets.
fn kind_of(category: &str, os: &str, ua: &str) -> DeviceKind {
    match category {
        "pc" => DeviceKind::Desktop,
        "smartphone" if os == "iPad" || (os == "Android" && !ua.contains("Mobile")) => {
            DeviceKind::Tablet
        }
        "smartphone" | "mobilephone" => DeviceKind::Mobile,
        "crawler" => DeviceKind::Bot,
        _ => DeviceKind::Unknown,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ua: &str) -> DeviceKind {
        Device::from_request(Some(ua), None).kind
    }

    #[test]
    fn parses_common_agents() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let d = Device::from_request(Some(chrome), Some("203.0.113.9"));
        assert_eq!(d.kind, DeviceKind::Desktop);
        assert_eq!(d.browser.as_deref(), Some("Chrome"));
        assert_eq!(d.os.as_deref(), Some("Windows 10"));
        assert_eq!(d.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(
            kind(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            DeviceKind::Mobile
        );
        assert_eq!(
            kind(
                "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            DeviceKind::Tablet
        );
        assert_eq!(
            kind(
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
            ),
            DeviceKind::Tablet
        );
        assert_eq!(
            kind(
                "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
            ),
            DeviceKind::Mobile
        );
        assert_eq!(
            kind("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            DeviceKind::Bot
        );
        assert_eq!(kind("curl/8.0"), DeviceKind::Unknown);
    }

    #[test]
    fn kind_names_are_the_wire_names() {
        for kind in [
            DeviceKind::Desktop,
            DeviceKind::Mobile,
            DeviceKind::Tablet,
            DeviceKind::Bot,
            DeviceKind::Unknown,
        ] {
            let wire = serde_json::to_value(kind).unwrap_or_default();
            assert_eq!(wire, kind.as_str());
        }
    }

    #[test]
    fn odd_agents_never_panic_and_are_bounded() {
        let long = "é".repeat(1000);
        let d = Device::from_request(Some(&long), None);
        assert!(d.user_agent.unwrap().len() <= MAX_USER_AGENT_BYTES);
        for ua in ["", "-", "\0\0", "Mozilla/5.0 (", "((((((((((", "🦀🦀🦀"] {
            Device::from_request(Some(ua), None);
        }
        assert_eq!(Device::from_request(None, None), Device::default());
    }
}
