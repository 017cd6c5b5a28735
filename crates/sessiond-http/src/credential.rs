//! Credentials a request carries: `Authorization: Bearer` and a named cookie.

use http::{HeaderMap, header};

/// The token of an `Authorization: Bearer <token>` header (scheme matched
/// without regard to case); `None` if absent, another scheme, or empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The value of cookie `name` in the request's `Cookie` headers (quotes
/// removed); the first one wins, empty values count as absent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_tokens() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Bearer ", None),
            ("Bearer    ", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("", None),
        ];
        for (value, expected) in cases {
            let h = with(&[(header::AUTHORIZATION, value)]);
            assert_eq!(bearer(&h), *expected, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn named_cookies() {
        let h = with(&[
            (header::COOKIE, "a=1; sessiond=tok; b=2"),
            (header::COOKIE, "c=\"3\""),
        ]);
        assert_eq!(cookie(&h, "sessiond"), Some("tok"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "sessiond2"), None);
        assert_eq!(cookie(&h, "sessio"), None);
        let empty = with(&[(header::COOKIE, "sessiond=; x=1")]);
        assert_eq!(cookie(&empty, "sessiond"), None);
        let first = with(&[(header::COOKIE, "sessiond=one; sessiond=two")]);
        assert_eq!(cookie(&first, "sessiond"), Some("one"));
    }
}
