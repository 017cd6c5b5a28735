//! Who sent a request and through which origin: the client's IP address and
//! the scheme and host it used. Behind reverse proxies these come from
//! `X-Forwarded-For`/`-Proto`/`-Host` or `Forwarded` (RFC 7239), read only
//! when the peer is a trusted proxy; otherwise from the TCP peer and `Host`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::{HeaderMap, header};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed, as CIDR ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A trusted proxy entry that is neither an IP address nor a CIDR range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProxy(pub String);

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an IP address or CIDR range like \"10.0.0.0/8\" or \"::1\"",
            self.0
        )
    }
}

impl std::error::Error for InvalidProxy {}

impl TrustedProxies {
    /// No proxy is trusted: every request's client is its TCP peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parse entries like `"10.0.0.0/8"`, `"192.0.2.7"` or `"::1"`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, InvalidProxy> {
        entries
            .iter()
            .map(|e| parse_net(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The ranges, as written in canonical form.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

fn parse_net(entry: &str) -> Result<IpNet, InvalidProxy> {
    let text = entry.trim();
    if let Ok(net) = IpNet::from_str(text) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(text)
        .map(|ip| IpNet::from(ip.to_canonical()))
        .map_err(|_| InvalidProxy(entry.to_owned()))
}

/// The client of a request as sessiond sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the TCP peer, or behind trusted proxies the
    /// first untrusted address counting back along the forwarding chain.
    pub ip: IpAddr,
    /// The scheme the client used: `http`, or what a trusted proxy reports.
    pub scheme: String,
    /// The host (and port) the client addressed: `Host`, or what a trusted
    /// proxy reports; `None` if the request names none.
    pub host: Option<String>,
}

impl ClientInfo {
    /// Read the client of a request that arrived from `peer`.
    pub fn from_request(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        let own_host = || header_text(headers, header::HOST).map(str::to_owned);
        if !trusted.contains(peer) {
            return Self {
                ip: peer,
                scheme: "http".to_owned(),
                host: own_host(),
            };
        }
        let forwarded = Forwarded::read(headers);
        Self {
            ip: client_ip(peer, &forwarded.chain, trusted),
            scheme: forwarded
                .proto
                .filter(|p| matches!(p.as_str(), "http" | "https"))
                .unwrap_or_else(|| "http".to_owned()),
            host: forwarded.host.or_else(own_host),
        }
    }

    /// The origin the client used, as a browser writes it in `Origin`
    /// (`scheme://host[:port]`, default port left out, lower case).
    pub fn origin(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        Some(normalize_origin(&self.scheme, host))
    }
}

/// `scheme://authority`, lower case, without the scheme's default port.
pub(crate) fn normalize_origin(scheme: &str, authority: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let authority = default_port
        .and_then(|port| authority.strip_suffix(port))
        .unwrap_or(&authority);
    format!("{scheme}://{authority}")
}

/// Walk the chain back from the peer: each trusted hop vouches for the one
/// before it; the first untrusted address is the client. A hop that does not
/// name an address ends the walk at the last trusted one.
fn client_ip(peer: IpAddr, chain: &[Option<IpAddr>], trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer;
    for hop in chain.iter().rev() {
        let Some(ip) = hop else { return client };
        client = ip.to_canonical();
        if !trusted.contains(client) {
            return client;
        }
    }
    client
}

/// What forwarding headers say: the chain of addresses (client first), the
/// original scheme and host.
struct Forwarded {
    chain: Vec<Option<IpAddr>>,
    proto: Option<String>,
    host: Option<String>,
}

impl Forwarded {
    /// `X-Forwarded-*` when the request has `X-Forwarded-For`, else RFC 7239
    /// `Forwarded`, else nginx's `X-Real-IP` (one address). (A proxy
    /// appends to one of them; reading another would let a client write
    /// the chain.)
    fn read(headers: &HeaderMap) -> Self {
        let mut xff: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        if xff.is_empty()
            && !headers.contains_key(header::FORWARDED)
            && let Some(real) = first_value(headers, "x-real-ip")
        {
            xff.push(real);
        }
        if !xff.is_empty() || !headers.contains_key(header::FORWARDED) {
            return Self {
                chain: xff.iter().map(|e| parse_node(e)).collect(),
                proto: first_value(headers, "x-forwarded-proto").map(|p| p.to_ascii_lowercase()),
                host: first_value(headers, "x-forwarded-host").map(str::to_owned),
            };
        }
        let mut out = Self {
            chain: Vec::new(),
            proto: None,
            host: None,
        };
        let elements = headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for element in elements {
            let mut node = None;
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => node = Some(parse_node(value)),
                    "proto" if out.proto.is_none() => out.proto = Some(value.to_ascii_lowercase()),
                    "host" if out.host.is_none() => out.host = Some(value.to_owned()),
                    _ => {}
                }
            }
            out.chain.push(node.flatten());
        }
        out
    }
}

