//! The CSRF policy as a table: one list of requests and the answer each must
//! get, run against the server's cookie routes and against the axum layer,
//! so the two cannot drift apart.

/// How a case proves its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The session cookie, with the session's CSRF token in `X-CSRF-Token`.
    CookieWithToken,
    /// The session cookie, with a CSRF token of another session.
    CookieWithWrongToken,
    /// The session cookie and no CSRF token.
    CookieOnly,
    /// `Authorization: Bearer`, no CSRF token.
    Bearer,
}

/// One request and its expected answer.
#[derive(Clone, Copy, Debug)]
pub struct CsrfCase {
    /// What it shows.
    pub name: &'static str,
    /// A state-changing method (else a read).
    pub changes_state: bool,
    /// The credential.
    pub auth: Auth,
    /// More headers; `{host}` stands for the host the client addressed.
    pub headers: &'static [(&'static str, &'static str)],
    /// Sent by a peer listed in `trusted_proxies` (else by an untrusted one).
    pub via_trusted_proxy: bool,
    /// Allowed (2xx), or refused (403).
    pub allowed: bool,
}

const fn case(
    name: &'static str,
    auth: Auth,
    headers: &'static [(&'static str, &'static str)],
    allowed: bool,
) -> CsrfCase {
    CsrfCase {
        name,
        changes_state: true,
        auth,
        headers,
        via_trusted_proxy: false,
        allowed,
    }
}

/// The cases. The host addressed is plain `http` unless a trusted proxy
/// says otherwise.
pub const CASES: &[CsrfCase] = &[
    case("token, no origin headers", Auth::CookieWithToken, &[], true),
    case(
        "token, same-origin Origin",
        Auth::CookieWithToken,
        &[("origin", "http://{host}")],
        true,
    ),
    case(
        "token, Sec-Fetch-Site: same-origin",
        Auth::CookieWithToken,
        &[("sec-fetch-site", "same-origin")],
        true,
    ),
    case("no token", Auth::CookieOnly, &[], false),
    case(
        "no token, same-origin Origin",
        Auth::CookieOnly,
        &[("origin", "http://{host}")],
        false,
    ),
    case("wrong token", Auth::CookieWithWrongToken, &[], false),
    case(
        "token, Origin of another host",
        Auth::CookieWithToken,
        &[("origin", "http://evil.test")],
        false,
    ),
    case(
        "token, Origin of another scheme",
        Auth::CookieWithToken,
        &[("origin", "https://{host}")],
        false,
    ),
    case(
        "token, Origin: null",
        Auth::CookieWithToken,
        &[("origin", "null")],
        false,
    ),
    case(
        "token, Sec-Fetch-Site: cross-site",
        Auth::CookieWithToken,
        &[("sec-fetch-site", "cross-site")],
        false,
    ),
    case(
        "token, https Origin, X-Forwarded-Proto from an untrusted peer",
        Auth::CookieWithToken,
        &[("origin", "https://{host}"), ("x-forwarded-proto", "https")],
        false,
    ),
    CsrfCase {
        via_trusted_proxy: true,
        ..case(
            "token, https Origin behind a trusted TLS proxy",
            Auth::CookieWithToken,
            &[("origin", "https://{host}"), ("x-forwarded-proto", "https")],
            true,
        )
    },
    CsrfCase {
        via_trusted_proxy: true,
        ..case(
            "token, https Origin behind a trusted proxy speaking RFC 7239",
            Auth::CookieWithToken,
            &[
                ("origin", "https://{host}"),
                ("forwarded", "for=203.0.113.1;proto=https"),
            ],
            true,
        )
    },
    case(
        "bearer, Origin of another host",
        Auth::Bearer,
        &[("origin", "http://evil.test")],
        true,
    ),
    CsrfCase {
        changes_state: false,
        ..case(
            "a read, no token, Origin of another host",
            Auth::CookieOnly,
            &[("origin", "http://evil.test")],
            true,
        )
    },
];

impl CsrfCase {
    /// Whether `status` is the answer this case must get: a 2xx when
    /// allowed, 403 when refused; otherwise a line saying what went wrong.
    pub fn judge(&self, status: u16) -> Result<(), String> {
        let right = if self.allowed {
            (200..300).contains(&status)
        } else {
            status == 403
        };
        match right {
            true => Ok(()),
            false => Err(format!("{}: got {status}", self.name)),
        }
    }
}

/// `value` with `{host}` replaced.
pub fn with_host(value: &str, host: &str) -> String {
    value.replace("{host}", host)
}
