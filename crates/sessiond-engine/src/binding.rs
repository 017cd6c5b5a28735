//! Device binding: a role may tie its sessions to the network (an IP
//! prefix) and the browser family they were created from, and either revoke
//! a session presented from elsewhere or let it through flagged.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::device::Device;

/// What a session is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BindTo {
    /// The network prefix of its IP address (`/24` IPv4, `/48` IPv6 by
    /// default).
    IpPrefix,
    /// The browser family parsed from its user agent (Chrome, Firefox…).
    UaFamily,
}

impl BindTo {
    /// The config and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IpPrefix => "ip_prefix",
            Self::UaFamily => "ua_family",
        }
    }
}

/// What happens to a session presented from elsewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMismatch {
    /// Revoke it (reason `binding_mismatch`): the check says inactive.
    #[default]
    Revoke,
    /// Keep it and answer active with a risk flag.
    Flag,
}

/// A role's binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// What sessions are bound to.
    pub to: Vec<BindTo>,
    /// What a mismatch does.
    pub on_mismatch: OnMismatch,
    /// Prefix length compared for IPv4 addresses.
    pub ipv4_prefix: u8,
    /// Prefix length compared for IPv6 addresses.
    pub ipv6_prefix: u8,
}

impl Default for Binding {
    fn default() -> Self {
        Self {
            to: Vec::new(),
            on_mismatch: OnMismatch::Revoke,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
        }
    }
}

/// The client presenting a session: what a check compares the session's
/// device with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presenter<'a> {
    /// Its IP address, if known.
    pub ip: Option<IpAddr>,
    /// Its user agent, if known.
    pub user_agent: Option<&'a str>,
}

impl Binding {
    /// Which bindings `presenter` breaks for a session created on `device`.
    /// What either side does not know is not compared (a session created
    /// without an IP has no prefix to keep).
    pub fn mismatches(&self, device: &Device, presenter: &Presenter<'_>) -> Vec<BindTo> {
        self.to
            .iter()
            .copied()
            .filter(|b| match b {
                BindTo::IpPrefix => {
                    let created = device
                        .ip
                        .as_deref()
                        .and_then(|ip| ip.parse::<IpAddr>().ok());
                    match (created, presenter.ip) {
                        (Some(a), Some(b)) => !self.same_prefix(a, b),
                        _ => false,
                    }
                }
                BindTo::UaFamily => {
                    let now = presenter
                        .user_agent
                        .map(|ua| Device::from_request(Some(ua), None).browser);
                    match (&device.browser, now) {
                        (Some(a), Some(b)) => b.as_deref() != Some(a.as_str()),
                        _ => false,
                    }
                }
            })
            .collect()
    }

    fn same_prefix(&self, a: IpAddr, b: IpAddr) -> bool {
        let (a, b) = (canonical(a), canonical(b));
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(&a.octets(), &b.octets(), self.ipv4_prefix),
            (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(&a.octets(), &b.octets(), self.ipv6_prefix),
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits).min(a.len() * 8);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";

    fn both() -> Binding {
        Binding {
            to: vec![BindTo::IpPrefix, BindTo::UaFamily],
            ..Binding::default()
        }
    }

    fn at<'a>(ip: &str, ua: &'a str) -> Presenter<'a> {
        Presenter {
            ip: ip.parse().ok(),
            user_agent: Some(ua),
        }
    }

    #[test]
    fn prefixes_and_families_are_compared() {
        let device = Device::from_request(Some(CHROME), Some("198.51.100.7"));
        let b = both();
        assert!(
            b.mismatches(&device, &at("198.51.100.200", CHROME))
                .is_empty()
        );
        assert_eq!(
            b.mismatches(&device, &at("198.51.101.7", CHROME)),
            [BindTo::IpPrefix]
        );
        assert_eq!(
            b.mismatches(&device, &at("198.51.100.7", FIREFOX)),
            [BindTo::UaFamily]
        );
        assert_eq!(
            b.mismatches(&device, &at("2001:db8::1", FIREFOX)),
            [BindTo::IpPrefix, BindTo::UaFamily]
        );
        assert!(
            b.mismatches(&device, &at("::ffff:198.51.100.9", CHROME))
                .is_empty(),
            "an IPv4-mapped address is the IPv4 address"
        );
        // Nothing known, nothing compared.
        assert!(b.mismatches(&device, &Presenter::default()).is_empty());
        assert!(
            b.mismatches(&Device::default(), &at("192.0.2.1", FIREFOX))
                .is_empty()
        );
    }

    #[test]
    fn ipv6_uses_its_own_prefix() {
        let device = Device::from_request(None, Some("2001:db8:1:2::1"));
        let b = both();
        assert!(
            b.mismatches(&device, &at("2001:db8:1:ffff::9", CHROME))
                .is_empty()
        );
        assert_eq!(
            b.mismatches(&device, &at("2001:db8:2::1", CHROME)),
            [BindTo::IpPrefix]
        );
        let narrow = Binding {
            ipv6_prefix: 50,
            ..both()
        };
        assert!(
            narrow
                .mismatches(&device, &at("2001:db8:1:3fff::1", CHROME))
                .is_empty()
        );
        assert_eq!(
            narrow.mismatches(&device, &at("2001:db8:1:4000::1", CHROME)),
            [BindTo::IpPrefix]
        );
    }
}
