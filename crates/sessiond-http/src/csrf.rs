//! The one CSRF policy of the server and the layer: a request that may change
//! state (any method but GET, HEAD, OPTIONS, TRACE) is refused when a browser
//! says it comes from another site, and when it is authenticated by the
//! session cookie it must also present the session's CSRF token. Requests
//! authenticated by `Authorization: Bearer` are exempt: no browser attaches
//! that header on its own.

use http::{HeaderMap, Method, header};
use sessiond_engine::{csrf_token_for, csrf_token_matches};

use crate::client::{ClientInfo, normalize_origin};

/// Header carrying the CSRF token (for `fetch` and other scripted requests).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field carrying the CSRF token (for HTML forms).
pub const CSRF_FORM_FIELD: &str = "csrf_token";

/// How a request proves its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No credential (a login form, say).
    None,
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie, holding this session token.
    Cookie(&'a str),
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrfRefusal {
    /// The browser says the request comes from another site.
    CrossSite,
    /// A cookie-authenticated change without a CSRF token.
    MissingToken,
    /// A cookie-authenticated change with a token that is not its session's.
    WrongToken,
}

impl CsrfRefusal {
    /// What went wrong, for the problem detail.
    pub fn detail(self) -> &'static str {
        match self {
            Self::CrossSite => "cross-site request refused: it may not change state",
            Self::MissingToken => {
                "missing CSRF token: cookie-authenticated changes need the session's CSRF token (X-CSRF-Token header or csrf_token form field)"
            }
            Self::WrongToken => "wrong CSRF token: it does not belong to this session",
        }
    }
}

/// Whether the method may change state (everything but GET, HEAD, OPTIONS,
/// TRACE).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the browser says the request comes from another site:
/// `Sec-Fetch-Site: cross-site`, an opaque `Origin: null`, or an `Origin`
/// that is not the origin the client addressed (scheme and host, as
/// [`ClientInfo`] finds them). Requests without these headers (non-browser
/// clients) are not cross-site by this test.
pub fn cross_site(headers: &HeaderMap, client: &ClientInfo) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return true;
    };
    client.origin() != Some(normalize_origin(scheme, authority))
}

/// Apply the policy to a request: `presented` is the CSRF token it carries
/// (header or form field), if any.
pub fn check(
    method: &Method,
    headers: &HeaderMap,
    client: &ClientInfo,
    credential: Credential<'_>,
    presented: Option<&[u8]>,
) -> Result<(), CsrfRefusal> {
    if !is_unsafe(method) || credential == Credential::Bearer {
        return Ok(());
    }
    if cross_site(headers, client) {
        return Err(CsrfRefusal::CrossSite);
    }
    let Credential::Cookie(session_token) = credential else {
        return Ok(());
    };
    match presented {
        None => Err(CsrfRefusal::MissingToken),
        Some(p) if csrf_token_matches(p, &csrf_token_for(session_token)) => Ok(()),
        Some(_) => Err(CsrfRefusal::WrongToken),
    }
}

/// The CSRF token in the request's [`CSRF_HEADER`], if any.
pub fn header_token(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(CSRF_HEADER).map(|v| v.as_bytes())
}

/// Whether the request may carry the token as a form field instead: an
/// `application/x-www-form-urlencoded` body without the header, changing
/// state with the session cookie (read the body only then).
pub fn token_may_be_in_form(
    method: &Method,
    headers: &HeaderMap,
    credential: Credential<'_>,
) -> bool {
    is_unsafe(method)
        && matches!(credential, Credential::Cookie(_))
        && header_token(headers).is_none()
        && is_form(headers)
}

/// Whether the body is an urlencoded HTML form.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The [`CSRF_FORM_FIELD`] of an urlencoded form body.
pub fn form_token(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == CSRF_FORM_FIELD)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::TrustedProxies;
    use crate::test_support::headers;

    fn client(h: &HeaderMap) -> ClientInfo {
        ClientInfo::from_request(
            "127.0.0.1".parse().unwrap(),
            h,
            &TrustedProxies::parse(&["127.0.0.1"]).unwrap(),
        )
    }

    #[test]
    fn cross_site_signals() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("host", "a.test")], false),
            (&[("host", "a.test"), ("origin", "http://a.test")], false),
            (
                &[("host", "A.test:8080"), ("origin", "http://a.test:8080")],
                false,
            ),
            (&[("host", "a.test:80"), ("origin", "http://a.test")], false),
            // The scheme counts: an https page is another origin.
            (&[("host", "a.test"), ("origin", "https://a.test")], true),
            (
                &[
                    ("host", "a.test"),
                    ("origin", "https://a.test"),
                    ("x-forwarded-proto", "https"),
                ],
                false,
            ),
            (&[("host", "a.test"), ("origin", "https://evil.test")], true),
            (&[("host", "a.test"), ("origin", "null")], true),
            (&[("host", "a.test"), ("origin", "a.test")], true),
            (&[("origin", "http://a.test")], true),
            (&[("sec-fetch-site", "cross-site")], true),
            (
                &[
                    ("host", "a.test"),
                    ("origin", "http://a.test"),
                    ("sec-fetch-site", "cross-site"),
                ],
                true,
            ),
            (&[("sec-fetch-site", "same-origin")], false),
            (&[("sec-fetch-site", "none")], false),
        ];
        for (pairs, expected) in cases {
            let h = headers(pairs);
            assert_eq!(cross_site(&h, &client(&h)), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn forms() {
        let form = headers(&[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )]);
        let cookie = Credential::Cookie("sds_x");
        assert!(token_may_be_in_form(&Method::POST, &form, cookie));
        assert!(!token_may_be_in_form(&Method::GET, &form, cookie));
        assert!(!token_may_be_in_form(
            &Method::POST,
            &form,
            Credential::Bearer
        ));
        let json = headers(&[("content-type", "application/json")]);
        assert!(!token_may_be_in_form(&Method::POST, &json, cookie));
        let both = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-csrf-token", "t"),
        ]);
        assert!(
            !token_may_be_in_form(&Method::POST, &both, cookie),
            "the header wins"
        );
        assert_eq!(
            form_token(b"a=1&csrf_token=x%2By&b=2").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_token(b"a=1"), None);
        assert_eq!(form_token(&[0xff, 0xfe, b'=']), None);
    }

    #[test]
    fn methods() {
        for safe in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!is_unsafe(&safe));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_unsafe(&m));
        }
        assert!(is_unsafe(&Method::from_bytes(b"PROPPATCH").unwrap()));
    }
}
