//! Cross-site request checks: unsafe methods from another origin are refused,
//! and cookie-authenticated ones must present the session's CSRF token
//! (derived from its token by [`sessiond_engine::csrf_token_for`]).

use axum::http::{HeaderMap, Method, header};

/// Header carrying the CSRF token (for `fetch` and other scripted requests).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field carrying the CSRF token (for HTML forms).
pub const CSRF_FORM_FIELD: &str = "csrf_token";

/// Whether the method may change state (everything but GET, HEAD, OPTIONS,
/// TRACE).
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the browser says the request comes from another site: a
/// `Sec-Fetch-Site: cross-site`, an opaque `Origin: null`, or an `Origin`
/// whose host differs from `Host`. Requests without these headers (non-browser
/// clients) are not cross-origin by this test.
pub(crate) fn cross_origin(headers: &HeaderMap) -> bool {
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
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.split_once("://"), host) {
        (Some((_, authority)), Some(host)) => !authority.eq_ignore_ascii_case(host),
        _ => true,
    }
}

/// Whether the body is an urlencoded HTML form.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The CSRF field of an urlencoded form body.
pub(crate) fn form_field(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == CSRF_FORM_FIELD)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_checks() {
        assert!(!cross_origin(&headers(&[])));
        assert!(!cross_origin(&headers(&[
            ("host", "a.test"),
            ("origin", "https://a.test")
        ])));
        assert!(!cross_origin(&headers(&[
            ("host", "A.test:8080"),
            ("origin", "http://a.test:8080")
        ])));
        assert!(cross_origin(&headers(&[
            ("host", "a.test"),
            ("origin", "https://evil.test")
        ])));
        assert!(cross_origin(&headers(&[
            ("host", "a.test"),
            ("origin", "null")
        ])));
        assert!(cross_origin(&headers(&[("origin", "https://a.test")])));
        assert!(cross_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!cross_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
    }

    #[test]
    fn methods_and_forms() {
        assert!(!is_unsafe(&Method::GET));
        assert!(!is_unsafe(&Method::HEAD));
        assert!(is_unsafe(&Method::POST));
        assert!(is_unsafe(&Method::DELETE));
        assert!(is_unsafe(&Method::from_bytes(b"PROPPATCH").unwrap()));
        assert!(is_form(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
        )])));
        assert!(!is_form(&headers(&[("content-type", "application/json")])));
        assert_eq!(
            form_field(b"a=1&csrf_token=x%2By&b=2").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_field(b"a=1"), None);
        assert_eq!(form_field(&[0xff, 0xfe, b'=']), None);
    }
}