fn header_text(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The first comma-separated value of a header (the client-facing one).
fn first_value<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    header_text(headers, name)?
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An address in a forwarding header: `192.0.2.1`, `192.0.2.1:443`, `::1`,
/// `[::1]`, `[::1]:443`; anything else (`unknown`, obfuscated names) is `None`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = IpAddr::from_str(text) {
        return Some(ip);
    }
    if let Ok(sock) = SocketAddr::from_str(text) {
        return Some(sock.ip());
    }
    let bracketed = text.strip_prefix('[')?;
    let inner = bracketed.split(']').next()?;
    IpAddr::from_str(inner).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn parses_ranges_and_addresses() {
        let t = proxies(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "::1",
            "2001:db8::/32",
            "172.16.5.4/12",
        ]);
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(t.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped IPv6");
        assert!(t.contains(ip("172.31.0.1")), "host bits are dropped");
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0", "1.2.3.4/x"] {
            assert_eq!(
                TrustedProxies::parse(&[bad]),
                Err(InvalidProxy(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(t.to_strings()[0], "10.0.0.0/8");
    }

    #[test]
    fn x_real_ip_names_the_client_behind_a_trusted_proxy_only() {
        let h = headers(&[("x-real-ip", "203.0.113.9")]);
        let trusted = proxies(&["10.0.0.0/8"]);
        let c = ClientInfo::from_request(ip("10.1.2.3"), &h, &trusted);
        assert_eq!(c.ip, ip("203.0.113.9"));
        let c = ClientInfo::from_request(ip("198.51.100.1"), &h, &trusted);
        assert_eq!(c.ip, ip("198.51.100.1"));
        // X-Forwarded-For wins when both are sent.
        let h = headers(&[
            ("x-real-ip", "203.0.113.9"),
            ("x-forwarded-for", "192.0.2.4"),
        ]);
        let c = ClientInfo::from_request(ip("10.1.2.3"), &h, &trusted);
        assert_eq!(c.ip, ip("192.0.2.4"));
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("host", "app.test"),
        ]);
        let c = ClientInfo::from_request(ip("198.51.100.1"), &h, &TrustedProxies::none());
        assert_eq!(c.ip, ip("198.51.100.1"));
        assert_eq!(c.scheme, "http");
        assert_eq!(c.host.as_deref(), Some("app.test"));
        let c = ClientInfo::from_request(ip("198.51.100.1"), &h, &proxies(&["10.0.0.0/8"]));
        assert_eq!(c.ip, ip("198.51.100.1"));
    }

    #[test]
    fn the_chain_is_walked_back_to_the_first_untrusted_hop() {
        let t = proxies(&["10.0.0.0/8"]);
        let cases: &[(&str, &str)] = &[
            ("203.0.113.9", "203.0.113.9"),
            // A client-written entry in front of the real one is skipped.
            ("1.1.1.1, 203.0.113.9", "203.0.113.9"),
            // Trusted hops in between are skipped.
            ("1.1.1.1, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
            // All trusted: the leftmost.
            ("10.0.0.3, 10.0.0.2", "10.0.0.3"),
            // Garbage stops the walk at the last trusted hop.
            ("203.0.113.9, garbage", "10.0.0.1"),
            ("203.0.113.9:5555", "203.0.113.9"),
            ("[2001:db8::9]:443", "2001:db8::9"),
            ("2001:db8::9", "2001:db8::9"),
            ("", "10.0.0.1"),
        ];
        for (xff, expected) in cases {
            let h = headers(&[("x-forwarded-for", xff)]);
            let c = ClientInfo::from_request(ip("10.0.0.1"), &h, &t);
            assert_eq!(c.ip, ip(expected), "{xff:?}");
        }
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            ClientInfo::from_request(ip("10.0.0.1"), &h, &t).ip,
            ip("203.0.113.9")
        );
        // No forwarding header at all: the proxy itself.
        assert_eq!(
            ClientInfo::from_request(ip("10.0.0.1"), &HeaderMap::new(), &t).ip,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rfc7239_forwarded() {
        let t = proxies(&["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https;host=app.test, for=10.0.0.5",
        )]);
        let c = ClientInfo::from_request(ip("10.0.0.1"), &h, &t);
        assert_eq!(c.ip, ip("2001:db8:cafe::17"));
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host.as_deref(), Some("app.test"));
        let h = headers(&[("forwarded", "for=unknown"), ("host", "a.test")]);
        let c = ClientInfo::from_request(ip("10.0.0.1"), &h, &t);
        assert_eq!(c.ip, ip("10.0.0.1"));
        assert_eq!(c.host.as_deref(), Some("a.test"));
        // X-Forwarded-For, when present, is the one read.
        let h = headers(&[
            ("forwarded", "for=1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            ClientInfo::from_request(ip("10.0.0.1"), &h, &t).ip,
            ip("203.0.113.9")
        );
    }

    #[test]
    fn scheme_and_host_from_trusted_proxies_only() {
        let t = proxies(&["127.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-proto", "HTTPS, http"),
            ("x-forwarded-host", "App.Test"),
            ("host", "internal:7420"),
        ]);
        let c = ClientInfo::from_request(ip("127.0.0.1"), &h, &t);
        assert_eq!(c.scheme, "https");
        assert_eq!(c.origin().as_deref(), Some("https://app.test"));
        let h = headers(&[("x-forwarded-proto", "gopher"), ("host", "a.test:80")]);
        let c = ClientInfo::from_request(ip("127.0.0.1"), &h, &t);
        assert_eq!(c.scheme, "http");
        assert_eq!(c.origin().as_deref(), Some("http://a.test"));
        let c = ClientInfo::from_request(ip("127.0.0.1"), &HeaderMap::new(), &t);
        assert_eq!(c.origin(), None);
    }

    proptest! {
        #[test]
        fn never_panics_and_never_trusts_a_client_written_address(
            xff in "[0-9a-f:.,\\[\\] ]{0,60}",
            fwd in "[a-z0-9=;,:.\" \\[\\]]{0,60}",
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&xff) { h.append("x-forwarded-for", v); }
            if let Ok(v) = http::HeaderValue::from_str(&fwd) { h.append("forwarded", v); }
            let t = proxies(&["10.0.0.0/8"]);
            // From an untrusted peer, the peer is the client.
            let c = ClientInfo::from_request(ip("198.51.100.1"), &h, &t);
            prop_assert_eq!(c.ip, ip("198.51.100.1"));
            let _ = ClientInfo::from_request(ip("10.0.0.1"), &h, &t);
        }
    }
}
